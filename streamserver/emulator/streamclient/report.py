"""What one Plivo-side stream observed: :class:`StreamReport`, its :class:`Percentiles` and
the server's messages in their wire shape (:func:`wire_record`)."""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...audio import PCM
from ...protocol import Checkpoint, ClearAudio, Command, PlayAudio, SendDtmf, Unknown
from ...protocol.websocket import OK_CLOSE_CODES

__all__ = ["LinkReport", "Percentiles", "StreamReport", "wire_record"]

_MAX_ERRORS = 100  # a server spamming bad frames must not grow the report without bound


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Exact distribution of a list of milliseconds: count, mean, p50/p90/p99, max.

    Computed from every value (one stream has a few thousand); the load tester's
    histogram-based ``loadtest.stats.Summary`` is its many-stream counterpart.
    """

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Percentiles | None:
        """Summarise ``values``; None when there are none."""
        a = np.fromiter(values, dtype=np.float64)
        if a.size == 0:
            return None
        p50, p90, p99 = (float(v) for v in np.percentile(a, [50, 90, 99]))
        return cls(int(a.size), float(a.mean()), p50, p90, p99, float(np.max(a)))

    def __str__(self) -> str:
        return (
            f"p50 {self.p50:.1f} ms  p90 {self.p90:.1f} ms  "
            f"p99 {self.p99:.1f} ms  max {self.max:.1f} ms"
        )


@dataclass
class LinkReport:
    """What happened to one socket of the stream. Times are seconds since the stream's
    start (negative: before it, the first socket's upgrade)."""

    index: int
    opened_at: float = 0.0
    ended_at: float = 0.0
    #: "abort" or "silent" when the socket was made to vanish
    vanished: str = ""
    close_code: int | None = None
    close_reason: str = ""
    closed_by_server: bool = False
    messages_received: int = 0

    @property
    def ok(self) -> bool:
        """Closed with a normal code (a vanished socket never is)."""
        return not self.vanished and self.close_code in OK_CLOSE_CODES


@dataclass
class StreamReport:
    """Everything observed during one stream. Times are seconds since the stream start."""

    url: str
    stream_id: str
    call_id: str
    content_type: str
    sample_rate: int
    tracks: tuple[str, ...]
    bidirectional: bool
    #: The provider played (``plivo``, ``twilio``, ...).
    dialect: str = "plivo"
    #: The WebSocket upgrade succeeded.
    connected: bool = False
    #: HTTP status of a refused upgrade.
    http_status: int | None = None
    #: Media messages (one per track per frame).
    frames_sent: int = 0
    frames_total: int = 0
    #: Bytes of every text frame sent (JSON, base64 audio included).
    bytes_sent: int = 0
    messages_sent: int = 0
    dtmf_sent: int = 0
    stop_sent: bool = False
    #: Wall-clock time from ``start`` to the end of the close.
    duration_s: float = 0.0
    #: Length of the audio the stream carries (frames x frame_ms).
    audio_s: float = 0.0
    #: Per frame tick: how late it was sent against its absolute schedule (empty for max speed).
    lateness_ms: array[float] = field(default_factory=lambda: array("d"))
    #: What the caller heard, int16 at the stream's rate: played audio at its play time.
    heard: PCM = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    played_segments: list[tuple[float, float]] = field(default_factory=list)
    #: (name, time playedStream was sent)
    checkpoints: list[tuple[str, float]] = field(default_factory=list)
    #: Times a clearAudio was received.
    cleared: list[float] = field(default_factory=list)
    #: Checkpoints pending at a clear and echoed anyway (Twilio's marks), never played.
    marks_after_clear: list[str] = field(default_factory=list)
    #: Every well-formed (or unknown) server message, in its wire shape; ``playAudio`` carries
    #: ``payload_bytes`` instead of the audio.
    received_events: list[dict[str, Any]] = field(default_factory=list)
    #: Send-to-receive time of playAudio payloads identical to a sent inbound frame.
    echo_rtt_ms: list[float] = field(default_factory=list)
    closed_by_server: bool = False
    close_code: int | None = None
    close_reason: str = ""
    #: The faults applied (:meth:`~streamserver.netfaults.NetFaults.describe`, seed
    #: included: the same text gives the same run); "" on a perfect network.
    faults: str = ""
    #: What they did: dropped, duplicated, reordered, held (frames of the plan) and lost
    #: (sends no socket carried: a vanished stream not back yet)
    fault_counts: dict[str, int] = field(default_factory=dict)
    #: Every socket of the stream, in order (one unless connection faults opened more);
    #: ``close_code`` and friends above are the last one's.
    links: list[LinkReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _error_counts: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """The stream connected and ended with a normal close code."""
        return self.connected and self.close_code in OK_CLOSE_CODES

    @property
    def lateness(self) -> Percentiles | None:
        """Percentiles of ``lateness_ms``."""
        return Percentiles.of(self.lateness_ms)

    @property
    def echo_rtt(self) -> Percentiles | None:
        """Percentiles of ``echo_rtt_ms``."""
        return Percentiles.of(self.echo_rtt_ms)

    def add_error(self, message: str) -> None:
        """Record a problem. A repeated message is counted, not repeated, and the list is
        bounded, so a server sending the same bad frame 50 times a second stays readable.
        """
        seen = self._error_counts.get(message)
        if seen is not None:
            index, count = seen
            self._error_counts[message] = (index, count + 1)
            self.errors[index] = f"{message} (x{count + 1})"
        elif len(self.errors) < _MAX_ERRORS:
            self._error_counts[message] = (len(self.errors), 1)
            self.errors.append(message)
        elif len(self.errors) == _MAX_ERRORS:
            self.errors.append("... further errors not recorded")


def wire_record(cmd: Command) -> dict[str, Any]:
    """A received command in its wire shape, for the report (audio replaced by its size)."""
    match cmd:
        case PlayAudio():
            media = {
                "contentType": cmd.encoding,
                "sampleRate": cmd.sample_rate,
                "payload_bytes": len(cmd.payload),
            }
            out: dict[str, Any] = {"event": "playAudio", "media": media}
        case Checkpoint():
            out = {"event": "checkpoint", "name": cmd.name}
        case ClearAudio():
            out = {"event": "clearAudio"}
        case SendDtmf():
            return {"event": "sendDTMF", "dtmf": cmd.digits}
        case Unknown():
            return cmd.raw
    if cmd.stream_id is not None:
        out["streamId"] = cmd.stream_id
    return out
