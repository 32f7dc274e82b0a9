"""Exotel Voicebot/Stream applet (AgentStream) dialect, both sides (sans-I/O).

References: https://developer.exotel.com/docs/agentstream/websocket-protocol,
https://developer.exotel.com/docs/agentstream/stream-voicebot-applet and
https://support.exotel.com/support/solutions/articles/3000108630-working-with-the-stream-and-voicebot-applet

Exotel → server: ``connected``, ``start`` (snake_case: top-level ``stream_sid``;
``start.stream_sid``, ``call_sid``, ``account_sid``, ``from``, ``to``,
``custom_parameters``, ``media_format``), ``media`` (``chunk``, ``timestamp``, base64 audio;
no track: the caller), ``dtmf`` (``digit``, ``duration``), ``mark``, ``stop`` (``reason``).
Numbers come as strings (``"sequence_number": "3"``); lax decoding converts them.

``media_format`` has been documented in two shapes, both accepted:
``{"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"}`` (AgentStream) and
``{"encoding": "base64", "sample_rate": "8000", "bit_rate": "128kbps"}`` (the older
applet guide). Either way the audio is 16-bit little-endian PCM ("raw/slin") at 8000, 16000
or 24000 Hz (``?sample-rate=`` on the applet URL); ``audio/x-mulaw`` (8000 Hz) is accepted
for streams started with that content type.

Server → Exotel (Voicebot applet only): ``media``, ``mark``, ``clear``, each with
``stream_sid``. Outbound chunks must be a multiple of 320 bytes, at least 3.2 kB and at most
100 kB, or the caller hears gaps. (The guide calls 3.2 kB "100 ms of data"; at 8 kHz 16-bit
that is 200 ms, 100 ms being 1.6 kB.) The dialect asks for 200 ms play frames
(``play_frame_ms=200``: 3.2 kB at 8 kHz, 6.4 kB at 16 kHz, 9.6 kB at 24 kHz) and
:func:`encode_play` pads a short last chunk with silence up to the next multiple of 320.
No DTMF out (:class:`~.neutral.NotSupported`). Exotel does not answer a clear; marks after
a clear are treated as on Twilio (see :mod:`.dialect`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from .dialect import ProviderDialect, ServerDialect, text_only, text_only_commands
from .events import ENCODING_L16, ENCODING_MULAW, Dtmf, Media, PlayedStream, Start, Stop
from .neutral import (
    EXOTEL,
    AnyEvent,
    Checkpoint,
    Clear,
    Command,
    Connected,
    NotSupported,
    Play,
    ProtocolError,
    decode_failure,
    unreadable,
)

__all__ = [
    "CHUNK_MULTIPLE",
    "DIALECT",
    "MAX_CHUNK_BYTES",
    "MIN_CHUNK_BYTES",
    "PROVIDER",
    "decode",
    "encode_checkpoint",
    "encode_clear",
    "encode_play",
    "encode_send_dtmf",
    "provider_cleared",
    "provider_connected",
    "provider_decode",
    "provider_dtmf",
    "provider_media",
    "provider_played",
    "provider_start",
    "provider_stop",
]

#: Outbound audio chunks must be a multiple of this many bytes.
CHUNK_MULTIPLE = 320
#: Smallest outbound chunk Exotel plays without jitter trouble (200 ms at 8 kHz 16-bit).
MIN_CHUNK_BYTES = 3200
#: Largest outbound chunk before Exotel times out.
MAX_CHUNK_BYTES = 100_000

_PCM_ENCODINGS = frozenset({"audio/x-raw", "base64", "raw", "slin", "audio/x-l16", "pcm"})
_PCM_RATES = (8000, 16000, 24000)


# --- Exotel -> server --------------------------------------------------------------------


class _MediaFormat(msgspec.Struct):
    encoding: str = "audio/x-raw"
    sample_rate: int = 8000
    bit_rate: str | int | None = None


class _StartBody(msgspec.Struct, rename={"from_": "from"}):
    call_sid: str
    stream_sid: str | None = None
    account_sid: str = ""
    from_: str | None = None
    to: str | None = None
    custom_parameters: dict[str, Any] | None = None
    media_format: _MediaFormat | None = None


class _MediaBody(msgspec.Struct, gc=False):
    payload: bytes  # base64 on the wire; msgspec decodes and validates it
    chunk: int | None = None
    timestamp: int | None = None
    track: str = "inbound"


class _DtmfBody(msgspec.Struct):
    digit: str
    duration: int | None = None


class _MarkBody(msgspec.Struct):
    name: str


class _StopBody(msgspec.Struct):
    reason: str | None = None


class _Base(msgspec.Struct, tag_field="event"):
    sequence_number: int | None = None
    stream_sid: str | None = None


class _WConnected(_Base, tag="connected"):
    pass


class _WStart(_Base, tag="start"):
    start: _StartBody | None = None


class _WMedia(_Base, tag="media", gc=False):
    media: _MediaBody | None = None


class _WDtmf(_Base, tag="dtmf"):
    dtmf: _DtmfBody | None = None


class _WMark(_Base, tag="mark"):
    mark: _MarkBody | None = None


class _WStop(_Base, tag="stop"):
    stop: _StopBody | None = None


_Wire = _WConnected | _WStart | _WMedia | _WDtmf | _WMark | _WStop
_decoder = msgspec.json.Decoder(_Wire, strict=False)
_KNOWN = frozenset({"connected", "start", "media", "dtmf", "mark", "stop"})


def decode(data: bytes | str) -> AnyEvent:
    """Decode one Exotel text frame into a neutral event.

    Raises :class:`ProtocolError` for malformed frames; unknown events are returned as
    :class:`~.events.Unknown`.
    """
    try:
        wire = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        return decode_failure(data, str(exc), _KNOWN, "sequence_number", "stream_sid")
    except msgspec.DecodeError as exc:
        raise ProtocolError("json", f"not valid JSON: {exc}") from None
    except (UnicodeError, RecursionError) as exc:
        raise unreadable(exc) from None

    if type(wire) is _WMedia:
        body = wire.media
        if body is None:
            raise ProtocolError("schema", "media event without a media object")
        return Media(
            body.track,
            body.chunk,
            body.timestamp,
            body.payload,
            wire.sequence_number,
            wire.stream_sid,
        )
    seq = wire.sequence_number
    match wire:
        case _WStart():
            return _start(wire, seq)
        case _WDtmf(dtmf=d):
            if d is None:
                raise ProtocolError("schema", "dtmf event without a dtmf object")
            return Dtmf(d.digit, "inbound", None, seq, wire.stream_sid)
        case _WMark(mark=m):
            if m is None:
                raise ProtocolError("schema", "mark event without a mark object")
            return PlayedStream(m.name, seq, wire.stream_sid)
        case _WStop(stop=s):
            return Stop(s.reason if s is not None else None, seq, wire.stream_sid)
        case _WConnected():
            return Connected()
    raise AssertionError(f"unhandled wire type {type(wire).__name__}")  # pragma: no cover


def _bits(bit_rate: str | int | None, rate: int) -> bool:
    """True if ``bit_rate`` says 16-bit samples: ``"16"``, or ``"<n>kbps"`` (the older
    guide's ``"128kbps"`` for 8 kHz, sent as a constant whatever the rate)."""
    if bit_rate is None:
        return True
    text = str(bit_rate).strip().lower()
    if text in ("16", "16bit"):
        return True
    number = text.removesuffix("kbps")
    return number != text and number.isdigit()


def _start(wire: _WStart, seq: int | None) -> Start:
    body = wire.start
    if body is None:
        raise ProtocolError("schema", "start event without a start object")
    stream_id = body.stream_sid or wire.stream_sid
    if not stream_id:
        raise ProtocolError("schema", "start event without a stream_sid")
    fmt = body.media_format or _MediaFormat()
    name = fmt.encoding.split(";", 1)[0].strip().lower()
    rate = fmt.sample_rate
    if name == ENCODING_MULAW:
        encoding = ENCODING_MULAW
        if rate != 8000:
            raise ProtocolError("value", f"media_format.sample_rate {rate}: μ-law is 8000 Hz")
    elif name in _PCM_ENCODINGS:
        encoding = ENCODING_L16
        if rate not in _PCM_RATES:
            raise ProtocolError(
                "value", f"unsupported media_format.sample_rate {rate}: expected {_PCM_RATES}"
            )
        if not _bits(fmt.bit_rate, rate):
            raise ProtocolError(
                "value", f"unsupported media_format.bit_rate {fmt.bit_rate!r}: expected 16-bit"
            )
    else:
        raise ProtocolError("value", f"unsupported media_format.encoding {fmt.encoding!r}")
    meta = {"from": body.from_, "to": body.to}
    return Start(
        stream_id=stream_id,
        call_id=body.call_sid,
        account_id=body.account_sid,
        tracks=("inbound",),
        encoding=encoding,
        sample_rate=rate,
        extra_headers={k: v for k, v in meta.items() if v is not None},
        sequence_number=seq,
        custom_parameters=body.custom_parameters or {},
    )


# --- server -> Exotel --------------------------------------------------------------------


class _PlayBody(msgspec.Struct, gc=False):
    payload: bytes


class _Play(msgspec.Struct, tag_field="event", tag="media", gc=False):
    stream_sid: str
    media: _PlayBody


class _Mark(msgspec.Struct, tag_field="event", tag="mark"):
    stream_sid: str
    mark: _MarkBody


class _Clear(msgspec.Struct, tag_field="event", tag="clear"):
    stream_sid: str


_encode = msgspec.json.encode


def _sid(stream_id: str | None) -> str:
    if not stream_id:
        raise ValueError("Exotel commands need the stream_sid")
    return stream_id


def encode_play(
    payload: bytes,
    encoding: str = ENCODING_L16,
    sample_rate: int = 8000,
    stream_id: str | None = None,
) -> bytes:
    """``media`` with base64 audio, padded with silence to a multiple of 320 bytes.

    Exotel wants chunks of 3.2 kB to 100 kB: send 200 ms or more per call.
    """
    rest = len(payload) % CHUNK_MULTIPLE
    if rest:
        pad = b"\xff" if encoding == ENCODING_MULAW else b"\x00"  # silence either way
        payload += pad * (CHUNK_MULTIPLE - rest)
    return _encode(_Play(_sid(stream_id), _PlayBody(payload)))


def encode_checkpoint(stream_id: str, name: str) -> bytes:
    """``mark``: Exotel sends it back once the audio before it has played."""
    return _encode(_Mark(_sid(stream_id), _MarkBody(name)))


def encode_clear(stream_id: str) -> bytes:
    """``clear``: drop the queued audio (unanswered)."""
    return _encode(_Clear(_sid(stream_id)))


def encode_send_dtmf(stream_id: str, digits: str) -> bytes:
    """Exotel streams cannot play DTMF: always raises NotSupported."""
    raise NotSupported(EXOTEL, "send_dtmf")


#: The server side of Exotel's Voicebot/Stream applets.
DIALECT = ServerDialect(
    name=EXOTEL,
    decode=decode,
    decode_binary=text_only(EXOTEL),
    encode_play=encode_play,
    encode_checkpoint=encode_checkpoint,
    encode_clear=encode_clear,
    encode_dtmf=encode_send_dtmf,
    acks_clear=False,
    echoes_marks_after_clear=True,
    play_frame_ms=200,
)


# --- Exotel side: what Exotel sends --------------------------------------------------------


class _PMediaFormat(msgspec.Struct):
    encoding: str
    sample_rate: str
    bit_rate: str


class _PStartBody(msgspec.Struct, omit_defaults=True, rename={"from_": "from"}):
    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: dict[str, Any]
    media_format: _PMediaFormat
    from_: str | None = None
    to: str | None = None


class _PStart(msgspec.Struct, tag_field="event", tag="start"):
    sequence_number: str
    stream_sid: str
    start: _PStartBody


class _PMediaBody(msgspec.Struct, gc=False):
    chunk: str
    timestamp: str
    payload: bytes


class _PMedia(msgspec.Struct, tag_field="event", tag="media", gc=False):
    sequence_number: str
    stream_sid: str
    media: _PMediaBody


class _PDtmfBody(msgspec.Struct):
    digit: str
    duration: str


class _PDtmf(msgspec.Struct, tag_field="event", tag="dtmf"):
    sequence_number: str
    stream_sid: str
    dtmf: _PDtmfBody


class _PMark(msgspec.Struct, tag_field="event", tag="mark"):
    sequence_number: str
    stream_sid: str
    mark: _MarkBody


class _PStopBody(msgspec.Struct):
    call_sid: str
    account_sid: str
    reason: str


class _PStop(msgspec.Struct, tag_field="event", tag="stop"):
    sequence_number: str
    stream_sid: str
    stop: _PStopBody


_CONNECTED = b'{"event":"connected"}'


def provider_connected() -> bytes:
    """Exotel's first message: ``{"event":"connected"}``."""
    return _CONNECTED


def provider_start(start: Start) -> bytes:
    """Exotel's ``start`` (AgentStream shape: ``audio/x-raw``, numbers as strings)."""
    if start.encoding == ENCODING_MULAW:
        fmt = _PMediaFormat(ENCODING_MULAW, "8000", "8")
    elif start.encoding == ENCODING_L16:
        fmt = _PMediaFormat("audio/x-raw", str(start.sample_rate), "16")
    else:
        raise ValueError(f"Exotel streams carry 16-bit PCM (or μ-law), not {start.encoding!r}")
    body = _PStartBody(
        start.stream_id,
        start.call_id,
        start.account_id,
        dict(start.custom_parameters),
        fmt,
        start.extra_headers.get("from"),
        start.extra_headers.get("to"),
    )
    return _encode(_PStart(str(start.sequence_number or 1), start.stream_id, body))


def provider_media(
    payload: bytes,
    stream_id: str,
    sequence_number: int,
    chunk: int,
    timestamp_ms: int,
    track: str = "inbound",
) -> bytes:
    """Exotel's ``media`` (no track: Exotel streams the caller only)."""
    body = _PMediaBody(str(chunk), str(timestamp_ms), payload)
    return _encode(_PMedia(str(sequence_number), stream_id, body))


def provider_dtmf(digit: str, stream_id: str, sequence_number: int) -> bytes:
    """Exotel's ``dtmf``."""
    return _encode(_PDtmf(str(sequence_number), stream_id, _PDtmfBody(digit, "100")))


def provider_played(name: str, stream_id: str, sequence_number: int) -> bytes:
    """Exotel's ``mark`` echo."""
    return _encode(_PMark(str(sequence_number), stream_id, _MarkBody(name)))


def provider_cleared(stream_id: str, sequence_number: int) -> None:
    """Nothing: Exotel does not answer a clear."""
    return None


def provider_stop(
    stream_id: str,
    call_id: str,
    account_id: str,
    sequence_number: int,
    reason: str | None = None,
) -> bytes:
    """Exotel's ``stop`` (reason ``callended`` unless told otherwise)."""
    body = _PStopBody(call_id, account_id, reason or "callended")
    return _encode(_PStop(str(sequence_number), stream_id, body))


class _CBase(msgspec.Struct, tag_field="event"):
    stream_sid: str | None = None


class _CMedia(_CBase, tag="media", gc=False):
    media: _PlayBody | None = None


class _CMark(_CBase, tag="mark"):
    mark: _MarkBody | None = None


class _CClear(_CBase, tag="clear"):
    pass


_command_decoder = msgspec.json.Decoder(_CMedia | _CMark | _CClear)


def provider_decode(data: bytes | str) -> Command:
    """What the server sent (``media``/``mark``/``clear``) as a neutral command."""
    try:
        wire = _command_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
        raise ProtocolError("schema", f"not an Exotel command: {exc}") from None
    if type(wire) is _CMedia:
        if wire.media is None:
            raise ProtocolError("schema", "media command without a media object")
        return Play(wire.media.payload, wire.stream_sid)
    if type(wire) is _CMark:
        if wire.mark is None:
            raise ProtocolError("schema", "mark command without a mark object")
        return Checkpoint(wire.mark.name, wire.stream_sid)
    return Clear(wire.stream_sid)


#: Exotel's side, for the replay client and the load tester.
PROVIDER = ProviderDialect(
    name=EXOTEL,
    encode_connected=provider_connected,
    encode_start=provider_start,
    encode_media=provider_media,
    encode_dtmf=provider_dtmf,
    encode_played=provider_played,
    encode_cleared=provider_cleared,
    encode_stop=provider_stop,
    decode_command=provider_decode,
    decode_command_binary=text_only_commands(EXOTEL),
)
