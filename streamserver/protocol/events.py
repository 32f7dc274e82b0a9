"""Provider-neutral stream events.

Inbound events (provider -> server) are what a dialect's ``decode`` returns (and what its
provider-side encoders write); outbound commands (server -> provider) are what its
``decode_command`` returns on the provider side (the server writes them with the dialect's
``encode_*`` functions). They are ``msgspec.Struct`` classes: cheap to allocate on the
per-frame path, immutable, typed.

Tracks are ``"inbound"`` (the caller) and ``"outbound"`` (what the caller hears).
Encodings are ``"audio/x-mulaw"`` and ``"audio/x-l16"`` (16-bit little-endian).
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "DTMF_DIGITS",
    "ENCODING_L16",
    "ENCODING_MULAW",
    "KEYPAD_DIGITS",
    "TRACKS",
    "Checkpoint",
    "ClearAudio",
    "ClearedAudio",
    "Command",
    "Dtmf",
    "Event",
    "Media",
    "PlayAudio",
    "PlayedStream",
    "SendDtmf",
    "Start",
    "Stop",
    "Unknown",
]

ENCODING_MULAW = "audio/x-mulaw"
ENCODING_L16 = "audio/x-l16"
TRACKS = ("inbound", "outbound")
#: The sixteen DTMF symbols (ITU-T Q.23), upper case. Checks that accept ``a-d`` upper-case
#: the digits first.
DTMF_DIGITS = "0123456789*#ABCD"
#: The twelve keys of a phone keypad (``DTMF_DIGITS`` without ``A-D``).
KEYPAD_DIGITS = DTMF_DIGITS[:12]


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
    """A message of a kind this side does not know (an event on the server, a command on the
    provider side): logged and counted, never fatal."""

    event: str
    raw: dict[str, Any]
    sequence_number: int | None = None
    stream_id: str | None = None


Event = Start | Media | Dtmf | PlayedStream | ClearedAudio | Stop | Unknown


# --- commands (server -> provider) --------------------------------------------------------


class PlayAudio(msgspec.Struct, frozen=True, gc=False):
    """Audio for the provider to queue and play into the call, already encoded.

    ``encoding`` is :data:`ENCODING_MULAW` or :data:`ENCODING_L16` (no parameters),
    ``payload`` the raw encoded bytes at ``sample_rate``.
    """

    payload: bytes
    encoding: str
    sample_rate: int
    stream_id: str | None = None


class Checkpoint(msgspec.Struct, frozen=True):
    """A mark in the playback queue: answered by :class:`PlayedStream` once reached."""

    name: str
    stream_id: str | None = None


class ClearAudio(msgspec.Struct, frozen=True):
    """Drop all queued, unplayed audio (barge-in); answered by :class:`ClearedAudio`."""

    stream_id: str | None = None


class SendDtmf(msgspec.Struct, frozen=True):
    """Play DTMF tones (``digits`` from :data:`DTMF_DIGITS`) into the call."""

    digits: str


Command = PlayAudio | Checkpoint | ClearAudio | SendDtmf | Unknown
