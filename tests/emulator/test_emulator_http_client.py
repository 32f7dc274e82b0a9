"""The simulator's HTTP client keeps its requests out of httpx's pool queue (issue 16: a
few thousand queued callbacks spun in httpcore's quadratic bookkeeping)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from streamserver.emulator.http_client import MAX_CONNECTIONS, MAX_IN_FLIGHT, BoundedTransport


async def test_at_most_max_in_flight_requests_reach_the_pool() -> None:
    inside = 0
    most = 0
    gate = asyncio.Event()

    async def app(request: httpx.Request) -> httpx.Response:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await gate.wait()
        inside -= 1
        return httpx.Response(200, text="ok")

    transport = BoundedTransport(httpx.MockTransport(app))
    async with httpx.AsyncClient(transport=transport, timeout=30.0) as client:
        calls = [asyncio.ensure_future(client.post("http://app/hangup")) for _ in range(2000)]
        while inside < MAX_IN_FLIGHT:
            await asyncio.sleep(0.01)
        gate.set()
        replies = await asyncio.gather(*calls)
    assert all(r.status_code == 200 for r in replies)
    assert most == MAX_IN_FLIGHT < MAX_CONNECTIONS  # the pool never has to queue


async def test_waiting_for_a_turn_is_bounded_by_the_pool_timeout() -> None:
    never = asyncio.Event()

    async def app(request: httpx.Request) -> httpx.Response:
        await never.wait()
        return httpx.Response(200)

    transport = BoundedTransport(httpx.MockTransport(app), limit=1)
    timeout = httpx.Timeout(30.0, pool=0.05)
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
        first = asyncio.ensure_future(client.get("http://app/a"))
        await asyncio.sleep(0.01)
        with pytest.raises(httpx.PoolTimeout):
            await client.get("http://app/b")
        first.cancel()
