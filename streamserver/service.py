"""The stream server and its control app as one service, built from :class:`Settings`.

``streamserver serve`` and the demo run a service; neither needs to know where the
server's sockets live. The control app starts after the server (its answer XML points at
the server's bound port) and stops after it, so the stop and hangup callbacks of streams
that are draining still land::

    service = StreamService(settings)           # ConfigError / HandlerLoadError
    await service.start()                       # ListenError names the part that failed
    ...
    await service.aclose()                      # drain, then stop the control app
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Literal

from .control import ControlApp, load_control_settings
from .handler import HandlerSpec, installed_handlers
from .net import StreamServer
from .settings import Settings, check_handler_tables
from .signature import NonceCache, UpgradeVerifier

__all__ = ["ListenError", "StreamService"]


class ListenError(OSError):
    """A part of the service cannot listen on its address (port in use, no permission)."""

    def __init__(
        self, part: Literal["server", "control app"], host: str, port: int, exc: OSError
    ) -> None:
        super().__init__(exc.errno, exc.strerror or str(exc))
        self.part = part
        self.host = host
        self.port = port


class StreamService:
    """A :class:`~streamserver.server.StreamServer` and, when ``[control] enabled``, its
    :class:`~streamserver.control.ControlApp`.

    ``extra_handlers`` adds resolved handlers after a route's configured ones (a program
    embedding the server can hand its own classes in without registering entry points).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        extra_handlers: Mapping[str, Sequence[HandlerSpec]] | None = None,
    ) -> None:
        self.settings = settings
        check_handler_tables(settings, installed_handlers())
        control_settings = load_control_settings(settings)
        self.server = StreamServer(settings)
        for path, specs in (extra_handlers or {}).items():
            route = self.server.routes[path]
            handlers = (*route.handlers, *specs)
            self.server.routes[path] = dataclasses.replace(route, handlers=handlers)
        self.control = (
            ControlApp(self.server, control_settings) if control_settings.enabled else None
        )

    @property
    def url(self) -> str:
        """``ws://host:port`` of the stream server (after :meth:`start`)."""
        return self.server.url

    async def start(self) -> None:
        """Listen: the server, then the control app (the server is stopped again when the
        control app cannot listen). Raises :class:`ListenError`."""
        sv = self.settings.server
        try:
            await self.server.start()
        except OSError as exc:
            raise ListenError("server", sv.host, sv.port, exc) from exc
        if self.control is not None:
            try:
                await self.control.start()
            except OSError as exc:
                await self.server.shutdown()
                cs = self.control.settings
                raise ListenError("control app", cs.host, cs.port, exc) from exc

    def verify_upgrades(self, tokens: Sequence[str]) -> None:
        """Check stream upgrades' signatures over the URL the server is bound to (after
        :meth:`start`), for local runs whose public URL is not known in advance."""
        self.server.verifier = UpgradeVerifier(list(tokens), self.server.url, NonceCache())

    async def aclose(self) -> None:
        """Drain the server (see ``drain_timeout_s``), then stop the control app."""
        await self.server.shutdown()
        if self.control is not None:
            await self.control.aclose()

    async def __aenter__(self) -> StreamService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
