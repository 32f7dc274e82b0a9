"""Vonage Voice API WebSocket dialect, both sides (sans-I/O).

References: https://developer.vonage.com/en/voice/voice-api/concepts/websockets and the
NCCO reference https://developer.vonage.com/en/voice/voice-api/ncco-reference (``connect``
with an endpoint of ``type: "websocket"``).

Unlike the JSON dialects, audio travels in **binary** WebSocket frames both ways: 16-bit
signed little-endian linear PCM, mono, 20 ms per frame, at the rate of the NCCO's
``content-type`` (``audio/l16;rate=8000`` or ``audio/l16;rate=16000``). Text frames carry
events: ``websocket:connected`` first (the negotiated ``content-type`` plus every key of the
NCCO endpoint's ``headers`` at the top level) — this dialect's :class:`~.events.Start` —,
``websocket:dtmf`` (``digit``, ``duration``), ``websocket:notify`` and ``websocket:cleared``.
The server sends ``{"action": "notify", "payload": {...}}`` (answered with
``websocket:notify`` echoing the payload once the audio queued before it has played: our
checkpoint) and ``{"action": "clear"}`` (answered with ``websocket:cleared``). Vonage has no
DTMF out on the socket (:class:`~.neutral.NotSupported`) and no ``stop``: the socket closes.

Ids: Vonage sends no stream id and no call id of its own. The call id is taken from the
endpoint headers (``call_id``, ``uuid`` or ``call_uuid``: put the call's ``uuid`` from the
answer webhook there), the stream id from a ``stream_id`` header; absent, they are ``""``
and the session generates a stream id (uuid4). Binary audio frames carry no chunk number or
timestamp: they arrive in order over one TCP connection, so the session places them one
after the other.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .dialect import ProviderDialect, ServerDialect
from .events import (
    ENCODING_L16,
    ClearedAudio,
    Dtmf,
    Media,
    PlayedStream,
    Start,
    Unknown,
)
from .neutral import (
    VONAGE,
    AnyEvent,
    Checkpoint,
    Clear,
    Command,
    NotSupported,
    Play,
    ProtocolError,
    decode_object,
    str_values,
)

__all__ = [
    "CALL_ID_HEADERS",
    "DIALECT",
    "PROVIDER",
    "RATES",
    "decode",
    "decode_binary",
    "encode_checkpoint",
    "encode_clear",
    "encode_play",
    "encode_send_dtmf",
    "parse_content_type",
    "provider_cleared",
    "provider_connected",
    "provider_decode",
    "provider_decode_binary",
    "provider_dtmf",
    "provider_media",
    "provider_played",
    "provider_start",
    "provider_stop",
]

#: Sample rates of ``audio/l16;rate=…`` that Vonage documents.
RATES = (8000, 16000)
#: Endpoint headers read as the call id, first match wins.
CALL_ID_HEADERS = ("call_id", "uuid", "call_uuid")
_STREAM_ID_HEADER = "stream_id"
_NOT_HEADERS = frozenset({"event", "content-type"})

_encode = msgspec.json.encode


def parse_content_type(value: object) -> int:
    """The sample rate of ``audio/l16;rate=16000`` (case and spaces ignored).

    Raises :class:`ProtocolError` (``value``) for anything but L16 at a documented rate.
    """
    if not isinstance(value, str):
        raise ProtocolError("schema", "websocket:connected without a string content-type")
    kind, *params = (p.strip() for p in value.lower().split(";"))
    rate = None
    for param in params:
        key, _, val = (p.strip() for p in param.partition("="))
        if key == "rate" and val.isdigit() and val.isascii():
            rate = int(val)
    if kind != "audio/l16" or rate not in RATES:
        raise ProtocolError(
            "value", f"unsupported content-type {value!r}: expected audio/l16;rate=8000|16000"
        )
    return rate


def decode(data: bytes | str) -> AnyEvent:
    """Decode one Vonage text frame (an event; audio comes in binary frames).

    Raises :class:`ProtocolError` for malformed frames; unknown events are returned as
    :class:`~.events.Unknown`.
    """
    raw = decode_object(data)
    event = raw.get("event")
    if not isinstance(event, str):
        raise ProtocolError("schema", "frame has no string 'event' field")
    if event == "websocket:connected":
        return _start(raw)
    if event == "websocket:dtmf":
        digit = raw.get("digit")
        if not isinstance(digit, str) or not digit:
            raise ProtocolError("schema", "websocket:dtmf without a string digit")
        return Dtmf(digit, "inbound", None)
    if event == "websocket:notify":
        return PlayedStream(_checkpoint_name(raw.get("payload")))
    if event == "websocket:cleared":
        return ClearedAudio()
    return Unknown(event, raw)


def _checkpoint_name(payload: object) -> str:
    """Our notify payload is ``{"name": ...}``; anything else is named by its JSON text."""
    if isinstance(payload, dict) and isinstance(payload.get("name"), str):
        name: str = payload["name"]
        return name
    if payload is None:
        return ""
    return _encode(payload).decode()


def _start(raw: dict[str, Any]) -> Start:
    rate = parse_content_type(raw.get("content-type"))
    headers = {k: v for k, v in raw.items() if k not in _NOT_HEADERS}
    text = str_values(headers)
    call_id = next((text[k] for k in CALL_ID_HEADERS if text.get(k)), "")
    return Start(
        stream_id=text.get(_STREAM_ID_HEADER, ""),
        call_id=call_id,
        account_id="",
        tracks=("inbound",),
        encoding=ENCODING_L16,
        sample_rate=rate,
        extra_headers=text,
        custom_parameters=headers,
    )


def decode_binary(data: bytes | bytearray | memoryview) -> Media:
    """One binary frame: 20 ms of the caller's audio, L16 little-endian."""
    if not data:
        raise ProtocolError("value", "empty binary audio frame")
    return Media("inbound", None, None, bytes(data))


# --- server -> Vonage --------------------------------------------------------------------


class _NotifyName(msgspec.Struct):
    name: str


class _Notify(msgspec.Struct, tag_field="action", tag="notify"):
    payload: _NotifyName


_CLEAR = b'{"action":"clear"}'


def encode_play(
    payload: bytes,
    encoding: str = ENCODING_L16,
    sample_rate: int = 16000,
    stream_id: str | None = None,
) -> bytes:
    """The binary frame itself: L16 little-endian, padded with silence to whole 20 ms frames.

    Send one 20 ms frame per call (the session cuts audio in 20 ms frames).
    """
    frame = sample_rate // 50 * 2
    rest = len(payload) % frame
    if rest:
        payload += bytes(frame - rest)
    return payload


def encode_checkpoint(stream_id: str, name: str) -> bytes:
    """``notify`` with payload ``{"name": name}``: answered by ``websocket:notify``."""
    return _encode(_Notify(_NotifyName(name)))


def encode_clear(stream_id: str) -> bytes:
    """``clear``: drop the buffered audio; answered by ``websocket:cleared``."""
    return _CLEAR


def encode_send_dtmf(stream_id: str, digits: str) -> bytes:
    """The Vonage socket cannot play DTMF: always raises NotSupported."""
    raise NotSupported(VONAGE, "send_dtmf", "use the Voice API's PUT /v1/calls/{uuid}/dtmf")


#: The server side of Vonage's WebSocket endpoint.
DIALECT = ServerDialect(
    name=VONAGE,
    decode=decode,
    decode_binary=decode_binary,
    encode_play=encode_play,
    encode_checkpoint=encode_checkpoint,
    encode_clear=encode_clear,
    encode_dtmf=encode_send_dtmf,
    binary_audio=True,
    pads_play_frames=True,
    acks_clear=True,
)


# --- Vonage side: what Vonage sends --------------------------------------------------------


def provider_connected() -> None:
    """Nothing: Vonage's first message, ``websocket:connected``, is its start."""
    return None


def provider_start(start: Start) -> bytes:
    """``websocket:connected`` with the content type and ``start``'s ids as headers."""
    if start.encoding != ENCODING_L16 or start.sample_rate not in RATES:
        raise ValueError(f"Vonage streams are audio/l16 at {RATES}, not {start.encoding!r}")
    doc: dict[str, Any] = {
        "event": "websocket:connected",
        "content-type": f"audio/l16;rate={start.sample_rate}",
    }
    doc.update(start.custom_parameters or start.extra_headers)
    if start.call_id:
        doc.setdefault("uuid", start.call_id)
    if start.stream_id:
        doc.setdefault(_STREAM_ID_HEADER, start.stream_id)
    return _encode(doc)


def provider_media(
    payload: bytes,
    stream_id: str = "",
    sequence_number: int = 0,
    chunk: int = 0,
    timestamp_ms: int = 0,
    track: str = "inbound",
) -> bytes:
    """The binary frame itself (Vonage numbers nothing)."""
    return payload


class _PDtmf(msgspec.Struct, tag_field="event", tag="websocket:dtmf"):
    digit: str
    duration: int


class _PNotify(msgspec.Struct, tag_field="event", tag="websocket:notify"):
    payload: _NotifyName


_CLEARED = b'{"event":"websocket:cleared"}'


def provider_dtmf(digit: str, stream_id: str = "", sequence_number: int = 0) -> bytes:
    """``websocket:dtmf``."""
    return _encode(_PDtmf(digit, 250))


def provider_played(name: str, stream_id: str = "", sequence_number: int = 0) -> bytes:
    """``websocket:notify`` echoing our ``{"name": ...}`` payload."""
    return _encode(_PNotify(_NotifyName(name)))


def provider_cleared(stream_id: str = "", sequence_number: int = 0) -> bytes:
    """``websocket:cleared``."""
    return _CLEARED


def provider_stop(
    stream_id: str,
    call_id: str,
    account_id: str,
    sequence_number: int,
    reason: str | None = None,
) -> None:
    """Nothing: Vonage ends a stream by closing the socket."""
    return None


def provider_decode(data: bytes | str) -> Command:
    """A text frame from the server: ``notify`` or ``clear``."""
    try:
        raw = decode_object(data)
    except ProtocolError as exc:
        raise ProtocolError("schema", f"not a Vonage command: {exc.reason}") from None
    action = raw.get("action")
    if action == "clear":
        return Clear()
    if action == "notify":
        return Checkpoint(_checkpoint_name(raw.get("payload")))
    raise ProtocolError("schema", f"not a Vonage command: action {action!r}")


def provider_decode_binary(data: bytes | bytearray | memoryview) -> Command:
    """A binary frame from the server: audio to play."""
    return Play(bytes(data))


#: Vonage's side, for the replay client and the load tester.
PROVIDER = ProviderDialect(
    name=VONAGE,
    encode_connected=provider_connected,
    encode_start=provider_start,
    encode_media=provider_media,
    encode_dtmf=provider_dtmf,
    encode_played=provider_played,
    encode_cleared=provider_cleared,
    encode_stop=provider_stop,
    decode_command=provider_decode,
    decode_command_binary=provider_decode_binary,
    binary_media=True,
)
