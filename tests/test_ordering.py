"""The per-track reorder window, gaps and duplicates: plain calls, no event loop."""

from __future__ import annotations

from typing import Any

import pytest

from streamserver.ordering import Ordering, OrderStats

F = 160  # samples of a 20 ms μ-law frame at 8 kHz


def frame(i: int, n: int = F, width: int = 1) -> bytes:
    """``n`` samples whose bytes say which frame they are."""
    return bytes([i % 256]) * (n * width)


class Out:
    """Collects what the ordering tells: ("audio", track, pos, n, payload) / ("gap", ...)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def deliver(self, track: str, pos: int, n: int, payload: bytes) -> None:
        self.events.append(("audio", track, pos, n, payload))

    def gap(self, track: str, pos: int, n: int) -> None:
        self.events.append(("gap", track, pos, n))

    def audio(self, track: str = "inbound") -> list[tuple[int, int, int]]:
        """(position, samples, frame id) of the audio delivered on ``track``."""
        return [(e[2], e[3], e[4][0]) for e in self.events if e[0] == "audio" and e[1] == track]

    def gaps(self, track: str = "inbound") -> list[tuple[int, int]]:
        return [(e[2], e[3]) for e in self.events if e[0] == "gap" and e[1] == track]


def make(
    window: int = 5,
    tracks: tuple[str, ...] = ("inbound",),
    width: int = 1,
    totals: OrderStats | None = None,
) -> tuple[Ordering, Out]:
    out = Out()
    o = Ordering(
        tracks,
        bytes_per_sample=width,
        sample_rate=8000,
        window=window,
        deliver=out.deliver,
        gap=out.gap,
        totals=totals,
    )
    return o, out


def push_chunks(o: Ordering, chunks: list[int], track: str = "inbound", width: int = 1) -> None:
    for c in chunks:
        assert o.push(track, c, None, frame(c, width=width))


def test_in_order_audio_is_delivered_at_once_and_contiguous() -> None:
    o, out = make()
    push_chunks(o, [1, 2, 3])
    assert out.audio() == [(0, F, 1), (F, F, 2), (2 * F, F, 3)]
    assert out.gaps() == []
    assert (o.stats.duplicates, o.stats.reordered, o.stats.gaps) == (0, 0, 0)


def test_a_small_reordering_is_fixed_within_the_window() -> None:
    o, out = make(window=5)
    push_chunks(o, [1, 3, 4])
    assert out.audio() == [(0, F, 1)]  # 3 and 4 wait for 2
    push_chunks(o, [2, 5])
    assert out.audio() == [(i * F, F, i + 1) for i in range(5)]
    assert o.stats.reordered == 2  # 3 and 4 came out of the window
    assert out.gaps() == []


def test_window_overflow_declares_the_missing_chunks_a_gap_of_exact_length() -> None:
    o, out = make(window=2)
    push_chunks(o, [1, 4, 5])  # 2 and 3 missing; the window holds 2 frames
    assert out.audio() == [(0, F, 1)]
    push_chunks(o, [6])  # a third held frame overflows the window
    assert out.gaps() == [(F, 2 * F)]
    assert out.audio() == [(0, F, 1), (3 * F, F, 4), (4 * F, F, 5), (5 * F, F, 6)]
    assert (o.stats.gaps, o.stats.gap_samples) == (1, 2 * F)
    # A late arrival of a chunk declared lost is a duplicate now.
    push_chunks(o, [2])
    assert o.stats.duplicates == 1
    assert len(out.audio()) == 4


def test_window_zero_declares_a_gap_at_once() -> None:
    o, out = make(window=0)
    push_chunks(o, [1, 3])
    assert out.events == [
        ("audio", "inbound", 0, F, frame(1)),
        ("gap", "inbound", F, F),
        ("audio", "inbound", 2 * F, F, frame(3)),
    ]


def test_the_gap_length_is_counted_in_frames_of_the_first_held_chunk() -> None:
    o, out = make(window=0)
    o.push("inbound", 1, None, frame(1))
    o.push("inbound", 4, None, frame(4, n=80))  # 2 and 3 lost; frames of 80 samples now
    assert out.gaps() == [(F, 2 * 80)]
    assert out.audio()[-1] == (F + 160, 80, 4)


def test_l16_counts_two_bytes_per_sample() -> None:
    o, out = make(window=0, width=2)
    push_chunks(o, [1, 2, 4], width=2)
    assert out.audio() == [(0, F, 1), (F, F, 2), (3 * F, F, 4)]
    assert out.gaps() == [(2 * F, F)]


def test_duplicates_old_or_already_held_are_dropped_and_counted() -> None:
    o, out = make(window=5)
    push_chunks(o, [1, 2, 2, 1])  # already delivered
    push_chunks(o, [4, 4])  # the second 4 is already held
    assert o.stats.duplicates == 3
    push_chunks(o, [3])
    assert out.audio() == [(i * F, F, i + 1) for i in range(4)]


def test_flush_declares_what_is_missing_and_delivers_what_is_held() -> None:
    o, out = make(window=5)
    push_chunks(o, [1, 3, 6, 7])
    o.flush()
    assert out.gaps() == [(F, F), (3 * F, 2 * F)]
    assert out.audio() == [(0, F, 1), (2 * F, F, 3), (5 * F, F, 6), (6 * F, F, 7)]
    o.flush()  # nothing left: nothing happens
    assert len(out.events) == 6


def test_without_chunk_the_timestamp_places_audio() -> None:
    o, out = make()
    o.push("inbound", None, 1000, frame(1))  # the first timestamp is position 0
    o.push("inbound", None, 1020, frame(2))
    o.push("inbound", None, 1060, frame(3))  # 20 ms (160 samples) never arrived
    o.push("inbound", None, 1050, frame(4))  # wholly in the past: a duplicate
    o.push("inbound", None, 1081, frame(5))  # 1 ms late is jitter, not a gap
    assert out.audio() == [(0, F, 1), (F, F, 2), (3 * F, F, 3), (4 * F, F, 5)]
    assert out.gaps() == [(2 * F, F)]
    assert o.stats.duplicates == 1


def test_without_chunk_and_timestamp_audio_is_contiguous() -> None:
    o, out = make()
    for i in range(3):
        o.push("inbound", None, None, frame(i))
    assert out.audio() == [(0, F, 0), (F, F, 1), (2 * F, F, 2)]


def test_tracks_are_ordered_independently() -> None:
    o, out = make(window=0, tracks=("inbound", "outbound"))
    push_chunks(o, [1, 2, 3], track="outbound")
    push_chunks(o, [1, 3])
    assert out.audio("outbound") == [(0, F, 1), (F, F, 2), (2 * F, F, 3)]
    assert out.gaps("outbound") == []
    assert out.gaps("inbound") == [(F, F)]


def test_an_unannounced_track_is_refused() -> None:
    o, out = make()
    assert not o.push("outbound", 1, None, frame(1))
    assert out.events == []


def test_counts_go_to_the_stream_and_to_the_totals() -> None:
    totals = OrderStats()
    a, _ = make(window=0, totals=totals)
    b, _ = make(window=0, totals=totals)
    for o in (a, b):
        push_chunks(o, [1, 1, 3])
    assert (a.stats.duplicates, a.stats.gaps, a.stats.gap_samples) == (1, 1, F)
    assert (totals.duplicates, totals.gaps, totals.gap_samples) == (2, 2, 2 * F)


def test_bytes_per_sample_is_checked() -> None:
    with pytest.raises(ValueError, match="bytes_per_sample"):
        make(width=3)


# -- jumps: capped gaps, resyncs, lone bogus frames ------------------------------------------

CAP = 5 * 8000  # a 5 s cap at 8 kHz


def make_capped(window: int = 5) -> tuple[Ordering, Out, list[tuple[str, str, int]]]:
    out = Out()
    seen: list[tuple[str, str, int]] = []
    o = Ordering(
        ("inbound",),
        bytes_per_sample=1,
        sample_rate=8000,
        window=window,
        deliver=out.deliver,
        gap=out.gap,
        max_gap_samples=CAP,
        anomaly=lambda t, k, n: seen.append((t, k, n)),
    )
    return o, out, seen


def test_a_chunk_jump_of_a_day_is_a_capped_gap_and_the_timeline_resyncs() -> None:
    o, out, seen = make_capped()
    day = 24 * 3600 * 50  # chunks of 20 ms in 24 h
    push_chunks(o, [1, 2, 3, day, day + 1, day + 2])
    o.flush()
    assert out.gaps() == [(3 * F, CAP)]
    assert out.audio()[3:] == [(3 * F + CAP + i * F, F, (day + i) % 256) for i in range(3)]
    assert o.stats.gaps_capped == 1 and o.stats.resyncs == 1
    assert o.stats.gap_samples == CAP
    assert [k for _, k, _ in seen] == ["gap_capped", "resync"]


def test_one_frame_far_ahead_is_invalid_input_and_nothing_is_filled() -> None:
    o, out, seen = make_capped()
    push_chunks(o, [1, 2, 10**9, 3, 4, 5])  # one absurd chunk number among good ones
    o.flush()
    assert out.gaps() == []
    assert [a[2] for a in out.audio()] == [1, 2, 3, 4, 5]
    assert ("inbound", "jump", 0) in seen
    assert o.stats.gap_samples == 0


def test_a_timestamp_jump_of_ten_hours_is_capped() -> None:
    o, out, _ = make_capped()
    ten_h = 10 * 3600 * 1000
    for i, ts in enumerate([0, 20, 40, ten_h, ten_h + 20, ten_h + 40]):
        o.push("inbound", None, ts, frame(i))
    assert out.gaps() == [(3 * F, CAP)]
    assert [a[0] for a in out.audio()] == [0, F, 2 * F, 3 * F + CAP, 4 * F + CAP, 5 * F + CAP]
    assert o.stats.gaps_capped == 1


def test_a_timestamp_reset_does_not_turn_the_stream_into_duplicates() -> None:
    o, out, _ = make_capped()
    for i, ts in enumerate([60000, 60020, 60040, 0, 20, 40, 60]):
        o.push("inbound", None, ts, frame(i))
    o.flush()
    assert o.stats.duplicates == 0
    assert out.gaps() == []
    assert out.audio() == [(i * F, F, i) for i in range(7)]  # contiguous
    assert o.stats.resyncs == 1


def test_one_stale_timestamp_is_a_duplicate_not_a_reset() -> None:
    o, out, _ = make_capped()
    for i, ts in enumerate([60000, 60020, 0, 60040, 60060]):
        o.push("inbound", None, ts, frame(i))
    o.flush()
    assert [a[2] for a in out.audio()] == [0, 1, 3, 4]
    assert o.stats.duplicates == 1 and o.stats.resyncs == 0


def test_no_gap_is_longer_than_the_cap_whatever_the_input() -> None:
    import random

    rnd = random.Random(7)
    o, out, _ = make_capped()
    for _ in range(2000):
        c = rnd.choice([None, rnd.randint(-5, 10**12), rnd.randint(1, 400)])
        ts = rnd.choice([None, rnd.randint(-(10**9), 10**12), rnd.randint(0, 8000)])
        o.push("inbound", c, ts, frame(1))
    o.flush()
    assert all(n <= CAP for _, n in out.gaps())
