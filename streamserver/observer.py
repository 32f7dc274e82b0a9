"""What a session tells the world outside its process: started, events, stopped.

The core stays free of the bus: the service installs an observer (the NATS one is
:class:`streamserver.call_events.BusObserver`) on the stream server, which hands it to
every session. It is called a few times per stream — start, DTMF, handler bus events, end
— never per frame, and must not block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .handler import StopReason
    from .session import Session

__all__ = ["StreamObserver"]


class StreamObserver(Protocol):
    """Receives a session's call-level events (on the event loop; must not block)."""

    def stream_started(self, session: Session) -> None:
        """The stream got its ``start`` event (ids, format and handlers are set)."""

    def stream_event(self, session: Session, kind: str, data: Any) -> None:
        """``dtmf``, or a handler bus topic (``transcript``, ``handler.error``, ...)."""

    def stream_stopped(self, session: Session, reason: StopReason) -> None:
        """The stream ended and every handler's ``on_stop`` finished (so a final
        transcript or a finished recording is told before this)."""
