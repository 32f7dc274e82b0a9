"""One NATS connection that never gives up, shared by the server's events and commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from .settings import BusSettings, safe_url

__all__ = ["BusConnection"]

log = logging.getLogger("streamserver.bus")


class BusConnection:
    """One NATS connection that never gives up: :meth:`start` returns at once and connects
    in the background, retrying every ``reconnect_wait_s`` for as long as it takes, and
    nats-py reconnects (and restores subscriptions) after a loss.

    Owners register :meth:`on_connect` hooks, run after the first connect and every
    reconnect (the event stream is re-ensured there, pending subscriptions made).
    """

    def __init__(self, settings: BusSettings) -> None:
        if not settings.url:
            raise ValueError("bus.url is empty: no NATS server to connect to")
        self.settings = settings
        self.nc = NatsClient()
        self.js: JetStreamContext = self.nc.jetstream(timeout=settings.ack_timeout_s)
        self._connected = asyncio.Event()
        self._hooks: list[Callable[[], Awaitable[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._error_logged = False
        self.connects = 0

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self.nc.is_connected

    def on_connect(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` after every (re)connect; also now, if already connected."""
        self._hooks.append(hook)
        if self.connected:
            self._run_hooks()

    async def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._connect(), name="bus-connect")

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Wait until connected; False after ``timeout_s``."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _connect(self) -> None:
        s = self.settings
        try:
            await self._connect_once()
        except Exception:
            # A task boundary: nats-py retries unreachable servers itself (forever), so
            # what ends up here is a configuration problem.
            log.exception("bus: cannot connect to NATS at %s; no events are sent", safe_url(s.url))

    async def _connect_once(self) -> None:
        s = self.settings
        await self.nc.connect(
            s.url,
            name=f"streamserver {s.host}/{s.worker}",
            connect_timeout=s.connect_timeout_s,  # type: ignore[arg-type]  # float works
            reconnect_time_wait=s.reconnect_wait_s,  # type: ignore[arg-type]
            max_reconnect_attempts=-1,  # also retries the first connect, forever
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self.connects += 1
        log.info("connected to NATS at %s", safe_url(s.url))
        self._error_logged = False
        self._connected.set()
        self._run_hooks()

    def _run_hooks(self) -> None:
        async def run() -> None:
            for hook in list(self._hooks):
                try:
                    await hook()
                except Exception:
                    # A task boundary: a failing hook (NATS dropped again...) runs again at
                    # the next reconnect; the others still run.
                    log.warning("bus: on-connect step failed; retried on reconnect", exc_info=True)

        task = asyncio.create_task(run(), name="bus-on-connect")
        self._hook_tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._hook_tasks.discard)

    async def _on_error(self, exc: Exception) -> None:
        if not self._error_logged and not self._closed:
            self._error_logged = True
            log.warning(
                "NATS at %s: %s; retrying every %.1f s (events wait in a backlog meanwhile)",
                safe_url(self.settings.url),
                exc or type(exc).__name__,
                self.settings.reconnect_wait_s,
            )

    async def _on_disconnected(self) -> None:
        self._connected.clear()
        if not self._closed:
            log.warning("lost the NATS connection to %s", safe_url(self.settings.url))

    async def _on_reconnected(self) -> None:
        self.connects += 1
        self._error_logged = False
        log.info("reconnected to NATS at %s", safe_url(self.settings.url))
        self._connected.set()
        self._run_hooks()

    async def aclose(self) -> None:
        """Close the connection (and stop connecting)."""
        self._closed = True
        self._connected.clear()
        for task in (self._task, *self._hook_tasks):
            if task is not None and not task.done():
                task.cancel()
                # Bounded: a connect attempt in nats-py's retry loop may take a moment
                # to see the cancellation.
                await asyncio.wait([task], timeout=self.settings.connect_timeout_s + 1)
        with contextlib.suppress(Exception):
            await self.nc.close()
