"""The ``[bus]`` table, and the server URL as it may appear in logs."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from typing import Any

import msgspec

from ..config import struct_from_table
from .subjects import TOKEN

__all__ = ["DEFAULT_PREFIX", "DEFAULT_STREAM", "BusSettings", "safe_url"]

DEFAULT_PREFIX = "streamserver"
DEFAULT_STREAM = "STREAMSERVER_EVENTS"


class BusSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[bus]`` table. ``url`` empty means no bus at all (the default).

    Identity: ``host`` (default the machine's host name) and ``worker`` (default the process
    id) go into every event. Limits: ``backlog`` events wait in memory while NATS is slow or
    down (beyond that new events are dropped and counted); ``window`` events are in flight
    to JetStream at once. Times are in seconds.
    """

    url: str = ""
    prefix: str = DEFAULT_PREFIX
    stream: str = DEFAULT_STREAM
    host: str = msgspec.field(default_factory=socket.gethostname)
    worker: str = msgspec.field(default_factory=lambda: str(os.getpid()))
    # Limits
    backlog: int = 10_000
    window: int = 256
    #: JetStream keeps events this long (0 = forever) and at most this many bytes (-1 = no cap).
    max_age_s: float = 86_400.0
    max_bytes: int = -1
    # Timeouts
    connect_timeout_s: float = 2.0
    reconnect_wait_s: float = 1.0
    ack_timeout_s: float = 5.0
    #: How long a checkpoint command may wait for the audio before it to play.
    checkpoint_timeout_s: float = 300.0

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> BusSettings:
        """Build from a raw ``[bus]`` table; ``ValueError`` names the key that is wrong."""
        return struct_from_table(cls, table, "bus")

    def __post_init__(self) -> None:
        if self.url and not re.match(r"(nats|tls|ws|wss)://", self.url):
            raise ValueError(f"url {self.url!r} must start with nats://, tls://, ws:// or wss://")
        if not all(TOKEN.fullmatch(t) for t in self.prefix.split(".")):
            raise ValueError(f"prefix {self.prefix!r} must be subject tokens ([A-Za-z0-9_-.])")
        if not TOKEN.fullmatch(self.stream):
            raise ValueError(f"stream {self.stream!r} is not a valid JetStream stream name")
        if self.backlog < 1 or self.window < 1:
            raise ValueError("backlog and window must be at least 1")
        if min(self.connect_timeout_s, self.reconnect_wait_s, self.ack_timeout_s) <= 0:
            raise ValueError("connect_timeout_s, reconnect_wait_s and ack_timeout_s must be > 0")


def safe_url(url: str) -> str:
    """``url`` for logs and errors: never credentials (``nats://user:pass@host``)."""
    return re.sub(r"//[^@/]*@", "//***@", url)
