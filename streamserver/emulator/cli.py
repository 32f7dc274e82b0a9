"""``streamserver emulate``: run the local Plivo emulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from .settings import EmulatorConfigError, load_emulator_settings

__all__ = ["add_parser", "emulate_main"]

log = logging.getLogger("streamserver.emulator")

#: The env file ``emulate`` writes unless told otherwise (in the current directory).
ENV_FILE = "plivo-emulator.env"

_DESCRIPTION = """\
Run a local stand-in for Plivo's Voice API: the REST API (calls, streams, recordings,
conferences, multiparty calls, endpoints, verified caller IDs) and a call simulator.
Placing a call rings, fetches your answer URL (signed like Plivo) and runs the XML:
<Stream> connects to your stream server and streams the callee's voice in real time."""

_EPILOG = """\
examples:
  streamserver emulate                              # http://127.0.0.1:8090
  streamserver emulate --port 0                     # any free port (printed)
  streamserver emulate --config config/demo.toml    # reads its [emulator] table

The callee speaks a bundled speech sample unless [emulator] caller_audio (or a
per-number caller_audio_by_number table) says otherwise; caller_dtmf = "5@2.0,#@4.5"
presses digits. Credentials come from [emulator] auth_id/auth_token, else from
PLIVO_AUTH_ID/PLIVO_AUTH_TOKEN, else local-only defaults. The banner shows the token
masked; the env file (--env-file, default ./plivo-emulator.env, readable by you only)
exports PLIVO_AUTH_ID, PLIVO_AUTH_TOKEN and PLIVO_API_URL for the other commands:
  . ./plivo-emulator.env && streamserver call --to 14155550101 --from 14155550100 --stream-url
Any key can also be set as STREAMSERVER_EMULATOR__<KEY>, e.g. STREAMSERVER_EMULATOR__RING_S=0.

Calls that go wrong (docs/emulator.md): dial 15550100486 (busy), 15550100603 (rejected),
15550100480 (no answer), 15550100503 (failed), 15550100201 (answering machine), or pass
sip_headers EmulatorOutcome=busy; caller_input = "1|2345#|say:yes" answers <GetDigits> and
<GetInput>; stream_retries, stream_retry_delay_s and stream_buffer_s shape reconnects and
DegradedStream.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``emulate`` subcommand (run with :func:`emulate_main`)."""
    p = subparsers.add_parser(
        "emulate",
        help="run a local Plivo emulator (REST API and simulated calls)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", "-c", metavar="FILE", help="TOML file with an [emulator] table")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8090; 0 = any free)")
    p.add_argument("--ring-s", type=float, metavar="SECONDS", help="ring time before answer")
    p.add_argument("--caller-audio", metavar="FILE", help="what callees say once they answer")
    p.add_argument("--recordings-dir", metavar="DIR", help="keep recordings here")
    p.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper, default="INFO"
    )
    env = p.add_mutually_exclusive_group()
    env.add_argument(
        "--env-file",
        metavar="FILE",
        default=ENV_FILE,
        help=f"write the credentials and API URL here for `. FILE` (default ./{ENV_FILE})",
    )
    env.add_argument("--no-env-file", action="store_true", help="write no env file")
    p.set_defaults(func=emulate_main)


def write_env_file(path: Path, base_url: str, auth_id: str, auth_token: str) -> None:
    """Write ``export`` lines for ``PLIVO_AUTH_ID``, ``PLIVO_AUTH_TOKEN`` and
    ``PLIVO_API_URL``, readable by the user only (the banner never shows the token)."""
    text = (
        "# The local Plivo emulator (streamserver emulate); local use only.\n"
        f"export PLIVO_AUTH_ID={auth_id}\n"
        f"export PLIVO_AUTH_TOKEN={auth_token}\n"
        f"export PLIVO_API_URL={base_url}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def mask(token: str) -> str:
    """``Emul…(40 chars)``: enough to tell tokens apart, not enough to use one."""
    return f"{token[:4]}…({len(token)} chars)"


def _program() -> str:
    """How the user ran us (``.venv/bin/streamserver``), for lines they can paste."""
    argv0 = sys.argv[0] if sys.argv else ""
    return shlex.quote(argv0) if Path(argv0).name == "streamserver" else "streamserver"


def _banner(base_url: str, auth_id: str, auth_token: str, env_file: Path | None) -> str:
    api = f"{base_url}/v1/Account/{auth_id}/"
    prog = _program()
    if env_file is not None:
        where = f"full value in {env_file}"
        load = f". {shlex.quote(str(env_file))}"
        note = "     # exports PLIVO_AUTH_ID, PLIVO_AUTH_TOKEN, PLIVO_API_URL"
    else:
        where = "--env-file FILE writes it to FILE"
        load = f"export PLIVO_AUTH_ID={auth_id} PLIVO_AUTH_TOKEN=... PLIVO_API_URL={base_url}"
        note = ""
    return f"""\
Plivo emulator listening on {base_url}
  API base     {api}
  Auth ID      {auth_id}
  Auth Token   {mask(auth_token)} ({where})

Stream a call to your own server. In a second terminal:
  {load}{note}
  {prog} serve --control --handlers recorder,echo
and in a third:
  {load}
  {prog} call --to 14155550101 --from 14155550100 --stream-url
The callee's voice is recorded under recordings/ and echoed back.

Use it like Plivo: curl -u "$PLIVO_AUTH_ID:$PLIVO_AUTH_TOKEN" {api}Call/
  official plivo SDK: set plivo.rest.client.PLIVO_API_BASE_URI and API_VOICE_BASE_URI
  (and the _FALLBACK_1/_2 twins) to {base_url}/v1/Account
Press Ctrl+C to stop."""


def emulate_main(args: argparse.Namespace) -> int:
    """Run ``streamserver emulate``; return the exit status (2: bad configuration)."""
    from ..logs import setup_logging
    from ..runtime import run_async
    from .server import Emulator

    overrides: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "ring_s": getattr(args, "ring_s", None),
        "caller_audio": getattr(args, "caller_audio", None),
        "recordings_dir": getattr(args, "recordings_dir", None),
    }
    try:
        settings = load_emulator_settings(args.config, overrides=overrides)
        if settings.caller_audio:
            from .media import MediaError, load_audio_file

            try:
                load_audio_file(settings.caller_audio)
            except MediaError as exc:
                raise EmulatorConfigError(f"emulator.caller_audio: {exc}") from None
    except EmulatorConfigError as exc:
        print(f"streamserver emulate: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(getattr(args, "log_level", "INFO") or "INFO")
    env_file = None if getattr(args, "no_env_file", False) else getattr(args, "env_file", None)
    wanted_env = Path(env_file).resolve() if env_file else None

    async def run() -> int:
        emulator = Emulator(settings)
        try:
            await emulator.start()
        except OSError as exc:
            log.error("cannot listen on %s:%s: %s (is the port in use? try --port)",
                      settings.host, settings.port, exc.strerror or exc)  # fmt: skip
            return 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        env_path = wanted_env
        if env_path is not None:
            try:
                write_env_file(env_path, emulator.base_url, emulator.auth_id, emulator.auth_token)
            except OSError as exc:
                log.warning("cannot write %s: %s (pass --env-file FILE)", env_path, exc)
                env_path = None
        banner = _banner(emulator.base_url, emulator.auth_id, emulator.auth_token, env_path)
        print(banner, flush=True)
        try:
            await stop.wait()
        finally:
            log.info("emulator: stopping")
            await emulator.aclose()
        return 0

    code: int = run_async(run)
    return code
