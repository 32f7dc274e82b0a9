"""Command line: ``streamserver serve | emulate | replay | call | streams | recordings | demo``.

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

try:
    from . import __version__
except ImportError:  # the package is shadowed: explain in one line and stop (exit 2)

    def _shadowed() -> None:
        pkg = sys.modules.get(__package__ or "streamserver")
        where = next(iter(getattr(pkg, "__path__", None) or []), "?")
        parent = os.path.dirname(where)
        print(
            f"streamserver: cannot start: the folder {where} (not the package: no "
            f"__init__.py there, e.g. the clone itself) hides the installed streamserver "
            f"package because {parent} is on PYTHONPATH={os.environ.get('PYTHONPATH', '')!r}; "
            f"unset PYTHONPATH or drop {parent} from it",
            file=sys.stderr,
        )
        raise SystemExit(2)

    _shadowed()
from .handler import HandlerLoadError
from .runtime import run_async
from .settings import ConfigError, RouteSettings, Settings, load_settings

__all__ = ["main"]

log = logging.getLogger("streamserver")

SERVE_EPILOG = """\
examples:
  streamserver serve                                  # /stream -> recorder, port 8080
  streamserver serve --handlers recorder,echo --record-dir /data/rec
  streamserver serve --config config/streamserver.toml --log-format json
  streamserver serve --control --handlers recorder,echo   # + answer XML on :8081/answer
  streamserver serve --control same --ssl-certfile cert.pem --ssl-keyfile key.pem
                                # wss://, https://.../answer and callbacks on one port

Point Plivo at it with answer XML such as
  <Response><Stream bidirectional="true" keepCallAlive="true"
      contentType="audio/x-mulaw;rate=8000">wss://your.host/stream</Stream></Response>

Every option lives in the config file (see config/streamserver.toml for all of them with
their defaults) and can be overridden with STREAMSERVER_<SECTION>__<KEY> variables, e.g.
STREAMSERVER_SERVER__PORT=9000. Credentials: PLIVO_AUTH_ID / PLIVO_AUTH_TOKEN.
Health: GET /healthz, /readyz, /metrics on the same port. SIGTERM drains gracefully.
"""


def _add_serve(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the stream server",
        description="Run the WebSocket media server that Plivo streams call audio to.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", "-c", metavar="FILE", help="TOML config file")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8080; 0 = any free)")
    p.add_argument(
        "--handlers",
        metavar="LIST",
        help="comma-separated handlers for every route, e.g. recorder,echo "
        "(names of installed handlers or module:Class; like uvicorn, a module:Class is "
        "imported from the current directory too)",
    )
    p.add_argument("--record-dir", metavar="DIR", help="where the recorder writes files")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    p.add_argument("--log-format", choices=["text", "json"])
    p.add_argument(
        "--control",
        nargs="?",
        const="own",
        choices=["own", "same"],
        help="also run the control app ([control] enabled = true): /answer returns the "
        "<Stream> XML for this server, /callbacks/... take Plivo's callbacks; on its own "
        "port (default http://127.0.0.1:8081, what `streamserver call --stream-url` uses), "
        "or with `--control same` on the server's port (one port to expose)",
    )
    p.add_argument("--ssl-certfile", metavar="PEM", help="serve TLS (wss://): certificate chain")
    p.add_argument("--ssl-keyfile", metavar="PEM", help="its private key (if not in the certfile)")
    p.add_argument(
        "--workers",
        metavar="N|auto",
        type=_workers_arg,
        help="worker processes sharing the port (default 1; auto = usable cores)",
    )
    p.set_defaults(func=_serve)


def _workers_arg(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {value!r}") from None


def _serve_settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "server.host": args.host,
        "server.port": args.port,
        "server.log_level": args.log_level,
        "server.log_format": args.log_format,
        "server.workers": getattr(args, "workers", None),
        "handler.recorder.record_dir": args.record_dir,
        "control.enabled": True if getattr(args, "control", None) else None,
        "control.port": "same" if getattr(args, "control", None) == "same" else None,
        "server.ssl_certfile": getattr(args, "ssl_certfile", None),
        "server.ssl_keyfile": getattr(args, "ssl_keyfile", None),
    }
    settings = load_settings(args.config, overrides=overrides)
    if args.handlers is not None:
        names = [h.strip() for h in args.handlers.split(",") if h.strip()]
        if not names:
            raise ConfigError(
                f"--handlers {args.handlers!r}: names no handler (e.g. --handlers recorder,echo)"
            )
        for route in settings.routes.values():
            route.handlers = list(names)
            route.required_handlers = [n for n in route.required_handlers if n in names]
        if not settings.routes:  # pragma: no cover - load_settings always adds a default
            settings.routes["/stream"] = RouteSettings(names)
    return settings


def _import_from_cwd(settings: Settings) -> None:
    """Let ``module:Class`` handler names import from the current directory, as uvicorn's
    ``module:app`` does (a console script's ``sys.path`` does not include it)."""
    if any(":" in h for route in settings.routes.values() for h in route.handlers):
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)


def _serve(args: argparse.Namespace) -> int:
    from .logs import setup_logging
    from .service import ListenError, StreamService

    try:
        settings = _serve_settings(args)
        _import_from_cwd(settings)
        setup_logging(settings.server.log_level, settings.server.log_format)
        service = StreamService(settings)
    except (ConfigError, HandlerLoadError) as exc:
        print(f"streamserver: configuration error: {exc}", file=sys.stderr)
        return 2
    from .supervisor import Supervisor, worker_count

    workers = worker_count(settings.server.workers)
    if workers > 1:
        del service  # each worker builds its own after the fork
        return Supervisor(settings, workers=workers, cpus=settings.server.worker_cpus).run()

    async def run() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await service.start()
        except ListenError as exc:
            what, hint = (
                ("cannot listen", "is another server using the port? try --port")
                if exc.part == "server"
                else ("control app cannot listen", "try [control] port")
            )
            log.error("%s on %s:%s: %s (%s)", what, exc.host, exc.port, exc.strerror, hint)
            return 1
        print(f"streamserver {__version__} listening on {service.url}", file=sys.stderr, flush=True)
        if service.control is not None:
            print(f"control app on {service.control.base_url}", file=sys.stderr, flush=True)
        await stop.wait()
        log.info("signal received: draining")
        await service.aclose()
        return 0

    code: int = run_async(run)
    return code


def _add_optional(sub: Any) -> None:
    # The emulator and the REST/demo commands live in their own modules and register their
    # own sub-parsers.
    for module in (
        "streamserver.emulator.cli",
        "streamserver.emulator.replay",
        "streamserver.commands.call",
        "streamserver.commands.streams",
        "streamserver.commands.recordings",
        "streamserver.commands.demo",
        "streamserver.commands.bus",
        "streamserver.commands.webhook",
        "streamserver.loadtest.cli",
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError:  # pragma: no cover - optional part not installed
            continue
        mod.add_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamserver",
        description="Real-time telephony audio-stream server for Plivo Audio Streams, "
        "with a local Plivo emulator.",
        epilog="Run 'streamserver COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"streamserver {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_serve(sub)
    _add_optional(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        result = func(args)
        if asyncio.iscoroutine(result):
            result = run_async(lambda: result)
        return int(result or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
