"""The stall watchdog: the pure judge, and a real server blocked by a handler."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import plivo_frames as pf
import pytest
from websockets.asyncio.client import connect

from streamserver.handler import AudioChunk, Handler
from streamserver.loadtest.target import parse_metrics
from streamserver.net.stallwatch import Stall, StallJudge, stack_of

HANDLER_AT = (("handlers/slow.py", 12, "on_audio_nowait"), ("session.py", 430, "_deliver"))
ELSEWHERE = (("net/connection.py", 215, "data_received"),)
IN_LOOP = (("/usr/lib/python3.11/asyncio/runners.py", 118, "run"),)


def test_on_time_nothing_is_reported() -> None:
    j = StallJudge(0.25)
    j.due(10.0)
    assert j.look(9.9, HANDLER_AT) is None
    assert j.look(10.0, HANDLER_AT) is None
    j.due(None)  # not waiting on anything (the ticker stopped)
    assert j.look(99.0, HANDLER_AT) is None


def test_one_function_in_every_look_is_blocked_and_reported_once() -> None:
    j = StallJudge(0.25)
    j.due(10.0)
    assert j.look(10.1, HANDLER_AT) is None  # late, but not by warn_s yet
    stall = j.look(10.3, HANDLER_AT)
    assert stall == Stall("blocked", pytest.approx(0.3), HANDLER_AT)
    assert "handlers/slow.py:12 in on_audio_nowait <- session.py:430" in stall.describe()
    assert j.look(10.6, HANDLER_AT) is None  # the same stall: once
    j.due(11.0)  # the loop came back
    assert j.look(11.0, HANDLER_AT) is None
    assert j.look(11.1, HANDLER_AT) is None
    assert j.look(11.3, HANDLER_AT) is not None  # a new stall is reported again


def test_different_places_are_busy() -> None:
    j = StallJudge(0.25)
    j.due(10.0)
    j.look(10.1, HANDLER_AT)
    j.look(10.2, ELSEWHERE)
    stall = j.look(10.3, HANDLER_AT)
    assert stall is not None and stall.kind == "busy"


def test_the_loops_own_code_is_busy_even_when_every_look_finds_it() -> None:
    j = StallJudge(0.25)
    j.due(10.0)
    j.look(10.1, IN_LOOP)
    stall = j.look(10.3, IN_LOOP)
    assert stall is not None and stall.kind == "busy"
    assert stall.place() == "in the event loop's own code"
    assert Stall("busy", 0.3, ELSEWHERE).place() == "at net/connection.py:215 in data_received"


def test_one_late_look_is_not_enough_to_say_blocked() -> None:
    j = StallJudge(0.25)
    j.due(10.0)
    assert j.look(10.9, HANDLER_AT) is None  # the first look of this stall: wait for another
    stall = j.look(10.95, HANDLER_AT)
    assert stall is not None and stall.kind == "blocked"


def test_a_window_must_be_positive_and_stacks_are_innermost_first() -> None:
    with pytest.raises(ValueError, match="warn_s"):
        StallJudge(0)

    def inner() -> Any:
        import sys

        return stack_of(sys._getframe(), depth=2)

    where = inner()
    assert [fn for _, _, fn in where] == [
        "inner",
        "test_a_window_must_be_positive_and_stacks_are_innermost_first",
    ]


class Sleepy(Handler):
    """Blocks the loop once, on its 5th frame, the way a synchronous call would."""

    def on_audio_nowait(self, chunk: AudioChunk) -> None:
        if chunk.position == 4 * 160:
            time.sleep(0.8)


async def test_a_handler_that_blocks_the_loop_is_named(serve: Any, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="streamserver.net")
    route = {"/stream": {"handlers": [f"{__name__}:Sleepy"]}}
    async with serve(routes=route, stall_warn_s=0.2) as server:
        base = server.url.replace("ws://", "http://")
        async with connect(f"{server.url}/stream", compression=None) as ws:
            await ws.send(pf.start())
            for i in range(8):
                await ws.send(pf.media(b"\xff" * 160, i + 1, timestamp=i * 20))
            await asyncio.sleep(1.5)
            async with httpx.AsyncClient() as http:
                m = parse_metrics((await http.get(f"{base}/metrics")).text)
    assert m['streamserver_event_loop_stalls_total{kind="blocked"}'] == 1
    assert m['streamserver_event_loop_stalls_total{kind="busy"}'] == 0
    (line,) = [r.getMessage() for r in caplog.records if "event loop blocked" in r.getMessage()]
    assert "test_stallwatch.py" in line and "in on_audio_nowait" in line
    assert "asyncio.to_thread" in line  # says what to do


async def test_off_with_zero(serve: Any) -> None:
    async with serve(stall_warn_s=0) as server:
        assert server.metrics.loop_stalls == {}
        time.sleep(0.6)
        await asyncio.sleep(0.1)
        assert server.metrics.loop_stalls == {}
