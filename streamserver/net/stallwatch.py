"""Who stalled the event loop: a watchdog thread that names the code a stall is in.

Every stream of a server shares one event loop, so a handler that blocks it (a synchronous
HTTP call, ``time.sleep``, a long computation in ``on_audio_nowait``) delays every call's
audio at once. The server's ticker says when it expects to run next (:meth:`StallWatch.due`);
a daemon thread looks at the loop thread's Python stack every ``warn_s / 4`` while the
ticker is overdue. Once it is ``warn_s`` overdue the stall is reported once:

- **blocked** when every look found the loop thread in the same function: one call is
  holding the loop (the stack says which);
- **busy** when the looks found it in different places: the loop is running, but behind,
  because the core has more work than it can do.

A call in C that keeps the GIL (a long NumPy operation) cannot be looked at until it
returns; then the ticker runs and the stall shows only as event-loop lag.

:class:`StallJudge` is the pure decision (times and stacks in, a :class:`Stall` out);
:class:`StallWatch` is the thread around it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

__all__ = ["Stall", "StallJudge", "StallWatch", "Where", "stack_of"]

#: One frame of a stack: (file, line, function), innermost first in a :data:`Where`.
Where = tuple[tuple[str, int, str], ...]

#: Frames kept of the loop thread's stack (innermost first).
STACK_DEPTH = 8


@dataclass(frozen=True)
class Stall:
    """The loop was ``overdue_s`` late when reported; ``kind`` is "blocked" or "busy"."""

    kind: str
    overdue_s: float
    where: Where

    def describe(self) -> str:
        """The stack as one readable line, innermost call first."""
        return " <- ".join(f"{f}:{n} in {fn}" for f, n, fn in self.where) or "(no stack)"

    def place(self) -> str:
        """Where the last look found the loop's thread, in a few words."""
        if not self.where or _in_loop((self.where[0][0], self.where[0][2])):
            return "in the event loop's own code"
        f, n, fn = self.where[0]
        return f"at {f}:{n} in {fn}"


class StallJudge:
    """Decides, look by look, whether the loop is stalled and how (no threads, no clock)."""

    __slots__ = ("_due", "_first", "_looks", "_reported", "_same", "_stall_due", "warn_s")

    def __init__(self, warn_s: float) -> None:
        if warn_s <= 0:
            raise ValueError(f"warn_s must be > 0, not {warn_s!r}")
        self.warn_s = warn_s
        self._due: float | None = None  # when the loop expects to run next
        self._stall_due: float | None = None  # the due time of the stall being looked at
        self._first: tuple[str, str] = ("", "")  # (file, function) at its first look
        self._same = True  # every look of this stall found that function
        self._looks = 0
        self._reported: float | None = None  # the due time of the stall last reported

    def due(self, t: float | None) -> None:
        """The loop expects to run again at ``t`` (None: it is not waiting on anything)."""
        self._due = t

    @property
    def due_at(self) -> float | None:
        return self._due

    def look(self, now: float, where: Where) -> Stall | None:
        """One look at ``now`` with the loop thread at ``where``: the stall to report, if any
        (once per stall, after at least two looks)."""
        due = self._due
        if due is None or now <= due:
            self._stall_due = None
            return None
        if due == self._reported:
            return None  # reported: wait for the loop to come back
        top = (where[0][0], where[0][2]) if where else ("", "")
        if self._stall_due != due:
            self._stall_due, self._first, self._same, self._looks = due, top, True, 0
        elif top != self._first:
            self._same = False
        if _in_loop(top):
            self._same = False  # between callbacks, in the loop's own C code: busy
        self._looks += 1
        overdue = now - due
        if overdue < self.warn_s or self._looks < 2:
            return None
        self._reported = due
        return Stall("blocked" if self._same else "busy", overdue, where)


def _in_loop(top: tuple[str, str]) -> bool:
    """The loop thread's innermost Python frame is the event loop's own ``run`` (it is
    polling or reading sockets in C), or no Python runs at all."""
    path, func = top
    return not path or (
        func in ("run", "run_until_complete", "run_forever")
        and ("asyncio" in path or "uvloop" in path)
    )


def stack_of(frame: FrameType | None, depth: int = STACK_DEPTH) -> Where:
    """The innermost ``depth`` frames from ``frame`` outwards."""
    out: list[tuple[str, int, str]] = []
    while frame is not None and len(out) < depth:
        code = frame.f_code
        out.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return tuple(out)


class StallWatch:
    """The watchdog thread: looks at the thread that called :meth:`start` (the loop's)."""

    def __init__(
        self,
        warn_s: float,
        on_stall: Callable[[Stall], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.judge = StallJudge(warn_s)
        self._on_stall = on_stall
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = 0

    def due(self, t: float | None) -> None:
        """Called on the loop thread: it expects to run again at ``t`` (``clock`` time)."""
        self.judge.due(t)

    def start(self) -> None:
        """Watch the calling thread (the event loop's) from a daemon thread."""
        if self._thread is not None:
            return
        self._loop_thread = threading.get_ident()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="streamserver-stallwatch")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def _run(self) -> None:
        step = self.judge.warn_s / 4
        judge = self.judge
        while not self._stop.wait(step):
            now = self._clock()
            due = judge.due_at
            if due is None or now <= due:
                continue  # on time (the usual wake-up): no stack to look at
            frame = sys._current_frames().get(self._loop_thread)
            stall = judge.look(now, stack_of(frame))
            del frame
            if stall is not None:
                self._on_stall(stall)
