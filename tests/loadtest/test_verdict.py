"""What the callers heard: adding it up per level and the one-line verdict (no sockets)."""

from __future__ import annotations

from array import array

import pytest

from streamserver.loadtest.collector import WindowCollector
from streamserver.loadtest.config import QoeLimits, Thresholds
from streamserver.loadtest.judge import judge
from streamserver.loadtest.measure import fill_heard, fill_tail
from streamserver.loadtest.results import LevelResult
from streamserver.loadtest.stats import LatencySummary, Sparse, sparse_of
from streamserver.loadtest.tally import EngineResult, StreamRecord, Window
from streamserver.loadtest.verdict import grade, qoe_verdict

LIMITS = QoeLimits()


def ms(p99: float, count: int = 100) -> LatencySummary:
    return LatencySummary(count, p99 / 2, p99 / 2, p99, p99, p99, p99)


def heard(**kw: object) -> LevelResult:
    """A level whose 10 calls all heard the bot, cleanly."""
    lv = LevelResult("s", 10, 20.0, False, 1, connected=10)
    lv.first_audio_ms = ms(20.0, 10)
    lv.barge_in_ms = ms(150.0, 30)
    lv.underruns_per_min = 0.0
    lv.longest_silence_p99_ms = 0.0
    for k, v in kw.items():
        setattr(lv, k, v)
    return lv


def test_grades() -> None:
    assert [grade(v, (1.0, 10.0)) for v in (0.0, 1.0, 1.5, 10.0, 10.1)] == [
        "good",
        "good",
        "degraded",
        "degraded",
        "bad",
    ]


def test_a_clean_bot_level_is_good_and_says_why() -> None:
    g, line = qoe_verdict(lv := heard(), LIMITS, profile="bot")
    assert g == "good" == lv.qoe_grade and line == lv.qoe
    assert line == (
        "good: first audio p99 20 ms, barge-in p99 150 ms, 0 of 30 barge-ins missed "
        "(0.0 %), 0.0 underruns/min, longest silence p99 0 ms"
    )


def test_the_worst_measure_decides_and_is_named() -> None:
    g, line = qoe_verdict(heard(barge_in_ms=ms(450.0)), LIMITS, profile="bot")
    assert (g, line) == ("degraded", "degraded: barge-in p99 450 ms > 300 ms")
    lv = heard(barge_in_ms=ms(450.0), underruns_per_min=12.5, longest_silence_p99_ms=80.0)
    g, line = qoe_verdict(lv, LIMITS, profile="bot")
    assert g == "bad"
    assert line == (
        "bad: barge-in p99 450 ms > 300 ms; 12.5 underruns/min > 10/min; "
        "longest silence p99 80 ms > 60 ms"
    )


def test_missed_barge_ins_and_silent_calls() -> None:
    lv = heard(barge_in_missed=1, barge_in_ms=ms(100.0, 199))
    g, line = qoe_verdict(lv, LIMITS, profile="bot")
    assert g == "degraded" and "1 of 200 barge-ins missed (0.5 %) > 0 %" in line
    g, line = qoe_verdict(heard(first_audio_missing=3), LIMITS, profile="bot")
    assert g == "bad" and "3 of 10 calls never heard the server" in line
    g, line = qoe_verdict(heard(barge_in_ms=None), LIMITS, profile="bot")
    assert g == "bad" and "no barge-in measured" in line


def test_nothing_to_judge() -> None:
    assert qoe_verdict(heard(valid=False), LIMITS, profile="bot")[0] == "invalid"
    assert qoe_verdict(heard(connected=0), LIMITS, profile="bot")[0] == "n/a"
    silent = heard(first_audio_ms=None, barge_in_ms=None)
    assert qoe_verdict(silent, LIMITS, profile="bot") == (
        "bad",
        "bad: the bot never spoke (no audio came back on any call)",
    )
    g, line = qoe_verdict(silent, LIMITS, profile="echo")  # a recorder: nothing comes back
    assert g == "n/a" and "--profile bot" in line


def test_the_echo_profile_grades_the_round_trip_not_barge_in() -> None:
    lv = heard(barge_in_ms=None, rtt_ms=ms(90.0))
    g, line = qoe_verdict(lv, LIMITS, profile="echo")
    assert (g, line) == ("degraded", "degraded: echo round trip p99 90 ms > 50 ms")


def test_a_bot_call_that_never_heard_the_bot_fails_the_level() -> None:
    lv = heard(first_audio_missing=2)
    judge(lv, Thresholds(), echo=False, bot=True)
    assert not lv.held and "2 of 10 calls never heard the bot" in lv.failures


def _window(worker: int, index: int, first: list[float], barge: list[float], under: int) -> Window:
    e = Sparse.empty()
    return Window(
        worker, index, float(index), 2, 2, 0, 0, e, e, e,
        sparse_of(array("d", first)), sparse_of(array("d", barge)), under,
    )  # fmt: skip


def test_fill_heard_adds_up_calls_turns_and_the_playout() -> None:
    col = WindowCollector(1.0, 2)
    col.add(_window(0, 0, [12.0, 14.0], [], 0))
    col.add(_window(1, 0, [30.0], [], 0))
    col.add(_window(0, 1, [], [120.0, 140.0], 3))
    col.add(_window(1, 1, [], [200.0], 1))
    calls = [
        StreamRecord("c1", "s1", 100, True, 1000, False, None, 12.0, 3, 60.0, 30.0),
        StreamRecord("c2", "s2", 100, True, 1000, False, None, 14.0, 0, 0.0, 30.0),
        StreamRecord("c3", "s3", 100, True, 1000, False, None, 30.0, 1, 20.0, 60.0),
        StreamRecord("c4", "s4", 100, True, 1000, False, None, None, 0, 0.0, 0.0),
        StreamRecord("c5", "s5", 0, False, None, False, "refused", None, 0, 0.0, 0.0),
    ]
    results = [
        EngineResult(0, streams=calls[:2], underruns=3, clears=3, barge_in_missed=1),
        EngineResult(1, streams=calls[2:], underruns=1, clears=1, unexpected_clears=1),
    ]
    for r in results:
        r.checkpoints, r.dtmf_sent = 4, 2
    lv = LevelResult("s", 5, 2.0, False, 2, connected=4)
    fill_heard(lv, results, col)
    assert lv.first_audio_ms is not None and lv.first_audio_ms.count == 3
    assert lv.first_audio_ms.max == 30.0
    assert lv.barge_in_ms is not None and lv.barge_in_ms.count == 3
    assert (lv.barge_in_missed, lv.unexpected_clears, lv.clears) == (1, 1, 4)
    assert (lv.checkpoints_answered, lv.dtmf_sent) == (8, 4)
    assert lv.first_audio_missing == 1  # c4 connected and heard nothing
    assert lv.playout_minutes == pytest.approx(2.0)  # 120 s of the bot's speech
    assert lv.underruns == 4 and lv.underruns_per_min == pytest.approx(2.0)
    assert lv.streams_with_underruns == 2
    assert (lv.longest_silence_ms, lv.longest_silence_p99_ms) == (60.0, 60.0)
    (p0, p1) = col.timeline()
    assert p0["first_audio_p99"] == 30.0 and "barge_in_p99" not in p0
    # 0.1 ms histogram bins: a percentile is the upper edge of its bin
    assert p1["barge_in_p50"] == pytest.approx(140.1) and p1["underruns_per_s"] == 4.0


def test_tail_stability_one_stalled_second_degrades_the_echo_level() -> None:
    steady = [{"t": float(t), "active": 10.0, "rtt_p99": 8.0} for t in range(1, 21)]
    steady[12]["rtt_p99"] = 50.0  # one second with a stall: 5x the run's p99
    lv = heard(barge_in_ms=None, rtt_ms=ms(10.0), timeline=steady, t_all_open=2.0)
    lv.t_first_done = 19.0
    fill_tail(lv)
    assert (lv.rtt_worst_window_p99_ms, lv.rtt_worst_window_t) == (50.0, 13.0)
    g, line = qoe_verdict(lv, LIMITS, profile="echo")
    assert g == "bad" and "worst 1 s window p99 50 ms = 5.0x the run's > 4x" in line
    steady[12]["rtt_p99"] = 15.0
    fill_tail(lv)
    assert qoe_verdict(lv, LIMITS, profile="echo")[0] == "good"
    # windows while streams opened or closed do not count
    lv.timeline = [{"t": 1.0, "active": 3.0, "rtt_p99": 500.0}, *steady]
    fill_tail(lv)
    assert lv.rtt_worst_window_p99_ms == 15.0


def test_tail_stability_leaves_out_seconds_when_the_generator_itself_was_late() -> None:
    steady = [
        {"t": float(t), "active": 10.0, "rtt_p99": 5.0, "lateness_p99": 1.5} for t in range(1, 21)
    ]
    steady[12].update(rtt_p99=21.0, lateness_p99=22.0)  # the generator stalled that second
    lv = heard(barge_in_ms=None, rtt_ms=ms(5.0), timeline=steady, t_all_open=2.0)
    lv.t_first_done = 19.0
    fill_tail(lv)  # without a limit, the generator's stall looks like the server's
    assert lv.rtt_worst_window_p99_ms == 21.0 and lv.rtt_windows_generator_late == 0
    fill_tail(lv, late_ms=5.0)
    assert lv.rtt_worst_window_p99_ms == 5.0 and lv.rtt_windows_generator_late == 1
    assert qoe_verdict(lv, LIMITS, profile="echo")[0] == "good"
    # A server stall in a second the generator kept time still counts.
    steady[5]["rtt_p99"] = 30.0
    fill_tail(lv, late_ms=5.0)
    assert (lv.rtt_worst_window_p99_ms, lv.rtt_worst_window_t) == (30.0, 6.0)
