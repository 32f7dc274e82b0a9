"""The recorders' one writer thread and their one flush timer per event loop.

Every recorder of the process buffers in memory; once per ``flush_interval_s`` each one's
buffers are collected by a single timer (in slices) and handed to the writer thread: a
few wake-ups and thread hand-offs per second for the whole process, instead of a timer,
a future and a coroutine per stream. One thread keeps each file's writes in
order and the disk off the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from .recorddir import HEALTH

__all__ = ["DiskWriter", "Flushable", "writer"]

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def writer() -> ThreadPoolExecutor:
    """The process's recorder writer thread."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder-writer")
        return _executor


class Flushable(Protocol):
    """What the flush timer needs of a recorder."""

    @property
    def root(self) -> Path:
        """Its record directory (for the directory's health)."""
        ...

    def collect(self, final: bool) -> dict[str, Any]:
        """Hand over what is buffered (on the event loop)."""
        ...

    def write(self, batches: dict[str, Any]) -> None:
        """Write collected batches (on the writer thread)."""
        ...

    def write_failed(self, exc: Exception) -> None:
        """A write failed (on the writer thread); the recorder stops at its next call."""
        ...


class DiskWriter:
    """The flush timer of one event loop and interval (:meth:`get` finds it).

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
        """The running loop's flush timer for ``interval_s``."""
        loop = asyncio.get_running_loop()
        key = (id(loop), interval_s)
        w = cls._by_key.get(key)
        if w is None or w.loop is not loop:
            w = cls._by_key[key] = DiskWriter(loop, interval_s)
        return w

    def add(self, rec: Flushable) -> None:
        """Flush ``rec`` from now on."""
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
        """Stop flushing ``rec`` (it writes its last batch itself)."""
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
            rec.write(batches)
        except Exception as exc:
            rec.write_failed(exc)
            if isinstance(exc, OSError):
                HEALTH.failed(rec.root, exc)
        else:
            HEALTH.ok(rec.root)
