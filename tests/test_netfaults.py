"""The fault plan: what happens to frame k, without sockets."""

from __future__ import annotations

import pytest

from streamserver.netfaults import NetFaults, carriers, plan_frames

FRAME_S = 0.02


def test_a_perfect_network_sends_every_frame_once_on_time() -> None:
    plan = plan_frames(NetFaults(), 100, FRAME_S)
    assert list(plan.frames) == list(range(100))
    assert list(plan.at_s) == [k * FRAME_S for k in range(100)]
    assert not any(plan.copies)
    assert plan.counts() == {"dropped": 0, "duplicated": 0, "reordered": 0, "held": 0}
    assert not NetFaults()


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    faults = NetFaults(drop_pct=10, duplicate_pct=5, reorder_pct=10, jitter_ms=30, seed=7)
    a, b = plan_frames(faults, 500, FRAME_S), plan_frames(faults, 500, FRAME_S)
    assert (a.frames, a.at_s, a.copies) == (b.frames, b.at_s, b.copies)
    c = plan_frames(NetFaults(drop_pct=10, duplicate_pct=5, reorder_pct=10, seed=8), 500, 0.02)
    assert c.lost != a.lost


def test_drop_removes_about_that_share_and_nothing_else() -> None:
    plan = plan_frames(NetFaults(drop_pct=20, seed=1), 2000, FRAME_S)
    assert 300 < plan.dropped < 500
    assert plan.dropped == len(plan.lost) == 2000 - len(plan)
    assert sorted(plan.frames) == list(plan.frames)
    assert set(plan.frames).isdisjoint(plan.lost)
    for k, t in zip(plan.frames, plan.at_s, strict=True):
        assert t == k * FRAME_S  # kept frames go out on time


def test_turning_on_another_fault_keeps_the_frames_one_fault_picked() -> None:
    alone = plan_frames(NetFaults(drop_pct=10, seed=3), 1000, FRAME_S)
    mixed = plan_frames(NetFaults(drop_pct=10, duplicate_pct=30, jitter_ms=50, seed=3), 1000, 0.02)
    assert alone.lost == mixed.lost


def test_duplicates_follow_their_original() -> None:
    plan = plan_frames(NetFaults(duplicate_pct=25, seed=2), 400, FRAME_S)
    assert 60 < plan.duplicated < 140
    assert len(plan) == 400 + plan.duplicated
    for i, copy in enumerate(plan.copies):
        if copy:
            assert plan.frames[i] == plan.frames[i - 1] and not plan.copies[i - 1]
            assert plan.at_s[i] == plan.at_s[i - 1]
    assert sorted(set(plan.frames)) == list(range(400))


@pytest.mark.parametrize("window", [1, 3, 5])
def test_reordered_frames_come_at_most_window_frames_late(window: int) -> None:
    plan = plan_frames(NetFaults(reorder_pct=20, reorder_window=window, seed=4), 600, FRAME_S)
    assert plan.reordered > 50
    assert sorted(plan.frames) == list(range(600))
    position = {k: i for i, k in enumerate(plan.frames)}
    for k in range(600):
        # Frames sent after k that are older than k: at most `window` of them.
        later_older = sum(1 for j in plan.frames[position[k] :] if j < k)
        assert later_older <= window
        assert position[k] - k <= window  # never more than `window` sends late
    assert list(plan.at_s) == sorted(plan.at_s)


def test_jitter_delays_but_keeps_the_order_and_bound() -> None:
    plan = plan_frames(NetFaults(jitter_ms=40, seed=5), 500, FRAME_S)
    assert list(plan.frames) == list(range(500))
    delays = [t - k * FRAME_S for k, t in zip(plan.frames, plan.at_s, strict=True)]
    assert min(delays) >= 0
    # Each delay is its own draw (<= 40 ms) or the previous frame's send holding it back.
    assert max(delays) < 0.040 + 1e-9
    assert list(plan.at_s) == sorted(plan.at_s)
    assert sum(1 for d in delays if d > 0.020) > 50  # some frames overtake their slot


def test_bursts_hold_frames_and_release_them_together() -> None:
    plan = plan_frames(NetFaults(burst_every_s=1.0, burst_hold_ms=200), 150, FRAME_S)
    at = dict(zip(plan.frames, plan.at_s, strict=True))
    # Frames due in [1.0, 1.2) all go at 1.2 s, with the one due at 1.2 s; before 1 s none.
    assert [k for k in at if at[k] == pytest.approx(1.2)] == list(range(50, 61))
    assert all(at[k] == pytest.approx(k * FRAME_S) for k in range(50))
    assert plan.held == 10 + 10  # the windows at 1 s and 2 s (frames 100..109)
    assert all(at[k] == pytest.approx(2.2) for k in range(100, 110))


@pytest.mark.parametrize("ppm", [500.0, -500.0])
def test_drift_stretches_or_shrinks_the_sender_clock(ppm: float) -> None:
    plan = plan_frames(NetFaults(drift_ppm=ppm), 3001, FRAME_S)
    # 60 s of audio sent in 60 s / (1 + ppm): 30 ms early or late at the end.
    assert plan.at_s[-1] == pytest.approx(60.0 / (1 + ppm * 1e-6))
    assert abs(plan.at_s[-1] - 60.0) == pytest.approx(0.03, rel=0.01)


def test_carriers_of_a_vanish_a_reconnect_and_a_second_socket() -> None:
    vanish = NetFaults(vanish_at_s=2.0)
    assert carriers(vanish, 1.99) == (0,) and carriers(vanish, 2.0) == ()
    back = NetFaults(vanish_at_s=2.0, reconnect_after_s=0.5)
    assert [carriers(back, t) for t in (1.0, 2.2, 2.5, 9.0)] == [(0,), (), (1,), (1,)]
    second = NetFaults(second_socket_at_s=1.0)
    assert [carriers(second, t) for t in (0.5, 1.0)] == [(0,), (0, 1)]
    both = NetFaults(second_socket_at_s=1.0, vanish_at_s=3.0)
    assert [carriers(both, t) for t in (0.5, 2.0, 3.0)] == [(0,), (0, 1), (1,)]


def test_slow_reading_window() -> None:
    f = NetFaults(slow_read_at_s=1.0, slow_read_s=2.0)
    assert [f.slow_reading(t) for t in (0.5, 1.0, 2.9, 3.0)] == [False, True, True, False]
    assert NetFaults(slow_read_at_s=1.0).slow_reading(1e6)


def test_text_form_round_trips() -> None:
    text = (
        "drop=5%,dup=1,reorder=10:4,jitter=40ms,burst=2s:300,drift=-150,vanish=3:silent,"
        "reconnect=1,slow-read=1:5:2000,seed=7"
    )
    faults = NetFaults.parse(text)
    assert faults == NetFaults(
        drop_pct=5, duplicate_pct=1, reorder_pct=10, reorder_window=4, jitter_ms=40,
        burst_every_s=2, burst_hold_ms=300, drift_ppm=-150, vanish_at_s=3, vanish="silent",
        reconnect_after_s=1, slow_read_at_s=1, slow_read_s=5, slow_read_bytes_per_s=2000,
        seed=7,
    )  # fmt: skip
    assert NetFaults.parse(faults.describe()) == faults
    assert NetFaults.parse("") == NetFaults()
    assert NetFaults.parse("reorder=3").reorder_window == 3  # the default window
    assert NetFaults.parse("second=2").second_socket_at_s == 2


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("drop", "key=value"),
        ("loss=5", "keys: drop"),
        ("drop=x", "not a number"),
        ("drop=120", "drop_pct must be a percentage"),
        ("reorder=5:0", "reorder_window must be >= 1"),
        ("burst=1", "both burst_every_s and burst_hold_ms"),
        ("burst=1:1000", "shorter than burst_every_s"),
        ("vanish=2:fin", "abort or silent"),
        ("reconnect=1", "needs vanish_at_s"),
        ("vanish=1,reconnect=1,second=2", "not both"),
        ("jitter=-1", "jitter_ms must be"),
        ("seed=1.5", "not a number"),
        ("reorder=1:2:3", "reorder takes"),
    ],
)
def test_bad_text_is_refused_naming_the_part(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        NetFaults.parse(text)


def test_seeded_draws_a_seed_once_and_keeps_a_given_one() -> None:
    drawn = NetFaults(drop_pct=1).seeded()
    assert drawn.seed is not None and drawn.seeded() == drawn
    assert NetFaults(seed=9).seeded().seed == 9
