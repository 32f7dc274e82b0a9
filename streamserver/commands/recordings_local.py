"""``streamserver recordings local``: the recorder handler's files on this machine.

The ``recorder`` handler writes ``{record_dir}/{call_id}/{stream_id}.{track}.wav`` (or
``.flac``) and a ``{stream_id}.json`` sidecar. This lists them from the sidecars: length,
samples, format, gaps filled with silence, and why the stream ended. It reads files only;
no server or API is needed.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ._common import fail, print_json, print_table

__all__ = ["add_local_parser", "local_recordings"]

RECORD_DIR_ENV = "STREAMSERVER_HANDLER__RECORDER__RECORD_DIR"

_EPILOG = f"""\
examples:
  streamserver recordings local
  streamserver recordings local --call 2b3c... --json
  streamserver recordings local --record-dir /var/lib/streamserver/recordings

The record dir is --record-dir, else ${RECORD_DIR_ENV}, else [handler.recorder] record_dir
of --config, else ./recordings (what `streamserver serve` uses).
Exit codes: 0 done (also when there are none), 2 bad arguments or no such directory."""


def add_local_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamserver recordings local``."""
    p = sub.add_parser(
        "local",
        help="the recorder handler's files on this machine (not Plivo's)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--call", metavar="CALL_ID", help="only this call's streams")
    p.add_argument("--record-dir", metavar="DIR", help="where the recorder writes")
    p.add_argument("--config", "-c", metavar="FILE", help="config file ([handler.recorder])")
    p.add_argument("--json", action="store_true", help="print the sidecars as JSON")
    p.set_defaults(func=local_main)


def _record_dir(args: argparse.Namespace) -> Path:
    if args.record_dir:
        return Path(args.record_dir)
    if os.environ.get(RECORD_DIR_ENV):
        return Path(os.environ[RECORD_DIR_ENV])
    if args.config:
        from ..settings import ConfigError, load_settings

        try:
            table = load_settings(args.config).handler.get("recorder", {})
        except ConfigError as exc:
            raise ValueError(f"configuration error: {exc}") from None
        if table.get("record_dir"):
            return Path(str(table["record_dir"]))
    return Path("recordings")


def local_recordings(record_dir: Path, call_id: str | None = None) -> list[dict[str, Any]]:
    """Every sidecar under ``record_dir`` (one call's with ``call_id``), oldest first.

    Each is the sidecar's JSON plus ``sidecar`` (its path); a stream still being recorded
    has ``stop_reason`` None. Unreadable sidecars are skipped.
    """
    dirs = [record_dir / call_id] if call_id else sorted(p for p in record_dir.iterdir())
    found = []
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and "stream_id" in doc:
                doc["sidecar"] = str(path)
                found.append(doc)
    found.sort(key=lambda d: str(d.get("start_time") or ""))
    return found


def _row(doc: dict[str, Any]) -> tuple[Any, ...]:
    durations = doc.get("duration_s") or {}
    samples = doc.get("samples") or {}
    fmt = doc.get("format") or {}
    files = [f for f in (doc.get("files") or {}).values() if f]
    return (
        doc.get("call_id"),
        doc.get("stream_id"),
        " ".join(f"{t}:{s:g}" for t, s in durations.items()),
        " ".join(f"{t}:{n}" for t, n in samples.items()),
        f"{fmt.get('encoding', '?')};rate={fmt.get('sample_rate', '?')}",
        doc.get("gaps"),
        doc.get("stop_reason") or "recording",
        " ".join(Path(f).name for f in files),
    )


def local_main(args: argparse.Namespace) -> int:
    """Run ``streamserver recordings local``."""
    try:
        record_dir = _record_dir(args)
    except ValueError as exc:
        fail("recordings local", exc)
        return 2
    if not record_dir.is_dir():
        fail("recordings local", f"no record dir {str(record_dir)!r} (--record-dir DIR)")
        return 2
    if args.call and (args.call in ("", ".", "..") or "/" in args.call or "\\" in args.call):
        fail("recordings local", f"--call {args.call!r} is not a call id")
        return 2
    docs = local_recordings(record_dir, args.call)
    if args.json:
        print_json(docs)
        return 0
    print_table(
        [_row(d) for d in docs],
        ("call_id", "stream_id", "seconds", "samples", "format", "gaps", "ended", "files"),
        empty=f"no local recordings under {record_dir}",
    )
    return 0
