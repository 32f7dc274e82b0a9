"""The simulated 60 ms playout buffer, from arrival times alone (no sockets, no loop)."""

from __future__ import annotations

import random

import pytest

from streamserver.loadtest.playout import TICK_S, Playout


def _brute(arrivals: list[float], prebuffer_s: float = 0.060) -> tuple[int, int, int]:
    """The same buffer walked tick by tick: (underrun ticks, longest run, ticks played)."""
    t0 = arrivals[0] + prebuffer_s
    played = underruns = longest = run = 0
    tick = 0
    while played < len(arrivals):
        now = t0 + tick * TICK_S
        buffered = sum(1 for a in arrivals if a <= now) - played
        if buffered > 0:
            played += 1
            run = 0
        else:
            underruns += 1
            run += 1
            longest = max(longest, run)
        tick += 1
    return underruns, longest, tick


def _feed(po: Playout, arrivals: list[float]) -> list[int]:
    return [po.arrive(t) for t in arrivals]


def test_audio_on_time_or_early_never_underruns() -> None:
    po = Playout()
    paced = [100.0 + 0.020 * i for i in range(50)]
    assert _feed(po, paced) == [-1] + [0] * 49
    assert (po.underruns, po.longest) == (0, 0)
    # A whole prompt at once (what the player sends) plays out from the buffer.
    burst = Playout()
    assert _feed(burst, [200.0 + 1e-5 * i for i in range(200)]) == [-1] + [0] * 199
    assert burst.underruns == 0
    assert burst.played_by(200.0) == pytest.approx(200.060 + 200 * TICK_S)


def test_jitter_within_the_prebuffer_is_absorbed() -> None:
    rng = random.Random(7)
    arrivals = sorted(100.0 + 0.020 * i + rng.uniform(0.0, 0.055) for i in range(500))
    arrivals[0] = 100.0  # the first frame sets the clock; the rest are later, never early
    po = Playout()
    _feed(po, arrivals)
    assert po.underruns == 0


def test_a_stall_is_heard_as_silence_of_its_length() -> None:
    po = Playout()
    # tick 0 is at 0.060; frames 0-2 play at ticks 0-2; frame 3 arrives at 0.305, after
    # tick 12 (0.300) was due: ticks 3..12 were empty, 10 ticks = 200 ms of silence.
    assert _feed(po, [0.001, 0.021, 0.041, 0.306, 0.321]) == [-1, 0, 0, 10, 0]
    assert (po.underruns, po.longest) == (10, 10)
    assert po.ticks_played(10.0) == 15  # frames 0-2, 10 silent ticks, frames 3-4


@pytest.mark.parametrize("seed", range(6))
def test_matches_a_tick_by_tick_buffer(seed: int) -> None:
    rng = random.Random(seed)
    t = 50.0 + rng.random()
    arrivals = []
    for _ in range(300):
        # Mostly paced, with bursts and stalls of every size.
        t += rng.choice([0.020, 0.020, 0.020, 0.0003, 0.045, 0.13]) + rng.uniform(0, 0.004)
        arrivals.append(t)
    po = Playout()
    _feed(po, arrivals)
    underruns, longest, ticks = _brute(arrivals)
    assert (po.underruns, po.longest) == (underruns, longest)
    assert po.ticks_played(arrivals[-1] + 60.0) == ticks


def test_a_spurt_ends_with_a_clear_and_the_next_starts_fresh() -> None:
    po = Playout()
    _feed(po, [10.0 + 1e-4 * i for i in range(100)])  # 2 s of prompt at once
    # Cleared 0.501 s after playout began (tick 0 at 10.06): ticks 0-25 had begun.
    po.end(10.561)
    assert po.ticks == 26 and po.t0 == 0.0
    assert po.played_by(11.0) == 11.0  # nothing buffered any more
    # The next prompt arrives 2 s later: a new spurt, no underrun for the pause.
    assert _feed(po, [12.5, 12.52]) == [-1, 0]
    assert po.underruns == 0
    assert po.ticks_played(20.0) == 26 + 2
    po.end(20.0)
    po.end(21.0)  # nothing playing: no-op
    assert po.ticks == 28


def test_a_clear_before_playout_started_heard_nothing() -> None:
    po = Playout()
    po.arrive(5.0)
    po.end(5.03)  # within the 60 ms prebuffer
    assert po.ticks == 0


def test_long_frames_fill_several_ticks() -> None:
    po = Playout(frame_ticks=10)  # Exotel: 200 ms per outbound frame
    assert _feed(po, [1.0, 1.2, 1.4]) == [-1, 0, 0]
    assert po.underruns == 0 and po.next == 30
    # The fourth frame is 150 ms late: tick 30 was due at 1.66, it arrives at 1.81.
    assert po.arrive(1.81) == 8
    assert po.longest == 8


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        Playout(frame_ticks=0)
    with pytest.raises(ValueError):
        Playout(prebuffer_s=-1)
