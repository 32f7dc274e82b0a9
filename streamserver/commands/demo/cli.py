"""``streamserver demo`` on the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...config import ConfigError
from ...handler import HandlerLoadError
from .results import DemoResult
from .run import run_demo
from .summary import format_summary

__all__ = ["add_parser", "demo_main"]

_EPILOG = """\
what happens:
  stream server (recorder, echo, transcriber if installed) + control app + Plivo emulator
  start on free loopback ports; N calls go through the REST client to the emulator; each
  callee says a bundled sample; the emulator fetches the control app's answer XML and
  streams the call to the server, which records it and echoes it back; the caller's side
  records what it heard. Then a summary, and files under --out.

The same setup by hand, in three terminals:
  streamserver serve --config config/demo.toml
  streamserver emulate --config config/demo.toml
  streamserver call --api-url http://127.0.0.1:8090 --to 14155550101 --from 14155550100 \\
      --stream-url --config config/demo.toml      (with the emulator's PLIVO_AUTH_* exported)
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamserver demo``."""
    p = subparsers.add_parser(
        "demo",
        help="run server, control app and emulator together and place a few calls",
        description="End-to-end demo in one process: no network beyond loopback, no account.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", default="demo-output", metavar="DIR", help="output directory (demo-output)"
    )
    p.add_argument("--calls", type=int, default=3, metavar="N", help="calls to place (1-9; 3)")
    p.add_argument(
        "--no-transcribe", action="store_true", help="leave the transcriber out even if installed"
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="give up after (60)"
    )
    p.add_argument("--verbose", "-v", action="store_true", help="show the components' logs")
    p.set_defaults(func=demo_main)


def demo_main(args: argparse.Namespace) -> int:
    """Run ``streamserver demo``."""
    from ...logs import setup_logging
    from ...runtime import run_async

    if not 1 <= args.calls <= 9:
        print("streamserver demo: --calls must be 1 to 9", file=sys.stderr)
        return 2
    if not args.timeout > 0:
        print("streamserver demo: --timeout must be > 0", file=sys.stderr)
        return 2
    setup_logging("INFO" if args.verbose else "WARNING")

    async def run() -> DemoResult:
        return await run_demo(
            Path(args.out),
            calls=args.calls,
            transcribe=not args.no_transcribe,
            timeout_s=args.timeout,
        )

    from ...rest import PlivoError

    try:
        result: DemoResult = run_async(run)
    except (ConfigError, HandlerLoadError, OSError, PlivoError) as exc:
        print(f"streamserver demo: {exc}", file=sys.stderr)
        return 1
    print(format_summary(result))
    return 0 if result.ok else 1
