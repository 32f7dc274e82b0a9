"""The network shell, the only place with sockets: listen, upgrade, read and write frames.

- :mod:`.gate` -- the pure upgrade decision (health, metrics, 404/503/403, accept)
- :mod:`.http_rules` -- what a request head must be (405, 400, 505), pure
- :mod:`.state` -- the connection's states and transitions, in one table
- :mod:`.connection` -- the ``asyncio.Protocol``: bytes -> FrameReader -> Session
- :mod:`.batching` -- read batching (``SO_RCVLOWAT``) and outgoing-audio coalescing
- :mod:`.server` -- :class:`StreamServer`: listen, tick, drain
"""

from __future__ import annotations

from .server import StreamServer, build_routes

__all__ = ["StreamServer", "build_routes"]
