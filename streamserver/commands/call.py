"""``streamserver call``: place a call whose audio streams to this server (or anywhere).

With ``--answer-url`` Plivo fetches your own XML. With ``--stream-url`` the answer URL is the
control app's ``/answer`` (see ``[control]`` in the config), which answers with a
``<Stream>`` to this server's route, or to the WebSocket URL given after the flag, and asks
for stream and hangup callbacks back to the control app.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ._common import API_EPILOG, UsageError, api_parent, fail, print_json, print_table, run_api
from .call_record import add_record_parser

if TYPE_CHECKING:
    from ..rest import AsyncPlivoClient

__all__ = ["add_parser", "control_url_from"]

CONTROL_URL_ENV = "STREAMSERVER_CONTROL_URL"
#: Where ``streamserver serve --control`` puts the control app unless told otherwise.
DEFAULT_CONTROL_URL = "http://127.0.0.1:8081"

_DESCRIPTION = "Place a phone call through the Plivo Voice API and stream its audio."
_EPILOG = f"""\
examples:
  streamserver call --to 14155550100 --from 14155550123 --stream-url
  streamserver call record start CALL_UUID      # Plivo records the call (see: call record -h)
  streamserver call --to 14155550100 --from 14155550123 --answer-url https://app.example.com/answer
  streamserver call --to 14155550100 --from 14155550123 --stream-url --config my.toml
  streamserver call --to 14155550100 --from 14155550123 \\
      --stream-url wss://media.example.com/bot --control-url https://ctl.example.com
  streamserver call --to 15550100486 --from 14155550123 --stream-url   # emulator: busy
  streamserver call --to 14155550100 --from 14155550123 --stream-url \\
      --sip-headers EmulatorOutcome=machine --machine-detection hangup  # see docs/emulator.md

Two ways to tell Plivo what to do when the call is answered:
  --answer-url URL   your own answer XML (e.g. with a <Stream> to your server)
  --stream-url [WS]  the control app's /answer, which answers with a <Stream> to the
                     server's route, or to the WebSocket URL WS when given; it also asks
                     for stream and hangup callbacks back to the control app.
--stream-url needs a running control app (`streamserver serve --control`): its URL comes
from --control-url, ${CONTROL_URL_ENV}, the [control] table of --config (public_url, else
http://host:port), else {DEFAULT_CONTROL_URL} (what `serve --control` listens on; checked
before the call is placed). --from defaults to $PLIVO_FROM_NUMBER.

{API_EPILOG}"""

_EXPLAIN_CONTROL = (
    "--stream-url needs the control app, to use its /answer as the answer URL, and none "
    f"answers at {DEFAULT_CONTROL_URL}: run `streamserver serve --control` (or [control] "
    "enabled = true), or pass --control-url URL, set "
    f"{CONTROL_URL_ENV} or --config with the server's file. Or serve your own answer XML "
    "with a <Stream> and pass --answer-url."
)
_EXPLAIN_DISABLED = (
    "--stream-url: {config} names no control app URL (its [control] is not enabled, or "
    "its port is 0 and public_url empty): set [control] enabled = true and a port, or "
    "pass --control-url URL"
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamserver call``."""
    p = subparsers.add_parser(
        "call",
        help="place a call (Plivo Voice API) that streams to this server",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        parents=[api_parent()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--to", metavar="NUMBER", help="destination (a<b for several); required")
    p.add_argument("--from", dest="from_", metavar="NUMBER", help="caller id")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--answer-url", metavar="URL", help="your answer XML URL (or --stream-url)")
    how.add_argument(
        "--stream-url",
        nargs="?",
        const="",
        metavar="WS_URL",
        help="answer with the control app's <Stream> (to WS_URL when given)",
    )
    p.add_argument("--answer-method", choices=["GET", "POST"], type=str.upper)
    p.add_argument(
        "--hangup-url", metavar="URL", help="hangup callback (--stream-url: the control app's)"
    )
    p.add_argument("--ring-url", metavar="URL", help="ring callback")
    p.add_argument("--time-limit", type=int, metavar="SECONDS", help="longest call (14400)")
    p.add_argument("--caller-name", metavar="NAME")
    p.add_argument("--ring-timeout", type=int, metavar="SECONDS", help="ring this long at most")
    p.add_argument(
        "--sip-headers",
        metavar="K=V[,K=V]",
        help="SIP headers for the far end (the emulator's callee reads EmulatorOutcome, "
        "EmulatorInput)",
    )
    p.add_argument(
        "--machine-detection", choices=["true", "hangup"], help="answering-machine detection"
    )
    p.add_argument("--machine-detection-url", metavar="URL", help="machine detection callback")
    p.add_argument("--control-url", metavar="URL", help=f"control app URL (${CONTROL_URL_ENV})")
    p.add_argument("--config", "-c", metavar="FILE", help="config file with a [control] table")
    p.set_defaults(func=call_main)
    # `call record start|stop CALL_UUID`: optional, so that `call --to ...` stays as it is.
    add_record_parser(p.add_subparsers(dest="call_command", metavar="{record}"))


def control_url_from(config: str | None) -> str | None:
    """The control app's public URL from a config file's ``[control]`` table, if enabled."""
    from ..control.settings import load_control_settings
    from ..settings import ConfigError, load_settings

    try:
        settings = load_settings(config)
        cs = load_control_settings(settings)
    except ConfigError as exc:
        raise UsageError(f"configuration error: {exc}") from None
    if not cs.enabled:
        return None
    if cs.public_url:
        return cs.public_url.rstrip("/")
    sv = settings.server
    host, port = (sv.host, sv.port) if cs.shared else (cs.host, cs.port)
    if port == 0:
        return None
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    scheme = "https" if cs.shared and sv.ssl_certfile else "http"
    return f"{scheme}://{host}:{port}"


def _answers(control: str) -> bool:
    """Whether a control app answers ``GET {control}/healthz`` (a local default only: a
    public URL may not be reachable from here)."""
    import httpx

    try:
        return httpx.get(f"{control}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _answer_and_hangup(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.stream_url is None:
        return args.answer_url, args.hangup_url
    control = args.control_url or os.environ.get(CONTROL_URL_ENV)
    if not control and args.config:
        control = control_url_from(args.config)
        if not control:
            raise UsageError(_EXPLAIN_DISABLED.format(config=args.config))
    if not control:
        control = DEFAULT_CONTROL_URL
        if not _answers(control):
            raise UsageError(_EXPLAIN_CONTROL)
    control = control.rstrip("/")
    if urlsplit(control).scheme not in ("http", "https"):
        raise UsageError(f"--control-url must be an http:// or https:// URL, got {control!r}")
    answer = f"{control}/answer"
    if args.stream_url:
        if urlsplit(args.stream_url).scheme not in ("ws", "wss"):
            raise UsageError(f"--stream-url must be a ws:// or wss:// URL, got {args.stream_url!r}")
        answer += "?stream_url=" + quote(args.stream_url, safe="")
    return answer, args.hangup_url or f"{control}/callbacks/hangup"


async def call_main(args: argparse.Namespace) -> int:
    """Run ``streamserver call``."""
    if not args.to or (args.answer_url is None and args.stream_url is None):
        fail("call", "--to and one of --answer-url or --stream-url are required")
        return 2
    from_ = args.from_ or os.environ.get("PLIVO_FROM_NUMBER")
    if not from_:
        fail("call", "--from is required (or set PLIVO_FROM_NUMBER)")
        return 2
    try:
        answer_url, hangup_url = _answer_and_hangup(args)
    except UsageError as exc:
        fail("call", exc)
        return 2

    async def body(plivo: AsyncPlivoClient) -> int:
        options: dict[str, Any] = {
            "answer_method": args.answer_method,
            "hangup_url": hangup_url,
            "ring_url": args.ring_url,
            "time_limit": args.time_limit,
            "caller_name": args.caller_name,
            "ring_timeout": args.ring_timeout,
            "sip_headers": args.sip_headers,
            "machine_detection": args.machine_detection,
            "machine_detection_url": args.machine_detection_url,
        }
        created = await plivo.calls.make(
            from_, args.to, answer_url, **{k: v for k, v in options.items() if v is not None}
        )
        if args.json:
            print_json({**created.raw, "answer_url": answer_url, "hangup_url": hangup_url})
            return 0
        uuids = created.request_uuid
        ids = uuids if isinstance(uuids, list) else [uuids]
        print_table(
            [(created.message, uuid, args.to, answer_url) for uuid in ids],
            ("status", "request_uuid", "to", "answer_url"),
        )
        return 0

    return await run_api(args, "call", body)
