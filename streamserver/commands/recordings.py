"""``streamserver recordings list|download|delete``: recordings stored by Plivo (cloud);
``recordings local``: the recorder handler's files on this machine (``recordings_local``)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import API_EPILOG, UsageError, api_parent, print_json, print_table, run_api
from .recordings_local import add_local_parser

if TYPE_CHECKING:
    from ..rest import AsyncPlivoClient
    from ..rest.models import Recording

__all__ = ["add_parser"]

_EPILOG = f"""\
Two kinds of recordings:
  cloud  Plivo records a call (`streamserver call record start`, <Record>, conferences) and
         keeps the file: list, download, delete go through the Plivo Voice API.
  local  the recorder handler of `streamserver serve` writes the streamed audio to this
         machine: `streamserver recordings local` lists those files and their sidecars.

examples:
  streamserver recordings local --call 2b3c...                 # the recorder's own files
  streamserver recordings list --call 2b3c...
  streamserver recordings list --all --json
  streamserver recordings download 9f1e... --out recordings/   # -> recordings/9f1e....wav
  streamserver recordings download 9f1e... --out call.mp3
  streamserver recordings download 9f1e... --out call.wav      # an MP3 is saved as call.mp3
  streamserver recordings delete 9f1e... 7a2d...

{API_EPILOG}"""

#: A recording id from the API becomes a file name only when it looks like one.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamserver recordings``."""
    p = subparsers.add_parser(
        "recordings",
        help="Plivo's cloud recordings (list, download, delete) and the recorder's local files",
        description="Plivo's cloud recordings, through the Plivo Voice API (list, download, "
        "delete), and the recorder handler's local files (local).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="recordings_command", metavar="ACTION", required=True)
    parent = api_parent()
    fmt = argparse.RawDescriptionHelpFormatter

    ls = sub.add_parser(
        "list", help="Plivo's cloud recordings, newest first", parents=[parent], epilog=API_EPILOG,
        formatter_class=fmt,
    )  # fmt: skip
    ls.add_argument("--call", metavar="UUID", help="only this call's")
    ls.add_argument("--from-number", metavar="NUMBER")
    ls.add_argument("--to-number", metavar="NUMBER")
    ls.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (1-20; 20)")
    ls.add_argument("--all", action="store_true", help="every page, not just the first")
    ls.set_defaults(func=list_main)

    dl = sub.add_parser(
        "download", help="save Plivo recordings (in their own format)", parents=[parent],
        epilog=API_EPILOG,
        formatter_class=fmt,
    )  # fmt: skip
    dl.add_argument("ids", nargs="+", metavar="ID", help="recording ids")
    dl.add_argument(
        "--out",
        default=".",
        metavar="PATH",
        help="directory (files named ID.FORMAT; default .) or, for one id, a file name "
        "(its extension becomes the recording's real format: x.wav of an MP3 is x.mp3)",
    )
    dl.set_defaults(func=download_main)

    rm = sub.add_parser(
        "delete", help="delete Plivo recordings for good", parents=[parent], epilog=API_EPILOG,
        formatter_class=fmt,
    )  # fmt: skip
    rm.add_argument("ids", nargs="+", metavar="ID", help="recording ids")
    rm.set_defaults(func=delete_main)

    add_local_parser(sub)


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
    fmt = (recording.recording_format or "mp3").lower()
    if single and not out.is_dir() and not out_arg.endswith(("/", "\\")):
        # The bytes are the recording's own format: never MP3 under a .wav name.
        return out if out.suffix.lower() == f".{fmt}" else out.with_suffix(f".{fmt}")
    rid = recording.recording_id or ""
    if not _SAFE_NAME.match(rid):
        raise UsageError(f"recording id {rid[:64]!r} is not usable as a file name; use --out FILE")
    out.mkdir(parents=True, exist_ok=True)
    return out / f"{rid}.{fmt}"


async def download_main(args: argparse.Namespace) -> int:
    """Run ``streamserver recordings download``."""

    async def body(plivo: AsyncPlivoClient) -> int:
        saved = []
        for rid in args.ids:
            recording = await plivo.recordings.get(rid)
            target = _target(args.out, recording, len(args.ids) == 1)
            path = await plivo.recordings.download(recording, target)
            fmt = recording.recording_format
            saved.append(
                {"recording_id": rid, "path": str(path), "bytes": path.stat().st_size,
                 "format": fmt}
            )  # fmt: skip
            if not args.json:
                print(f"saved {rid} -> {path} ({path.stat().st_size} bytes)")
                wanted = Path(args.out)
                if target.parent == wanted.parent and target.name != wanted.name:
                    print(
                        f"(the recording is {fmt}, so the file is {target.name}, not {wanted.name})"
                    )
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
