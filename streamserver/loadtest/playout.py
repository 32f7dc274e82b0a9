"""What the caller hears: a playout (jitter) buffer simulated from arrival times.

A phone network plays the audio a bot sends through a buffer on a steady 20 ms clock;
audio that comes late leaves the buffer empty, and the caller hears a gap. The load
generator cannot afford a timer per stream per tick, so :class:`Playout` works it out from
the arrival time of each outbound audio frame alone, with a few float operations per frame:

- A *spurt* of the bot's speech begins with its first frame (after the stream's start, a
  clear, or the caller's next turn). Its playout starts ``prebuffer_s`` (60 ms) after that
  frame arrived, one tick every 20 ms; the first frame plays at tick 0.
- Frames queue in arrival order (TCP loses none); at each tick the next one plays. A frame
  that arrives after its tick was due plays at the first tick after its arrival, and every
  tick in between had an empty buffer: an *underrun*, 20 ms of silence the caller hears.
- Audio is expected from the spurt's first frame to its last: the silence after the last
  frame (the bot finished, or was cleared) is not an underrun.

An outbound frame longer than 20 ms (Exotel's 200 ms) fills ``frame_ticks`` ticks.
"""

from __future__ import annotations

import math

__all__ = ["TICK_S", "Playout"]

#: One playout tick: the 20 ms of audio a frame carries.
TICK_S = 0.020
_TICKS_PER_S = 1.0 / TICK_S


class Playout:
    """One stream's simulated playout buffer (see the module docstring).

    Per frame :meth:`arrive` is the only call; the totals are read at the end:
    ``underruns`` (ticks with an empty buffer), ``longest`` (the longest run of them, in
    ticks) and :meth:`ticks_played` (the playout time of every spurt so far, in ticks).
    """

    __slots__ = (
        "_ceil",
        "frame_ticks",
        "longest",
        "next",
        "prebuffer_s",
        "t0",
        "ticks",
        "underruns",
    )

    def __init__(self, *, prebuffer_s: float = 0.060, frame_ticks: int = 1) -> None:
        if prebuffer_s < 0 or frame_ticks < 1:
            raise ValueError("need prebuffer_s >= 0 and frame_ticks >= 1")
        self.prebuffer_s = prebuffer_s
        self.frame_ticks = frame_ticks
        #: Time of tick 0 of the current spurt; 0.0 while there is none.
        self.t0 = 0.0
        #: The first tick of the current spurt not yet taken by a frame.
        self.next = 0
        self.underruns = 0
        self.longest = 0
        #: Ticks played by the spurts that ended.
        self.ticks = 0
        self._ceil = math.ceil

    def arrive(self, t: float) -> int:
        """A frame arrived at ``t`` (monotonic seconds). Returns -1 when it began a spurt,
        else the ticks of silence the caller heard just before it (0: it was in time)."""
        t0 = self.t0
        if not t0:
            self.t0 = t + self.prebuffer_s
            self.next = self.frame_ticks
            return -1
        due = self._ceil((t - t0) * _TICKS_PER_S)
        nxt = self.next
        if due <= nxt:
            self.next = nxt + self.frame_ticks
            return 0
        gap = due - nxt
        self.underruns += gap
        if gap > self.longest:
            self.longest = gap
        self.next = due + self.frame_ticks
        return gap

    def played_by(self, now: float) -> float:
        """When everything that arrived so far will have finished playing (``now`` if
        nothing is buffered): the time to answer a checkpoint sent after it."""
        if not self.t0:
            return now
        return max(now, self.t0 + self.next * TICK_S)

    def end(self, t: float) -> None:
        """The spurt ends at ``t`` (a clear, a new turn, the stream's end): what was still
        buffered is never heard; the next frame begins a new spurt."""
        t0 = self.t0
        if not t0:
            return
        heard = self._ceil((t - t0) * _TICKS_PER_S)
        self.ticks += min(self.next, max(0, heard))
        self.t0 = 0.0
        self.next = 0

    def ticks_played(self, now: float) -> int:
        """Playout ticks of every spurt, the current one up to ``now``."""
        if not self.t0:
            return self.ticks
        heard = self._ceil((now - self.t0) * _TICKS_PER_S)
        return self.ticks + min(self.next, max(0, heard))
