"""``streamserver call record start|stop``: Plivo's own recording of a live call.

This is Plivo's Record API: Plivo records the call on its side and keeps the file in the
cloud (``streamserver recordings list|download``). It is not the ``recorder`` handler,
which writes the streamed audio to this server's disk (``streamserver recordings local``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import API_EPILOG, api_parent, print_json, print_table, run_api

if TYPE_CHECKING:
    from ..rest import AsyncPlivoClient

__all__ = ["add_record_parser"]

_DESCRIPTION = """\
Plivo's own recording of a live call (the Record API): Plivo keeps the file in the cloud;
list and download it with `streamserver recordings list|download`. Not the recorder
handler's local files (`streamserver recordings local`)."""

_EPILOG = f"""\
examples:
  streamserver call record start 2b3c... --format wav --time-limit 600
  streamserver call record stop 2b3c...
  streamserver recordings list --call 2b3c...      # the file, once Plivo has it

{API_EPILOG}"""


def add_record_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamserver call record`` under ``call``'s sub-commands."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "record",
        help="start or stop Plivo's recording of a live call (cloud, Record API)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    actions = p.add_subparsers(dest="record_command", metavar="ACTION", required=True)
    parent = api_parent()
    start = actions.add_parser(
        "start", help="start recording", parents=[parent], epilog=API_EPILOG, formatter_class=fmt
    )
    start.add_argument("call_uuid", metavar="CALL_UUID")
    start.add_argument("--format", choices=["mp3", "wav"], help="file format (Plivo: mp3)")
    start.add_argument("--time-limit", type=int, metavar="SECONDS", help="longest recording")
    start.add_argument(
        "--channels", choices=["mono", "stereo"], help="stereo: the two parties apart"
    )
    start.add_argument("--callback-url", metavar="URL", help="told when the file is ready")
    start.set_defaults(func=start_main)
    stop = actions.add_parser(
        "stop", help="stop recording", parents=[parent], epilog=API_EPILOG, formatter_class=fmt
    )
    stop.add_argument("call_uuid", metavar="CALL_UUID")
    stop.add_argument("--url", metavar="URL", help="only the recording with this URL")
    stop.set_defaults(func=stop_main)


async def start_main(args: argparse.Namespace) -> int:
    """Run ``streamserver call record start``."""

    async def body(plivo: AsyncPlivoClient) -> int:
        started = await plivo.calls.record(
            args.call_uuid,
            file_format=args.format,
            time_limit=args.time_limit,
            record_channel_type=args.channels,
            callback_url=args.callback_url,
        )
        if args.json:
            print_json(started.raw)
            return 0
        print_table(
            [(started.recording_id, args.call_uuid, started.url or started.recording_url)],
            ("recording_id", "call_uuid", "url"),
        )
        return 0

    return await run_api(args, "call record start", body)


async def stop_main(args: argparse.Namespace) -> int:
    """Run ``streamserver call record stop``."""

    async def body(plivo: AsyncPlivoClient) -> int:
        await plivo.calls.stop_record(args.call_uuid, url=args.url)
        if args.json:
            print_json({"stopped": args.call_uuid, "url": args.url})
        else:
            print(f"stopped recording call {args.call_uuid}")
        return 0

    return await run_api(args, "call record stop", body)
