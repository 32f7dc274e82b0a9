"""The sockets of one provider-side stream: :class:`Sockets` holds its links, opens the
one a connection fault calls for (the reconnect after a vanish, or a second socket for
the same stream) and says when every one of them is gone."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection

from ...netfaults import NetFaults
from .links import Link, OnMessage
from .report import StreamReport

__all__ = ["Sockets"]


class Sockets:
    """Socket 0 (the first), then socket 1 when a fault opens it.

    ``open_socket`` connects one (the connection, or why not); ``opening`` sends a new
    socket's first messages (under ``lock``, so nothing overtakes them); ``wake`` is
    called whenever a socket ends. :attr:`gone` is set once every socket is closed and
    no other is coming (a silent socket stays open: the caller talks on into it).
    """

    def __init__(
        self,
        faults: NetFaults,
        report: StreamReport,
        *,
        open_socket: Callable[[], Awaitable[ClientConnection | str]],
        opening: Callable[[Link], Awaitable[None]],
        on_message: OnMessage,
        lock: asyncio.Lock,
        wake: Callable[[], None],
    ) -> None:
        self._faults = faults
        self._report = report
        self._open_socket = open_socket
        self._opening = opening
        self._on_message = on_message
        self._lock = lock
        self._wake = wake
        self.links: list[Link] = []
        self.gone = asyncio.Event()
        self.connecting: asyncio.Task[None] | None = None
        self.vanished = False
        self.t0 = 0.0

    def add(self, ws: ClientConnection) -> Link:
        """A socket opened: start receiving on it."""
        f = self._faults
        link = Link(
            len(self.links),
            ws,
            t0=self.t0,
            on_message=self._on_message,
            slow_read=f.slow_reading if f.slow_read_at_s is not None else None,
            read_rate=f.slow_read_bytes_per_s,
            slow_until=(f.slow_read_at_s or 0.0) + f.slow_read_s if f.slow_read_s else math.inf,
            wake=self.ended,
        )
        self.links.append(link)
        self._report.links.append(link.report)
        link.start()
        return link

    def ended(self) -> None:
        """A socket ended (or failed to open)."""
        self._wake()
        closed = all(link.ws.close_code is not None for link in self.links)
        if closed and not self.more_coming():
            self.gone.set()

    def more_coming(self) -> bool:
        """Will a fault still open a socket?"""
        f = self._faults
        if f.reconnect_after_s is None and f.second_socket_at_s is None:
            return False
        done = self.connecting is not None and self.connecting.done()
        return len(self.links) < 2 and not done

    @property
    def alive(self) -> bool:
        """Does any socket still send?"""
        return any(link.alive for link in self.links)

    def faults_due(self, at: float) -> bool:
        """The connection faults due by ``at`` (seconds of the stream's audio): a vanish
        (True when it happened just now) and the socket to open."""
        f = self._faults
        vanished_now = False
        if f.vanish_at_s is not None and at >= f.vanish_at_s and not self.vanished:
            self.vanished = vanished_now = True
            self.links[0].vanish(f.vanish)
            self.ended()
        opens = None
        if f.second_socket_at_s is not None and at >= f.second_socket_at_s:
            opens = "the second socket"
        elif f.reconnect_after_s is not None and self.vanished:
            assert f.vanish_at_s is not None
            if at >= f.vanish_at_s + f.reconnect_after_s:
                opens = "the reconnect"
        if opens and self.connecting is None:
            self.connecting = asyncio.get_running_loop().create_task(self._open(opens))
        return vanished_now

    async def _open(self, why: str) -> None:
        got = await self._open_socket()
        if isinstance(got, str):
            self._report.add_error(f"{why} failed: {got}")
            self.ended()
            return
        async with self._lock:
            await self._opening(self.add(got))
