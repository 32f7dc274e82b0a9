"""What a Plivo-side stream sends and how: :class:`StreamClientOptions`, checked by
:func:`prepare`."""

from __future__ import annotations

import math
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from websockets.asyncio.client import ClientConnection

from ...audio import PCM, AudioFormat, resample, to_int16
from ...protocol import DTMF_DIGITS, plivo
from ...protocol.detect import PROVIDER_FORMATS, provider_format
from ...protocol.neutral import EXOTEL, PLIVO, VONAGE

__all__ = ["STREAMED_TRACKS", "Prepared", "StreamClientOptions", "limit_send_buffer", "prepare"]

#: Plivo's ``audioTrack`` values and the tracks each one streams.
STREAMED_TRACKS = {
    "inbound": ("inbound",),
    "outbound": ("outbound",),
    "both": ("inbound", "outbound"),
}


def _uuid() -> str:
    return str(uuid.uuid4())


@dataclass
class StreamClientOptions:
    """What to stream and how. Only ``url`` and ``inbound`` are required.

    ``inbound`` is the caller's audio (mono; int16, or float -1..1, or 2-D frames x channels
    which is mixed down) at ``source_rate``; it is resampled to the stream's rate when they
    differ. ``tracks`` is Plivo's ``audioTrack``; ``outbound`` feeds the outbound track when
    it is streamed (silence otherwise). ``dtmf`` holds ``(seconds from start, digit)`` pairs.
    ``speed`` is 1.0 for real time, 2.0 for twice as fast, None for as fast as possible.
    ``dialect`` is the provider to play (``plivo``, ``twilio``, ``telnyx``, ``exotel``,
    ``vonage``); ``content_type`` must be one of its formats (None: its first).
    """

    url: str
    inbound: Any
    source_rate: int = 8000
    content_type: str | None = None
    dialect: str = PLIVO
    tracks: str = "inbound"
    outbound: Any | None = None
    bidirectional: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)
    dtmf: list[tuple[float, str]] = field(default_factory=list)
    speed: float | None = 1.0
    send_stop: bool = True
    call_id: str = field(default_factory=_uuid)
    stream_id: str = field(default_factory=_uuid)
    account_id: str = field(default_factory=plivo.random_account_id)
    # Signing: X-Plivo-Signature-V3 (+ nonce, + Ma-V3 with main_account_token, or auth_token
    # itself for a main account) over the URL with an http(s) scheme, as Plivo's Node SDK.
    auth_token: str | None = None
    main_account_token: str | None = None
    frame_ms: int = 20
    #: Frames of this stream sent before this socket: a reconnect under the same
    #: ``stream_id`` goes on counting ``chunk`` and ``timestamp`` from there.
    first_frame: int = 0
    #: The socket's kernel send buffer (SO_SNDBUF); None leaves it to the kernel, whose
    #: autotuning may hold megabytes for a server that stops reading. The emulator sets it
    #: so that what a slow server leaves unread piles up where it is measured (the
    #: sender's backlog) rather than in the kernel.
    send_buffer_bytes: int | None = None
    #: Keep the played audio in ``StreamReport.heard``; a load tester may turn it off.
    record_heard: bool = True
    on_progress: Callable[[int, int], None] | None = None
    # Timeouts (seconds)
    connect_timeout_s: float = 10.0
    tail_s: float = 0.5
    drain_timeout_s: float = 30.0
    close_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Prepared:
    """Checked options: the dialect, the stream's wire format and tracks, the audio at the
    stream's rate and the ``extra_headers`` text (Plivo)."""

    dialect: str
    fmt: AudioFormat
    tracks: tuple[str, ...]
    inbound: PCM
    outbound: PCM | None
    extra_headers: str


def prepare(o: StreamClientOptions) -> Prepared:
    """Check the options (``ValueError`` names the bad one); return what the client sends."""
    parts = urlsplit(o.url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"url must be ws:// or wss:// with a host, got {o.url!r}")
    dialect = o.dialect.strip().lower()
    if dialect not in PROVIDER_FORMATS:
        known = ", ".join(PROVIDER_FORMATS)
        raise ValueError(f"unknown dialect {o.dialect!r}; expected one of {known}")
    if o.content_type is None:
        fmt = AudioFormat(*PROVIDER_FORMATS[dialect][0])
    else:
        asked = AudioFormat.from_content_type(o.content_type)
        fmt = AudioFormat(*provider_format(dialect, asked.encoding, asked.sample_rate))
    if o.tracks not in STREAMED_TRACKS:
        raise ValueError(f"tracks must be inbound, outbound or both, got {o.tracks!r}")
    if dialect in (EXOTEL, VONAGE) and o.tracks != "inbound":
        raise ValueError(f"{dialect} streams carry the caller only: use tracks='inbound'")
    if o.bidirectional and o.tracks != "inbound":
        raise ValueError("a bidirectional stream must use tracks='inbound' (a Plivo rule)")
    if o.speed is not None and not (math.isfinite(o.speed) and o.speed > 0):
        raise ValueError(f"speed must be a positive number or None, got {o.speed!r}")
    if o.source_rate <= 0:
        raise ValueError(f"source_rate must be positive, got {o.source_rate}")
    if o.send_buffer_bytes is not None and o.send_buffer_bytes <= 0:
        raise ValueError(f"send_buffer_bytes must be > 0 or None, got {o.send_buffer_bytes}")
    if o.first_frame < 0:
        raise ValueError(f"first_frame must be >= 0, got {o.first_frame}")
    if o.frame_ms <= 0 or (fmt.sample_rate * o.frame_ms) % 1000:
        raise ValueError(f"frame_ms={o.frame_ms} is not a whole number of samples")
    for name in ("connect_timeout_s", "tail_s", "drain_timeout_s", "close_timeout_s"):
        value = getattr(o, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    extra_headers = plivo.format_extra_headers(o.extra_headers) if dialect == PLIVO else ""
    for at, digit in o.dtmf:
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise ValueError(f"DTMF digit must be one of 0-9 * # A-D, got {digit!r}")
        if not (math.isfinite(at) and at >= 0):
            raise ValueError(f"DTMF time must be >= 0 seconds, got {at!r}")

    def prepare(samples: Any, what: str) -> PCM:
        try:
            pcm = to_int16(samples)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what} audio: {exc}") from exc
        pcm = resample(pcm, o.source_rate, fmt.sample_rate)
        return np.ascontiguousarray(pcm)

    inbound = prepare(o.inbound, "inbound")
    outbound = None if o.outbound is None else prepare(o.outbound, "outbound")
    return Prepared(dialect, fmt, STREAMED_TRACKS[o.tracks], inbound, outbound, extra_headers)


def limit_send_buffer(ws: ClientConnection, nbytes: int | None) -> ClientConnection:
    """Cap the connection's kernel send buffer at ``nbytes`` (None: leave it); returns ``ws``."""
    sock = ws.transport.get_extra_info("socket")
    if nbytes is not None and sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, nbytes)
    return ws
