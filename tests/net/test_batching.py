"""Read batching and write coalescing against fake connections (their public side only)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from streamserver.metrics import Metrics
from streamserver.net.batching import CAN_BATCH_READS, ReadBatcher, WriteCoalescer

linux_only = pytest.mark.skipif(not CAN_BATCH_READS, reason="SO_RCVLOWAT batching: Linux")


class Reader:
    """A connection as the ReadBatcher sees it."""

    def __init__(
        self, frames: int = 50, size: int = 300, *, can: bool = True, flowing: bool = False
    ) -> None:
        self.frames = frames
        self.size = size
        self.can = can
        self.flowing = flowing  # a frame more at every look, however late the check runs
        self.live = True
        self.read_batch = 0
        self.marks: list[int] = []
        self.looks = 0

    def set_read_batch(self, lowat: int) -> None:
        self.read_batch = lowat if self.can else -1
        self.marks.append(lowat)

    def received(self) -> tuple[int, int] | None:
        self.looks += 1
        if self.flowing:
            self.frames += 1
        return (self.frames, self.frames * self.size) if self.live else None


async def until(cond: Callable[[], bool]) -> None:
    """Wait for ``cond``; the bound only stops a hang (a loaded machine may be slow)."""
    for _ in range(2000):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met in 10 s")


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
    flowing, stalled = Reader(flowing=True), Reader()
    b.consider(flowing)
    b.consider(stalled)
    looks = flowing.looks
    # The first check only takes note; the second finds the stalled stream unchanged.
    await until(lambda: flowing.looks >= looks + 3)
    assert flowing in b and flowing.read_batch > 0
    assert stalled not in b and stalled.read_batch == 0
    assert m.read_batch_stalls == 1 and m.streams_read_batched == 1
    flowing.live = False  # its stream ended: released at the next check
    await until(lambda: len(b) == 0)
    assert m.read_batch_stalls == 1
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


async def test_a_lone_frame_is_flushed_after_the_delay_while_pairing() -> None:
    w = WriteCoalescer(frames=2, min_streams=0, delay_s=0.03)
    a, b = Writer(), Writer()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    a.due = w.schedule(a)
    b.due = w.schedule(b)
    tol = 0.002  # the loop's clock counts milliseconds
    assert a.due >= t0 + 0.03 - tol and b.due >= a.due
    await asyncio.sleep(0)
    assert a.flushed == b.flushed == []  # never at once
    await until(lambda: bool(a.flushed and b.flushed))
    assert len(a.flushed) == len(b.flushed) == 1
    assert a.flushed[0] >= a.due - tol  # never early


async def test_an_entry_already_flushed_is_skipped_and_close_stops_the_timer() -> None:
    w = WriteCoalescer(frames=2, min_streams=0, delay_s=0.02)
    a, c = Writer(), Writer()
    a.due = w.schedule(a)
    a.due = 0.0  # its batch filled and was written before the timer
    c.due = w.schedule(c)
    await until(lambda: bool(c.flushed))  # the timer ran past a's entry
    assert a.flushed == []
    a.due = w.schedule(a)
    w.close()
    await asyncio.sleep(0.05)
    assert a.flushed == []


async def test_deferred_writes_go_out_at_the_end_of_the_pass_once_each() -> None:
    w = WriteCoalescer(frames=2, min_streams=0, delay_s=10.0)
    a, b = Writer(), Writer()
    a.due = b.due = 1.0  # queued (any due time: deferred ones go at the pass's end)
    w.defer(a)
    w.defer(b)
    assert a.flushed == b.flushed == []  # not inside the caller's own pass
    await asyncio.sleep(0)
    assert len(a.flushed) == len(b.flushed) == 1  # the next pass, no timer involved
    a.due = 1.0
    w.defer(a)
    w.close()  # shutting down: nothing more is written
    await asyncio.sleep(0)
    assert len(a.flushed) == 1


def test_pairing_follows_the_loops_load_with_hysteresis() -> None:
    w = WriteCoalescer(frames=2, min_streams=100, delay_s=0.03, busy=0.8)
    assert not w.pairing
    assert not w.update(0.5, 1000)
    assert not w.update(0.95, 50)  # busy, but few streams: nothing to gain
    assert not w.update(0.85, 1000)  # one busy tick: a peak, not yet a saturated core
    assert not w.update(0.5, 1000)
    assert not w.update(0.85, 1000)
    assert w.update(0.85, 1000)  # two in a row
    assert w.update(0.7, 1000)  # within the hysteresis band: stays on
    assert not w.update(0.6, 1000)
    assert not w.update(0.79, 1000)
    assert not w.update(0.99, 1000)
    assert not WriteCoalescer(frames=1, min_streams=0, delay_s=0.03).update(1.0, 1000)
    # A late loop counts as busy too (the writer thread took the core), two ticks in a row.
    late = WriteCoalescer(frames=2, min_streams=100, delay_s=0.03, busy=0.95)
    assert not late.update(0.85, 1000, lag_s=0.2)
    assert not late.update(0.85, 1000, lag_s=0.01)  # on time again: start over
    assert not late.update(0.85, 1000, lag_s=0.06)
    assert late.update(0.85, 1000, lag_s=0.06)
    assert late.update(0.85, 1000)  # within the hysteresis band: stays on


@linux_only
async def test_a_short_core_reads_deeper_until_the_load_falls_well_below() -> None:
    m = Metrics()
    b = ReadBatcher(m, frames=2, min_streams=100, busy_frames=6, busy=0.9)
    assert (b.depth, m.read_batch_depth) == (2, 2)
    conn = Reader(size=300)
    b.consider(conn)
    assert conn.read_batch == 462  # 1.5 frames
    assert b.update(0.95, 1000) == 2  # one busy tick: a peak, not yet a short core
    assert b.update(0.5, 1000) == 2
    assert b.update(0.95, 50) == 2  # few streams: nothing to gain
    assert b.update(0.95, 1000) == 2
    assert b.update(0.92, 1000) == 6  # two in a row
    assert conn.read_batch == 5 * 308 + 154 and m.read_batch_depth == 6  # re-marked at once
    assert b.watch_s == pytest.approx(0.14)  # the stall check follows the depth
    late = Reader(size=300)
    b.consider(late)
    assert late.read_batch == 5 * 308 + 154  # a stream batched meanwhile: the deep mark
    # Deep batching lowers the load itself: that alone never switches it off ...
    assert b.update(0.3, 1000) == 6
    assert b.update(0.3, 801) == 6
    # ... the streams falling below 80 % of the count that made the core short does.
    assert b.update(0.95, 799) == 2
    assert conn.read_batch == late.read_batch == 462 and m.read_batch_depth == 2
    b.release(conn)
    assert b.update(0.95, 1000) == 2
    assert b.update(0.95, 1000) == 6
    assert conn.read_batch == 0 and late.read_batch == 5 * 308 + 154  # released stays so
    assert b.update(0.95, 99) == 2  # under min_streams
    # A late loop is a short core too (other threads of the process took the rest of it).
    assert b.update(0.6, 1000, lag_s=0.2) == 2
    assert b.update(0.6, 1000, lag_s=0.06) == 6
    b.close()


def test_read_depth_never_goes_deeper_when_not_asked_or_not_batching() -> None:
    m = Metrics()
    same = ReadBatcher(m, frames=2, min_streams=0, busy_frames=2)
    off = ReadBatcher(Metrics(), frames=1, min_streams=0, busy_frames=6)
    for _ in range(4):
        assert same.update(1.0, 1000) == 2
        assert off.update(1.0, 1000) == 1
    assert off.metrics.read_batch_depth == 0  # batching off: shown as 0
