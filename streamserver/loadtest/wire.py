"""What the load generator puts on the wire, prepared once so sending a frame is cheap.

Every simulated call replays the same audio, so every frame body is shared by all streams
except for the 36-character ``streamId``. :class:`MediaTemplates` holds, per frame index,
the JSON before and after the stream id (built with the Plivo-side encoders of
:mod:`streamserver.protocol.plivo`, so the bytes are exactly what the emulator's stream client
and Plivo send) and the WebSocket header for that length. Sending frame ``k`` of a stream
is then two concatenations, one C masking call and one ``transport.write``.

Echo tagging: with ``tag=True`` the first three bytes of frame ``k``'s audio carry ``k``
(three base-127 digits stored as ``0xFE - digit``: quiet in both μ-law and L16, and stable
through a μ-law decode/encode round trip). An echoing server sends the bytes back, and
:func:`tag_of` reads ``k`` from the first four base64 characters of the returned payload
without decoding the rest.

Dialects: ``dialect`` picks the provider whose messages the templates hold (Plivo by
default; Twilio, Telnyx, Exotel from their :class:`~streamserver.protocol.dialect.ProviderSide`
encoders with the same placeholder trick; Vonage's media frames are binary, the audio itself,
with no stream id in them). :func:`start_frames` and :func:`stop_frame` follow the dialect.

The upgrade is a hand-written HTTP/1.1 request (RFC 6455 §4.1) and response check: it runs
once per connection, and owning it keeps the frame parser free of any handshake state.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import soundfile as sf

from .. import __version__
from ..audio import PCM, AudioFormat, resample, to_int16
from ..protocol import Start, plivo
from ..protocol.detect import get_provider
from ..protocol.neutral import PLIVO
from ..signature import sign_headers

__all__ = [
    "SAMPLES_DIR",
    "HandshakeError",
    "MediaTemplates",
    "Target",
    "client_frame",
    "load_audio",
    "parse_response",
    "start_frame",
    "start_frames",
    "stop_frame",
    "tag_of",
    "tag_of_raw",
    "tagged_frames",
    "upgrade_request",
]

#: Audio bundled with the emulator; the default caller for a load test.
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "emulator" / "samples"
_USER_AGENT = f"streamserver-loadtest/{__version__}"
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_ID_LEN = 36  # str(uuid4())
_PLACEHOLDER = "S" * _ID_LEN

_TAG_BASE = 127
_TAG_MAX = _TAG_BASE**3


class HandshakeError(Exception):
    """The server did not accept the WebSocket upgrade."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Target:
    """Where the streams go: ``ws://host:port/path?query``."""

    url: str
    host: str
    port: int
    resource: str  # path + query, as in the request line

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ValueError(f"the load tester speaks plain ws:// to a host, got {url!r}")
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(url, parts.hostname, parts.port or 80, resource)

    @property
    def http_base(self) -> str:
        """``http://host:port`` of the same listener (for ``/metrics``)."""
        return f"http://{self.host}:{self.port}"


def upgrade_request(target: Target, key: bytes, auth_token: str | None = None) -> bytes:
    """The HTTP upgrade request; signed like Plivo (V3) when ``auth_token`` is given."""
    lines = [
        f"GET {target.resource} HTTP/1.1",
        f"Host: {target.host}:{target.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        f"User-Agent: {_USER_AGENT}",
    ]
    if auth_token:
        parts = urlsplit(target.url)
        http_url = urlunsplit(("http", parts.netloc, parts.path or "/", parts.query, ""))
        for name, value in sign_headers(http_url, auth_token, method="GET").items():
            lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def new_key() -> bytes:
    """A random ``Sec-WebSocket-Key``."""
    return base64.b64encode(os.urandom(16))


def parse_response(head: bytes, key: bytes) -> None:
    """Check an upgrade response head (up to the blank line); raise HandshakeError."""
    import hashlib

    text = head.decode("latin-1")
    status_line, _, rest = text.partition("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HandshakeError(f"not an HTTP response: {status_line[:80]!r}")
    status = int(parts[1])
    if status != 101:
        reason = parts[2] if len(parts) > 2 else ""
        raise HandshakeError(f"HTTP {status} {reason}".strip(), status)
    headers: dict[str, str] = {}
    for line in rest.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    expected = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != expected:
        raise HandshakeError("bad Sec-WebSocket-Accept in the upgrade response", status)
    if "sec-websocket-extensions" in headers:
        raise HandshakeError("the server negotiated an extension that was not offered", status)


def client_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """One final client frame (masked, RFC 6455 §5.3) for control and one-off messages."""
    from websockets.speedups import apply_mask

    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    return head + mask + apply_mask(payload, mask)


def _text_header(n: int, first: int = 0x81) -> bytes:
    """Header of a final masked text (``first=0x82``: binary) frame of ``n`` bytes, without
    the mask key."""
    if n < 126:
        return struct.pack("!BB", first, 0x80 | n)
    if n < 65536:
        return struct.pack("!BBH", first, 0xFE, n)
    return struct.pack("!BBQ", first, 0xFF, n)


def start_frame(
    call_id: str,
    stream_id: str,
    account_id: str,
    tracks: tuple[str, ...],
    fmt: AudioFormat,
    extra_headers: str,
) -> bytes:
    """The ``start`` message (sequenceNumber 1), as the emulator's client sends it."""
    return plivo.encode_start(
        1, call_id, stream_id, account_id, tracks, fmt.encoding, fmt.sample_rate, extra_headers
    )


def start_frames(
    dialect: str,
    call_id: str,
    stream_id: str,
    account_id: str,
    tracks: tuple[str, ...],
    fmt: AudioFormat,
    extra_headers: str,
) -> list[bytes]:
    """The provider's first text messages: ``connected`` where it sends one, then ``start``
    (sequenceNumber 1); Plivo's as :func:`start_frame` writes it."""
    if dialect == PLIVO:
        return [start_frame(call_id, stream_id, account_id, tracks, fmt, extra_headers)]
    side = get_provider(dialect)
    start = Start(stream_id, call_id, account_id, tracks, fmt.encoding, fmt.sample_rate, {}, 1)
    connected = side.encode_connected()
    return ([] if connected is None else [connected]) + [side.encode_start(start)]


def stop_frame(
    seq: int, call_id: str, stream_id: str, tracks: tuple[str, ...], dialect: str = PLIVO
) -> bytes | None:
    """The ``stop`` message the provider sends when the call ends (None: Vonage, which just
    closes)."""
    if dialect == PLIVO:
        return plivo.encode_stop(seq, call_id, stream_id, tracks)
    return get_provider(dialect).encode_stop(stream_id, call_id, "", seq, None)


def load_audio(path: Path, fmt: AudioFormat) -> bytes:
    """Read any audio file, mix to mono, resample to the stream's rate, encode to wire bytes
    in whole 20 ms frames (the last one padded with silence)."""
    data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    pcm: PCM = to_int16(data)
    pcm = np.ascontiguousarray(resample(pcm, int(rate), fmt.sample_rate))
    fs = fmt.frame_samples
    if pcm.shape[0] == 0:
        raise ValueError(f"{path}: no audio")
    pad = -pcm.shape[0] % fs
    if pad:
        pcm = np.concatenate([pcm, np.zeros(pad, dtype=np.int16)])
    return fmt.encode(pcm)


def _tag_bytes(k: int) -> bytes:
    k %= _TAG_MAX
    d0 = k % _TAG_BASE
    d1 = (k // _TAG_BASE) % _TAG_BASE
    d2 = k // (_TAG_BASE * _TAG_BASE)
    return bytes((0xFE - d2, 0xFE - d1, 0xFE - d0))


def tag_of(b64: bytes) -> int:
    """The frame index tagged into a payload, from its first four base64 characters;
    -1 when the payload carries no tag."""
    try:
        raw = binascii.a2b_base64(b64)
    except (binascii.Error, ValueError):
        return -1
    if len(raw) < 3:
        return -1
    d2, d1, d0 = 0xFE - raw[0], 0xFE - raw[1], 0xFE - raw[2]
    if not (0 <= d0 < _TAG_BASE and 0 <= d1 < _TAG_BASE and 0 <= d2 < _TAG_BASE):
        return -1
    return (d2 * _TAG_BASE + d1) * _TAG_BASE + d0


def tag_of_raw(raw: bytes) -> int:
    """The frame index tagged into raw (binary-frame) audio; -1 when it carries none."""
    if len(raw) < 3:
        return -1
    d2, d1, d0 = 0xFE - raw[0], 0xFE - raw[1], 0xFE - raw[2]
    if not (0 <= d0 < _TAG_BASE and 0 <= d1 < _TAG_BASE and 0 <= d2 < _TAG_BASE):
        return -1
    return (d2 * _TAG_BASE + d1) * _TAG_BASE + d0


def tagged_frames(audio: bytes, frame_bytes: int, n: int, *, tag: bool) -> list[bytes]:
    """Frame payloads 0..n-1: the audio looped, each optionally tagged with its index."""
    per_loop = len(audio) // frame_bytes
    if per_loop == 0:
        raise ValueError("the audio is shorter than one frame")
    out = []
    for k in range(n):
        i = (k % per_loop) * frame_bytes
        payload = audio[i : i + frame_bytes]
        if tag:
            payload = _tag_bytes(k) + payload[3:]
        out.append(payload)
    return out


class MediaTemplates:
    """Pre-serialised ``media`` messages for frame indexes 0..n-1 on each track.

    ``pre[t][k] + stream_id + post[t][k]`` is the JSON text of track ``t``'s frame ``k``;
    ``head[t][k]`` is its WebSocket frame header up to (not including) the mask key.
    sequenceNumber counts every message of the stream: ``start`` is 1, then the media
    messages one per track per tick. On a binary dialect (Vonage) ``pre`` is the audio,
    ``post`` is empty and the stream id is not in the frame (:meth:`frame_id` is ``b""``).
    """

    def __init__(
        self,
        payloads: list[bytes],
        tracks: tuple[str, ...],
        extra_headers: str,
        frame_ms: int = 20,
        dialect: str = PLIVO,
    ) -> None:
        placeholder = _PLACEHOLDER.encode()
        n_tracks = len(tracks)
        self.tracks = tracks
        self.dialect = dialect
        self.n = len(payloads)
        self.pre: list[list[bytes]] = []
        self.post: list[list[bytes]] = []
        self.head: list[list[bytes]] = []
        side = get_provider(dialect)
        self.binary = side.binary_media
        first = 0x82 if self.binary else 0x81
        for t, track in enumerate(tracks):
            pre, post, head = [], [], []
            for k, payload in enumerate(payloads):
                seq = 2 + k * n_tracks + t
                if dialect == PLIVO:
                    text = plivo.encode_media(
                        seq, _PLACEHOLDER, track, k * frame_ms, k + 1, payload, extra_headers
                    )
                else:
                    text = side.encode_media(payload, _PLACEHOLDER, seq, k + 1, k * frame_ms, track)
                if self.binary:
                    a, b = text, b""
                    n = len(text)
                else:
                    a, sep, b = text.partition(placeholder)
                    assert sep, "stream id placeholder not found"
                    n = len(text)
                pre.append(a)
                post.append(b)
                head.append(_text_header(n, first))
            self.pre.append(pre)
            self.post.append(post)
            self.head.append(head)

    @staticmethod
    def check_id(stream_id: str) -> bytes:
        """Stream ids must have the placeholder's length for the shared headers to hold."""
        if len(stream_id) != _ID_LEN:
            raise ValueError(f"stream ids must be {_ID_LEN} characters, got {stream_id!r}")
        return stream_id.encode()

    def frame_id(self, stream_id: str) -> bytes:
        """What goes between ``pre`` and ``post`` for this stream (nothing on Vonage)."""
        return b"" if self.binary else self.check_id(stream_id)

    def stop_seq(self) -> int:
        """sequenceNumber of ``stop`` after all ``n`` ticks."""
        return 2 + self.n * len(self.tracks)
