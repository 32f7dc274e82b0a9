"""Read batching and write coalescing against fake connections (their public side only)."""

from __future__ import annotations

import asyncio

import pytest

from streamserver.metrics import Metrics
from streamserver.net.batching import CAN_BATCH_READS, ReadBatcher, WriteCoalescer

linux_only = pytest.mark.skipif(not CAN_BATCH_READS, reason="SO_RCVLOWAT batching: Linux")


class Reader:
    """A connection as the ReadBatcher sees it."""

    def __init__(self, frames: int = 50, size: int = 300, *, can: bool = True) -> None:
        self.frames = frames
        self.size = size
        self.can = can
        self.live = True
        self.read_batch = 0
        self.marks: list[int] = []

    def set_read_batch(self, lowat: int) -> None:
        self.read_batch = lowat if self.can else -1
        self.marks.append(lowat)

    def received(self) -> tuple[int, int] | None:
        return (self.frames, self.frames * self.size) if self.live else None


def batcher(metrics: Metrics, min_streams: int = 0) -> ReadBatcher:
    return ReadBatcher(metrics, frames=2, min_streams=min_streams)


@linux_only
async def test_mark_is_one_and_a_half_frames_on_the_wire() -> None:
    m = Metrics()
    b = batcher(m)
    conn = Reader(size=300)
    b.consider(conn)
    assert conn.read_batch == 308 + 154  # payload + 8-byte masked header, x 1.5
    assert conn in b and m.streams_read_batched == 1
    b.consider(conn)  # already batched: nothing changes
    assert conn.marks == [462]
    b.release(conn)
    assert conn.read_batch == 0 and conn not in b and m.streams_read_batched == 0
    b.release(conn)  # idempotent
    assert conn.marks == [462, 0]
    b.close()


@linux_only
async def test_too_early_or_ended_streams_and_unable_sockets_are_left_alone() -> None:
    m = Metrics()
    b = batcher(m)
    young, ended, unable = Reader(frames=9), Reader(), Reader(can=False)
    ended.live = False
    for c in (young, ended, unable):
        b.consider(c)
    assert young.marks == [] and ended.marks == []
    assert unable.read_batch == -1 and unable not in b
    b.consider(unable)  # never asked again
    assert len(unable.marks) == 1 and len(b) == 0
    b.close()


@linux_only
async def test_only_busy_servers_batch() -> None:
    m = Metrics()
    b = batcher(m, min_streams=2)
    conn = Reader()
    m.streams_active = 2
    assert b.active()
    b.consider(conn)
    assert conn in b
    m.streams_active = 1
    assert not b.active()  # below the threshold: everyone released
    assert conn.read_batch == 0 and len(b) == 0
    b.close()


@linux_only
async def test_stall_check_releases_a_stream_that_stopped_short_of_the_mark() -> None:
    m = Metrics()
    b = batcher(m)
    flowing, stalled = Reader(), Reader()
    b.consider(flowing)
    b.consider(stalled)
    for _ in range(3):  # the first check only takes note
        flowing.frames += 2
        await asyncio.sleep(b.watch_s * 1.2)
    assert flowing in b and flowing.read_batch > 0
    assert stalled not in b and stalled.read_batch == 0
    assert m.read_batch_stalls == 1 and m.streams_read_batched == 1
    flowing.live = False  # its stream ended: released at the next check
    await asyncio.sleep(b.watch_s * 1.5)
    assert len(b) == 0 and m.read_batch_stalls == 1
    b.close()


class Writer:
    """A connection as the WriteCoalescer sees it: one queued batch due at ``due``."""

    def __init__(self) -> None:
        self.due = 0.0
        self.flushed: list[float] = []

    def flush_due(self, limit: float) -> None:
        if self.due and self.due <= limit:
            self.flushed.append(asyncio.get_running_loop().time())
            self.due = 0.0


async def test_a_lone_frame_is_flushed_after_the_delay() -> None:
    w = WriteCoalescer(frames=2, min_streams=0, delay_s=0.03)
    a, b = Writer(), Writer()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    a.due = w.schedule(a)
    b.due = w.schedule(b)
    t1 = loop.time()
    assert t0 + 0.03 <= a.due <= t1 + 0.03 and b.due == a.due
    await asyncio.sleep(0)
    assert a.flushed == b.flushed == []  # never at once
    for _ in range(1000):  # bounds a hang only: a loaded machine may wake late
        if a.flushed and b.flushed:
            break
        await asyncio.sleep(0.01)
    assert len(a.flushed) == len(b.flushed) == 1
    assert a.flushed[0] >= a.due - 0.002  # never early (the loop's clock resolution)


async def test_an_entry_already_flushed_is_skipped_and_close_stops_the_timer() -> None:
    w = WriteCoalescer(frames=2, min_streams=0, delay_s=0.02)
    a = Writer()
    a.due = w.schedule(a)
    a.due = 0.0  # its batch filled and was written before the timer
    await asyncio.sleep(0.05)
    assert a.flushed == []
    a.due = w.schedule(a)
    w.close()
    await asyncio.sleep(0.05)
    assert a.flushed == []
