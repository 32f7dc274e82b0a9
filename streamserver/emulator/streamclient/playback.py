"""The caller's side of playback: :class:`Playback` drives the loudspeaker
(:class:`~.speaker.Speaker`) on the real-time clock, the never-early :class:`Sleeper` waits
for it and :class:`EchoTracker` matches echoes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

from websockets.exceptions import ConnectionClosed

from ...audio import PCM
from .report import StreamReport
from .speaker import Answer, Speaker

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
    """The caller's loudspeaker in real time: a :class:`~.speaker.Speaker` moved forward on
    its schedule, its answers handed to ``deliver``.

    The speaker decides what was heard and when each checkpoint's audio ended, from
    arrival times alone; this task only decides when to look. It never looks past
    ``media_limit()`` (seconds since ``t0``: when the next media frame is due to go out),
    so an answer stamped ``t`` always follows every media frame due before ``t`` on the
    wire, however late either task runs: the server's inbound position when the answer
    arrives is where the caller's playback really was. The media sender moves the
    speaker forward itself before each frame (:meth:`take` under its send lock).
    """

    def __init__(
        self,
        *,
        t0: float,
        speaker: Speaker,
        report: StreamReport,
        deliver: Callable[[float], Awaitable[None]],
        media_limit: Callable[[], float],
    ) -> None:
        self._t0 = t0
        self.speaker = speaker
        self._report = report
        self._deliver = deliver
        self._media_limit = media_limit
        self._sleeper = Sleeper()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def idle(self) -> bool:
        """Nothing queued or waiting to be answered."""
        return self.speaker.idle

    @property
    def queued_samples(self) -> int:
        """Audio waiting to be played."""
        return self.speaker.queued_samples

    async def wait_idle(self) -> None:
        """Wait until everything queued has played (and its checkpoints are answered)."""
        await self._idle.wait()

    def enqueue_audio(self, pcm: PCM, at: float) -> None:
        """Audio that arrived at ``at`` (:func:`now` time)."""
        self.speaker.enqueue_audio(pcm, at - self._t0)
        self._woken()

    def enqueue_checkpoint(self, name: str, at: float, link: int = 0) -> None:
        """A checkpoint that arrived at ``at`` on socket ``link``."""
        self.speaker.enqueue_checkpoint(name, at - self._t0, link)
        self._woken()

    def clear(self, at: float) -> tuple[list[Answer], list[Answer]]:
        """A clear at ``at``: the answers due by then (to send first) and the dropped
        checkpoints (see :meth:`Speaker.clear`)."""
        due, dropped = self.speaker.clear(at - self._t0)
        self._record(due)
        self._woken()
        return due, dropped

    def take(self, limit: float) -> list[Answer]:
        """Move the speaker to ``limit`` seconds since ``t0``; the answers now due."""
        due = self.speaker.advance(limit)
        self._record(due)
        if self.speaker.idle:
            self._idle.set()
        return due

    def media_moved(self) -> None:
        """The media sender sent a frame or finished: a wait on it may be over."""
        self._wake.set()

    def heard(self, min_samples: int) -> PCM:
        """What was played, at least ``min_samples`` long (silence-padded)."""
        return self.speaker.heard_audio(min_samples)

    async def run(self) -> None:
        """Play until cancelled; returns quietly if the connection closes."""
        with contextlib.suppress(ConnectionClosed):
            await self._run()

    async def _run(self) -> None:
        speaker = self.speaker
        while True:
            nxt = speaker.next_time()
            if nxt is None:
                self._idle.set()
                await self._wait_wake()
                continue
            await self._sleeper.until(self._t0 + nxt)
            if now() - self._t0 < nxt:
                continue  # woken early by new audio or a clear: look again
            if self._media_limit() < nxt:
                # The media sender is behind: frames due before this answer have not gone
                # out. It moves the speaker itself as it catches up and wakes us.
                await self._wait_wake()
                continue
            await self._deliver(min(now() - self._t0, self._media_limit()))
            if speaker.idle:
                self._idle.set()

    async def _wait_wake(self) -> None:
        self._wake.clear()
        await self._wake.wait()

    def _woken(self) -> None:
        if not self.speaker.idle:
            self._idle.clear()
        else:
            self._idle.set()
        self._wake.set()
        self._sleeper.wake()

    def _record(self, answers: list[Answer]) -> None:
        for a in answers:
            self._report.checkpoints.append((a.name, a.stamp))
