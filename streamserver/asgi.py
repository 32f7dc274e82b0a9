"""Serve a small ASGI app (Starlette) on uvicorn inside the current event loop.

Used by the control app beside the stream server and by the local Plivo emulator. It
installs no signal handlers: the program around it owns signals. Every connection is
bounded by :class:`HttpLimits`: a deadline for the request head and one for the body, a
keep-alive idle time, a head size and a connection cap (a slow or idle client cannot hold
the process's file descriptors or its loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Generator, MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = ["AsgiHandoff", "AsgiServer", "HttpLimits", "is_loopback", "url_host"]


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on every HTTP connection; ``None`` disables one.

    ``header_timeout_s``: the request head must arrive within it (from the connection, or
    from the end of the previous response on a kept-alive one), else 408 and close;
    ``body_timeout_s``: then the whole body within this much more, else close;
    ``keep_alive_s``: an idle kept-alive connection is closed after it;
    ``max_connections``: past it a new connection gets 503 and is closed at once;
    ``max_header_bytes``: a bigger request head is refused (h11's 400/431).
    """

    # Timeouts
    header_timeout_s: float | None = 10.0
    body_timeout_s: float | None = 30.0
    keep_alive_s: float = 5.0
    # Limits
    max_connections: int | None = 256
    max_header_bytes: int = 16384


_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
    b"content-length: 26\r\nconnection: close\r\n\r\ntoo many HTTP connections\n"
)


def bounded_protocol(
    limits: HttpLimits, rejected: MutableMapping[str, int] | None = None
) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol with :class:`HttpLimits`' deadlines and connection cap;
    ``rejected[reason]`` counts what they cut (``header_timeout``, ``body_timeout``,
    ``max_connections``)."""
    counts: MutableMapping[str, int] = rejected if rejected is not None else {}

    class _Bounded(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            cap = limits.max_connections
            if cap is not None and len(self.connections) >= cap:
                self.transport = transport  # connection_lost() closes it
                counts["max_connections"] = counts.get("max_connections", 0) + 1
                transport.write(_503)
                transport.close()
                return
            super().connection_made(transport)
            self._arm(limits.header_timeout_s, self._head_late)

        def connection_lost(self, exc: Exception | None) -> None:
            self._arm(None, self._head_late)
            if self not in self.connections:  # refused in connection_made
                return
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm(limits.header_timeout_s, self._head_late)  # the next request's head

        def _arm(self, delay: float | None, fn: Any) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            if delay is not None and not self.transport.is_closing():
                self._deadline = asyncio.get_running_loop().call_later(delay, fn)

        def _head_late(self) -> None:
            self._deadline = None
            state = self.conn.their_state
            if state is h11.SEND_BODY:
                self._arm(limits.body_timeout_s, self._body_late)
            elif self.cycle is None or self.cycle.response_complete:
                self._cut("header_timeout", _408)  # no (next) request head in time
            # else: the request arrived whole and the app is still answering it

        def _body_late(self) -> None:
            self._deadline = None
            if self.conn.their_state is h11.SEND_BODY:
                self._cut("body_timeout", _408)

        def _cut(self, reason: str, reply: bytes) -> None:
            counts[reason] = counts.get(reason, 0) + 1
            if not self.transport.is_closing():
                if self.cycle is None or not self.cycle.response_started:
                    self.transport.write(reply)
                self.transport.close()

    return _Bounded


class _Server(uvicorn.Server):
    """uvicorn without signal handling, stopped through :meth:`request_exit`."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit = asyncio.Event()
        self.startup_done = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the host program handles signals

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.startup_done.set()

    def request_exit(self) -> None:
        self.should_exit = True
        self._exit.set()

    async def main_loop(self) -> None:
        # Wake on exit at once instead of polling every 0.1 s; tick once a second so the
        # Date header stays current.
        counter = 0
        while not await self.on_tick(counter):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 1.0)
            counter = (counter + 10) % 864000


def url_host(host: str) -> str:
    """The host part of a URL that reaches ``host`` (wildcards -> loopback, IPv6 bracketed)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    return host


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``, brackets allowed) is this machine only."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AsgiServer:
    """Serve an ASGI app on ``host:port`` (0: any free port) until :meth:`aclose`."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: HttpLimits | None = None,
        rejected: MutableMapping[str, int] | None = None,
    ) -> None:
        self._app = app
        self._limits = limits or HttpLimits()
        self._rejected = rejected
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.base_url = ""
        self.port = 0

    async def start(self) -> None:
        """Bind, start serving, and set :attr:`base_url` (``http://host:port``)."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.create_server((self._host, self._port), family=family)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        self.base_url = f"http://{url_host(self._host)}:{self.port}"
        config = uvicorn.Config(
            self._app,
            log_config=None,
            log_level="warning",  # our own log lines say what happens; no start-up chatter
            access_log=False,
            lifespan="off",
            ws="none",
            http=bounded_protocol(self._limits, self._rejected),
            timeout_keep_alive=int(self._limits.keep_alive_s) or 1,
            h11_max_incomplete_event_size=self._limits.max_header_bytes,
            timeout_graceful_shutdown=2,
        )
        server = _Server(config)
        self._server = server
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        started = asyncio.ensure_future(server.startup_done.wait())
        await asyncio.wait([started, self._task], return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if self._task.done() or not server.started:
            await self._task  # raises what failed
            raise RuntimeError("the HTTP server stopped during start-up")

    async def aclose(self) -> None:
        """Stop accepting, finish in-flight requests (2 s at most) and stop."""
        if self._server is not None:
            self._server.request_exit()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def __aenter__(self) -> AsgiServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsgiHandoff:
    """Serve an ASGI app on connections another server accepted: the stream server hands
    over a socket whose request is for the app (the control app on a shared port) with
    :meth:`take`, and uvicorn's HTTP/1.1 protocol serves it from there (keep-alive too)."""

    def __init__(
        self,
        app: Any,
        *,
        limits: HttpLimits | None = None,
        rejected: MutableMapping[str, int] | None = None,
    ) -> None:
        lim = limits or HttpLimits()
        self._protocol = bounded_protocol(lim, rejected)
        self._config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off",
            ws="none", http=self._protocol, proxy_headers=False,
            timeout_keep_alive=int(lim.keep_alive_s) or 1,
            h11_max_incomplete_event_size=lim.max_header_bytes,
        )  # fmt: skip
        self._config.load()
        self._state = ServerState()

    def take(self, transport: asyncio.BaseTransport, data: bytes) -> None:
        """Serve the connection on ``transport``; ``data``: what was read from it so far."""
        proto = self._protocol(self._config, self._state, {})
        transport.set_protocol(proto)
        proto.connection_made(transport)  # type: ignore[arg-type]
        if data:
            proto.data_received(data)

    @property
    def connections(self) -> int:
        """How many connections it serves now."""
        return len(self._state.connections)

    async def aclose(self) -> None:
        """Finish in-flight requests (2 s at most), then close every connection."""
        for proto in list(self._state.connections):
            proto.shutdown()
        for _ in range(40):
            if not self._state.connections:
                return
            await asyncio.sleep(0.05)
        for proto in list(self._state.connections):
            if proto.transport is not None:
                proto.transport.abort()
