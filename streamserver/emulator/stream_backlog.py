"""How far behind a stream's sender is: the audio Plivo holds for a server that does not
keep up, and the ``DegradedStream`` levels it crosses.

Plivo buffers up to 40 s of a stream's audio when the WebSocket does not take it fast
enough and sends ``DegradedStream`` when the buffer reaches 30, 60 and 90 %; when it is
full the stream is dropped. The emulator's stream client sends each 20 ms frame at its due
time on an absolute clock and waits when the socket pushes back, so the audio held is
exactly what is due but not yet written: ``now - (t0 + frames written * 20 ms)``, where
``t0`` is when the socket's first frame went out. Pure: the caller passes the clock.
"""

from __future__ import annotations

__all__ = ["DEGRADED_LEVELS", "SendBacklog"]

#: Fill levels (percent of the buffer) that trigger a ``DegradedStream`` callback.
DEGRADED_LEVELS = (30, 60, 90)


class SendBacklog:
    """The backlog of one socket's sender against a buffer of ``buffer_s`` seconds.

    Call :meth:`progress` after each time step of frames is written (``ticks`` of them so
    far) and :meth:`check` now and then; each level of :data:`DEGRADED_LEVELS` is
    reported once, the first time the backlog reaches it.
    """

    def __init__(self, buffer_s: float, frame_s: float) -> None:
        if buffer_s <= 0 or frame_s <= 0:
            raise ValueError("buffer_s and frame_s must be > 0")
        self.buffer_s = buffer_s
        self._frame_s = frame_s
        self._t0: float | None = None
        self._ticks = 0
        self._done = False
        self._reported = 0  # levels already reported, in order
        self.peak_s = 0.0

    def progress(self, now: float, ticks: int, *, done: bool = False) -> None:
        """``ticks`` time steps have been written (``done``: all of them); the first call
        starts the clock."""
        if self._t0 is None:
            self._t0 = now - (ticks - 1) * self._frame_s
        self._ticks = ticks
        self._done = done

    def backlog_s(self, now: float) -> float:
        """Seconds of audio due but not written yet (0 when on time, not started or
        done)."""
        if self._t0 is None or self._done:
            return 0.0
        return max(0.0, now - (self._t0 + self._ticks * self._frame_s))

    def check(self, now: float) -> list[int]:
        """The levels (percent) reached since the last check, lowest first."""
        backlog = self.backlog_s(now)
        self.peak_s = max(self.peak_s, backlog)
        crossed: list[int] = []
        while (
            self._reported < len(DEGRADED_LEVELS)
            and backlog >= self.buffer_s * DEGRADED_LEVELS[self._reported] / 100
        ):
            crossed.append(DEGRADED_LEVELS[self._reported])
            self._reported += 1
        return crossed

    def full(self, now: float) -> bool:
        """The buffer is full: Plivo drops such a stream."""
        return self.backlog_s(now) >= self.buffer_s
