"""What a stream's handlers reach it through: :class:`SessionControl`, the
:class:`~streamserver.handler.StreamControl` of a session.

Playback goes to the stream's :class:`~streamserver.playback.Playback`, everything else to
the session (its bus, its doctor, its counters) through the narrow :class:`ControlOwner`.
When a handler of the route taps playback (``Handler.taps_playback``), :meth:`SessionControl.tap`
has the playback report what goes out and what the provider answers as
:class:`~streamserver.handler.PlaybackEvent` s stamped with the inbound position; the
tapped per-frame path is chosen once, at start, so an untapped stream pays nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .doctor import Doctor
from .handler import BusEvent, Handler, PlaybackEvent
from .metrics import Metrics
from .playback import Playback
from .session_config import Route
from .stream_handlers import StreamHandlers

__all__ = ["ControlOwner", "SessionControl"]


class ControlOwner(Protocol):
    """What :class:`SessionControl` needs of its session."""

    route: Route
    doctor: Doctor
    metrics: Metrics
    handlers: StreamHandlers

    def publish(self, event: BusEvent) -> None: ...
    def summary(self) -> dict[str, Any]: ...


class SessionControl:
    """One stream's :class:`~streamserver.handler.StreamControl` (see the module docstring)."""

    __slots__ = ("_owner", "_playback", "_position", "play_encoded_nowait")

    def __init__(self, owner: ControlOwner, playback: Playback) -> None:
        self._owner = owner
        self._playback = playback
        self._position: Callable[[], int] = lambda: 0
        # The per-frame path of an echo or a bot: the playback's own method, no call between.
        self.play_encoded_nowait: Callable[[bytes], None] = playback.play_encoded_nowait

    def tap(self, position: Callable[[], int]) -> None:
        """From now on the tapping handlers get a :class:`PlaybackEvent` for everything
        played back, stamped with ``position()`` (the inbound samples received so far)."""
        self._position = position
        pb = self._playback
        pb.set_tap(self._tapped)
        self.play_encoded_nowait = pb.play_encoded_nowait_tapped

    def _tapped(self, kind: str, payload: bytes, name: str) -> None:
        event = PlaybackEvent(kind, self._position(), payload, name)
        self._owner.handlers.push_tapped(event)

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        """Resample and encode a whole clip to the stream's format, send it."""
        await self._playback.play(pcm, rate)

    async def play_encoded(self, payload: bytes) -> None:
        """Send encoded audio; wait (up to ``send_timeout_s``) while the socket is full."""
        await self._playback.play_encoded(payload)

    def checkpoint(self, name: str) -> asyncio.Future[bool]:
        """Send a checkpoint; resolved True by ``playedStream``, False by a clear or the end."""
        return self._playback.checkpoint(name)

    def clear(self) -> None:
        """Send ``clearAudio`` (checkpoints sent before it will resolve False)."""
        self._playback.clear()

    def send_dtmf(self, digits: str) -> None:
        """Send ``sendDTMF``."""
        self._playback.send_dtmf(digits)

    def play_refused(self, what: str) -> None:
        """A handler tried to play on a one-way stream: a doctor finding."""
        owner = self._owner
        owner.doctor.one_way_play(what, owner.route.path)

    def publish(self, event: BusEvent) -> None:
        """Deliver a bus event to every handler of the stream except its source."""
        self._owner.publish(event)

    def count(self, handler: str, event: str, n: int) -> None:
        """Add to the handler-defined counter ``(handler, event)``."""
        self._owner.metrics.handler_events[(handler, event)] += n

    def wakeup(self, handler: Handler) -> None:
        """Queue ``handler.on_wakeup`` on its task."""
        self._owner.handlers.wakeup(handler)

    def summary(self) -> dict[str, Any]:
        """Live counters of the stream."""
        return self._owner.summary()
