"""The Plivo side of an Audio Stream: a paced WebSocket client that behaves like Plivo.

- :mod:`.client`: :class:`PlivoStreamClient`, one stream (connect, send on the fault plan,
  end).
- :mod:`.options`: :class:`StreamClientOptions` and their checks.
- :mod:`.speaker`: the caller's loudspeaker as a pure timeline; :mod:`.playback` drives it
  in real time and answers checkpoints.
- :mod:`.links`, :mod:`.sockets`: the stream's sockets (a vanish, a reconnect, a second
  socket, slow reading); :mod:`.receive`: the server's messages.
- :mod:`.report`: :class:`StreamReport` (and :class:`LinkReport`), everything one stream
  observed.

The frames themselves are :mod:`streamserver.protocol.plivo`'s Plivo-side half.
"""

from __future__ import annotations

from ...protocol.plivo import random_account_id
from .client import PlivoStreamClient
from .options import StreamClientOptions
from .report import LinkReport, Percentiles, StreamReport

__all__ = [
    "LinkReport",
    "Percentiles",
    "PlivoStreamClient",
    "StreamClientOptions",
    "StreamReport",
    "random_account_id",
]
