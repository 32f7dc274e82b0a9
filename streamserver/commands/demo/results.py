"""What the demo collects: each stream as the server saw it, each call end to end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...handler import BusEvent, Handler, StopReason, StreamContext

__all__ = ["CallResult", "DemoResult", "StreamResult", "StreamStats"]


@dataclass
class StreamResult:
    """One stream as the server saw it (final numbers from the last handler's ``on_stop``)."""

    call_id: str
    stream_id: str
    stats: dict[str, Any] = field(default_factory=dict)
    stop_reason: str = ""
    transcripts: list[str] = field(default_factory=list)
    #: Plivo callbacks that reached the stream's handlers while it was live.
    callbacks: list[str] = field(default_factory=list)


class StreamStats(Handler):
    """Last handler of the demo route: keeps each stream's final numbers, its transcripts
    and the callbacks that reached it (``options`` is the shared result dict)."""

    def __init__(self, ctx: StreamContext, options: Any = None) -> None:
        super().__init__(ctx, options)
        sink: dict[str, StreamResult] = options
        self.result = sink.setdefault(ctx.stream_id, StreamResult(ctx.call_id, ctx.stream_id))

    def on_audio_nowait(self, chunk: Any) -> None:
        pass  # audio is not needed here; this keeps it off the handler's queue

    async def on_event(self, event: Any) -> None:
        if not isinstance(event, BusEvent):
            return
        if event.topic == "transcript":
            text = str(getattr(event.data, "text", "") or "")
            if text:
                self.result.transcripts.append(text)
        elif event.topic == "plivo.callback":
            self.result.callbacks.append(event.data.event or event.data.kind)

    async def on_stop(self, reason: StopReason) -> None:
        self.result.stats = self.ctx.stats()
        self.result.stop_reason = reason.value


@dataclass
class CallResult:
    """One demo call, end to end."""

    number: str
    sample: str
    call_uuid: str = ""
    status: str = ""
    hangup: str = ""
    duration_s: int = 0
    stream_id: str = ""
    stream_ok: bool = False
    stream_errors: list[str] = field(default_factory=list)
    frames_sent: int = 0
    audio_s: float = 0.0
    stream_duration_s: float = 0.0
    server_frames: int = 0
    gaps: int = 0
    handler_drops: int = 0
    recordings: list[str] = field(default_factory=list)
    recorded_s: float = 0.0
    heard_path: str = ""
    heard_s: float = 0.0
    heard_rms_dbfs: float | None = None
    echo_frames: int = 0
    echo_rtt_p50_ms: float | None = None
    echo_rtt_max_ms: float | None = None
    transcripts: list[str] = field(default_factory=list)
    #: What the sample says, and the transcript's word errors against it (None: no transcript).
    script: str = ""
    word_errors: int | None = None
    script_words: int = 0
    word_error_rate: float | None = None
    callbacks: list[str] = field(default_factory=list)
    callbacks_live: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Streamed, recorded and echoed."""
        return (
            self.stream_ok
            and self.frames_sent > 0
            and self.server_frames > 0
            and bool(self.recordings)
            and self.echo_frames > 0
        )


@dataclass
class DemoResult:
    """Everything the summary shows."""

    out: str
    calls: list[CallResult]
    elapsed_s: float
    transcriber: str
    signatures_ok: int = 0
    signatures_rejected: int = 0
    callbacks: dict[str, int] = field(default_factory=dict)
    #: Longest the server's event loop was late (a blocked loop delays every stream).
    loop_lag_max_ms: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.calls) and all(c.ok for c in self.calls)
