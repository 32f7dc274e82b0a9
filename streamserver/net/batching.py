"""Fewer wake-ups and fewer syscalls when the server is busy: read batching, write coalescing.

:class:`ReadBatcher` -- listen-only streams (a recorder: nothing goes back) are read two
frames per wake-up instead of one, with ``SO_RCVLOWAT``: the kernel reports the socket
readable once that many bytes are queued (or on FIN), so a busy server makes half the
reads and sends half the ACKs. When the loop's thread is short of CPU as well, they are
read ``read_batch_frames_busy`` frames per wake-up until the load falls well below the one
that made it so. A stall check releases a stream that stopped short of the mark (a last
``stop``, a pause in the audio). See ``[session] read_batch_*``.

:class:`WriteCoalescer` -- outgoing audio (echo, a bot's speech) is written at the end of
the event loop's pass that produced it: every frame a connection queued in that pass goes
in one write, and nothing waits on a timer. Only when the loop's thread is busy (it used
``send_batch_busy`` of the CPU over the last tick) does a frame wait up to
``send_batch_delay_ms`` for the stream's next one to share its write: half the syscalls
when the core is short, the lowest latency whenever it is not. One timer wheel serves every
connection. See ``[session] send_batch_*``.

Both talk to connections through the small Protocols below, so this module knows nothing
of sockets beyond the mark it asks a connection to set.
"""

from __future__ import annotations

import asyncio
import math
import socket
import sys
from typing import Protocol

from ..metrics import Metrics

__all__ = [
    "CAN_BATCH_READS",
    "Batchable",
    "Flushable",
    "ReadBatcher",
    "ShortCore",
    "WriteCoalescer",
]

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


class ShortCore:
    """Whether the core has been short for ``SUSTAIN`` ticks in a row: the loop's thread
    used ``busy`` of a CPU or more over a tick, or the tick came ``LAG_BUSY_S`` late (the
    loop thread's own share can stay under ``busy`` while the process's other threads,
    the recorder's writer, take the rest of the core). One tick is a peak (streams opening
    all at once), not a saturated core."""

    SUSTAIN = 2
    LAG_BUSY_S = 0.05

    def __init__(self, busy: float) -> None:
        self.busy = busy
        self._ticks = 0

    def sustained(self, utilisation: float, lag_s: float) -> bool:
        """Count this tick; True once the core has been short for ``SUSTAIN`` of them (and
        the count starts over)."""
        short = utilisation >= self.busy or lag_s >= self.LAG_BUSY_S
        self._ticks = self._ticks + 1 if short else 0
        if self._ticks < self.SUSTAIN:
            return False
        self._ticks = 0
        return True

    def reset(self) -> None:
        self._ticks = 0


class ReadBatcher:
    """Decides which streams are read ``depth`` frames per wake-up, and releases stalls.

    The server's ticker calls :meth:`update` and :meth:`active` once per tick and
    :meth:`consider` for every flowing listen-only stream; a connection calls
    :meth:`release` when it starts sending back (a conversation: input latency matters) or
    closes. The depth is ``frames``, or ``busy_frames`` while the loop is short of CPU.
    """

    #: Deep batching starts when the core is short (:class:`ShortCore`) and stops when the
    #: open streams fall below this share of the count that made it so. (Not on the
    #: loop's load: deep batching itself lowers it, by a sixth to a third with thousands
    #: of recorder streams, so a load threshold would switch it off and on again.)
    RELEASE_SHARE = 0.8

    def __init__(
        self,
        metrics: Metrics,
        *,
        frames: int,
        min_streams: int,
        busy_frames: int | None = None,
        busy: float = 0.9,
    ) -> None:
        self.metrics = metrics
        self.frames = frames if CAN_BATCH_READS else 1
        self.busy_frames = max(self.frames, busy_frames or frames) if self.frames > 1 else 1
        self.short = ShortCore(busy)
        self.min_streams = min_streams
        #: Frames per wake-up now: ``frames``, or ``busy_frames`` while :attr:`deep`.
        self.depth = self.frames
        #: Reading ``busy_frames`` per wake-up (set by :meth:`update`).
        self.deep = False
        self._deep_streams = 0  # open streams when deep batching started
        # Batched connections -> their frame count at the last stall check (-1: none yet).
        self._batched: dict[Batchable, int] = {}
        self._sizes: dict[Batchable, int] = {}  # ... and their frame size on the wire
        self._watch_handle: asyncio.TimerHandle | None = None
        self.metrics.read_batch_depth = self.depth if self.frames > 1 else 0

    @property
    def watch_s(self) -> float:
        """Stall check period: a batched read is due every ``depth`` x 20 ms (plus one
        frame of slack for jitter); a message held below the mark waits at most two."""
        return (self.depth + 1) * _FRAME_S

    def update(self, utilisation: float, streams: int, lag_s: float = 0.0) -> int:
        """The ticker's report: the loop thread's share of a CPU over the last tick, the
        open streams and how late the tick was. Deep batching starts once the core is short
        (:class:`ShortCore`) and stops once the streams fall below ``RELEASE_SHARE`` of the
        count it started at (or under ``min_streams``). Batched streams get the new mark at
        once. Returns :attr:`depth`."""
        if self.busy_frames <= self.frames or streams < self.min_streams:
            deep = False
            self.short.reset()
        elif self.deep:
            deep = streams >= self.RELEASE_SHARE * self._deep_streams
        else:
            deep = self.short.sustained(utilisation, lag_s)
            if deep:
                self._deep_streams = streams
        if deep != self.deep:
            self.deep = deep
            self.depth = self.busy_frames if deep else self.frames
            self.metrics.read_batch_depth = self.depth
            for conn, size in self._sizes.items():
                conn.set_read_batch(self._mark(size))
        return self.depth

    def _mark(self, size: int) -> int:
        # (N - 1) frames and half of the next one, of `size` bytes each.
        return (self.depth - 1) * size + size // 2

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
        # The mark, from the stream's mean frame size on the wire (payload + the 8-byte
        # header of a masked frame of 126+ bytes).
        size = nbytes // frames + 8
        conn.set_read_batch(self._mark(size))
        if conn.read_batch <= 0:
            return  # this socket cannot (the connection will not be asked again)
        self._batched[conn] = -1  # the next stall check only takes note
        self._sizes[conn] = size
        self.metrics.streams_read_batched = len(self._batched)
        if self._watch_handle is None:
            self._watch_handle = asyncio.get_running_loop().call_later(self.watch_s, self._watch)

    def release(self, conn: Batchable) -> None:
        """Read this connection at every byte again."""
        if self._batched.pop(conn, None) is not None:
            del self._sizes[conn]
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
    """Times the flush of each connection's queued outgoing audio.

    A connection queues its outgoing audio and, for the first frame queued, calls
    :meth:`defer`: one ``call_soon`` callback for every connection writes what each queued
    at the end of the loop's pass. While :attr:`pairing` (the server is busy: see
    :meth:`update`), it instead writes once ``frames`` are queued and calls
    :meth:`schedule` for the first one of a batch: the wheel flushes it ``delay_s`` later
    if the batch never fills (so the stream's next frame, 20 ms on, normally joins it).
    """

    #: pairing stops when the loop's share of the CPU falls this far below ``busy``
    HYSTERESIS = 0.15

    def __init__(
        self, *, frames: int, min_streams: int, delay_s: float, busy: float = 0.95
    ) -> None:
        self.frames = frames
        self.min_streams = min_streams
        self.delay_s = delay_s
        self.busy = busy
        self.short = ShortCore(busy)
        #: Hold frames to pair them: the server is busy (set by :meth:`update`).
        self.pairing = False
        self._wheel: dict[int, list[Flushable]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._deferred: list[Flushable] = []
        self._soon: asyncio.Handle | None = None

    def update(self, utilisation: float, streams: int, lag_s: float = 0.0) -> bool:
        """The ticker's report: the loop thread's share of a CPU since the last tick, the
        open streams and how late the tick was. Pairing starts once the core is short
        (:class:`ShortCore`) and stops below ``busy - HYSTERESIS`` (or under
        ``min_streams``). Returns :attr:`pairing`."""
        if self.frames <= 1 or streams < self.min_streams:
            self.pairing = False
            self.short.reset()
        elif self.pairing:
            self.pairing = utilisation >= self.busy - self.HYSTERESIS
        else:
            self.pairing = self.short.sustained(utilisation, lag_s)
        return self.pairing

    def defer(self, conn: Flushable) -> None:
        """Write ``conn``'s queued audio at the end of this pass of the event loop."""
        self._deferred.append(conn)
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_soon(self._flush_deferred)

    def _flush_deferred(self) -> None:
        self._soon = None
        conns, self._deferred = self._deferred, []
        for conn in conns:
            conn.flush_due(math.inf)  # a no-op for one written meanwhile

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
        """Stop the timers (the server is shutting down)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._wheel.clear()
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        self._deferred.clear()

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
