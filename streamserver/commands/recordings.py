"""``streamserver recordings list|download|delete``: recordings stored by Plivo."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import API_EPILOG, UsageError, api_parent, print_json, print_table, run_api

if TYPE_CHECKING:
    from ..rest import AsyncPlivoClient
    from ..rest.models import Recording

__all__ = ["add_parser"]

_EPILOG = f"""\
examples:
  streamserver recordings list --call 2b3c...
  streamserver recordings list --all --json
  streamserver recordings download 9f1e... --out recordings/   # -> recordings/9f1e....wav
  streamserver recordings download 9f1e... --out call.mp3
  streamserver recordings delete 9f1e... 7a2d...

{API_EPILOG}"""

#: A recording id from the API becomes a file name only when it looks like one.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamserver recordings``."""
    p = subparsers.add_parser(
        "recordings",
        help="list, download or delete recordings (Plivo Voice API)",
        description="Recordings stored by Plivo, through the Plivo Voice API.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="recordings_command", metavar="ACTION", required=True)
    parent = api_parent()
    fmt = argparse.RawDescriptionHelpFormatter

    ls = sub.add_parser(
        "list", help="recordings, newest first", parents=[parent], epilog=API_EPILOG,
        formatter_class=fmt,
    )  # fmt: skip
    ls.add_argument("--call", metavar="UUID", help="only this call's")
    ls.add_argument("--from-number", metavar="NUMBER")
    ls.add_argument("--to-number", metavar="NUMBER")
    ls.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (1-20; 20)")
    ls.add_argument("--all", action="store_true", help="every page, not just the first")
    ls.set_defaults(func=list_main)

    dl = sub.add_parser(
        "download", help="save recordings' audio", parents=[parent], epilog=API_EPILOG,
        formatter_class=fmt,
    )  # fmt: skip
    dl.add_argument("ids", nargs="+", metavar="ID", help="recording ids")
    dl.add_argument(
        "--out",
        default=".",
        metavar="PATH",
        help="directory (files named ID.FORMAT; default .) or, for one id, a file name",
    )
    dl.set_defaults(func=download_main)

    rm = sub.add_parser(
        "delete", help="delete recordings for good", parents=[parent], epilog=API_EPILOG,
        formatter_class=fmt,
    )  # fmt: skip
    rm.add_argument("ids", nargs="+", metavar="ID", help="recording ids")
    rm.set_defaults(func=delete_main)


def _row(r: Recording) -> tuple[Any, ...]:
    duration = None if r.recording_duration_ms is None else round(r.recording_duration_ms / 1000, 2)
    return (
        r.recording_id,
        r.call_uuid or r.conference_name or r.mpc_name,
        r.recording_format,
        duration,
        r.add_time,
        r.recording_url,
    )


async def list_main(args: argparse.Namespace) -> int:
    """Run ``streamserver recordings list``."""

    async def body(plivo: AsyncPlivoClient) -> int:
        filters: dict[str, Any] = {
            "call_uuid": args.call,
            "from_number": args.from_number,
            "to_number": args.to_number,
            "limit": args.limit,
        }
        filters = {k: v for k, v in filters.items() if v is not None}
        if args.all:
            found = [r async for r in plivo.recordings.iter(**filters)]
            raw: Any = [r.raw for r in found]
        else:
            page = await plivo.recordings.list(**filters)
            found, raw = list(page.objects), page.raw
        if args.json:
            print_json(raw)
            return 0
        print_table(
            [_row(r) for r in found],
            ("recording_id", "call / group", "format", "seconds", "added", "url"),
            empty="no recordings",
        )
        return 0

    return await run_api(args, "recordings list", body)


def _target(out_arg: str, recording: Recording, single: bool) -> Path:
    out = Path(out_arg)
    # One id and a path that is not a directory (nor written like one): that file.
    if single and not out.is_dir() and not out_arg.endswith(("/", "\\")):
        return out
    rid = recording.recording_id or ""
    if not _SAFE_NAME.match(rid):
        raise UsageError(f"recording id {rid[:64]!r} is not usable as a file name; use --out FILE")
    out.mkdir(parents=True, exist_ok=True)
    return out / f"{rid}.{recording.recording_format or 'mp3'}"


async def download_main(args: argparse.Namespace) -> int:
    """Run ``streamserver recordings download``."""

    async def body(plivo: AsyncPlivoClient) -> int:
        saved = []
        for rid in args.ids:
            recording = await plivo.recordings.get(rid)
            path = await plivo.recordings.download(
                recording, _target(args.out, recording, len(args.ids) == 1)
            )
            saved.append({"recording_id": rid, "path": str(path), "bytes": path.stat().st_size})
            if not args.json:
                print(f"saved {rid} -> {path} ({path.stat().st_size} bytes)")
        if args.json:
            print_json(saved)
        return 0

    return await run_api(args, "recordings download", body)


async def delete_main(args: argparse.Namespace) -> int:
    """Run ``streamserver recordings delete``."""

    async def body(plivo: AsyncPlivoClient) -> int:
        for rid in args.ids:
            await plivo.recordings.delete(rid)
            if not args.json:
                print(f"deleted {rid}")
        if args.json:
            print_json({"deleted": list(args.ids)})
        return 0

    return await run_api(args, "recordings delete", body)
