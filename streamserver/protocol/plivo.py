"""Plivo Audio Streams dialect, both directions, sans-I/O: text frames <-> neutral events.

Plivo -> server (events, :data:`~.events.Event`)
    server side: :func:`decode`; Plivo side: :func:`encode_start`, :func:`encode_media`,
    :func:`encode_dtmf`, :func:`encode_played_stream`, :func:`encode_cleared_audio`,
    :func:`encode_stop` (the frames exactly as Plivo writes them).
server -> Plivo (commands, :data:`~.events.Command`)
    server side: :func:`encode_play_audio`, :func:`encode_checkpoint`,
    :func:`encode_clear_audio`, :func:`encode_send_dtmf`; Plivo side: :func:`decode_command`.

What one side encodes, the other decodes to the same neutral values (tested both ways).

Decoding is one ``msgspec`` call into a tagged union of wire structs (base64 included), then
a cheap conversion to the neutral structs in :mod:`.events`. Documented variants are
tolerated: ``sequenceNumber``/``chunk``/``timestamp``/``sampleRate`` as int or digit string
(lax decoding converts the strings in C, so the structs hold ints only),
``extra_headers`` absent/null/""/``k=v;k=v``, ``stop`` bare, with a body or with a top-level
``reason``, unknown events or commands (returned as :class:`~.events.Unknown`). Anything else
malformed raises :class:`ProtocolError` with a ``kind`` the caller can count and a human
``reason``.

Encoding is one ``msgspec`` call on a prebuilt struct: the Plivo-side encoders run once per
media frame in the emulator, and the load tester builds its frame templates with them.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from typing import Any

import msgspec

from .events import (
    DTMF_DIGITS,
    ENCODING_L16,
    ENCODING_MULAW,
    TRACKS,
    Checkpoint,
    ClearAudio,
    ClearedAudio,
    Command,
    Dtmf,
    Event,
    Media,
    PlayAudio,
    PlayedStream,
    SendDtmf,
    Start,
    Stop,
    Unknown,
)

__all__ = [
    "ProtocolError",
    "decode",
    "decode_command",
    "encode_checkpoint",
    "encode_clear_audio",
    "encode_cleared_audio",
    "encode_dtmf",
    "encode_media",
    "encode_play_audio",
    "encode_played_stream",
    "encode_send_dtmf",
    "encode_start",
    "encode_stop",
    "format_extra_headers",
    "parse_extra_headers",
    "random_account_id",
]


class ProtocolError(ValueError):
    """A frame that cannot be understood.

    ``kind`` is a short stable label for metrics: ``json`` (not JSON / not an object),
    ``base64`` (bad audio payload), ``schema`` (a known event with missing or mistyped
    fields), ``value`` (a field with an impossible value).
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


class _MediaFormat(msgspec.Struct):
    encoding: str
    sampleRate: int


class _StartBody(msgspec.Struct):
    streamId: str
    callId: str
    mediaFormat: _MediaFormat
    accountId: str = ""
    tracks: list[str] = msgspec.field(default_factory=lambda: ["inbound"])
    customParameters: dict[str, Any] | None = None


class _MediaBody(msgspec.Struct, gc=False):
    payload: bytes  # base64 on the wire; msgspec decodes and validates it
    track: str = "inbound"
    timestamp: int | None = None
    chunk: int | None = None


class _DtmfBody(msgspec.Struct):
    digit: str
    track: str = "inbound"
    timestamp: int | None = None


class _StopBody(msgspec.Struct):
    streamId: str | None = None
    callId: str | None = None
    reason: str | None = None


class _Base(msgspec.Struct, tag_field="event"):
    sequenceNumber: int | None = None
    streamId: str | None = None


class _WStart(_Base, tag="start"):
    start: _StartBody | None = None
    extra_headers: str | None = None


class _WMedia(_Base, tag="media", gc=False):
    media: _MediaBody | None = None
    extra_headers: str | None = None


class _WDtmf(_Base, tag="dtmf"):
    dtmf: _DtmfBody | None = None
    extra_headers: str | None = None


class _WPlayed(_Base, tag="playedStream"):
    name: str | None = None


class _WPlayedOld(_Base, tag="played"):
    name: str | None = None


class _WCleared(_Base, tag="clearedAudio"):
    pass


class _WStop(_Base, tag="stop"):
    stop: _StopBody | None = None
    reason: str | None = None


_Wire = _WStart | _WMedia | _WDtmf | _WPlayed | _WPlayedOld | _WCleared | _WStop
_decoder = msgspec.json.Decoder(_Wire, strict=False)
_any_decoder = msgspec.json.Decoder()
_KNOWN = frozenset({"start", "media", "dtmf", "playedStream", "played", "clearedAudio", "stop"})


def parse_extra_headers(value: str | None) -> dict[str, str]:
    """Parse Plivo's ``k1=v1;k2=v2`` (commas tolerated too) into a dict; None/"" -> {}."""
    if not value:
        return {}
    out: dict[str, str] = {}
    for part in value.replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        key = key.strip()
        if key:
            out[key] = val.strip() if sep else ""
    return out


def format_extra_headers(headers: Mapping[str, str]) -> str:
    """Plivo's ``extra_headers`` text, ``k1=v1;k2=v2`` (the inverse of
    :func:`parse_extra_headers`). Raises ``ValueError`` for a key or value that would not
    read back the same: an empty key, ``=`` in a key, ``;`` or ``,`` (separators) anywhere,
    or surrounding spaces."""
    for key, value in headers.items():
        if (
            not key
            or "=" in key
            or any(c in key or c in value for c in ";,")
            or key != key.strip()
            or value != value.strip()
        ):
            raise ValueError(f"extra header {key!r}={value!r} cannot be sent as k=v;k=v")
    return ";".join(f"{k}={v}" for k, v in headers.items())


def random_account_id() -> str:
    """A Plivo-shaped auth ID for ``start.accountId``: ``MA`` and 18 upper-case letters or
    digits."""
    alphabet = string.ascii_uppercase + string.digits
    return "MA" + "".join(secrets.choice(alphabet) for _ in range(18))


def decode(data: bytes | str) -> Event:
    """Decode one Plivo text frame into a neutral event.

    Raises :class:`ProtocolError` for malformed frames; unknown events are returned as
    :class:`Unknown`.
    """
    try:
        wire = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        return _fallback(data, str(exc), _KNOWN)
    except msgspec.DecodeError as exc:
        raise ProtocolError("json", f"not valid JSON: {exc}") from None
    except (UnicodeError, RecursionError) as exc:
        raise _unreadable(exc) from None

    seq = wire.sequenceNumber
    # ``type(wire) is C`` narrows for mypy and is the cheapest test (msgspec builds exactly
    # these classes, never subclasses); media comes first (nearly every frame).
    if type(wire) is _WMedia:
        body = wire.media
        if body is None:
            raise ProtocolError("schema", "media event without a media object")
        return Media(body.track, body.chunk, body.timestamp, body.payload, seq, wire.streamId)
    match wire:
        case _WStart():
            return _start(wire, seq)
        case _WDtmf(dtmf=d):
            if d is None:
                raise ProtocolError("schema", "dtmf event without a dtmf object")
            return Dtmf(d.digit, d.track, d.timestamp, seq, wire.streamId)
        case _WPlayed(name=name) | _WPlayedOld(name=name):
            return PlayedStream(name or "", seq, wire.streamId)
        case _WCleared():
            return ClearedAudio(seq, wire.streamId)
        case _WStop(stop=body_stop, reason=reason, streamId=stream_id):
            if body_stop is not None:
                reason = reason or body_stop.reason
                stream_id = stream_id or body_stop.streamId
            return Stop(reason, seq, stream_id)
    raise AssertionError(f"unhandled wire type {type(wire).__name__}")  # pragma: no cover


def _start(wire: _WStart, seq: int | None) -> Start:
    body = wire.start
    if body is None:
        raise ProtocolError("schema", "start event without a start object")
    fmt = body.mediaFormat
    encoding, rate = _media_format(
        fmt.encoding, fmt.sampleRate, "mediaFormat.encoding", "mediaFormat.sampleRate"
    )
    tracks = tuple(body.tracks) or ("inbound",)
    for t in tracks:
        if t not in TRACKS:
            raise ProtocolError("value", f"unknown track {t!r} in start.tracks")
    return Start(
        stream_id=body.streamId,
        call_id=body.callId,
        account_id=body.accountId,
        tracks=tracks,
        encoding=encoding,
        sample_rate=rate,
        extra_headers=parse_extra_headers(wire.extra_headers),
        sequence_number=seq,
        custom_parameters=body.customParameters or {},
    )


def _media_format(value: str, rate: int, encoding_field: str, rate_field: str) -> tuple[str, int]:
    """The encoding without parameters (``audio/x-l16;rate=16000`` -> ``audio/x-l16``) and the
    rate, checked: μ-law at 8 kHz, L16 at 8 or 16 kHz."""
    encoding = value.split(";", 1)[0].strip().lower()
    if encoding not in (ENCODING_MULAW, ENCODING_L16):
        raise ProtocolError("value", f"unsupported {encoding_field} {value!r}")
    if rate not in (8000, 16000):
        raise ProtocolError("value", f"unsupported {rate_field} {rate!r}")
    if encoding == ENCODING_MULAW and rate != 8000:
        raise ProtocolError(
            "value", f"{rate_field} {rate}: audio/x-mulaw is only defined at 8000 Hz"
        )
    return encoding, rate


def _unreadable(exc: UnicodeError | RecursionError) -> ProtocolError:
    """msgspec raises these (not DecodeError) for bad UTF-8 in strings and deep nesting."""
    if isinstance(exc, RecursionError):
        return ProtocolError("json", "not valid JSON: nested too deeply")
    return ProtocolError("json", f"not valid UTF-8 text: {exc}")


def _fallback(data: bytes | str, error: str, known: frozenset[str]) -> Unknown:
    """Typed decode failed: an unknown message is fine, a broken known one is an error."""
    try:
        raw = _any_decoder.decode(data)
    except msgspec.DecodeError as exc:  # pragma: no cover - typed decoder caught JSON errors
        raise ProtocolError("json", f"not valid JSON: {exc}") from None
    except (UnicodeError, RecursionError) as exc:
        # The typed decoder skips unknown fields unread; this full parse may hit them.
        raise _unreadable(exc) from None
    if not isinstance(raw, dict):
        raise ProtocolError("json", f"frame must be a JSON object, got {type(raw).__name__}")
    event = raw.get("event")
    if not isinstance(event, str):
        raise ProtocolError("schema", "frame has no string 'event' field")
    if event in known:
        if "base64" in error:
            kind = "base64"
        elif "got `str`" in error and "Expected `int" in error:
            kind = "value"  # a digit string was expected (lax decoding) and this is not one
        else:
            kind = "schema"
        raise ProtocolError(kind, f"{event}: {error}")
    seq = raw.get("sequenceNumber")
    sid = raw.get("streamId")
    return Unknown(
        event,
        raw,
        seq if type(seq) is int else None,
        sid if isinstance(sid, str) else None,
    )


# --- server -> Plivo ---------------------------------------------------------------------


class _PlayMedia(msgspec.Struct, gc=False):
    contentType: str
    sampleRate: int
    payload: bytes


class _PlayAudio(msgspec.Struct, tag_field="event", tag="playAudio", omit_defaults=True, gc=False):
    media: _PlayMedia
    streamId: str | None = None


class _Checkpoint(msgspec.Struct, tag_field="event", tag="checkpoint"):
    streamId: str
    name: str


class _ClearAudio(msgspec.Struct, tag_field="event", tag="clearAudio"):
    streamId: str


class _SendDtmf(msgspec.Struct, tag_field="event", tag="sendDTMF"):
    dtmf: str


_encode = msgspec.json.encode


def encode_play_audio(
    payload: bytes, encoding: str, sample_rate: int, stream_id: str | None = None
) -> bytes:
    """``playAudio`` with already-encoded audio (μ-law or L16 LE); base64 is done here."""
    return _encode(_PlayAudio(_PlayMedia(encoding, sample_rate, payload), stream_id))


def encode_checkpoint(stream_id: str, name: str) -> bytes:
    """``checkpoint``: Plivo answers ``playedStream`` once everything before it has played."""
    return _encode(_Checkpoint(stream_id, name))


def encode_clear_audio(stream_id: str) -> bytes:
    """``clearAudio``: drop all queued, unplayed audio (barge-in). Answered by clearedAudio."""
    return _encode(_ClearAudio(stream_id))


_DTMF_ANY_CASE = frozenset(DTMF_DIGITS + DTMF_DIGITS[12:].lower())


def _dtmf_ok(digits: str) -> bool:
    return bool(digits) and set(digits) <= _DTMF_ANY_CASE


def encode_send_dtmf(digits: str) -> bytes:
    """``sendDTMF``: play DTMF tones into the call (``a-d`` are accepted as ``A-D``)."""
    if not _dtmf_ok(digits):
        raise ValueError(f"DTMF digits must be 0-9, *, #, A-D; got {digits!r}")
    return _encode(_SendDtmf(digits))


# --- Plivo side: server -> Plivo, decoded -------------------------------------------------
# Lenient twins of the command structs above: every field optional, so what is missing is
# reported by name instead of failing the whole union.


class _CommandBase(msgspec.Struct, tag_field="event"):
    streamId: str | None = None


class _PlayMediaIn(msgspec.Struct, gc=False):
    contentType: str
    sampleRate: int
    payload: bytes  # base64 on the wire; msgspec decodes and validates it


class _PlayAudioIn(_CommandBase, tag="playAudio", gc=False):
    media: _PlayMediaIn | None = None


class _CheckpointIn(_CommandBase, tag="checkpoint"):
    name: str | None = None


class _ClearAudioIn(_CommandBase, tag="clearAudio"):
    pass


class _SendDtmfIn(_CommandBase, tag="sendDTMF"):
    dtmf: str | None = None


_CommandWire = _PlayAudioIn | _CheckpointIn | _ClearAudioIn | _SendDtmfIn
_command_decoder = msgspec.json.Decoder(_CommandWire, strict=False)
_KNOWN_COMMANDS = frozenset({"playAudio", "checkpoint", "clearAudio", "sendDTMF"})


def decode_command(data: bytes | str) -> Command:
    """Decode one frame the server sent to Plivo into a neutral command (the Plivo side).

    ``playAudio``'s ``contentType`` may carry a ``;rate=`` parameter (the XML spelling); it
    must agree with ``sampleRate`` and is dropped from :attr:`~.events.PlayAudio.encoding`.
    Raises :class:`ProtocolError` for malformed frames; unknown commands are returned as
    :class:`~.events.Unknown`.
    """
    # The steps of decode(), which keeps them inline because it runs once per media frame.
    try:
        wire = _command_decoder.decode(data)
    except msgspec.ValidationError as exc:
        return _fallback(data, str(exc), _KNOWN_COMMANDS)
    except msgspec.DecodeError as exc:
        raise ProtocolError("json", f"not valid JSON: {exc}") from None
    except (UnicodeError, RecursionError) as exc:
        raise _unreadable(exc) from None

    if type(wire) is _PlayAudioIn:
        media = wire.media
        if media is None:
            raise ProtocolError("schema", "playAudio event without a media object")
        content_type = media.contentType
        encoding, rate = _media_format(
            content_type, media.sampleRate, "media.contentType", "media.sampleRate"
        )
        _, _, params = content_type.partition(";")
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "rate" and value.strip() != str(rate):
                raise ProtocolError(
                    "value",
                    f"media.contentType {content_type!r} contradicts media.sampleRate {rate}",
                )
        return PlayAudio(media.payload, encoding, rate, wire.streamId)
    match wire:
        case _CheckpointIn(name=name):
            if not name:
                raise ProtocolError("schema", "checkpoint without a name")
            return Checkpoint(name, wire.streamId)
        case _ClearAudioIn():
            return ClearAudio(wire.streamId)
        case _SendDtmfIn(dtmf=digits):
            if digits is None or not _dtmf_ok(digits):
                raise ProtocolError("value", f"sendDTMF with invalid digits {digits!r}")
            return SendDtmf(digits)
    raise AssertionError(f"unhandled wire type {type(wire).__name__}")  # pragma: no cover


# --- Plivo side: Plivo -> server, encoded -------------------------------------------------
# Field order, names and value types as Plivo writes them (see the reference): ``timestamp``
# is a digit string, ``extra_headers`` (snake case, unlike the rest) is always present.


class _MediaFormatOut(msgspec.Struct):
    encoding: str
    sampleRate: int


class _StartBodyOut(msgspec.Struct):
    callId: str
    streamId: str
    accountId: str
    tracks: tuple[str, ...]
    mediaFormat: _MediaFormatOut


class _StartOut(msgspec.Struct, tag_field="event", tag="start"):
    sequenceNumber: int
    start: _StartBodyOut
    extra_headers: str


class _MediaBodyOut(msgspec.Struct, gc=False):
    track: str
    timestamp: str
    chunk: int
    payload: bytes  # msgspec writes bytes as base64


class _MediaOut(msgspec.Struct, tag_field="event", tag="media", gc=False):
    sequenceNumber: int
    streamId: str
    media: _MediaBodyOut
    extra_headers: str


class _DtmfBodyOut(msgspec.Struct):
    digit: str
    track: str
    timestamp: str


class _DtmfOut(msgspec.Struct, tag_field="event", tag="dtmf"):
    sequenceNumber: int
    streamId: str
    dtmf: _DtmfBodyOut
    extra_headers: str


class _PlayedStreamOut(msgspec.Struct, tag_field="event", tag="playedStream"):
    sequenceNumber: int
    streamId: str
    name: str


class _ClearedAudioOut(msgspec.Struct, tag_field="event", tag="clearedAudio"):
    sequenceNumber: int
    streamId: str


class _StopBodyOut(msgspec.Struct):
    callId: str
    streamId: str
    tracks: tuple[str, ...]


class _StopOut(msgspec.Struct, tag_field="event", tag="stop"):
    sequenceNumber: int
    streamId: str
    stop: _StopBodyOut


def encode_start(
    sequence_number: int,
    call_id: str,
    stream_id: str,
    account_id: str,
    tracks: tuple[str, ...],
    encoding: str,
    sample_rate: int,
    extra_headers: str = "",
) -> bytes:
    """``start``, the first frame of a stream. ``encoding`` without parameters
    (``audio/x-mulaw``), ``extra_headers`` as :func:`format_extra_headers` writes them."""
    body = _StartBodyOut(
        call_id, stream_id, account_id, tracks, _MediaFormatOut(encoding, sample_rate)
    )
    return _encode(_StartOut(sequence_number, body, extra_headers))


def encode_media(
    sequence_number: int,
    stream_id: str,
    track: str,
    timestamp_ms: int,
    chunk: int,
    payload: bytes,
    extra_headers: str = "",
) -> bytes:
    """``media``: one chunk of encoded audio (base64 is done here). ``chunk`` counts per
    track from 1; ``timestamp_ms`` is sent as a digit string, as Plivo does."""
    body = _MediaBodyOut(track, str(timestamp_ms), chunk, payload)
    return _encode(_MediaOut(sequence_number, stream_id, body, extra_headers))


def encode_dtmf(
    sequence_number: int,
    stream_id: str,
    digit: str,
    timestamp_ms: int,
    track: str = "inbound",
    extra_headers: str = "",
) -> bytes:
    """``dtmf``: the caller pressed ``digit`` (one of :data:`~.events.DTMF_DIGITS`)."""
    if len(digit) != 1 or not _dtmf_ok(digit):
        raise ValueError(f"a DTMF digit must be one of 0-9, *, #, A-D; got {digit!r}")
    body = _DtmfBodyOut(digit, track, str(timestamp_ms))
    return _encode(_DtmfOut(sequence_number, stream_id, body, extra_headers))


def encode_played_stream(sequence_number: int, stream_id: str, name: str) -> bytes:
    """``playedStream``: everything queued before the checkpoint ``name`` has played."""
    return _encode(_PlayedStreamOut(sequence_number, stream_id, name))


def encode_cleared_audio(sequence_number: int, stream_id: str) -> bytes:
    """``clearedAudio``: the answer to ``clearAudio``, once the queue is dropped."""
    return _encode(_ClearedAudioOut(sequence_number, stream_id))


def encode_stop(
    sequence_number: int, call_id: str, stream_id: str, tracks: tuple[str, ...]
) -> bytes:
    """``stop`` with its body, as Plivo sends it when the call ends (before the close)."""
    return _encode(_StopOut(sequence_number, stream_id, _StopBodyOut(call_id, stream_id, tracks)))
