"""Fewer wake-ups and fewer syscalls when the server is busy: read batching, write coalescing.

:class:`ReadBatcher` -- listen-only streams (a recorder: nothing goes back) are read two
frames per wake-up instead of one, with ``SO_RCVLOWAT``: the kernel reports the socket
readable once that many bytes are queued (or on FIN), so a busy server makes half the
reads and sends half the ACKs. A stall check releases a stream that stopped short of the
mark (a last ``stop``, a pause in the audio). See ``[session] read_batch_*``.

:class:`WriteCoalescer` -- outgoing audio (echo, a bot's speech) of a busy server waits up
to ``send_batch_delay_ms`` so that two frames share one write. One timer wheel serves every
connection. See ``[session] send_batch_*``.

Both talk to connections through the small Protocols below, so this module knows nothing
of sockets beyond the mark it asks a connection to set.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Protocol

from ..metrics import Metrics

__all__ = ["CAN_BATCH_READS", "Batchable", "Flushable", "ReadBatcher", "WriteCoalescer"]

#: SO_RCVLOWAT on a TCP socket is honoured by epoll on Linux only.
CAN_BATCH_READS = sys.platform.startswith("linux") and hasattr(socket, "SO_RCVLOWAT")

_FRAME_S = 0.020  # one Plivo media frame
_WHEEL_TICK_S = 0.005  # resolution of the outgoing-audio flush timer


class Batchable(Protocol):
    """What :class:`ReadBatcher` needs of a connection."""

    @property
    def read_batch(self) -> int:
        """The receive mark in bytes: 0 not batched, -1 the socket cannot be."""
        ...

    def set_read_batch(self, lowat: int) -> None:
        """Ask the kernel to wake us only once ``lowat`` bytes are queued (0: every byte)."""
        ...

    def received(self) -> tuple[int, int] | None:
        """``(frames, bytes)`` its stream received so far; None when no stream is live."""
        ...


class ReadBatcher:
    """Decides which streams are read ``frames`` frames per wake-up, and releases stalls.

    The server's ticker calls :meth:`active` once per tick and :meth:`consider` for every
    flowing listen-only stream; a connection calls :meth:`release` when it starts sending
    back (a conversation: input latency matters) or closes.
    """

    def __init__(self, metrics: Metrics, *, frames: int, min_streams: int) -> None:
        self.metrics = metrics
        self.frames = frames if CAN_BATCH_READS else 1
        self.min_streams = min_streams
        # Batched connections -> their frame count at the last stall check (-1: none yet).
        self._batched: dict[Batchable, int] = {}
        self._watch_handle: asyncio.TimerHandle | None = None
        # Stall check period: a batched read is due every `frames` x 20 ms (plus one frame
        # of slack for jitter); a message held below the mark waits at most two periods.
        self.watch_s = (self.frames + 1) * _FRAME_S

    def __contains__(self, conn: Batchable) -> bool:
        return conn in self._batched

    def __len__(self) -> int:
        return len(self._batched)

    def active(self) -> bool:
        """Whether the server is busy enough to batch; when not, every stream is released."""
        on = self.frames > 1 and self.metrics.streams_active >= self.min_streams
        if not on:
            for conn in list(self._batched):
                self.release(conn)
        return on

    def consider(self, conn: Batchable) -> None:
        """Batch a flowing stream's reads, once it has shown its frame size."""
        if conn.read_batch != 0 or conn in self._batched:
            return
        rx = conn.received()
        if rx is None or rx[0] < 10:
            return  # too early to know the frame size
        frames, nbytes = rx
        # The mark: (N - 1) frames and half of the next, from the stream's mean frame size
        # on the wire (payload + the 8-byte header of a masked frame of 126+ bytes).
        size = nbytes // frames + 8
        conn.set_read_batch((self.frames - 1) * size + size // 2)
        if conn.read_batch <= 0:
            return  # this socket cannot (the connection will not be asked again)
        self._batched[conn] = -1  # the next stall check only takes note
        self.metrics.streams_read_batched = len(self._batched)
        if self._watch_handle is None:
            self._watch_handle = asyncio.get_running_loop().call_later(self.watch_s, self._watch)

    def release(self, conn: Batchable) -> None:
        """Read this connection at every byte again."""
        if self._batched.pop(conn, None) is not None:
            self.metrics.streams_read_batched = len(self._batched)
            conn.set_read_batch(0)

    def close(self) -> None:
        """Stop the stall check (the server is shutting down)."""
        if self._watch_handle is not None:
            self._watch_handle.cancel()
            self._watch_handle = None

    def _watch(self) -> None:
        """Release batched streams that received nothing since the last check: a message
        below the mark (a final ``stop``, a pause in the audio) must not wait for more."""
        self._watch_handle = None
        batched = self._batched
        for conn, mark in list(batched.items()):
            rx = conn.received()
            if rx is None:
                self.release(conn)
            elif rx[0] == mark:  # nothing read for a whole check period
                self.metrics.read_batch_stalls += 1
                self.release(conn)  # the ticker batches it again once it flows
            else:
                batched[conn] = rx[0]
        if batched:
            self._watch_handle = asyncio.get_running_loop().call_later(self.watch_s, self._watch)


class Flushable(Protocol):
    """What :class:`WriteCoalescer` needs of a connection."""

    def flush_due(self, limit: float) -> None:
        """Write the queued frames if the first of them is due by ``limit`` (loop time)."""
        ...


class WriteCoalescer:
    """Times the flush of each connection's queued outgoing audio; one timer for all.

    A connection queues audio while the server has at least ``min_streams`` streams and
    ``frames`` > 1, writes when ``frames`` are queued, and calls :meth:`schedule` for the
    first one of a batch: the wheel flushes it ``delay_s`` later if the batch never fills
    (so the stream's next frame, 20 ms on, normally joins it in one write).
    """

    def __init__(self, *, frames: int, min_streams: int, delay_s: float) -> None:
        self.frames = frames
        self.min_streams = min_streams
        self.delay_s = delay_s
        self._wheel: dict[int, list[Flushable]] = {}
        self._handle: asyncio.TimerHandle | None = None

    def schedule(self, conn: Flushable) -> float:
        """Flush ``conn`` ``delay_s`` from now; returns that due time (loop time)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.delay_s
        key = int(due / _WHEEL_TICK_S) + 1
        bucket = self._wheel.get(key)
        if bucket is None:
            self._wheel[key] = [conn]
        else:
            bucket.append(conn)
        if self._handle is None:
            self._handle = loop.call_later(_WHEEL_TICK_S, self._flush_due)
        return due

    def close(self) -> None:
        """Stop the timer (the server is shutting down)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._wheel.clear()

    def _flush_due(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        current = int(now / _WHEEL_TICK_S)
        wheel = self._wheel
        limit = now + _WHEEL_TICK_S
        for key in [k for k in wheel if k <= current]:
            for conn in wheel.pop(key):
                # Entries already flushed by a full batch, or queued again later, say no.
                conn.flush_due(limit)
        self._handle = loop.call_later(_WHEEL_TICK_S, self._flush_due) if wheel else None
