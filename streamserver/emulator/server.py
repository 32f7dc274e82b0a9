"""Run the emulator (or any small ASGI app) on uvicorn inside the current event loop.

:class:`Emulator` is what tests, the demo and the load tester use::

    async with Emulator(settings) as emu:          # port 0: a free port is picked
        client = PlivoClient(emu.auth_id, emu.auth_token, base_url=emu.api_base)
        ...

:class:`AsgiServer` is the plain part (bind, serve, stop) for any ASGI app, e.g. a test's
answer-URL app. Neither installs signal handlers: the program around them owns signals.
"""

from __future__ import annotations

import logging
from types import TracebackType

from ..asgi import AsgiServer
from .api import create_app
from .settings import EmulatorSettings, load_emulator_settings
from .simulator import Simulator
from .store import Store

__all__ = ["AsgiServer", "Emulator"]  # AsgiServer re-exported from streamserver.asgi

log = logging.getLogger("streamserver.emulator")


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
