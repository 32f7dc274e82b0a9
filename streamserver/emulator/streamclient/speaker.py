"""The caller's loudspeaker as a timeline (pure: no clock, no asyncio).

:class:`Speaker` is told what arrived and when (``enqueue_audio``, ``enqueue_checkpoint``,
``clear``, each with its arrival time) and is moved forward with :meth:`Speaker.advance`;
it returns the checkpoint answers that are due, each stamped with the time its audio had
finished. Times are seconds since the stream's start (``t0``).

What "heard" means, exactly: the speaker is a 20 ms mixer on the absolute schedule
``j * frame_s``. Tick ``j`` sounds samples ``[j * fs, (j + 1) * fs)`` of ``heard``, filled
with the queued audio that had *arrived* by ``j * frame_s`` (in order; audio arriving while
a tick sounds waits for the next tick). A checkpoint is answered once everything queued
before it has sounded: at the start of the tick after its audio's last sample, or at its
own arrival if that is later. A clear at ``c`` lets the tick sounding at ``c`` play on
and drops the rest. None of this depends on when :meth:`advance` is called: a driver
that runs late gets the same heard audio and the same stamps, it only answers later.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ...audio import PCM

__all__ = ["Answer", "Speaker"]

_EPS = 1e-9  # seconds: float slack when comparing arrival times with tick times


@dataclass(frozen=True, slots=True)
class Answer:
    """A checkpoint whose audio has played: answer ``name`` on socket ``link``; its audio
    finished at ``stamp`` seconds."""

    name: str
    stamp: float
    link: int = 0


@dataclass(slots=True)
class _Audio:
    pcm: PCM
    at: float


@dataclass(slots=True)
class _Checkpoint:
    name: str
    at: float
    link: int


class Speaker:
    """One stream's loudspeaker (see the module docstring for the rules).

    ``heard_audio()`` is the heard track (when ``record`` is true); ``segments`` lists
    the spans that sounded, merged where contiguous, in seconds.
    """

    def __init__(self, *, rate: int, frame_samples: int, frame_s: float, record: bool) -> None:
        self._rate = rate
        self._fs = frame_samples
        self._frame_s = frame_s
        self._record = record
        self._queue: deque[_Audio | _Checkpoint] = deque()
        self._offset = 0  # samples of the queue's head audio already played
        self._free_tick = 0  # the first tick at which nothing is sounding any more
        self._answers: deque[Answer] = deque()  # due at their stamp, in order
        self.queued_samples = 0
        self._heard = np.zeros(0, dtype=np.int16)
        self.heard_end = 0  # samples
        self.segments: list[tuple[float, float]] = []

    # -- what arrives ---------------------------------------------------------------------

    def enqueue_audio(self, pcm: PCM, at: float) -> None:
        """Audio (int16 at the stream's rate) arrived at ``at``."""
        if pcm.shape[0]:
            self._queue.append(_Audio(pcm, at))
            self.queued_samples += pcm.shape[0]

    def enqueue_checkpoint(self, name: str, at: float, link: int = 0) -> None:
        """A checkpoint arrived at ``at`` on socket ``link``."""
        self._queue.append(_Checkpoint(name, at, link))

    def clear(self, at: float) -> tuple[list[Answer], list[Answer]]:
        """A clear arrived at ``at``: everything up to ``at`` sounds (the tick sounding then
        plays on), the rest is dropped. Returns the answers due by then and the dropped
        checkpoints (as answers that will never be given), both in order."""
        due = self.advance(at)
        dropped = list(self._answers)
        dropped += [
            Answer(item.name, at, item.link) for item in self._queue if type(item) is _Checkpoint
        ]
        self._queue.clear()
        self._answers.clear()
        self._offset = 0
        self.queued_samples = 0
        return due, dropped

    # -- time -----------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing waiting to be answered."""
        return not self._queue and not self._answers

    def next_time(self) -> float | None:
        """When :meth:`advance` would next have something to do (None: idle)."""
        if self._answers:
            return self._answers[0].stamp
        if not self._queue:
            return None
        head = self._queue[0]
        if type(head) is _Checkpoint:
            return max(self._free_tick * self._frame_s, head.at)
        return self._start_tick(head.at) * self._frame_s

    def advance(self, limit: float) -> list[Answer]:
        """Play every tick that starts by ``limit``; return the answers due by then."""
        out: list[Answer] = []
        answers, queue = self._answers, self._queue
        while True:
            while answers and answers[0].stamp <= limit + _EPS:
                out.append(answers.popleft())
            if not queue:
                break
            head = queue[0]
            if type(head) is _Checkpoint:
                queue.popleft()
                stamp = max(self._free_tick * self._frame_s, head.at)
                answers.append(Answer(head.name, stamp, head.link))
                continue
            tick = self._start_tick(head.at)
            if tick * self._frame_s > limit + _EPS:
                break
            self._play_tick(tick)
        return out

    def heard_audio(self, min_samples: int) -> PCM:
        """What sounded, at least ``min_samples`` long (silence-padded); empty when not
        recording."""
        if not self._record:
            return np.zeros(0, dtype=np.int16)
        n = max(min_samples, self.heard_end)
        if self._heard.shape[0] >= n:
            return self._heard[:n].copy()
        out = np.zeros(n, dtype=np.int16)
        out[: self._heard.shape[0]] = self._heard
        return out

    # -- internals ------------------------------------------------------------------------

    def _start_tick(self, at: float) -> int:
        # The first tick audio arriving at `at` can sound in: not before the speaker is
        # free, not before the audio is there.
        return max(self._free_tick, math.ceil(at / self._frame_s - _EPS))

    def _play_tick(self, tick: int) -> None:
        fs = self._fs
        begins = tick * self._frame_s + _EPS
        start = tick * fs
        n = 0
        queue = self._queue
        while queue and n < fs:
            head = queue[0]
            if head.at > begins:
                break  # arrived after this tick began: it sounds from a later tick
            if isinstance(head, _Checkpoint):
                queue.popleft()
                # Its audio ended inside this tick: answered when the tick is over.
                self._answers.append(Answer(head.name, (tick + 1) * self._frame_s, head.link))
                continue
            pcm = head.pcm
            take = min(pcm.shape[0] - self._offset, fs - n)
            if self._record:
                self._write(start + n, pcm[self._offset : self._offset + take])
            n += take
            self._offset += take
            self.queued_samples -= take
            if self._offset >= pcm.shape[0]:
                queue.popleft()
                self._offset = 0
        if not n:
            return
        self._free_tick = tick + 1
        self.heard_end = max(self.heard_end, start + n)
        begin, end = start / self._rate, (start + n) / self._rate
        segments = self.segments
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
