"""The recorder's directory health: a start-up probe and what ``/readyz`` reports.

:func:`probe` creates the directory, writes and deletes a small file, so an unwritable
``record_dir`` stops the server at start-up instead of losing every call. While serving,
:data:`HEALTH` remembers a directory whose writes fail with an OS error (disk full, unmounted,
read-only) until a write there succeeds again or a probe passes: :meth:`DirHealth.problem`
answers ``/readyz`` from memory and hands a re-probe to the writer thread every
:data:`REPROBE_S`; a new recording in a failed directory first probes it again
(:meth:`DirHealth.recheck`, at most every :data:`RECHECK_S`), so the first stream after the
disk has room again is recorded, and the ones before it are refused without touching it.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["HEALTH", "DirHealth", "close_reason", "describe", "probe"]

#: How often an unhealthy directory is probed again (on the writer thread).
REPROBE_S = 5.0
#: How often a new recording may probe an unhealthy directory before refusing.
RECHECK_S = 1.0

#: errno values that mean "no room": the stream's close reason says storage is full.
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def describe(exc: OSError) -> str:
    """An OS error in a few words, without a traceback: ``No space left on device (ENOSPC)``."""
    if not exc.errno:
        return str(exc)
    return f"{os.strerror(exc.errno)} ({errno.errorcode.get(exc.errno, exc.errno)})"


def close_reason(exc: BaseException | None) -> str:
    """A stream's close reason (a few words, no path) for a recording that failed."""
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return "recording storage full"
    return "recording storage failed"


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
        #: directory -> (the error, when it was last seen or probed)
        self._bad: dict[Path, tuple[OSError, float]] = {}

    def failed(self, directory: Path, exc: OSError) -> bool:
        """Note a failed write in ``directory``; True when it was healthy until now."""
        with self._lock:
            first = directory not in self._bad
            self._bad[directory] = (exc, time.monotonic())
            return first

    def ok(self, directory: Path) -> None:
        """A write in ``directory`` succeeded."""
        if self._bad:
            with self._lock:
                self._bad.pop(directory, None)

    def failure(self, directory: Path) -> OSError | None:
        """The error that made ``directory`` unhealthy, else None (from memory)."""
        if not self._bad:
            return None
        with self._lock:
            entry = self._bad.get(directory)
        return entry[0] if entry is not None else None

    def problem(
        self, directory: Path, reprobe: Callable[[Callable[[], None]], object]
    ) -> str | None:
        """Why ``directory`` cannot take recordings now, else None; when the last look is
        older than :data:`REPROBE_S`, hand a re-probe to ``reprobe`` (the writer thread)."""
        with self._lock:
            entry = self._bad.get(directory)
            if entry is None:
                return None
            exc, seen = entry
            due = time.monotonic() - seen >= REPROBE_S
            if due:
                self._bad[directory] = (exc, time.monotonic())
        if due:
            reprobe(lambda: self._reprobe(directory))
        return f"record_dir {directory} cannot be written: {describe(exc)}"

    def recheck(self, directory: Path) -> OSError | None:
        """On the writer thread, for a new recording: ``directory``'s error, after probing
        it again when the last look is older than :data:`RECHECK_S` (None: healthy)."""
        with self._lock:
            entry = self._bad.get(directory)
            if entry is None:
                return None
            if time.monotonic() - entry[1] < RECHECK_S:
                return entry[0]
        self._reprobe(directory)
        return self.failure(directory)

    def _reprobe(self, directory: Path) -> None:
        try:
            probe(directory)
        except OSError as exc:
            self.failed(directory, exc)
        else:
            self.ok(directory)


#: The process's record directories (one writer thread serves them all).
HEALTH = DirHealth()
