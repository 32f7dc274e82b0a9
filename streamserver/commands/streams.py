"""``streamserver streams list|start|stop``: the audio streams of a live call."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ._common import API_EPILOG, api_parent, print_json, print_table, run_api

if TYPE_CHECKING:
    from ..rest import AsyncPlivoClient

__all__ = ["add_parser"]

_EPILOG = f"""\
examples:
  streamserver streams list --call 2b3c...                  # every stream of the call
  streamserver streams start --call 2b3c... --service-url wss://media.example.com/stream \\
      --bidirectional --content-type 'audio/x-mulaw;rate=8000'
  streamserver streams stop --call 2b3c... --stream 9f1e... # one stream
  streamserver streams stop --call 2b3c...                  # all of them

{API_EPILOG}"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamserver streams``."""
    p = subparsers.add_parser(
        "streams",
        help="list, start or stop the audio streams of a live call (Plivo Voice API)",
        description="Audio streams of a live call, through the Plivo Voice API.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="streams_command", metavar="ACTION", required=True)
    parent = api_parent()

    ls = sub.add_parser(
        "list", help="the streams of a call", parents=[parent], epilog=API_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    ls.add_argument("--call", required=True, metavar="UUID", help="the call's uuid")
    ls.set_defaults(func=list_main)

    start = sub.add_parser(
        "start", help="stream a live call to a WebSocket", parents=[parent], epilog=API_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    start.add_argument("--call", required=True, metavar="UUID", help="the call's uuid")
    start.add_argument("--service-url", required=True, metavar="WS_URL", help="ws:// or wss://")
    start.add_argument("--bidirectional", action="store_true", help="let the server talk back")
    start.add_argument("--audio-track", choices=["inbound", "outbound", "both"])
    start.add_argument(
        "--content-type",
        choices=["audio/x-mulaw;rate=8000", "audio/x-l16;rate=8000", "audio/x-l16;rate=16000"],
    )
    start.add_argument("--stream-timeout", type=int, metavar="SECONDS")
    start.add_argument("--status-callback-url", metavar="URL")
    start.add_argument("--extra-headers", metavar="K=V,...", help="echoed in the start event")
    start.set_defaults(func=start_main)

    stop = sub.add_parser(
        "stop", help="stop one stream, or every stream of a call", parents=[parent],
        epilog=API_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    stop.add_argument("--call", required=True, metavar="UUID", help="the call's uuid")
    stop.add_argument("--stream", metavar="ID", help="only this stream (default: all)")
    stop.set_defaults(func=stop_main)


async def list_main(args: argparse.Namespace) -> int:
    """Run ``streamserver streams list``."""

    async def body(plivo: AsyncPlivoClient) -> int:
        page = await plivo.streams.list(args.call)
        if args.json:
            print_json(page.raw)
            return 0
        print_table(
            [
                (
                    s.stream_id,
                    s.status,
                    s.audio_track,
                    s.bidirectional,
                    s.content_type,
                    s.start_time,
                    s.end_time,
                    s.service_url,
                )
                for s in page.objects
            ],
            ("stream_id", "status", "track", "bidir", "format", "start", "end", "service_url"),
            empty=f"no streams on call {args.call}",
        )
        return 0

    return await run_api(args, "streams list", body)


async def start_main(args: argparse.Namespace) -> int:
    """Run ``streamserver streams start``."""

    async def body(plivo: AsyncPlivoClient) -> int:
        options: dict[str, Any] = {
            "bidirectional": True if args.bidirectional else None,
            "audio_track": args.audio_track,
            "content_type": args.content_type,
            "stream_timeout": args.stream_timeout,
            "status_callback_url": args.status_callback_url,
            "extra_headers": args.extra_headers,
        }
        started = await plivo.streams.start(
            args.call, args.service_url, **{k: v for k, v in options.items() if v is not None}
        )
        if args.json:
            print_json(started.raw)
        else:
            print(f"{started.message or 'stream started'}: {started.stream_id}")
        return 0

    return await run_api(args, "streams start", body)


async def stop_main(args: argparse.Namespace) -> int:
    """Run ``streamserver streams stop``."""

    async def body(plivo: AsyncPlivoClient) -> int:
        if args.stream:
            await plivo.streams.stop(args.call, args.stream)
            what = f"stopped stream {args.stream} of call {args.call}"
        else:
            await plivo.streams.stop_all(args.call)
            what = f"stopped every stream of call {args.call}"
        if args.json:
            print_json({"stopped": args.stream or "all", "call_uuid": args.call})
        else:
            print(what)
        return 0

    return await run_api(args, "streams stop", body)
