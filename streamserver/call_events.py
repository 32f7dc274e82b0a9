"""The service's bus wiring: each stream's events out and its commands in, over NATS.

:class:`BusObserver` is the :class:`~streamserver.observer.StreamObserver` the service
installs when ``[bus] url`` is set. For each stream it registers a :class:`CallTarget`
with the bus's :class:`~streamserver.bus.CommandServer` and then publishes
``stream.started``; it publishes ``dtmf`` and every handler bus topic (``transcript``, ...)
as they happen, ``stream.stopped`` (duration, frames, gaps, drops, reason) once the
stream's handlers finished, and unregisters the call. Publishing never waits (see
:class:`~streamserver.bus.EventPublisher`); registering is a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any

import numpy as np

from .bus import Bus
from .handler import StopReason
from .protocol.websocket import CloseCode
from .session import Session

__all__ = ["BusObserver", "CallTarget"]


class CallTarget:
    """A live stream as a bus :class:`~streamserver.bus.CommandTarget`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _live(self) -> Session:
        s = self.session
        if s.ended:
            raise ValueError("the stream has ended")
        if not s.route.bidirectional:
            raise ValueError(f"route {s.route.path} is not bidirectional: nothing can be sent")
        return s

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        await self._live().play(pcm, rate)

    def checkpoint(self, name: str) -> Awaitable[bool]:
        return self._live().checkpoint(name)

    def clear(self) -> None:
        self._live().clear()

    def send_dtmf(self, digits: str) -> None:
        self._live().send_dtmf(digits)

    async def stop(self) -> None:
        if not self.session.ended:
            self.session.close(CloseCode.NORMAL, "stopped by a bus command")


def _provider(session: Session) -> str:
    return str(getattr(session, "provider", "") or "plivo")


class BusObserver:
    """Publishes each stream's events on ``bus`` and answers its commands."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._started: dict[Session, asyncio.Task[None]] = {}
        self._targets: dict[Session, CallTarget] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def publish(self, session: Session, kind: str, data: Any) -> None:
        """Event ``kind`` of ``session``'s call (a non-mapping ``data`` goes as ``value``)."""
        body = data if isinstance(data, Mapping) or data is None else {"value": data}
        self.bus.events.publish(
            session.call_id, kind, body, stream_id=session.stream_id, provider=_provider(session)
        )

    # -- StreamObserver ------------------------------------------------------------------------

    def stream_started(self, session: Session) -> None:
        target = self._targets[session] = CallTarget(session)
        self._started[session] = self._spawn(self._start(session, target))

    async def _start(self, session: Session, target: CallTarget) -> None:
        # Subscribed first, so whoever reacts to stream.started can command the call.
        try:
            await self.bus.commands.add(session.call_id, target)
        finally:
            s = session.summary()
            self.publish(
                session,
                "stream.started",
                {"route": s["route"], "format": s["format"], "handlers": s["handlers"]},
            )

    def stream_event(self, session: Session, kind: str, data: Any) -> None:
        self.publish(session, kind, data)

    def stream_stopped(self, session: Session, reason: StopReason) -> None:
        self._spawn(self._stop(session, reason))

    async def _stop(self, session: Session, reason: StopReason) -> None:
        started = self._started.pop(session, None)
        if started is not None:
            await asyncio.wait([started])  # stream.started goes first
        s = session.summary()
        self.publish(
            session,
            "stream.stopped",
            {
                "reason": reason.value,
                "duration_s": s["duration_s"],
                "frames": s["frames"],
                "media_frames": s["media_frames"],
                "gaps": s["gaps"],
                "gap_samples": s["gap_samples"],
                "duplicates": s["duplicates"],
                "drops": s["handler_dropped_samples"],
            },
        )
        target = self._targets.pop(session, None)
        await self.bus.commands.remove(session.call_id, target)

    async def aclose(self) -> None:
        """Wait for the registrations and last events still being handed to the bus."""
        if self._tasks:
            await asyncio.wait(list(self._tasks))
