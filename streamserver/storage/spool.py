"""The recorder's spool: which recordings are due for upload, and freeing them after.

A recording is finished when its sidecar (``{record_dir}/{call_id}/{stream_id}.json``) has a
``stop_reason``; an unfinished one (its process died) is due once none of its files changed
for a while, and its sidecar is marked ``recovered`` before it goes up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "audio_paths",
    "claim",
    "delete_spool",
    "find_recordings",
    "is_finished",
    "last_change",
    "mark_recovered",
    "read_sidecar",
]


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The recorder sidecar at ``path``; None if unreadable or not a sidecar."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        return None  # not a recorder sidecar
    return doc


def is_finished(doc: Mapping[str, Any]) -> bool:
    """The recorder closed the audio files (``stop_reason``), or it is a recovered orphan."""
    return doc.get("stop_reason") is not None or bool(doc.get("recovered"))


def audio_paths(sidecar: Path, doc: Mapping[str, Any]) -> dict[str, Path]:
    """The recording's audio files by track."""
    # The sidecar holds absolute paths of when it was written; the files sit next to it.
    return {
        str(track): sidecar.parent / Path(str(p)).name
        for track, p in doc["files"].items()
        if isinstance(p, str) and p
    }


def last_change(sidecar: Path, doc: Mapping[str, Any]) -> float:
    """When the sidecar or one of its audio files was last written (0.0: none exists)."""
    times = []
    for p in [sidecar, *audio_paths(sidecar, doc).values()]:
        with contextlib.suppress(OSError):
            times.append(p.stat().st_mtime)
    return max(times, default=0.0)


def find_recordings(
    record_dir: str | os.PathLike[str], *, orphan_after_s: float = 0.0, now: float | None = None
) -> Iterator[Path]:
    """Sidecars under ``record_dir`` ready for upload: finished ones, and (with
    ``orphan_after_s`` > 0) unfinished ones untouched for that long."""
    root = Path(record_dir)
    now = time.time() if now is None else now
    try:
        call_dirs = [d for d in root.iterdir() if d.is_dir()]
    except OSError:
        return
    for d in sorted(call_dirs):
        for sidecar in sorted(d.glob("*.json")):
            doc = read_sidecar(sidecar)
            if doc is None:
                continue
            if is_finished(doc):
                yield sidecar
            elif orphan_after_s > 0 and now - last_change(sidecar, doc) >= orphan_after_s:
                yield sidecar


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def mark_recovered(sidecar: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """An orphan's sidecar says so before it goes up: ``recovered``, and its end time is
    the last write (the process died before writing its own)."""
    doc = dict(doc, recovered=True, end_time=_iso(last_change(sidecar, doc)))
    tmp = sidecar.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, sidecar)
    return doc


def lock_path(sidecar: Path) -> Path:
    """The lock file of a recording (``{stream_id}.json.lock``: not a ``*.json``)."""
    return sidecar.with_name(sidecar.name + ".lock")


@contextlib.contextmanager
def claim(sidecar: Path) -> Iterator[bool]:
    """Hold the recording's lock (an ``flock`` on :func:`lock_path`) while it is uploaded:
    yields True when this process has it, False when another process does (the workers
    of a host share one spool, and each re-scans all of it). The kernel releases the lock
    when its process dies, so a worker killed mid-upload never leaves a recording stuck."""
    try:
        fd = os.open(lock_path(sidecar), os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # the call directory went with an upload just finished
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
        if not sidecar.exists():  # uploaded and deleted (here, or by the worker before us)
            lock_path(sidecar).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                sidecar.parent.rmdir()  # only when empty
    finally:
        os.close(fd)


def delete_spool(files: list[Path], sidecar: Path) -> None:
    """Delete an uploaded recording's ``files`` and ``sidecar`` (and its lock file), and its
    call directory once empty."""
    # Audio first, the sidecar last: whatever a crash interrupts, the sidecar remains.
    for path in files:
        path.unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)
    lock_path(sidecar).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        sidecar.parent.rmdir()  # only when empty
