"""The Plivo side of an Audio Stream: a paced WebSocket client that behaves like Plivo.

- :mod:`.client`: :class:`PlivoStreamClient`, one stream (connect, send, receive, end).
- :mod:`.options`: :class:`StreamClientOptions` and their checks.
- :mod:`.playback`: the caller's loudspeaker, answering checkpoints in real time.
- :mod:`.report`: :class:`StreamReport`, everything one stream observed.

The frames themselves are :mod:`streamserver.protocol.plivo`'s Plivo-side half.
"""

from __future__ import annotations

from ...protocol.plivo import random_account_id
from .client import PlivoStreamClient
from .options import StreamClientOptions
from .report import Percentiles, StreamReport

__all__ = [
    "Percentiles",
    "PlivoStreamClient",
    "StreamClientOptions",
    "StreamReport",
    "random_account_id",
]
