"""The service's wiring of streams to NATS (events out, commands in) and to S3 (recordings).

:class:`CallObserver` is the :class:`~streamserver.observer.StreamObserver` the service
installs when ``[bus] url`` or ``[storage] url`` is set. With a bus, for each stream it
registers a :class:`CallTarget` with the bus's :class:`~streamserver.bus.CommandServer`,
then publishes ``stream.started``; it publishes ``dtmf`` and every handler bus topic
(``transcript``, ...) as they happen, ``stream.stopped`` (duration, frames, gaps, drops,
reason) once the stream's handlers finished, and unregisters the call. Publishing never waits (see
:class:`~streamserver.bus.EventPublisher`); registering is a task. With an uploader, the
recorder's ``recording.finished`` topic (its sidecar's path) hands the recording to the
:class:`~streamserver.storage.RecordingUploader` (its own thread), whose success is
published as ``recording.ready`` with the object URLs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .handler import StopReason
from .protocol.websocket import CloseCode
from .session import Session

if TYPE_CHECKING:
    from .bus import Bus
    from .storage import RecordingUploader, UploadResult

__all__ = ["RECORDING_FINISHED", "CallObserver", "CallTarget"]

#: The recorder's bus topic for a finished recording: ``{"sidecar": path, "files": {...}}``.
RECORDING_FINISHED = "recording.finished"


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
        await self._live().control.play(pcm, rate)

    def checkpoint(self, name: str) -> Awaitable[bool]:
        return self._live().control.checkpoint(name)

    def clear(self) -> None:
        self._live().control.clear()

    def send_dtmf(self, digits: str) -> None:
        self._live().control.send_dtmf(digits)

    async def stop(self) -> None:
        if not self.session.ended:
            self.session.close(CloseCode.NORMAL, "stopped by a bus command")


def _provider(session: Session) -> str:
    return str(getattr(session, "provider", "") or "plivo")


class CallObserver:
    """Publishes each stream's events on ``bus`` and answers its commands; hands finished
    recordings to ``uploader``. Either may be None."""

    def __init__(self, bus: Bus | None, uploader: RecordingUploader | None = None) -> None:
        self.bus = bus
        self.uploader = uploader
        self._providers: dict[str, str] = {}  # stream id -> provider, until its upload
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
        if self.bus is not None:
            self.bus.events.publish(
                session.call_id,
                kind,
                body,
                stream_id=session.stream_id,
                provider=_provider(session),
            )

    def recording_uploaded(self, result: UploadResult) -> None:
        """The uploader's ``on_uploaded``: publish ``recording.ready``."""
        provider = self._providers.pop(result.stream_id, "plivo")
        if self.bus is not None:
            self.bus.events.publish(
                result.call_id,
                "recording.ready",
                result.event_data(),
                stream_id=result.stream_id,
                provider=provider,
            )

    # -- StreamObserver ------------------------------------------------------------------------

    def stream_started(self, session: Session) -> None:
        if self.bus is None:
            return
        target = self._targets[session] = CallTarget(session)
        self._started[session] = self._spawn(self._start(session, target))

    async def _start(self, session: Session, target: CallTarget) -> None:
        # Subscribed first, so whoever reacts to stream.started can command the call.
        assert self.bus is not None
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
        if kind == RECORDING_FINISHED and self.uploader is not None and isinstance(data, Mapping):
            sidecar = data.get("sidecar")
            if isinstance(sidecar, str):
                self._providers[session.stream_id] = _provider(session)
                # False: the queue is full; the uploader's next re-scan takes it up.
                self.uploader.submit(sidecar)

    def stream_stopped(self, session: Session, reason: StopReason) -> None:
        if self.bus is not None:
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
        assert self.bus is not None
        await self.bus.commands.remove(session.call_id, target)

    async def aclose(self) -> None:
        """Wait for the registrations and last events still being handed to the bus."""
        if self._tasks:
            await asyncio.wait(list(self._tasks))
