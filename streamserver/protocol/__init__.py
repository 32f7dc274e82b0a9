"""Sans-I/O wire dialects: text frames <-> typed, provider-neutral events and commands.

Nothing here does I/O or touches asyncio; the tests feed it bytes.
"""

from __future__ import annotations

from . import plivo
from .events import (
    DTMF_DIGITS,
    ENCODING_L16,
    ENCODING_MULAW,
    KEYPAD_DIGITS,
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
from .plivo import ProtocolError

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
    "ProtocolError",
    "SendDtmf",
    "Start",
    "Stop",
    "Unknown",
    "plivo",
]
