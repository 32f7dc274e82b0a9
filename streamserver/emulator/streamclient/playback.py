"""The caller's side of playback: the real-time loudspeaker (:class:`Playback`), the
never-early :class:`Sleeper` and the echo matcher (:class:`EchoTracker`)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

import numpy as np
from websockets.exceptions import ConnectionClosed

from ...audio import PCM
from .report import StreamReport

__all__ = ["EchoTracker", "Playback", "Sleeper", "now"]

#: The client's clock. Not ``loop.time()``: uvloop's is cached per iteration and whole
#: milliseconds, too coarse for lateness and echo round trips.
now = time.monotonic


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Sleeper:
    """Sleeps until an absolute :func:`now` deadline, never waking before it.

    Event-loop timers are not that precise: uvloop rounds delays to whole milliseconds and
    measures them from a clock cached once per loop iteration, so a timer may fire early.
    A frame sent early or a ``playedStream`` answered early would be wrong, so an early
    wake-up sleeps again for the remainder. :meth:`wake` cuts the sleep short.
    """

    __slots__ = ("_fut", "_woken")

    def __init__(self) -> None:
        self._fut: asyncio.Future[None] | None = None
        self._woken = False

    async def until(self, when: float) -> bool:
        """Sleep until ``when``; False if :meth:`wake` ended the sleep first."""
        loop = asyncio.get_running_loop()
        while (delay := when - now()) > 0:
            fut = self._fut = loop.create_future()
            handle = loop.call_later(delay, _resolve, fut)
            try:
                await fut
            finally:
                handle.cancel()
                self._fut = None
            if self._woken:
                self._woken = False
                return False
        return True

    def wake(self) -> None:
        """End the current sleep early."""
        if self._fut is not None:
            self._woken = True
            _resolve(self._fut)


class EchoTracker:
    """Matches received playAudio payloads to inbound frames sent in the last few seconds.

    Identical payloads (silence) are matched first-in first-out, the order an echo returns.
    """

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._by_payload: dict[bytes, deque[float]] = {}
        self._order: deque[tuple[float, bytes]] = deque()

    def sent(self, payload: bytes, t: float) -> None:
        """An inbound frame went out at ``t``; forget frames older than the window."""
        self._by_payload.setdefault(payload, deque()).append(t)
        self._order.append((t, payload))
        cutoff = t - self._window_s
        order = self._order
        while order and order[0][0] < cutoff:
            old_t, old = order.popleft()
            times = self._by_payload.get(old)
            if times and times[0] <= old_t:  # not matched yet: forget it
                times.popleft()
                if not times:
                    del self._by_payload[old]

    def match(self, payload: bytes, t: float) -> float | None:
        """The round trip in ms if ``payload`` echoes a sent frame, else None."""
        times = self._by_payload.get(payload)
        if not times:
            return None
        sent_at = times.popleft()
        if not times:
            del self._by_payload[payload]
        return (t - sent_at) * 1000.0


class Playback:
    """The caller's loudspeaker: plays queued audio on the real-time tick clock.

    The queue holds int16 arrays at the stream's rate and checkpoint names (str) in arrival
    order. At tick ``j`` the audio of tick ``j - 1`` has finished sounding, so checkpoints
    reached then are answered; a checkpoint reached in the middle of a tick waits for the
    end of that tick. Answering is never early, at most one tick late.

    Where audio plays is decided by when it arrived, not by when this task got to run:
    audio that arrives while the speaker is busy follows on without a gap, and audio that
    arrives while it is silent starts at the first tick after its arrival. A loop that
    wakes late therefore answers late but never changes what was heard.
    """

    def __init__(
        self,
        *,
        t0: float,
        rate: int,
        frame_samples: int,
        frame_s: float,
        record_heard: bool,
        report: StreamReport,
        send_played: Callable[[str], Awaitable[None]],
    ) -> None:
        self._t0 = t0
        self._sleeper = Sleeper()
        self._rate = rate
        self._fs = frame_samples
        self._frame_s = frame_s
        self._record = record_heard
        self._report = report
        self._send_played = send_played
        self._queue: deque[PCM | str] = deque()
        self._arrivals: deque[float] = deque()  # arrival time of each queued array, in order
        self._offset = 0  # samples of the queue's head array already played
        self.queued_samples = 0
        self._free_tick = 0  # first tick at which nothing is sounding any more
        self._finishing: list[str] = []  # checkpoints reached during the sounding tick
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._heard = np.zeros(0, dtype=np.int16)
        self.heard_end = 0  # samples

    @property
    def idle(self) -> bool:
        """Nothing queued or waiting to be answered."""
        return not self._queue and not self._finishing

    async def wait_idle(self) -> None:
        """Wait until everything queued has played (and its checkpoints are answered)."""
        await self._idle.wait()

    def enqueue(self, item: PCM | str) -> None:
        """Queue audio (int16 at the stream's rate) or a checkpoint name."""
        if not isinstance(item, str):
            if item.shape[0] == 0:
                return
            self.queued_samples += item.shape[0]
            self._arrivals.append(now())
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()

    def clear(self) -> list[str]:
        """Drop unplayed audio and unanswered checkpoints (the sounding tick plays on);
        return the dropped checkpoints' names, in order."""
        dropped = self._finishing + [item for item in self._queue if isinstance(item, str)]
        self._queue.clear()
        self._arrivals.clear()
        self._offset = 0
        self.queued_samples = 0
        self._finishing.clear()
        self._idle.set()
        self._wake.set()
        return dropped

    def heard(self, min_samples: int) -> PCM:
        """What was played, at least ``min_samples`` long (silence-padded)."""
        n = max(min_samples, self.heard_end)
        if not self._record:
            return np.zeros(0, dtype=np.int16)
        if self._heard.shape[0] >= n:
            return self._heard[:n].copy()
        out = np.zeros(n, dtype=np.int16)
        out[: self._heard.shape[0]] = self._heard
        return out

    async def run(self) -> None:
        """Play until cancelled; returns quietly if the connection closes."""
        with contextlib.suppress(ConnectionClosed):
            await self._run()

    async def _run(self) -> None:
        while True:
            if self.idle:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            position = (now() - self._t0) / self._frame_s  # in ticks
            if self._free_tick <= position:
                # Nothing is sounding: what was queued before the leading checkpoints played.
                await self._answer_finishing()
                await self._answer_leading_checkpoints()
                if not self._queue:
                    continue
                arrived = (self._arrivals[0] - self._t0) / self._frame_s  # in ticks
                tick = max(self._free_tick, math.ceil(arrived))
            else:
                tick = self._free_tick
            await self._sleeper.until(self._t0 + tick * self._frame_s)
            await self._answer_finishing()
            await self._play_tick(tick)

    async def _answer(self, name: str) -> None:
        self._report.checkpoints.append((name, now() - self._t0))
        await self._send_played(name)

    async def _answer_finishing(self) -> None:
        while self._finishing:
            await self._answer(self._finishing.pop(0))

    async def _answer_leading_checkpoints(self) -> None:
        while self._queue and isinstance(self._queue[0], str):
            name = self._queue.popleft()
            assert isinstance(name, str)
            await self._answer(name)

    async def _play_tick(self, tick: int) -> None:
        fs = self._fs
        start = tick * fs
        n = 0
        queue = self._queue
        while queue and n < fs:
            head = queue[0]
            if isinstance(head, str):
                queue.popleft()
                if n == 0:
                    await self._answer(head)  # may yield: the queue can change meanwhile
                else:
                    self._finishing.append(head)
                continue
            take = min(head.shape[0] - self._offset, fs - n)
            if self._record:
                self._write(start + n, head[self._offset : self._offset + take])
            n += take
            self._offset += take
            self.queued_samples -= take
            if self._offset >= head.shape[0]:
                queue.popleft()
                self._arrivals.popleft()
                self._offset = 0
        if n:
            self._free_tick = tick + 1
            self.heard_end = max(self.heard_end, start + n)
            begin, end = start / self._rate, (start + n) / self._rate
            segments = self._report.played_segments
            if segments and abs(segments[-1][1] - begin) < 0.5 / self._rate:
                segments[-1] = (segments[-1][0], end)
            else:
                segments.append((begin, end))

    def _write(self, pos: int, pcm: PCM) -> None:
        end = pos + pcm.shape[0]
        if end > self._heard.shape[0]:
            grown = np.zeros(max(end, 2 * self._heard.shape[0], 30 * self._rate), dtype=np.int16)
            grown[: self._heard.shape[0]] = self._heard
            self._heard = grown
        self._heard[pos:end] = pcm
