"""Plivo Audio Streams dialect: text frame <-> provider-neutral events (sans-I/O).

Decoding is one ``msgspec`` call into a tagged union of wire structs (base64 included), then
a cheap conversion to the neutral events in :mod:`.events`. Documented variants are
tolerated: ``sequenceNumber``/``chunk``/``timestamp`` as int or digit string (lax decoding
converts the strings in C, so the structs hold ints only),
``extra_headers`` absent/null/""/``k=v;k=v``, ``stop`` bare, with a body or with a top-level
``reason``, unknown events (returned as :class:`Unknown`). Anything else malformed raises
:class:`ProtocolError` with a ``kind`` the caller can count and a human ``reason``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .events import (
    ENCODING_L16,
    ENCODING_MULAW,
    ClearedAudio,
    Dtmf,
    Event,
    Media,
    PlayedStream,
    Start,
    Stop,
    Unknown,
)

__all__ = [
    "ProtocolError",
    "decode",
    "encode_checkpoint",
    "encode_clear_audio",
    "encode_play_audio",
    "encode_send_dtmf",
    "parse_extra_headers",
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


def decode(data: bytes | str) -> Event:
    """Decode one Plivo text frame into a neutral event.

    Raises :class:`ProtocolError` for malformed frames; unknown events are returned as
    :class:`Unknown`.
    """
    try:
        wire = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        return _fallback(data, str(exc))
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
    encoding = fmt.encoding.split(";", 1)[0].strip().lower()
    if encoding not in (ENCODING_MULAW, ENCODING_L16):
        raise ProtocolError("value", f"unsupported mediaFormat.encoding {fmt.encoding!r}")
    rate = fmt.sampleRate
    if rate not in (8000, 16000):
        raise ProtocolError("value", f"unsupported mediaFormat.sampleRate {fmt.sampleRate!r}")
    if encoding == ENCODING_MULAW and rate != 8000:
        raise ProtocolError(
            "value", f"mediaFormat.sampleRate {rate}: audio/x-mulaw is only defined at 8000 Hz"
        )
    tracks = tuple(body.tracks) or ("inbound",)
    for t in tracks:
        if t not in ("inbound", "outbound"):
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


def _unreadable(exc: UnicodeError | RecursionError) -> ProtocolError:
    """msgspec raises these (not DecodeError) for bad UTF-8 in strings and deep nesting."""
    if isinstance(exc, RecursionError):
        return ProtocolError("json", "not valid JSON: nested too deeply")
    return ProtocolError("json", f"not valid UTF-8 text: {exc}")


def _fallback(data: bytes | str, error: str) -> Event:
    """Typed decode failed: an unknown event is fine, a broken known one is an error."""
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
    if event in _KNOWN:
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


_DTMF_OK = frozenset("0123456789*#ABCDabcd")


def encode_send_dtmf(digits: str) -> bytes:
    """``sendDTMF``: play DTMF tones into the call."""
    if not digits or not set(digits) <= _DTMF_OK:
        raise ValueError(f"DTMF digits must be 0-9, *, #, A-D; got {digits!r}")
    return _encode(_SendDtmf(digits))
