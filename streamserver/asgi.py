"""Serve a small ASGI app (Starlette) on uvicorn inside the current event loop.

Used by the control app beside the stream server and by the local Plivo emulator. It
installs no signal handlers: the program around it owns signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Generator
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = ["AsgiHandoff", "AsgiServer", "url_host"]


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


class AsgiServer:
    """Serve an ASGI app on ``host:port`` (0: any free port) until :meth:`aclose`."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = app
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

    def __init__(self, app: Any) -> None:
        self._config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off",
            ws="none", http="h11", proxy_headers=False,
        )  # fmt: skip
        self._config.load()
        self._state = ServerState()

    def take(self, transport: asyncio.BaseTransport, data: bytes) -> None:
        """Serve the connection on ``transport``; ``data``: what was read from it so far."""
        proto = H11Protocol(self._config, self._state, {})
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
