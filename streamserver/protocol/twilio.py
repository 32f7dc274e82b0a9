"""Twilio Media Streams dialect, both sides (sans-I/O).

Reference: https://www.twilio.com/docs/voice/media-streams/websocket-messages

Twilio → server: ``connected`` (``protocol: "Call"``), ``start`` (``start.streamSid``,
``callSid``, ``accountSid``, ``tracks``, ``mediaFormat`` always audio/x-mulaw 8000 mono,
``customParameters``), ``media`` (``track``, ``chunk``, ``timestamp`` = ms from the stream
start, base64 μ-law), ``dtmf`` (track ``inbound_track``), ``mark``, ``stop``. Every message
but ``connected`` carries ``sequenceNumber`` and ``chunk``/``timestamp`` as *strings*; lax
msgspec decoding turns the digit strings into ints in C. Server → Twilio (bidirectional
streams only, i.e. ``<Connect><Stream>``): ``media`` (base64 μ-law/8000), ``mark``,
``clear``. There is no DTMF out: :func:`encode_send_dtmf` raises :class:`~.neutral.NotSupported`.

Marks after a clear: Twilio answers a ``clear`` with nothing, but "causes any mark messages
to be sent back" — the marks pending at the clear come back as ``mark`` events although
their audio was never played. This module decodes them like any mark (a
:class:`~.events.PlayedStream`); the dialect object says ``acks_clear=False`` and
``echoes_marks_after_clear=True``, so the session resolves every checkpoint sent before its
own latest clear False at the moment it sends the clear and treats the returning marks for
them as already answered (see :mod:`.dialect` for the recipe with unique wire names).
"""

from __future__ import annotations

from typing import Any

import msgspec

from .dialect import ProviderDialect, ServerDialect, text_only, text_only_commands
from .events import (
    ENCODING_MULAW,
    Dtmf,
    Media,
    PlayedStream,
    Start,
    Stop,
)
from .neutral import (
    TWILIO,
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
    "DIALECT",
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


# --- Twilio -> server --------------------------------------------------------------------


class _MediaFormat(msgspec.Struct):
    encoding: str
    sampleRate: int
    channels: int = 1


class _StartBody(msgspec.Struct):
    streamSid: str
    callSid: str
    accountSid: str = ""
    tracks: list[str] = msgspec.field(default_factory=lambda: ["inbound"])
    mediaFormat: _MediaFormat | None = None
    customParameters: dict[str, Any] | None = None


class _MediaBody(msgspec.Struct, gc=False):
    payload: bytes  # base64 on the wire; msgspec decodes and validates it
    track: str = "inbound"
    chunk: int | None = None
    timestamp: int | None = None


class _DtmfBody(msgspec.Struct):
    digit: str
    track: str = "inbound_track"


class _MarkBody(msgspec.Struct):
    name: str


class _Base(msgspec.Struct, tag_field="event"):
    sequenceNumber: int | None = None
    streamSid: str | None = None


class _WConnected(_Base, tag="connected"):
    protocol: str | None = None
    version: str | None = None


class _WStart(_Base, tag="start"):
    start: _StartBody | None = None


class _WMedia(_Base, tag="media", gc=False):
    media: _MediaBody | None = None


class _WDtmf(_Base, tag="dtmf"):
    dtmf: _DtmfBody | None = None


class _WMark(_Base, tag="mark"):
    mark: _MarkBody | None = None


class _WStop(_Base, tag="stop"):
    pass  # stop.accountSid / stop.callSid repeat what start said


_Wire = _WConnected | _WStart | _WMedia | _WDtmf | _WMark | _WStop
_decoder = msgspec.json.Decoder(_Wire, strict=False)
_KNOWN = frozenset({"connected", "start", "media", "dtmf", "mark", "stop"})
_TRACKS = {"inbound": "inbound", "outbound": "outbound", "inbound_track": "inbound"}


def decode(data: bytes | str) -> AnyEvent:
    """Decode one Twilio text frame into a neutral event.

    Raises :class:`ProtocolError` for malformed frames; unknown events are returned as
    :class:`~.events.Unknown`.
    """
    try:
        wire = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        return decode_failure(data, str(exc), _KNOWN, "sequenceNumber", "streamSid")
    except msgspec.DecodeError as exc:
        raise ProtocolError("json", f"not valid JSON: {exc}") from None
    except (UnicodeError, RecursionError) as exc:
        raise unreadable(exc) from None

    # ``type(wire) is C`` narrows for mypy and is the cheapest test; media comes first.
    if type(wire) is _WMedia:
        body = wire.media
        if body is None:
            raise ProtocolError("schema", "media event without a media object")
        return Media(
            body.track,
            body.chunk,
            body.timestamp,
            body.payload,
            wire.sequenceNumber,
            wire.streamSid,
        )
    seq = wire.sequenceNumber
    match wire:
        case _WStart():
            return _start(wire, seq)
        case _WDtmf(dtmf=d):
            if d is None:
                raise ProtocolError("schema", "dtmf event without a dtmf object")
            return Dtmf(d.digit, _TRACKS.get(d.track, d.track), None, seq, wire.streamSid)
        case _WMark(mark=m):
            if m is None:
                raise ProtocolError("schema", "mark event without a mark object")
            return PlayedStream(m.name, seq, wire.streamSid)
        case _WStop():
            return Stop(None, seq, wire.streamSid)
        case _WConnected(protocol=protocol, version=version):
            return Connected(protocol, version)
    raise AssertionError(f"unhandled wire type {type(wire).__name__}")  # pragma: no cover


def _start(wire: _WStart, seq: int | None) -> Start:
    body = wire.start
    if body is None:
        raise ProtocolError("schema", "start event without a start object")
    fmt = body.mediaFormat
    if fmt is not None:
        encoding = fmt.encoding.split(";", 1)[0].strip().lower()
        if encoding != ENCODING_MULAW or fmt.sampleRate != 8000 or fmt.channels != 1:
            raise ProtocolError(
                "value",
                f"unsupported mediaFormat {fmt.encoding!r}/{fmt.sampleRate}/{fmt.channels}: "
                "Twilio streams are audio/x-mulaw, 8000 Hz, mono",
            )
    tracks = tuple(body.tracks) or ("inbound",)
    for t in tracks:
        if t not in ("inbound", "outbound"):
            raise ProtocolError("value", f"unknown track {t!r} in start.tracks")
    return Start(
        stream_id=body.streamSid,
        call_id=body.callSid,
        account_id=body.accountSid,
        tracks=tracks,
        encoding=ENCODING_MULAW,
        sample_rate=8000,
        extra_headers={},
        sequence_number=seq,
        custom_parameters=body.customParameters or {},
    )


# --- server -> Twilio --------------------------------------------------------------------


class _PlayBody(msgspec.Struct, gc=False):
    payload: bytes


class _Play(msgspec.Struct, tag_field="event", tag="media", gc=False):
    streamSid: str
    media: _PlayBody


class _Mark(msgspec.Struct, tag_field="event", tag="mark"):
    streamSid: str
    mark: _MarkBody


class _Clear(msgspec.Struct, tag_field="event", tag="clear"):
    streamSid: str


_encode = msgspec.json.encode


def _sid(stream_id: str | None) -> str:
    if not stream_id:
        raise ValueError("Twilio commands need the streamSid")
    return stream_id


def encode_play(
    payload: bytes,
    encoding: str = ENCODING_MULAW,
    sample_rate: int = 8000,
    stream_id: str | None = None,
) -> bytes:
    """``media`` with μ-law/8000 audio (the only format Twilio plays); base64 is done here."""
    return _encode(_Play(_sid(stream_id), _PlayBody(payload)))


def encode_checkpoint(stream_id: str, name: str) -> bytes:
    """``mark``: Twilio sends it back once the audio before it has played (or was cleared)."""
    return _encode(_Mark(_sid(stream_id), _MarkBody(name)))


def encode_clear(stream_id: str) -> bytes:
    """``clear``: drop the buffered audio. Unanswered; pending marks come back (see above)."""
    return _encode(_Clear(_sid(stream_id)))


def encode_send_dtmf(stream_id: str, digits: str) -> bytes:
    """Media Streams cannot play DTMF into the call: always raises NotSupported."""
    raise NotSupported(
        TWILIO, "send_dtmf", "play the tones as audio or update the call with <Play digits>"
    )


# --- Twilio side: what Twilio sends --------------------------------------------------------


class _PMediaFormat(msgspec.Struct):
    encoding: str
    sampleRate: int
    channels: int


class _PStartBody(msgspec.Struct):
    accountSid: str
    streamSid: str
    callSid: str
    tracks: list[str]
    mediaFormat: _PMediaFormat
    customParameters: dict[str, Any]


class _PStart(msgspec.Struct, tag_field="event", tag="start"):
    sequenceNumber: str
    start: _PStartBody
    streamSid: str


class _PMediaBody(msgspec.Struct, gc=False):
    track: str
    chunk: str
    timestamp: str
    payload: bytes


class _PMedia(msgspec.Struct, tag_field="event", tag="media", gc=False):
    sequenceNumber: str
    media: _PMediaBody
    streamSid: str


class _PDtmfBody(msgspec.Struct):
    track: str
    digit: str


class _PDtmf(msgspec.Struct, tag_field="event", tag="dtmf"):
    streamSid: str
    sequenceNumber: str
    dtmf: _PDtmfBody


class _PMark(msgspec.Struct, tag_field="event", tag="mark"):
    sequenceNumber: str
    streamSid: str
    mark: _MarkBody


class _PStopBody(msgspec.Struct):
    accountSid: str
    callSid: str


class _PStop(msgspec.Struct, tag_field="event", tag="stop"):
    sequenceNumber: str
    stop: _PStopBody
    streamSid: str


_CONNECTED = b'{"event":"connected","protocol":"Call","version":"1.0.0"}'


def provider_connected() -> bytes:
    """Twilio's first message: ``{"event":"connected","protocol":"Call","version":"1.0.0"}``."""
    return _CONNECTED


def provider_start(start: Start) -> bytes:
    """Twilio's ``start`` for ``start``'s ids (μ-law/8000 mono, as Twilio always says)."""
    body = _PStartBody(
        start.account_id,
        start.stream_id,
        start.call_id,
        list(start.tracks),
        _PMediaFormat(start.encoding, start.sample_rate, 1),
        dict(start.custom_parameters),
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
    """Twilio's ``media`` (numbers as strings, as Twilio sends them)."""
    body = _PMediaBody(track, str(chunk), str(timestamp_ms), payload)
    return _encode(_PMedia(str(sequence_number), body, stream_id))


def provider_dtmf(digit: str, stream_id: str, sequence_number: int) -> bytes:
    """Twilio's ``dtmf`` (track ``inbound_track``)."""
    return _encode(_PDtmf(stream_id, str(sequence_number), _PDtmfBody("inbound_track", digit)))


def provider_played(name: str, stream_id: str, sequence_number: int) -> bytes:
    """Twilio's ``mark`` echo."""
    return _encode(_PMark(str(sequence_number), stream_id, _MarkBody(name)))


def provider_cleared(stream_id: str, sequence_number: int) -> None:
    """Nothing: Twilio does not answer a clear."""
    return None


def provider_stop(
    stream_id: str,
    call_id: str,
    account_id: str,
    sequence_number: int,
    reason: str | None = None,
) -> bytes:
    """Twilio's ``stop`` (it carries no reason)."""
    return _encode(_PStop(str(sequence_number), _PStopBody(account_id, call_id), stream_id))


class _CBase(msgspec.Struct, tag_field="event"):
    streamSid: str | None = None


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
        raise ProtocolError("schema", f"not a Twilio command: {exc}") from None
    if type(wire) is _CMedia:
        if wire.media is None:
            raise ProtocolError("schema", "media command without a media object")
        return Play(wire.media.payload, wire.streamSid)
    if type(wire) is _CMark:
        if wire.mark is None:
            raise ProtocolError("schema", "mark command without a mark object")
        return Checkpoint(wire.mark.name, wire.streamSid)
    return Clear(wire.streamSid)


#: The server side of Twilio Media Streams.
DIALECT = ServerDialect(
    name=TWILIO,
    decode=decode,
    decode_binary=text_only(TWILIO),
    encode_play=encode_play,
    encode_checkpoint=encode_checkpoint,
    encode_clear=encode_clear,
    encode_dtmf=encode_send_dtmf,
    acks_clear=False,
    echoes_marks_after_clear=True,
)

#: Twilio's side, for the replay client and the load tester.
PROVIDER = ProviderDialect(
    name=TWILIO,
    encode_connected=provider_connected,
    encode_start=provider_start,
    encode_media=provider_media,
    encode_dtmf=provider_dtmf,
    encode_played=provider_played,
    encode_cleared=provider_cleared,
    encode_stop=provider_stop,
    decode_command=provider_decode,
    decode_command_binary=text_only_commands(TWILIO),
)
