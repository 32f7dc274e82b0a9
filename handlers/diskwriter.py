"""The recorders' one writer thread and the once-per-interval flush that feeds it.

Every recorder of the process buffers audio on the event loop; :class:`DiskWriter`
collects their buffers once per ``flush_interval_s`` and writes them on the single writer
thread (:func:`writer`): a few timers and thread hand-offs per second for the whole
process, instead of a wake-up, a future and a coroutine per stream. One thread keeps each
file's writes in order and disk I/O off the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

__all__ = ["DiskWriter", "Flushable", "writer"]

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def writer() -> ThreadPoolExecutor:
    """The process's writer thread (created on first use)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder-writer")
        return _executor


class Flushable(Protocol):
    """What the flush needs of a recorder."""

    def collect(self, final: bool) -> dict[str, Any]:
        """On the loop: hand over what is buffered (empty: nothing)."""
        ...

    def write_batches(self, batches: dict[str, Any]) -> None:
        """On the writer thread: write what :meth:`collect` handed over."""
        ...

    def write_failed(self, exc: Exception) -> None:
        """On the writer thread: :meth:`write_batches` raised ``exc`` (disk full...)."""
        ...


class DiskWriter:
    """The flush timer of one event loop and interval, shared by its recorders.

    The recorders are spread over ``SLICES`` slices, one flushed every
    ``interval_s / SLICES``: each is still flushed once per interval, and the work (on the
    loop, and the writer thread's share of the GIL) comes in small pieces, not one burst
    that would stall every stream at once.
    """

    SLICES = 10
    _by_key: dict[tuple[int, float], DiskWriter] = {}  # noqa: RUF012 - process registry

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_s: float) -> None:
        self.loop = loop
        self.interval_s = interval_s
        self.slices: list[set[Flushable]] = [set() for _ in range(self.SLICES)]
        self.where: dict[Flushable, int] = {}
        self.turn = 0
        self.handle: asyncio.TimerHandle | None = None

    @classmethod
    def get(cls, interval_s: float) -> DiskWriter:
        """The running loop's flush for ``interval_s``."""
        loop = asyncio.get_running_loop()
        key = (id(loop), interval_s)
        w = cls._by_key.get(key)
        if w is None or w.loop is not loop:
            w = cls._by_key[key] = DiskWriter(loop, interval_s)
        return w

    def add(self, rec: Flushable) -> None:
        # Into the emptiest slice, which is the next to be flushed among equals: a new
        # recording is flushed within one interval, like every other.
        k = min(
            range(self.SLICES), key=lambda i: (len(self.slices[i]), (i - self.turn) % self.SLICES)
        )
        self.slices[k].add(rec)
        self.where[rec] = k
        if self.handle is None:
            self.handle = self.loop.call_later(self.interval_s / self.SLICES, self._tick)

    def remove(self, rec: Flushable) -> None:
        k = self.where.pop(rec, None)
        if k is not None:
            self.slices[k].discard(rec)

    def _tick(self) -> None:
        self.handle = None
        if not self.where:
            return
        self.handle = self.loop.call_later(self.interval_s / self.SLICES, self._tick)
        due = self.slices[self.turn]
        self.turn = (self.turn + 1) % self.SLICES
        jobs = []
        for rec in due:
            batches = rec.collect(final=False)
            if batches:
                jobs.append((rec, batches))
        if jobs:
            self.loop.run_in_executor(writer(), _write_jobs, jobs)


def _write_jobs(jobs: list[tuple[Flushable, dict[str, Any]]]) -> None:
    # On the writer thread. One recorder's failure (disk full...) must not stop the others.
    for rec, batches in jobs:
        try:
            rec.write_batches(batches)
        except Exception as exc:
            rec.write_failed(exc)
