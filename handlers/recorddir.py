"""The recorder's directory health: a start-up probe and what ``/readyz`` reports.

:func:`probe` creates the directory, writes and deletes a small file, so an unwritable
``record_dir`` stops the server at start-up instead of losing every call. While serving,
:data:`HEALTH` remembers a directory whose writes fail with an OS error (disk full, unmounted,
read-only) until a write there succeeds again or a re-probe on the writer thread passes;
:meth:`DirHealth.problem` answers ``/readyz`` from memory.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["HEALTH", "DirHealth", "describe", "probe"]

#: How often an unhealthy directory is probed again (on the writer thread).
REPROBE_S = 5.0


def describe(exc: OSError) -> str:
    """An OS error in a few words, without a traceback: ``No space left on device (ENOSPC)``."""
    if not exc.errno:
        return str(exc)
    return f"{os.strerror(exc.errno)} ({errno.errorcode.get(exc.errno, exc.errno)})"


def probe(directory: Path) -> None:
    """Create ``directory`` if needed, then write, read back and delete a probe file in it.
    Raises ``OSError`` when any step fails."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f".probe-{os.getpid()}-{threading.get_ident()}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if os.write(fd, b"probe") != 5:
                raise OSError(28, os.strerror(28))  # a short write: the disk is full
        finally:
            os.close(fd)
    finally:
        path.unlink(missing_ok=True)


class DirHealth:
    """Record directories whose writes fail, and why (thread-safe: the writer thread reports,
    the event loop asks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bad: dict[Path, tuple[str, float]] = {}

    def failed(self, directory: Path, exc: OSError) -> bool:
        """Note a failed write in ``directory``; True when it was healthy until now."""
        with self._lock:
            first = directory not in self._bad
            self._bad[directory] = (describe(exc), time.monotonic())
            return first

    def ok(self, directory: Path) -> None:
        """A write in ``directory`` succeeded."""
        if self._bad:
            with self._lock:
                self._bad.pop(directory, None)

    def problem(
        self, directory: Path, reprobe: Callable[[Callable[[], None]], object]
    ) -> str | None:
        """Why ``directory`` cannot take recordings now, else None; when the last look is
        older than :data:`REPROBE_S`, hand a re-probe to ``reprobe`` (the writer thread)."""
        with self._lock:
            entry = self._bad.get(directory)
            if entry is None:
                return None
            reason, seen = entry
            due = time.monotonic() - seen >= REPROBE_S
            if due:
                self._bad[directory] = (reason, time.monotonic())
        if due:
            reprobe(lambda: self._reprobe(directory))
        return f"record_dir {directory} cannot be written: {reason}"

    def _reprobe(self, directory: Path) -> None:
        try:
            probe(directory)
        except OSError as exc:
            self.failed(directory, exc)
        else:
            self.ok(directory)


#: The process's record directories (one writer thread serves them all).
HEALTH = DirHealth()
