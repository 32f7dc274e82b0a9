"""Telnyx media streaming dialect, both sides (sans-I/O).

References: https://developers.telnyx.com/docs/voice/programmable-voice/media-streaming and
the AsyncAPI page https://developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket

Telnyx → server: ``connected`` (``version``), ``start`` (top-level ``stream_id``;
``start.call_control_id``, ``user_id``, ``call_session_id``, ``from``, ``to``,
``client_state``, ``custom_parameters``, ``media_format`` {``encoding``, ``sample_rate``,
``channels``}), ``media`` (``track``, ``chunk``, ``timestamp``, base64 RTP payload without
headers), ``dtmf``, ``mark``, ``error`` and ``stop``; ``sequence_number``/``chunk``/
``timestamp`` are digit strings. "Media frame order is not guaranteed": the session orders by
``chunk`` as for Plivo. Server → Telnyx (``stream_bidirectional_mode=rtp``): ``media``,
``mark``, ``clear``; no DTMF out (:class:`~.neutral.NotSupported`).

Encodings (``stream_codec``): ``PCMU`` (μ-law), ``PCMA`` — **A-law**, decoded as A-law,
never as μ-law — and ``L16``. Telnyx carries RTP payloads, and RTP's L16 is in network byte
order (big-endian, RFC 3551 §4.5.11), so ``L16`` maps to :data:`~.neutral.ENCODING_L16_BE`;
:func:`dialect` builds a variant for little-endian L16 should a deployment show otherwise.
G722, OPUS and AMR-WB are refused (``value``): ask for PCMU, PCMA or L16.

``start`` lists no tracks: :class:`~.events.Start` says ``("inbound",)`` (Telnyx's default
``stream_track=inbound_track``); with ``both_tracks`` ``outbound`` media follows too.
Marks after a clear are treated as on Twilio (``echoes_marks_after_clear=True``; Telnyx does
not answer a clear), see :mod:`.dialect`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from .dialect import ProviderDialect, ServerDialect, text_only, text_only_commands
from .events import ENCODING_L16, ENCODING_MULAW, Dtmf, Media, PlayedStream, Start, Stop
from .neutral import (
    ENCODING_ALAW,
    ENCODING_L16_BE,
    TELNYX,
    AnyEvent,
    Checkpoint,
    Clear,
    Command,
    Connected,
    NotSupported,
    Play,
    ProtocolError,
    ProviderError,
    decode_failure,
    unreadable,
)

__all__ = [
    "CODECS",
    "DIALECT",
    "PROVIDER",
    "decode",
    "dialect",
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

#: Telnyx codec name -> neutral encoding.
CODECS = {"PCMU": ENCODING_MULAW, "PCMA": ENCODING_ALAW, "L16": ENCODING_L16_BE}
_CODEC_NAMES = {
    ENCODING_MULAW: "PCMU",
    ENCODING_ALAW: "PCMA",
    ENCODING_L16_BE: "L16",
    ENCODING_L16: "L16",
}
_RATES = {"PCMU": (8000,), "PCMA": (8000,), "L16": (8000, 16000)}


# --- Telnyx -> server --------------------------------------------------------------------


class _MediaFormat(msgspec.Struct):
    encoding: str
    sample_rate: int
    channels: int = 1


class _StartBody(msgspec.Struct, rename={"from_": "from"}):
    call_control_id: str
    media_format: _MediaFormat
    user_id: str = ""
    call_session_id: str | None = None
    from_: str | None = None
    to: str | None = None
    client_state: str | None = None
    custom_parameters: dict[str, Any] | None = None


class _MediaBody(msgspec.Struct, gc=False):
    payload: bytes  # base64 on the wire; msgspec decodes and validates it
    track: str = "inbound"
    chunk: int | None = None
    timestamp: int | None = None


class _DtmfBody(msgspec.Struct):
    digit: str


class _MarkBody(msgspec.Struct):
    name: str


class _ErrorBody(msgspec.Struct):
    code: int | str | None = None
    title: str | None = None
    detail: str | None = None


class _Base(msgspec.Struct, tag_field="event"):
    sequence_number: int | None = None
    stream_id: str | None = None


class _WConnected(_Base, tag="connected"):
    version: str | None = None


class _WStart(_Base, tag="start"):
    start: _StartBody | None = None


class _WMedia(_Base, tag="media", gc=False):
    media: _MediaBody | None = None


class _WDtmf(_Base, tag="dtmf"):
    dtmf: _DtmfBody | None = None


class _WMark(_Base, tag="mark"):
    mark: _MarkBody | None = None


class _WError(_Base, tag="error"):
    payload: _ErrorBody | None = None


class _WStop(_Base, tag="stop"):
    pass


_Wire = _WConnected | _WStart | _WMedia | _WDtmf | _WMark | _WError | _WStop
_decoder = msgspec.json.Decoder(_Wire, strict=False)
_KNOWN = frozenset({"connected", "start", "media", "dtmf", "mark", "error", "stop"})


def decode(data: bytes | str) -> AnyEvent:
    """Decode one Telnyx text frame into a neutral event (L16 as big-endian).

    Raises :class:`ProtocolError` for malformed frames; unknown events are returned as
    :class:`~.events.Unknown`.
    """
    try:
        wire = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        return decode_failure(data, str(exc), _KNOWN, "sequence_number", "stream_id")
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
            wire.stream_id,
        )
    seq = wire.sequence_number
    match wire:
        case _WStart():
            return _start(wire, seq)
        case _WDtmf(dtmf=d):
            if d is None:
                raise ProtocolError("schema", "dtmf event without a dtmf object")
            return Dtmf(d.digit, "inbound", None, seq, wire.stream_id)
        case _WMark(mark=m):
            if m is None:
                raise ProtocolError("schema", "mark event without a mark object")
            return PlayedStream(m.name, seq, wire.stream_id)
        case _WError(payload=e):
            e = e or _ErrorBody()
            code = None if e.code is None else str(e.code)
            return ProviderError(code, e.title, e.detail, seq, wire.stream_id)
        case _WStop():
            return Stop(None, seq, wire.stream_id)
        case _WConnected(version=version):
            return Connected(None, version)
    raise AssertionError(f"unhandled wire type {type(wire).__name__}")  # pragma: no cover


def _start(wire: _WStart, seq: int | None) -> Start:
    body = wire.start
    if body is None:
        raise ProtocolError("schema", "start event without a start object")
    if not wire.stream_id:
        raise ProtocolError("schema", "start event without a stream_id")
    fmt = body.media_format
    codec = fmt.encoding.strip().upper()
    encoding = CODECS.get(codec)
    if encoding is None:
        raise ProtocolError(
            "value",
            f"unsupported media_format.encoding {fmt.encoding!r}: "
            "stream with stream_codec PCMU, PCMA or L16",
        )
    if fmt.sample_rate not in _RATES[codec]:
        raise ProtocolError(
            "value", f"media_format.sample_rate {fmt.sample_rate} is not valid for {codec}"
        )
    if fmt.channels != 1:
        raise ProtocolError("value", f"media_format.channels {fmt.channels}: expected mono")
    meta = {
        "from": body.from_,
        "to": body.to,
        "call_session_id": body.call_session_id,
        "client_state": body.client_state,
    }
    return Start(
        stream_id=wire.stream_id,
        call_id=body.call_control_id,
        account_id=body.user_id,
        tracks=("inbound",),
        encoding=encoding,
        sample_rate=fmt.sample_rate,
        extra_headers={k: v for k, v in meta.items() if v is not None},
        sequence_number=seq,
        custom_parameters=body.custom_parameters or {},
    )


# --- server -> Telnyx --------------------------------------------------------------------


class _PlayBody(msgspec.Struct, gc=False):
    payload: bytes


class _Play(msgspec.Struct, tag_field="event", tag="media", gc=False):
    media: _PlayBody


class _Mark(msgspec.Struct, tag_field="event", tag="mark"):
    mark: _MarkBody


_encode = msgspec.json.encode
_CLEAR = b'{"event":"clear"}'


def encode_play(
    payload: bytes,
    encoding: str = ENCODING_MULAW,
    sample_rate: int = 8000,
    stream_id: str | None = None,
) -> bytes:
    """``media`` with audio in the stream's ``stream_bidirectional_codec`` (base64 here).

    Telnyx plays chunks of 20 ms to 30 s; the stream id is not part of the message.
    """
    return _encode(_Play(_PlayBody(payload)))


def encode_checkpoint(stream_id: str, name: str) -> bytes:
    """``mark``: Telnyx sends it back once the audio before it has played."""
    return _encode(_Mark(_MarkBody(name)))


def encode_clear(stream_id: str) -> bytes:
    """``clear``: drop the queued audio (unanswered)."""
    return _CLEAR


def encode_send_dtmf(stream_id: str, digits: str) -> bytes:
    """Telnyx media streams cannot play DTMF: always raises NotSupported."""
    raise NotSupported(TELNYX, "send_dtmf", "use the Call Control send_dtmf command")


def _with_l16(encoding: str) -> Callable[[bytes | str], AnyEvent]:
    def decode_as(data: bytes | str) -> AnyEvent:
        event = decode(data)
        if type(event) is Start and event.encoding == ENCODING_L16_BE:
            return msgspec.structs.replace(event, encoding=encoding)
        return event

    return decode_as


def dialect(*, l16_big_endian: bool = True) -> ServerDialect:
    """The server side of Telnyx media streaming; ``l16_big_endian=False`` reads (and the
    session then writes) ``L16`` as little-endian instead of RTP's network byte order."""
    return ServerDialect(
        name=TELNYX,
        decode=decode if l16_big_endian else _with_l16(ENCODING_L16),
        decode_binary=text_only(TELNYX),
        encode_play=encode_play,
        encode_checkpoint=encode_checkpoint,
        encode_clear=encode_clear,
        encode_dtmf=encode_send_dtmf,
        acks_clear=False,
        echoes_marks_after_clear=True,
    )


#: The server side of Telnyx media streaming (L16 big-endian).
DIALECT = dialect()


# --- Telnyx side: what Telnyx sends --------------------------------------------------------


class _PMediaFormat(msgspec.Struct):
    encoding: str
    sample_rate: int
    channels: int


class _PStartBody(msgspec.Struct, omit_defaults=True, rename={"from_": "from"}):
    user_id: str
    call_control_id: str
    custom_parameters: dict[str, Any]
    media_format: _PMediaFormat
    call_session_id: str | None = None
    from_: str | None = None
    to: str | None = None
    client_state: str | None = None


class _PStart(msgspec.Struct, tag_field="event", tag="start"):
    sequence_number: str
    start: _PStartBody
    stream_id: str


class _PMediaBody(msgspec.Struct, gc=False):
    track: str
    chunk: str
    timestamp: str
    payload: bytes


class _PMedia(msgspec.Struct, tag_field="event", tag="media", gc=False):
    sequence_number: str
    media: _PMediaBody
    stream_id: str


class _PDtmf(msgspec.Struct, tag_field="event", tag="dtmf"):
    stream_id: str
    sequence_number: str
    dtmf: _DtmfBody


class _PMark(msgspec.Struct, tag_field="event", tag="mark"):
    sequence_number: str
    stream_id: str
    mark: _MarkBody


class _PStopBody(msgspec.Struct):
    user_id: str
    call_control_id: str


class _PStop(msgspec.Struct, tag_field="event", tag="stop"):
    sequence_number: str
    stop: _PStopBody
    stream_id: str


_CONNECTED = b'{"event":"connected","version":"1.0.0"}'


def provider_connected() -> bytes:
    """Telnyx's first message: ``{"event":"connected","version":"1.0.0"}``."""
    return _CONNECTED


def provider_start(start: Start) -> bytes:
    """Telnyx's ``start`` for ``start``'s ids and format (μ-law, A-law or L16)."""
    codec = _CODEC_NAMES.get(start.encoding)
    if codec is None:
        raise ValueError(f"Telnyx has no codec for {start.encoding!r}")
    body = _PStartBody(
        start.account_id,
        start.call_id,
        dict(start.custom_parameters),
        _PMediaFormat(codec, start.sample_rate, 1),
        start.extra_headers.get("call_session_id"),
        start.extra_headers.get("from"),
        start.extra_headers.get("to"),
        start.extra_headers.get("client_state"),
    )
    return _encode(_PStart(str(start.sequence_number or 1), body, start.stream_id))


def provider_media(
    payload: bytes,
    stream_id: str,
    sequence_number: int,
    chunk: int,
    timestamp_ms: int,
    track: str = "inbound",
) -> bytes:
    """Telnyx's ``media`` (numbers as strings)."""
    body = _PMediaBody(track, str(chunk), str(timestamp_ms), payload)
    return _encode(_PMedia(str(sequence_number), body, stream_id))


def provider_dtmf(digit: str, stream_id: str, sequence_number: int) -> bytes:
    """Telnyx's ``dtmf``."""
    return _encode(_PDtmf(stream_id, str(sequence_number), _DtmfBody(digit)))


def provider_played(name: str, stream_id: str, sequence_number: int) -> bytes:
    """Telnyx's ``mark`` echo."""
    return _encode(_PMark(str(sequence_number), stream_id, _MarkBody(name)))


def provider_cleared(stream_id: str, sequence_number: int) -> None:
    """Nothing: Telnyx does not answer a clear."""
    return None


def provider_stop(
    stream_id: str,
    call_id: str,
    account_id: str,
    sequence_number: int,
    reason: str | None = None,
) -> bytes:
    """Telnyx's ``stop``."""
    return _encode(_PStop(str(sequence_number), _PStopBody(account_id, call_id), stream_id))


class _CMedia(msgspec.Struct, tag_field="event", tag="media", gc=False):
    media: _PlayBody | None = None


class _CMark(msgspec.Struct, tag_field="event", tag="mark"):
    mark: _MarkBody | None = None


class _CClear(msgspec.Struct, tag_field="event", tag="clear"):
    pass


_command_decoder = msgspec.json.Decoder(_CMedia | _CMark | _CClear)


def provider_decode(data: bytes | str) -> Command:
    """What the server sent (``media``/``mark``/``clear``) as a neutral command."""
    try:
        wire = _command_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
        raise ProtocolError("schema", f"not a Telnyx command: {exc}") from None
    if type(wire) is _CMedia:
        if wire.media is None:
            raise ProtocolError("schema", "media command without a media object")
        return Play(wire.media.payload)
    if type(wire) is _CMark:
        if wire.mark is None:
            raise ProtocolError("schema", "mark command without a mark object")
        return Checkpoint(wire.mark.name)
    return Clear()


#: Telnyx's side, for the replay client and the load tester.
PROVIDER = ProviderDialect(
    name=TELNYX,
    encode_connected=provider_connected,
    encode_start=provider_start,
    encode_media=provider_media,
    encode_dtmf=provider_dtmf,
    encode_played=provider_played,
    encode_cleared=provider_cleared,
    encode_stop=provider_stop,
    decode_command=provider_decode,
    decode_command_binary=text_only_commands(TELNYX),
)
