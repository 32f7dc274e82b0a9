"""The simulator's HTTP client (webhooks, answer URLs, media), with its requests bounded.

Plivo calls your application for every call at once; so does the emulator, and a bulk
call or a shutdown hangs up hundreds of calls in the same instant, each with a callback.
httpx queues requests beyond its pool's connections in a list that httpcore re-scans
against every connection whenever a request comes or goes: quadratic in the queue, so a
few thousand queued callbacks held the process at 100 % CPU for minutes (and it ignored
SIGTERM meanwhile). :class:`BoundedTransport` lets at most :data:`MAX_IN_FLIGHT` requests
into the pool, fewer than its connections, so that queue stays empty; the others wait
their turn on a semaphore (constant cost), within the client's pool timeout.
"""

from __future__ import annotations

import asyncio

import httpx

__all__ = ["MAX_CONNECTIONS", "MAX_IN_FLIGHT", "BoundedTransport", "make_http_client"]

#: Connections the pool may open (httpx's default).
MAX_CONNECTIONS = 100
#: Requests in the pool at once; the rest wait outside it.
MAX_IN_FLIGHT = 64


class BoundedTransport(httpx.AsyncBaseTransport):
    """``inner`` with at most ``limit`` requests inside it at once; a request that waits
    longer than its pool timeout for a turn fails with :class:`httpx.PoolTimeout`."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int = MAX_IN_FLIGHT) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(limit)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {}).get("pool")
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except TimeoutError:
            raise httpx.PoolTimeout("no free request slot in time", request=request) from None
        try:
            return await self._inner.handle_async_request(request)
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        await self._inner.aclose()


def make_http_client(timeout_s: float) -> httpx.AsyncClient:
    """The client the simulator uses for everything it sends to applications."""
    inner = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=20)
    )
    return httpx.AsyncClient(
        transport=BoundedTransport(inner),
        timeout=timeout_s,
        follow_redirects=True,
        trust_env=False,  # webhooks go straight to the app, never via a proxy
        headers={"User-Agent": "PlivoHTTPClient/emulator"},
    )
