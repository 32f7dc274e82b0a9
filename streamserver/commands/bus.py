"""``streamserver bus events|play``: call events and commands over NATS (``[bus]``)."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import fail, print_json

if TYPE_CHECKING:
    from ..bus import BusClient, CallEvent

__all__ = ["add_parser", "events_main", "play_main"]

DEFAULT_URL = "nats://127.0.0.1:4222"

_EPILOG = f"""\
examples:
  streamserver bus events                      # every call's events the stream holds, then live
  streamserver bus events --call 2b3c... --new # one call, from now on
  streamserver bus play 2b3c... hello.wav --wait

The NATS URL is --url, else [bus] url of --config, else $STREAMSERVER_BUS__URL, else
{DEFAULT_URL}. Exit codes: 0 done, 1 NATS or the call failed (no live stream of the call
anywhere: 1), 2 bad arguments or configuration."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamserver bus``."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "bus",
        help="read call events, send commands to calls (NATS)",
        description="Call events (JetStream) and commands to the server holding a call.",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    sub = p.add_subparsers(dest="bus_command", metavar="ACTION", required=True)
    parent = argparse.ArgumentParser(add_help=False)
    g = parent.add_argument_group("bus")
    g.add_argument("--url", metavar="URL", help=f"NATS server (default: see below; {DEFAULT_URL})")
    g.add_argument("--config", "-c", metavar="FILE", help="TOML config file with a [bus] table")
    g.add_argument("--prefix", metavar="NAME", help="subject prefix (default streamserver)")
    g.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="per request (5)")

    ev = sub.add_parser(
        "events", help="print call events", parents=[parent], epilog=_EPILOG, formatter_class=fmt
    )
    ev.add_argument("--call", metavar="ID", help="only this call's events")
    ev.add_argument("--new", action="store_true", help="only events from now on")
    ev.add_argument("--count", type=int, metavar="N", help="exit after N events")
    ev.add_argument("--json", action="store_true", help="one JSON object per line")
    ev.set_defaults(func=events_main)

    pl = sub.add_parser(
        "play", help="play a WAV file into a call", parents=[parent], epilog=_EPILOG,
        formatter_class=fmt,
    )  # fmt: skip
    pl.add_argument("call_id", metavar="CALL_ID")
    pl.add_argument("file", metavar="FILE.wav", type=Path)
    pl.add_argument("--wait", action="store_true", help="wait until it played (a checkpoint)")
    pl.set_defaults(func=play_main)


def _client(args: argparse.Namespace) -> BusClient:
    """A client from the flags, the config's ``[bus]`` table and the environment."""
    from ..bus import BusClient, BusSettings
    from ..settings import load_settings

    table: dict[str, Any] = {}
    if args.config or any(k.startswith("STREAMSERVER_BUS__") for k in os.environ):
        table = dict(load_settings(args.config).extra.get("bus") or {})
    base = BusSettings.from_table(table)
    if args.timeout <= 0:
        raise ValueError("--timeout must be > 0")
    return BusClient(
        args.url or base.url or DEFAULT_URL,
        prefix=args.prefix or base.prefix,
        stream=base.stream,
        timeout_s=args.timeout,
    )


def _line(ev: CallEvent) -> str:
    t = time.strftime("%H:%M:%S", time.localtime(ev.time)) + f".{int(ev.time % 1 * 1000):03d}"
    data = json.dumps(ev.data, separators=(",", ":"), sort_keys=True, default=str)
    return f"{t} {ev.kind:<16} call={ev.call_id} stream={ev.stream_id} {ev.host}/{ev.worker} {data}"


async def _run(command: str, args: argparse.Namespace, body: Any) -> int:
    from ..bus import BusError
    from ..settings import ConfigError

    try:
        client = _client(args)
    except (ConfigError, ValueError) as exc:
        fail(command, exc)
        return 2
    try:
        async with client:
            code: int = await body(client)
            return code
    except BusError as exc:
        fail(command, exc)
        return 1
    except (OSError, ValueError) as exc:
        fail(command, exc)
        return 2


async def events_main(args: argparse.Namespace) -> int:
    """Run ``streamserver bus events``."""
    if args.count is not None and args.count < 1:
        fail("bus events", "--count must be at least 1")
        return 2

    async def body(client: BusClient) -> int:
        seen = 0
        async for ev in client.events(args.call, new_only=args.new):
            if args.json:
                print(json.dumps(ev.to_dict(), sort_keys=True, default=str), flush=True)
            else:
                print(_line(ev), flush=True)
            seen += 1
            if args.count is not None and seen >= args.count:
                break
        return 0

    return await _run("bus events", args, body)


async def play_main(args: argparse.Namespace) -> int:
    """Run ``streamserver bus play``."""
    from ..bus import decode_wav

    async def body(client: BusClient) -> int:
        wav = args.file.read_bytes()
        pcm, rate = decode_wav(wav)  # a clear error here rather than from the server
        reply = await client.play_wav(args.call_id, wav)
        out: dict[str, Any] = {
            "call_id": args.call_id,
            "seconds": round(len(pcm) / rate, 3),
            "host": reply.get("host"),
            "worker": reply.get("worker"),
        }
        if args.wait:
            out["played"] = await client.checkpoint(args.call_id, f"cli-{time.time_ns()}")
        print_json(out)
        return 0 if out.get("played", True) else 1

    return await _run("bus play", args, body)
