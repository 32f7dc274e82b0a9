"""What a stream reports about itself: the ``stream ended`` line and the live summary.

Both read a stream's counters through :class:`StreamFigures` (the session has them as
plain attributes, counted on the per-frame path); nothing here runs per frame.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from .audio import AudioFormat
from .handler import StopReason
from .ordering import OrderStats
from .protocol.dialect import Dialect
from .runner import HandlerRunner
from .session_config import Route
from .session_state import SessionState
from .stream_handlers import StreamHandlers

__all__ = ["StreamFigures", "log_ended", "summary"]


class StreamFigures(Protocol):
    """The numbers of one stream that its reports read."""

    @property
    def call_id(self) -> str: ...
    @property
    def stream_id(self) -> str: ...
    @property
    def route(self) -> Route: ...
    @property
    def state(self) -> SessionState: ...
    @property
    def runners(self) -> list[HandlerRunner]: ...
    @property
    def handlers(self) -> StreamHandlers: ...
    @property
    def connected_at(self) -> float: ...
    @property
    def frames(self) -> int: ...
    @property
    def media_frames(self) -> int: ...
    @property
    def invalid_frames(self) -> int: ...
    @property
    def order_stats(self) -> OrderStats: ...
    @property
    def fmt(self) -> AudioFormat | None: ...
    @property
    def dialect(self) -> Dialect | None: ...


def log_ended(
    logger: logging.LoggerAdapter[logging.Logger],
    stream: StreamFigures,
    reason: StopReason,
    frames_sent: int,
) -> None:
    """The stream's ``stream ended`` line (``frames_sent``: the playback's count)."""
    st = stream.order_stats
    logger.info(
        "stream ended: call=%s stream=%s reason=%s duration=%.1fs frames=%d media=%d "
        "gaps=%d gap_samples=%d duplicates=%d invalid=%d handler_drops=%d sent=%d",
        stream.call_id,
        stream.stream_id,
        reason.value,
        time.monotonic() - stream.connected_at,
        stream.frames,
        stream.media_frames,
        st.gaps,
        st.gap_samples,
        st.duplicates,
        stream.invalid_frames,
        stream.handlers.dropped_samples,
        frames_sent,
    )


def summary(stream: StreamFigures) -> dict[str, Any]:
    """Live numbers for ops endpoints (and ``StreamContext.stats``)."""
    st = stream.order_stats
    return {
        "call_id": stream.call_id,
        "stream_id": stream.stream_id,
        "route": stream.route.path,
        "state": stream.state.value,
        "handlers": [r.spec.name for r in stream.runners],
        "failed_handlers": [r.spec.name for r in stream.runners if r.failed],
        "duration_s": round(time.monotonic() - stream.connected_at, 3),
        "frames": stream.frames,
        "media_frames": stream.media_frames,
        "gaps": st.gaps,
        "gap_samples": st.gap_samples,
        "duplicates": st.duplicates,
        "handler_dropped_samples": stream.handlers.dropped_samples,
        "format": stream.fmt.content_type if stream.fmt else None,
        "provider": stream.dialect.name if stream.dialect else None,
    }
