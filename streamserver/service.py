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
import functools
import socket
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .control import ControlApp, load_control_settings
from .handler import HandlerLoadError, HandlerSpec, installed_handlers
from .net import StreamServer
from .settings import ConfigError, Settings, check_handler_tables
from .signature import UpgradeVerifier

if TYPE_CHECKING:
    from .bus import Bus
    from .call_events import CallObserver
    from .storage import RecordingUploader

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
    """A :class:`~streamserver.net.StreamServer` and, when ``[control] enabled``, its
    :class:`~streamserver.control.ControlApp`.

    ``extra_handlers`` adds resolved handlers after a route's configured ones (a program
    embedding the server can hand its own classes in without registering entry points).
    ``sock`` is a listening socket to serve on (a worker's, see
    :mod:`streamserver.supervisor`); ``control=False`` leaves the control app out (it runs
    in one worker of a host).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        extra_handlers: Mapping[str, Sequence[HandlerSpec]] | None = None,
        sock: socket.socket | None = None,
        control: bool = True,
        worker: str | None = None,
    ) -> None:
        self.settings = settings
        check_handler_tables(settings, installed_handlers())
        control_settings = load_control_settings(settings)
        self.server = StreamServer(settings, sock=sock)
        for path, specs in (extra_handlers or {}).items():
            route = self.server.routes[path]
            handlers = (*route.handlers, *specs)
            self.server.routes[path] = dataclasses.replace(route, handlers=handlers)
        self._check_handlers()
        self.control = (
            ControlApp(self.server, control_settings)
            # on a shared port every worker serves the control app's paths (its own port:
            # the one worker given ``control``)
            if control_settings.enabled and (control or control_settings.shared)
            else None
        )
        self.bus: Bus | None = None
        self.uploader: RecordingUploader | None = None
        self.observer: CallObserver | None = None
        bus_table: dict[str, Any] = dict(settings.extra.get("bus") or {})
        storage_table: dict[str, Any] = dict(settings.extra.get("storage") or {})
        if bus_table.get("url") or storage_table.get("url"):
            self._build_wiring(bus_table, storage_table, worker)

    def _build_wiring(
        self, bus_table: dict[str, Any], storage_table: dict[str, Any], worker: str | None
    ) -> None:
        # Imported only when configured: the default server needs no NATS or S3 client.
        from .call_events import CallObserver

        try:
            if bus_table.get("url"):
                from .bus import Bus, BusSettings

                if worker is not None:
                    bus_table.setdefault("worker", worker)
                self.bus = Bus(BusSettings.from_table(bus_table))
            if storage_table.get("url"):
                from .storage import RecordingUploader, StorageSettings

                recorder = self.settings.handler.get("recorder", {})
                storage_table.setdefault("record_dir", recorder.get("record_dir", "recordings"))
                self.uploader = RecordingUploader(StorageSettings.from_table(storage_table))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        from .wiring_metrics import bus_source, storage_source

        self.observer = CallObserver(self.bus, self.uploader)
        if self.bus is not None:
            self.server.metrics.sources.append(bus_source(self.bus))
        if self.uploader is not None:
            self.uploader.on_uploaded = self.observer.recording_uploaded
            self.server.metrics.sources.append(storage_source(self.uploader))
        self.server.observer = self.observer

    def _check_handlers(self) -> None:
        """Each handler's start-up check (``preflight``: raises ``HandlerLoadError``), and
        its ``unready`` reason on ``/readyz``."""
        specs = {id(spec): spec for route in self.server.routes.values() for spec in route.handlers}
        for spec in specs.values():
            try:
                spec.cls.preflight(spec.options)
            except HandlerLoadError:
                raise
            except Exception as exc:
                raise HandlerLoadError(f"handler {spec.name!r}: {exc}") from None
            self.server.gate.readiness.append(functools.partial(spec.cls.unready, spec.options))

    @property
    def url(self) -> str:
        """``ws://host:port`` of the stream server (after :meth:`start`)."""
        return self.server.url

    async def start(self) -> None:
        """Listen: the server, then the control app (the server is stopped again when the
        control app cannot listen). Raises :class:`ListenError`."""
        sv = self.settings.server
        if self.bus is not None:
            await self.bus.start()  # never waits for NATS: events queue until it answers
        if self.uploader is not None:
            # Re-queues what a crash left in the spool; an unreachable S3 is retried later.
            await self.uploader.start()
        try:
            await self.server.start()
        except OSError as exc:
            if self.uploader is not None:
                await self.uploader.aclose(0)
            if self.bus is not None:
                await self.bus.aclose(0)
            raise ListenError("server", sv.host, sv.port, exc) from exc
        if self.control is not None:
            try:
                await self.control.start()
            except OSError as exc:
                await self.server.shutdown()
                cs = self.control.settings
                port = cs.port if isinstance(cs.port, int) else sv.port
                raise ListenError("control app", cs.host, port, exc) from exc

    def verify_upgrades(self, tokens: Sequence[str]) -> None:
        """Check stream upgrades' signatures over the URL the server is bound to (after
        :meth:`start`), for local runs whose public URL is not known in advance."""
        cache = self.server.nonces()
        self.server.verifier = UpgradeVerifier(list(tokens), self.server.url, cache)

    async def aclose(self) -> None:
        """Drain the server (see ``drain_timeout_s``), then stop the control app."""
        await self.server.shutdown()
        if self.control is not None:
            await self.control.aclose()
        if self.observer is not None:
            await self.observer.aclose()
        if self.uploader is not None:
            await self.uploader.aclose()  # what is left stays spooled for the next start
        if self.bus is not None:
            await self.bus.aclose()  # after the uploads: their recording.ready goes out

    async def __aenter__(self) -> StreamService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
