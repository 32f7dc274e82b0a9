"""The recorder's sidecar: one JSON document per stream that is always whole on disk.

It is written when recording starts (``end_time`` null) and when it stops (times, the
samples each file holds, the error that stopped it, if any). Each write goes to
``{stream_id}.json.tmp``, renamed over the sidecar, so a reader never sees half a document,
and the temporary file never stays behind: it is removed when writing it fails.

A full disk must not leave the sidecar stale: the first write is padded with blanks to
:data:`RESERVE_BYTES` (JSON allows trailing whitespace, and a small file takes a whole
block on disk anyway), so when the final document cannot get a new file, it is written in
place over those reserved bytes, which needs no new space.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from streamserver.handler import StopReason, StreamContext

from .recorddir import describe

__all__ = ["RESERVE_BYTES", "recording_doc", "write_sidecar"]

#: The space the first write reserves for the final document (one disk block).
RESERVE_BYTES = 4096


def write_sidecar(path: Path, doc: dict[str, Any], *, reserve: bool = False) -> None:
    """Write ``doc`` to ``path`` atomically; ``reserve`` pads it to :data:`RESERVE_BYTES`.

    When the temporary file cannot be written (a full disk), a final write (``reserve``
    False) falls back to overwriting the existing sidecar in place, if it is big enough.
    Raises ``OSError`` when neither works; the old sidecar is left as it was.
    """
    data = (json.dumps(doc, indent=2) + "\n").encode()
    if reserve and len(data) < RESERVE_BYTES:
        data += b" " * (RESERVE_BYTES - len(data) - 1) + b"\n"
    tmp = path.with_suffix(".json.tmp")
    try:
        _write_file(tmp, data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # freeing space never needs space
        if reserve or not _overwrite(path, data):
            raise


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _pwrite_all(fd, data)
    finally:
        os.close(fd)


def _pwrite_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        n = os.pwrite(fd, view[done:], done)
        if n <= 0:
            raise OSError(28, os.strerror(28))
        done += n


def _overwrite(path: Path, data: bytes) -> bool:
    """Write ``data`` over ``path``'s own bytes; False when it does not fit in them."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_size < len(data):
            return False
        try:
            _pwrite_all(fd, data)
            os.ftruncate(fd, len(data))
        except OSError:
            return False
        return True
    finally:
        os.close(fd)


def recording_doc(
    ctx: StreamContext,
    *,
    stereo: bool,
    tracks: dict[str, tuple[str, int, int]],
    samples: dict[str, int],
    start_time: str,
    end_time: str | None,
    reason: StopReason | None,
    gaps: int,
    error: BaseException | None,
    prompts: list[dict[str, Any]],
) -> dict[str, Any]:
    """The sidecar of one recording: ``tracks`` gives each track's (file, samples
    received, gap samples filled); ``samples`` what each file holds; ``prompts`` the heard
    track's (none without one)."""
    rate = ctx.sample_rate
    doc: dict[str, Any] = {
        "call_id": ctx.call_id,
        "stream_id": ctx.stream_id,
        "account_id": ctx.account_id,
        "route": ctx.route,
        "format": {"encoding": ctx.format.encoding, "sample_rate": rate},
        "tracks": list(tracks),
        "layout": "stereo" if stereo else "mono",
        "files": {t: path for t, (path, _, _) in tracks.items()},
        "extra_headers": ctx.extra_headers,
        "start_time": start_time,
        "end_time": end_time,
        "stop_reason": reason.value if reason is not None else None,
        "samples": samples,
        "duration_s": {t: round(n / rate, 3) for t, n in samples.items()},
        "gaps": gaps,
        "gap_samples_filled": {t: filled for t, (_, _, filled) in tracks.items()},
        # why the files end early (audio received after it is not in them), else null
        "error": (describe(error) if isinstance(error, OSError) else str(error)) if error else None,
        "samples_not_written": {
            t: max(0, received - samples[t]) for t, (_, received, _) in tracks.items()
        },
        "connection": ctx.connection,
        "resumed_at": ctx.resumed,
        "stream": ctx.stats(),
    }
    if "heard" in tracks:
        doc["heard"] = {"prompts": prompts}
    return doc
