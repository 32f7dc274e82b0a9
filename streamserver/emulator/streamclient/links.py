"""The sockets of one provider-side stream: :func:`connect` opens one (signed like Plivo
when a token is given) and :class:`Link` is one open socket with its receive loop, its
way of vanishing (a reset, or a path gone quiet) and its slow reading.

A stream usually has one link. Connection faults (:mod:`streamserver.netfaults`) give it
more: the socket that resumes the stream after a vanish, or a second socket for the same
stream; each one's outcome is a :class:`~.report.LinkReport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ... import __version__
from ...signature import sign_headers
from .playback import now
from .report import LinkReport

__all__ = ["Link", "connect"]

_USER_AGENT = f"streamserver-plivo-emulator/{__version__}"
_MAX_MESSAGE_BYTES = 16 * 2**20  # servers may send a whole prompt in one playAudio

#: ``on_message(message, arrival time, link)``
OnMessage = Callable[[str | bytes, float, "Link"], Awaitable[None]]


def _http_url(ws_url: str) -> str:
    """The URL Plivo signs for an upgrade: ``http(s)://host[:port]/path[?query]``."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


async def connect(
    url: str,
    *,
    auth_token: str | None,
    main_account_token: str | None,
    open_timeout_s: float,
    close_timeout_s: float,
    max_queue: int | None = None,
) -> ClientConnection | str:
    """Open the WebSocket; the connection, or why not (a line for the report). A refused
    upgrade's status is the answer's first word: ``"HTTP 403 Forbidden: body"``."""
    headers: dict[str, str] = {}
    if auth_token:
        headers = sign_headers(
            _http_url(url), auth_token, method="GET", main_account_token=main_account_token
        )
    try:
        return await ws_connect(
            url,
            additional_headers=headers,
            compression=None,  # Plivo sends base64 audio uncompressed
            open_timeout=open_timeout_s,
            close_timeout=close_timeout_s,
            ping_interval=None,  # measuring the server, not keeping NAT state alive
            max_size=_MAX_MESSAGE_BYTES,
            max_queue=max_queue or 16,
            user_agent_header=_USER_AGENT,
            proxy=None,  # Plivo connects directly; never via the local HTTP(S)_PROXY
        )
    except InvalidStatus as exc:
        response = exc.response
        status = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        body = response.body.decode("utf-8", "replace").strip()[:200] if response.body else ""
        return f"{status}{': ' + body if body else ''}"
    except TimeoutError:
        return f"connecting to {url} timed out after {open_timeout_s} s"
    except OSError as exc:
        return f"cannot connect to {url}: {exc}"
    except InvalidHandshake as exc:
        return f"WebSocket handshake with {url} failed: {exc}"


class Link:
    """One open socket of the stream: sends go through :meth:`send` (nothing once it has
    vanished); received messages go to ``on_message`` from its own task.

    ``slow_read(t)`` says whether the provider reads slowly at stream time ``t``,
    ``read_rate`` how fast (bytes per second; 0: not at all, until ``slow_until``, stream
    time, or the end): the receive loop then waits
    before taking each next message, so the server's frames pile up in the kernel and in
    the server's output queue.
    """

    def __init__(
        self,
        index: int,
        ws: ClientConnection,
        *,
        t0: float,
        on_message: OnMessage,
        slow_read: Callable[[float], bool] | None = None,
        read_rate: float = 0.0,
        slow_until: float = math.inf,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.index = index
        self.ws = ws
        self._t0 = t0
        self._on_message = on_message
        self._slow_read = slow_read
        self._read_rate = read_rate
        self._slow_until = slow_until
        self._wake = wake
        self.report = LinkReport(index, opened_at=now() - t0)
        self.close_called = False
        self.task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        """Open and not vanished: sends still go out."""
        return not self.report.vanished and self.ws.close_code is None

    def start(self) -> None:
        """Start receiving."""
        self.task = asyncio.get_running_loop().create_task(self._receive())

    async def send(self, data: bytes, *, text: bool = True) -> bool:
        """Send one message; False when this socket no longer sends."""
        if self.report.vanished:
            return False
        await self.ws.send(data, text=text)
        return True

    def vanish(self, how: str) -> None:
        """Make the socket disappear without a FIN: ``abort`` resets it; ``silent`` stops
        reading and sending (the server sees nothing until its own timeouts)."""
        if self.report.vanished:
            return
        self.report.vanished = how
        self.report.ended_at = now() - self._t0
        transport = self.ws.transport
        if how == "abort":
            transport.abort()
        else:
            transport.pause_reading()
            if self.task is not None:
                self.task.cancel()

    async def close(self, code: int) -> None:
        """A normal close (a vanished socket is only dropped, at the end)."""
        if self.report.vanished:
            self.ws.transport.abort()
            return
        self.close_called = True
        await self.ws.close(code)

    async def finish(self, *, cancelled: bool = False) -> LinkReport:
        """Wait for the receive loop to end (or end it) and fill the report."""
        task = self.task
        if task is not None and not task.done():
            if cancelled or self.report.vanished:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if cancelled:
            self.ws.transport.abort()
        r = self.report
        ws = self.ws
        if not r.vanished:
            r.ended_at = now() - self._t0
            r.close_code = ws.close_code
            r.close_reason = ws.close_reason or ""
            protocol = ws.protocol
            r.closed_by_server = bool(protocol.close_rcvd_then_sent) or (
                protocol.close_rcvd is None and not self.close_called
            )
        return r

    async def _receive(self) -> None:
        ws = self.ws
        try:
            async for message in ws:
                arrived = now()
                self.report.messages_received += 1
                await self._on_message(message, arrived, self)
                slow = self._slow_read
                if slow is not None and slow(arrived - self._t0):
                    await self._read_slowly(len(message))
        except ConnectionClosed:
            pass
        finally:
            self._wake()  # a sender waiting for its next frame finds out now

    async def _read_slowly(self, size: int) -> None:
        # The next message is taken only after this one "took" size / rate seconds (or,
        # not reading at all, after the slow spell); meanwhile websockets' small queue
        # fills and it stops reading the socket.
        if self._read_rate > 0:
            await asyncio.sleep(size / self._read_rate)
        elif self._slow_until == math.inf:
            await self.ws.wait_closed()  # not another message while the socket lives
        else:
            await asyncio.sleep(max(0.0, self._t0 + self._slow_until - now()))
