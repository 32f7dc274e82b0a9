"""Judging and filling a level, without a server or an event loop."""

from __future__ import annotations

from streamserver.loadtest.collector import WindowCollector
from streamserver.loadtest.config import Thresholds
from streamserver.loadtest.judge import judge
from streamserver.loadtest.measure import fill_level, metric_sum, steady_window
from streamserver.loadtest.results import LevelResult, file_slug
from streamserver.loadtest.stats import LatencySummary
from streamserver.loadtest.tally import EngineResult
from streamserver.loadtest.target import ProcSample


def level(**kw: object) -> LevelResult:
    lv = LevelResult("s", 10, 1.0, False, 1, connected=10, frames_sent=500)
    for k, v in kw.items():
        setattr(lv, k, v)
    return lv


def ms(p99: float) -> LatencySummary:
    return LatencySummary(100, p99 / 2, p99 / 2, p99, p99, p99, p99)


def test_a_clean_level_holds() -> None:
    lv = level(lateness_ms=ms(1.0), rtt_ms=ms(10.0), echo_matched=500)
    judge(lv, Thresholds(), echo=True)
    assert lv.held and lv.valid and lv.failures == []


def test_a_lagging_generator_voids_the_level() -> None:
    lv = level(lateness_ms=ms(9.0))
    judge(lv, Thresholds(max_lateness_p99_ms=5.0), echo=False)
    assert not lv.held and not lv.valid
    assert lv.failures[0].startswith("INVALID: generator send lateness p99 9.0 ms")


def test_every_missed_service_level_is_named() -> None:
    lv = level(
        failed=2,
        server_metrics=True,
        server_frames_lost=3,
        server_gaps=1,
        server_loop_lag_max_ms=250.0,
        echo_matched=490,
        rtt_ms=ms(80.0),
        cpu_mean_pct=99.0,
    )
    judge(lv, Thresholds(), echo=True)
    assert not lv.held and lv.valid
    text = "\n".join(lv.failures)
    for words in (
        "2 of 10 streams failed to connect",
        "server received +3 frames fewer than sent",
        "server saw 1 gaps",
        "event-loop lag 250 ms > 100 ms",
        "10 of 500 frames never echoed back",
        "echo round trip p99 80.0 ms > 50 ms",
        "server CPU 99% > 95% (saturated)",
    ):
        assert words in text


def test_fill_level_adds_up_the_generators_and_the_metrics_deltas() -> None:
    results = [
        EngineResult(0, connected=3, frames_sent=100, errors={"x": 1}, t_all_open=1.0),
        EngineResult(1, connected=2, frames_sent=60, errors={"x": 2}, t_all_open=1.5),
    ]
    for r, done, end in zip(results, (4.0, 4.5), (5.0, 6.0), strict=True):
        r.t_first_done, r.t_end = done, end
    before = {"streamserver_media_frames_total": 10.0}
    after = {"streamserver_media_frames_total": 160.0, "streamserver_gaps_total{track=a}": 2.0}
    samples = [ProcSample(t, cpu, 2**20 * 100) for t, cpu in ((1.0, 90.0), (2.5, 40.0))]
    lv = level(connected=0, frames_sent=0)
    lv.rss_base_mib = 50.0
    fill_level(lv, results, WindowCollector(1.0, 2), [], samples, before, after, [(3.0, 7.0, 5)])
    assert (lv.connected, lv.frames_sent, lv.errors) == (5, 160, {"x": 3})
    assert (lv.t_all_open, lv.t_first_done, lv.t_end) == (1.5, 4.0, 6.0)
    assert steady_window(lv) == (2.0, 4.0)
    assert lv.cpu_mean_pct == 40.0  # the steady sample only
    assert lv.server_frames_received == 150 and lv.server_frames_lost == 10
    assert lv.server_gaps == 2 and lv.server_loop_lag_max_ms == 7.0
    assert lv.rss_per_stream_kib == (100 - 50) * 1024 / 10


def test_metric_sum_and_file_slug() -> None:
    m = {"streamserver_x{a=1}": 1.0, "streamserver_x{a=2}": 2.0, "streamserver_xy": 5.0}
    assert metric_sum(m, "x") == 3.0
    assert file_slug("my server / v2") == "my-server-v2" and file_slug("//") == "server"
