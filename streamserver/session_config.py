"""What a session is given: its :class:`Route`, its :class:`SessionLimits` and its
:class:`Outlet` (the transport it sends and closes through).

Plain data and a protocol, importable by the network layer, the session and the modules
that build a stream's parts (:mod:`streamserver.stream_start`) without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .audio import AudioFormat
from .handler import HandlerSpec

__all__ = ["Outlet", "Route", "SessionLimits"]


class Outlet(Protocol):
    """What a session needs from its transport."""

    def send_text(self, data: bytes, urgent: bool = True) -> None: ...
    def send_binary(self, data: bytes, urgent: bool = True) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def write_paused(self) -> bool: ...
    async def wait_writable(self) -> None: ...


@dataclass(frozen=True)
class Route:
    """A WebSocket path and the handlers every stream on it gets.

    ``dialect`` pins the provider (``"twilio"``, ...); None detects it from the first
    message. ``expect_format``: a stream in another media format is a doctor finding.
    ``required``: names of handlers whose failure closes the stream (1011) rather than
    leaving it without them.
    """

    path: str
    handlers: tuple[HandlerSpec, ...]
    bidirectional: bool = True
    dialect: str | None = None
    expect_format: AudioFormat | None = None
    required: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SessionLimits:
    """Per-stream tunables (see ``[session]`` in the config)."""

    reorder_window: int = 5  # frames held while waiting for a missing chunk
    max_invalid_frames: int = 100  # then close 1007
    send_timeout_s: float = 5.0  # a blocked socket for this long ends the session
    handler_queue_s: float = 10.0  # default audio bound per handler input
    start_timeout_s: float = 10.0  # no 'start' event this long after the upgrade: close 1008
    idle_timeout_s: float = 0.0  # no frame for this long: close 1008 (0: never)
    max_gap_s: float = 5.0  # longer gaps are cut to this (the timeline resyncs)
    handler_max_events: int = 1000  # events queued per handler, then dropped and counted
    close_on_capped_gap: bool = False  # a capped gap closes the stream with 1007
    doctor_silence_s: float = 10.0  # no inbound audio this long: a doctor finding (0: off)
