"""The recent-maximum window behind ``event_loop_lag_recent_max_seconds``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from streamserver.loadtest.target import parse_metrics
from streamserver.looplag import RECENT_LAG_S, RecentMax


def test_a_stall_stays_visible_for_the_window_then_goes() -> None:
    w = RecentMax(1.5)
    assert w.add(0.0, 0.001) == 0.001
    assert w.add(0.5, 1.2) == 1.2  # the stall
    assert w.add(1.0, 0.002) == 1.2  # a later, quiet tick does not hide it
    assert w.add(1.5, 0.0) == 1.2
    assert w.add(2.0, 0.003) == 0.003  # 1.5 s after the stall: gone


def test_the_worst_of_several_and_then_the_next_worst() -> None:
    w = RecentMax(1.0)
    w.add(0.0, 0.3)
    w.add(0.4, 0.1)
    assert w.add(0.8, 0.2) == 0.3
    assert w.add(1.0, 0.0) == 0.2  # 0.3 left the window; 0.2 (at 0.8) is the worst now
    assert w.add(1.9, 0.05) == 0.05


def test_a_scrape_every_second_sees_every_tick_once_or_twice() -> None:
    # Ticks every 0.5 s, three of them stalls; a scrape each second, just after the ticks
    # at 0.5, 1.5, 2.5 ... so the stall at 4.0 falls between two scrapes.
    w = RecentMax(RECENT_LAG_S)
    latest_only, recent = [], []
    stall_at = {1.5: 0.9, 4.0: 0.4, 6.5: 0.7}
    for i in range(18):
        t = i * 0.5
        lag = stall_at.get(t, 0.001)
        worst = w.add(t, lag)
        if i % 2 == 1:
            latest_only.append(lag)
            recent.append(worst)
    assert max(recent) == 0.9
    assert {0.9, 0.4, 0.7} <= set(recent)
    assert not {0.4} <= set(latest_only)  # a latest-only gauge missed the stall at 4.0


def test_a_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_s"):
        RecentMax(0)


async def test_the_server_keeps_a_stall_visible_after_later_ticks(serve: Any) -> None:
    """A 0.8 s block of the loop: a tick or two later the latest-tick gauge is back near
    zero, but /metrics still shows the stall in the recent maximum."""
    async with serve() as server:
        base = server.url.replace("ws://", "http://")
        await asyncio.sleep(0.6)  # the ticker is running
        time.sleep(0.8)  # the stall under test
        await asyncio.sleep(0.6)  # at least one more tick, on time
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"{base}/metrics")).text
    m = parse_metrics(text)
    assert m["streamserver_event_loop_lag_seconds"] < 0.2
    assert m["streamserver_event_loop_lag_recent_max_seconds"] >= 0.25
    assert m["streamserver_event_loop_lag_max_seconds"] >= 0.3
