"""The load tester reads the server's stall watchdog from /metrics and reports it."""

from __future__ import annotations

from streamserver.loadtest.collector import WindowCollector
from streamserver.loadtest.measure import fill_level
from streamserver.loadtest.report import stalls_note
from streamserver.loadtest.results import LevelResult
from streamserver.loadtest.tally import EngineResult

K = "streamserver_event_loop_stalls_total"


def _level(before: dict[str, float], after: dict[str, float]) -> LevelResult:
    lv = LevelResult("s", 20, 1.0, False, 1)
    done = EngineResult(0, t_all_open=1.0, t_first_done=2.0, t_end=3.0)
    fill_level(lv, [done], WindowCollector(1.0, 1), [], [], before, after, [])
    return lv


def test_stalls_over_the_level_per_kind_summed_over_workers() -> None:
    def counts(b0: float, u0: float, b1: float, u1: float) -> dict[str, float]:
        return {
            f'{K}{{kind="blocked",worker="0"}}': b0,
            f'{K}{{kind="busy",worker="0"}}': u0,
            f'{K}{{kind="blocked",worker="1"}}': b1,
            f'{K}{{kind="busy",worker="1"}}': u1,
        }

    before, after = counts(1, 2, 0, 0), counts(2, 2, 1, 3)
    lv = _level(before, after)
    assert lv.server_stalls == {"blocked": 2, "busy": 3}
    lv.server_log = "logs/streamserver-20.log"
    note = stalls_note([lv])
    assert "at 20 streams 2 blocked by one call (the server log names the code: " in note
    assert "logs/streamserver-20.log" in note and "3 busy" in note


def test_a_server_without_the_watchdog_leaves_it_unset() -> None:
    lv = _level({"streamserver_media_frames_total": 0.0}, {"streamserver_media_frames_total": 5.0})
    assert lv.server_stalls is None
