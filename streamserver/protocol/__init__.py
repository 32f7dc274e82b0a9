"""Sans-I/O wire dialects: text frames <-> typed, provider-neutral events.

Nothing here does I/O or touches asyncio; the tests feed it bytes.
"""

from __future__ import annotations

from . import plivo
from .events import (
    ENCODING_L16,
    ENCODING_MULAW,
    TRACKS,
    ClearedAudio,
    Dtmf,
    Event,
    Media,
    PlayedStream,
    Start,
    Stop,
    Unknown,
)
from .plivo import ProtocolError

__all__ = [
    "ENCODING_L16",
    "ENCODING_MULAW",
    "TRACKS",
    "ClearedAudio",
    "Dtmf",
    "Event",
    "Media",
    "PlayedStream",
    "ProtocolError",
    "Start",
    "Stop",
    "Unknown",
    "plivo",
]
