"""Provider-neutral stream events.

Inbound events (provider -> server) are what a dialect's ``decode`` returns; outbound
commands (server -> provider) are what its ``encode`` functions accept. They are
``msgspec.Struct`` classes: cheap to allocate on the per-frame path, immutable, typed.

Tracks are ``"inbound"`` (the caller) and ``"outbound"`` (what the caller hears).
Encodings are ``"audio/x-mulaw"`` and ``"audio/x-l16"`` (16-bit little-endian).
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "ENCODING_L16",
    "ENCODING_MULAW",
    "TRACKS",
    "ClearedAudio",
    "Dtmf",
    "Event",
    "Media",
    "PlayedStream",
    "Start",
    "Stop",
    "Unknown",
]

ENCODING_MULAW = "audio/x-mulaw"
ENCODING_L16 = "audio/x-l16"
TRACKS = ("inbound", "outbound")


class Start(msgspec.Struct, frozen=True):
    """The first message of a stream: ids, tracks and media format."""

    stream_id: str
    call_id: str
    account_id: str
    tracks: tuple[str, ...]
    encoding: str
    sample_rate: int
    extra_headers: dict[str, str]
    sequence_number: int | None = None
    #: Extra start fields some dialects carry (e.g. ``customParameters``).
    custom_parameters: dict[str, Any] = {}


class Media(msgspec.Struct, frozen=True, gc=False):
    """One audio chunk (~20 ms) of one track. ``payload`` is the raw encoded audio."""

    track: str
    chunk: int | None
    timestamp_ms: int | None
    payload: bytes
    sequence_number: int | None = None
    stream_id: str | None = None


class Dtmf(msgspec.Struct, frozen=True):
    """A DTMF digit pressed by the caller (``0-9``, ``*``, ``#``, ``A-D``)."""

    digit: str
    track: str
    timestamp_ms: int | None
    sequence_number: int | None = None
    stream_id: str | None = None


class PlayedStream(msgspec.Struct, frozen=True):
    """All audio queued before the checkpoint ``name`` has been played."""

    name: str
    sequence_number: int | None = None
    stream_id: str | None = None


class ClearedAudio(msgspec.Struct, frozen=True):
    """The provider dropped its queued playback in answer to ``clearAudio``."""

    sequence_number: int | None = None
    stream_id: str | None = None


class Stop(msgspec.Struct, frozen=True):
    """The provider ended the stream (optional in Plivo: a close alone also ends it)."""

    reason: str | None = None
    sequence_number: int | None = None
    stream_id: str | None = None


class Unknown(msgspec.Struct, frozen=True):
    """An event this server does not know: logged and counted, never fatal."""

    event: str
    raw: dict[str, Any]
    sequence_number: int | None = None
    stream_id: str | None = None


Event = Start | Media | Dtmf | PlayedStream | ClearedAudio | Stop | Unknown
