"""Run the emulator (or any small ASGI app) on uvicorn inside the current event loop.

:class:`Emulator` is what tests, the demo and the load tester use::

    async with Emulator(settings) as emu:          # port 0: a free port is picked
        client = PlivoClient(emu.auth_id, emu.auth_token, base_url=emu.api_base)
        ...

:class:`AsgiServer` is the plain part (bind, serve, stop) for any ASGI app, e.g. a test's
answer-URL app. Neither installs signal handlers: the program around them owns signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Generator
from types import TracebackType
from typing import Any

import uvicorn

from .api import create_app
from .settings import EmulatorSettings, load_emulator_settings
from .simulator import Simulator
from .store import Store

__all__ = ["AsgiServer", "Emulator"]

log = logging.getLogger("streamserver.emulator")


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


def _url_host(host: str) -> str:
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
        self.base_url = f"http://{_url_host(self._host)}:{self.port}"
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


class Emulator:
    """The local Plivo: REST API plus call simulator, served on ``settings.host:port``.

    ``settings`` default to :func:`load_emulator_settings` (the environment's
    ``PLIVO_AUTH_ID``/``PLIVO_AUTH_TOKEN`` or the local-only defaults) on port 8090.
    """

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings if settings is not None else load_emulator_settings()
        if not (self.settings.auth_id and self.settings.auth_token):
            self.settings = self.settings.with_credentials()
        self.store = Store(self.settings.auth_id)
        self.simulator = Simulator(self.settings, self.store)
        self._server = AsgiServer(
            create_app(self.settings, self.simulator), self.settings.host, self.settings.port
        )

    @property
    def base_url(self) -> str:
        """``http://host:port`` as bound (known after start)."""
        return self._server.base_url

    @property
    def api_base(self) -> str:
        """``{base_url}/v1/Account/{auth_id}/``: the root of every REST path."""
        return f"{self.base_url}/v1/Account/{self.auth_id}/"

    @property
    def auth_id(self) -> str:
        return self.settings.auth_id

    @property
    def auth_token(self) -> str:
        return self.settings.auth_token

    @property
    def port(self) -> int:
        return self._server.port

    async def start(self) -> None:
        """Start the simulator and the HTTP server."""
        await self.simulator.start()
        try:
            await self._server.start()
        except BaseException:
            await self.simulator.aclose()
            raise
        if not self.settings.public_url:
            self.simulator.public_url = self.base_url
        log.info("emulator: Plivo API at %s (auth id %s)", self.api_base, self.auth_id)

    async def aclose(self) -> None:
        """Hang up every call, then stop serving."""
        await self.simulator.aclose()
        await self._server.aclose()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
