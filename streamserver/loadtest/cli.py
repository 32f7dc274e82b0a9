"""``streamserver loadtest`` (and ``scripts/loadtest.py``): the load tester's command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ..audio import AudioFormat
from ..protocol.detect import PROVIDER_FORMATS, provider_format
from . import argtypes
from .config import PROFILES, LoadTestConfig, Subject, Thresholds, frame_faults
from .results import RunResult
from .runner import run_loadtest
from .target import default_server_cmd
from .wire import SAMPLES_DIR

__all__ = ["add_parser", "build_config", "loadtest_main", "main"]


_DESCRIPTION = """\
Load-test a stream server with many simulated Plivo calls replaying an audio file on an
absolute 20 ms clock. Without --url it starts `streamserver serve` itself (or --server-cmd)
on a free port, samples its CPU and memory, scrapes /metrics, and stops it afterwards.
Measures connections, frames, the generator's own send lateness (a run where the generator
lags is INVALID), echo round trip, return-path gaps, the server's frames lost/gaps/drops,
CPU %, RSS per stream and event-loop lag; --verify-recordings checks that every recording
is sample-exact. What the callers heard: first-audio latency, barge-in latency (--profile
bot) and playout through a simulated 60 ms jitter buffer (underruns per minute, longest
silence), summed up in a good/degraded/bad verdict per level. Writes result.json,
report.md and plots to --out."""

_EPILOG = """\
examples:
  # 1,000 μ-law streams for 30 s against the recorder + echo, server on core 0, generator on 1
  streamserver loadtest -n 1000 --duration 30 --handlers recorder,echo \\
      --server-cpus 0 --generator-cpus 1 --verify-recordings

  # raise the load until a service level fails; report the last level that held
  streamserver loadtest --ladder 500,1000,1500,2000 --duration 20 --handlers recorder \\
      --server-cpus 0 --generator-cpus 1

  # the same ladder against another server, side by side ({host} {port} {record_dir} are
  # filled in; the server must accept Plivo streams on --path)
  BASELINE='python scripts/ws_baseline_server.py --echo'
  streamserver loadtest --ladder 250,500,750 --handlers recorder,echo --server-cpus 0 \\
      --compare-cmd "$BASELINE --port {port} --record-dir {record_dir}"

  # a bot that greets every caller and must stop talking when they speak (barge-in)
  streamserver loadtest --profile bot --ladder 500,1000 --duration 20 --server-cpus 0 \\
      --generator-cpus 1

  # a server that is already running (pid for CPU/RSS sampling)
  streamserver loadtest --url ws://127.0.0.1:8080/stream -n 200 --echo --server-pid 12345

exit status: 0 every level held (a ladder: at least one step held); 1 a service level
failed; 2 bad arguments; 3 the load generator itself lagged (result invalid); 130 interrupted."""


def _configure(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server under test")
    g.add_argument(
        "--url",
        type=argtypes.ws_url,
        help="stream URL of a server that is already running (default: start one)",
    )
    g.add_argument(
        "--server-cmd",
        metavar="CMD",
        help="command that starts the server under test; {host} {port} {record_dir} are "
        "filled in (default: streamserver serve with --handlers)",
    )
    g.add_argument(
        "--handlers",
        metavar="LIST",
        help="handlers of the started streamserver: none, recorder, recorder,echo ... "
        "(default: recorder; with --profile bot recorder,player)",
    )
    g.add_argument("--name", help="name of the server in the report")
    g.add_argument(
        "--path",
        default="/stream",
        help="WebSocket path of a started server (default: %(default)s)",
    )
    g.add_argument(
        "--server-pid",
        type=argtypes.positive_int,
        metavar="PID",
        help="with --url: sample this process",
    )
    g.add_argument(
        "--metrics-url",
        metavar="URL",
        help="Prometheus /metrics of the server (default: same host and port; 'none' to skip)",
    )
    g.add_argument("--server-cpus", type=argtypes.cpus, metavar="LIST", help="pin a started server")
    g.add_argument(
        "--generator-cpus", type=argtypes.cpus, metavar="LIST", help="pin the load generator"
    )
    g.add_argument(
        "--generator-rt",
        action="store_true",
        help="run the generator with real-time priority (SCHED_FIFO; needs root), so other "
        "processes on its CPU cannot delay its ticks",
    )
    g.add_argument(
        "--compare-cmd",
        metavar="CMD",
        help="run the same test against this server command too and report side by side",
    )
    g.add_argument(
        "--compare-name", default="compare", metavar="NAME", help="its name in the report"
    )

    g = p.add_argument_group("load")
    g.add_argument(
        "--profile",
        choices=PROFILES,
        default="echo",
        help="echo: every call streams --audio (the echo round trip is measured when the "
        "server echoes); bot: the server talks first and must stop when the caller speaks "
        "(a generated prompt on start and on DTMF, speech at known times, barge-in "
        "measured; streamserver's player handler) (default: %(default)s)",
    )
    g.add_argument(
        "-n",
        "--streams",
        type=argtypes.positive_int,
        default=100,
        metavar="N",
        help="concurrent streams (default 100)",
    )
    g.add_argument(
        "--duration",
        type=argtypes.positive_float,
        default=30.0,
        metavar="S",
        help="seconds of audio per stream (default 30)",
    )
    g.add_argument(
        "--ramp",
        type=argtypes.nonneg_float,
        metavar="S",
        help="seconds to open all streams (default: streams / --ramp-rate)",
    )
    g.add_argument(
        "--ramp-rate",
        type=argtypes.positive_float,
        default=100.0,
        metavar="R",
        help="new streams per second when --ramp is not given (default 100)",
    )
    g.add_argument(
        "--ladder",
        type=argtypes.ladder,
        metavar="N1,N2,...",
        help="raise the stream count step by step until a service level fails",
    )
    g.add_argument(
        "--burst",
        action="store_true",
        help="every stream sends on the same beat (default: random phases in the 20 ms cycle)",
    )
    g.add_argument(
        "--processes",
        type=argtypes.positive_int,
        default=1,
        metavar="K",
        help="generator processes, each with a share of the streams (default 1)",
    )
    g.add_argument(
        "--slot-ms",
        type=argtypes.positive_float,
        default=1.0,
        metavar="MS",
        help="phase resolution of the ticker within the 20 ms cycle (default 1)",
    )
    g.add_argument("--seed", type=int, help="random seed for stream phases")
    g.add_argument(
        "--faults",
        metavar="SPEC",
        default="",
        help="frame faults on every stream, e.g. 'drop=2,dup=1,reorder=5:3,jitter=30,"
        "burst=5:200,drift=100,seed=7' (each stream draws its own from the seed; see "
        "docs/bad-networks.md); connection faults are replay's and the emulator's",
    )

    g = p.add_argument_group("audio")
    g.add_argument(
        "--audio",
        type=Path,
        default=SAMPLES_DIR / "hello-8k.wav",
        metavar="FILE",
        help="caller audio, looped; with --profile bot the speech the caller says in each "
        "turn (default: the bundled hello-8k.wav)",
    )
    g.add_argument(
        "--dialect",
        choices=tuple(PROVIDER_FORMATS),
        default="plivo",
        help="the provider the streams play, in its own messages (default: %(default)s)",
    )
    g.add_argument(
        "--content-type",
        type=argtypes.content_type,
        default=None,
        metavar="TYPE",
        help=f"{', '.join(argtypes.CONTENT_TYPES)} on plivo; each dialect's own formats "
        "(see replay --help) elsewhere (default: the dialect's first, μ-law on plivo)",
    )
    g.add_argument("--tracks", choices=("inbound", "both"), default="inbound")
    g.add_argument(
        "--echo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="expect every frame back as playAudio and measure the round trip "
        "(default: on when --handlers includes echo)",
    )
    g.add_argument(
        "--verify-recordings",
        nargs="?",
        const="",
        metavar="DIR",
        help="check every recording is sample-exact; DIR is the server's record dir "
        "(a started server records into DIR, or a temporary one)",
    )
    g.add_argument(
        "--keep-recordings", action="store_true", help="keep a started server's recordings"
    )
    g.add_argument(
        "--extra-headers", default="", metavar="K=V;...", help="Plivo extra_headers of each stream"
    )
    g.add_argument(
        "--auth-token", metavar="TOKEN", help="sign upgrades (X-Plivo-Signature-V3) with it"
    )

    g = p.add_argument_group("service levels")
    t = Thresholds()
    g.add_argument(
        "--max-lateness-ms",
        type=argtypes.positive_float,
        default=t.max_lateness_p99_ms,
        metavar="MS",
        help="generator send lateness p99 above this makes a level INVALID (default %(default)g)",
    )
    g.add_argument(
        "--max-rtt-ms",
        type=argtypes.positive_float,
        default=t.max_rtt_p99_ms,
        metavar="MS",
        help="echo round trip p99 limit (default %(default)g)",
    )
    g.add_argument(
        "--max-cpu",
        type=argtypes.positive_float,
        default=t.max_cpu_pct,
        metavar="PCT",
        help="server CPU limit, %% of one core, mean while all streams run (default %(default)g)",
    )
    g.add_argument(
        "--max-loop-lag-ms",
        type=argtypes.positive_float,
        default=t.max_loop_lag_ms,
        metavar="MS",
        help="server event-loop lag limit while all streams run (default %(default)g)",
    )
    g.add_argument(
        "--max-kib-per-stream",
        type=argtypes.positive_float,
        metavar="KIB",
        help="server memory per stream limit (default: reported, not judged)",
    )

    g = p.add_argument_group("output")
    g.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output directory (default: loadtest-results/<time>)",
    )
    g.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    p.set_defaults(func=loadtest_main)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``loadtest`` subcommand."""
    p = subparsers.add_parser(
        "loadtest",
        help="load-test a stream server with many simulated Plivo calls",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _configure(p)


def build_config(args: argparse.Namespace) -> LoadTestConfig:
    """Turn parsed flags into a config; raises ValueError on contradictions."""
    bot = args.profile == "bot"
    given = args.handlers or ("recorder,player" if bot else "recorder")
    handlers = [h.strip() for h in given.split(",") if h.strip() and h.strip() != "none"]
    if bot and not args.url and not args.server_cmd and "player" not in handlers:
        raise ValueError("--profile bot needs the player handler (--handlers ...,player)")
    if bot and (args.echo or args.tracks != "inbound"):
        raise ValueError("--profile bot plays prompts to the caller: no --echo, --tracks inbound")
    if args.url and args.server_cmd:
        raise ValueError("give --url (a running server) or --server-cmd, not both")
    if args.server_pid and not args.url:
        raise ValueError("--server-pid goes with --url (a started server is sampled anyway)")
    subjects: list[Subject] = []
    if args.url:
        subjects.append(Subject(args.name or "server", url=args.url, pid=args.server_pid))
    elif args.server_cmd:
        subjects.append(Subject(args.name or "server", cmd=args.server_cmd))
    else:
        label = "+".join(handlers) or "no handlers"
        subjects.append(
            Subject(args.name or f"streamserver ({label})", cmd=default_server_cmd(handlers))
        )
    if args.compare_cmd:
        subjects.append(Subject(args.compare_name, cmd=args.compare_cmd))
    echo = args.echo
    if echo is None:
        echo = "echo" in handlers and not args.url and not args.server_cmd and not bot
    if echo and args.tracks != "inbound":
        raise ValueError("--echo needs a bidirectional stream, whose track is inbound only")
    if args.content_type is None:
        content_type = "{};rate={}".format(*PROVIDER_FORMATS[args.dialect][0])
    else:
        content_type = args.content_type
        asked = AudioFormat.from_content_type(content_type)
        provider_format(args.dialect, asked.encoding, asked.sample_rate)  # ValueError if not
    if args.dialect in ("exotel", "vonage") and args.tracks != "inbound":
        raise ValueError(f"{args.dialect} streams carry the caller only: use --tracks inbound")
    verify = args.verify_recordings is not None
    faults = frame_faults(args.faults, args.dialect, verify=verify)
    record_dir = Path(args.verify_recordings) if args.verify_recordings else None
    if verify and args.url and record_dir is None:
        raise ValueError("with --url, --verify-recordings needs the server's record DIR")
    if not args.audio.is_file():
        raise ValueError(f"no such audio file: {args.audio}")
    metrics_url = args.metrics_url
    if metrics_url == "none":
        metrics_url = ""
    out = args.out or Path("loadtest-results") / time.strftime("%Y%m%d-%H%M%S")
    return LoadTestConfig(
        subjects=subjects,
        path=args.path,
        metrics_url=metrics_url,
        server_cpus=args.server_cpus,
        generator_cpus=args.generator_cpus,
        generator_rt=args.generator_rt,
        record_dir=record_dir,
        keep_recordings=args.keep_recordings or record_dir is not None,
        streams=args.streams,
        duration_s=args.duration,
        ramp_s=args.ramp,
        ramp_rate=args.ramp_rate,
        ladder=args.ladder,
        burst=args.burst,
        processes=args.processes,
        slot_ms=args.slot_ms,
        seed=args.seed,
        faults=faults,
        audio=args.audio,
        content_type=content_type,
        dialect=args.dialect,
        tracks=args.tracks,
        profile=args.profile,
        echo=echo,
        verify=verify,
        extra_headers=args.extra_headers,
        auth_token=args.auth_token,
        thresholds=Thresholds(
            max_lateness_p99_ms=args.max_lateness_ms,
            max_rtt_p99_ms=args.max_rtt_ms,
            max_cpu_pct=args.max_cpu,
            max_loop_lag_ms=args.max_loop_lag_ms,
            max_rss_kib_per_stream=args.max_kib_per_stream,
        ),
        out_dir=out,
        plots=not args.no_plots,
        progress=None if args.quiet else sys.stderr,
        command_line=shlex.join(sys.argv),
    )


async def loadtest_main(args: argparse.Namespace) -> int:
    """Run the load test the flags describe; print where the report is; the exit code."""
    try:
        cfg = build_config(args)
    except ValueError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    runners: list[Any] = []

    def interrupt() -> None:
        print("\ninterrupted: hanging up (Ctrl-C again to abort)", file=sys.stderr)
        for r in runners:
            r.interrupt()
        loop.remove_signal_handler(signal.SIGINT)

    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        result = await run_loadtest(cfg, on_runner=runners.append)
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 1
    _print_summary(result)
    return 130 if result.interrupted else result.exit_code


def _print_summary(result: RunResult) -> None:
    for sub in result.subjects:
        held = "none" if sub.held_max is None else f"{sub.held_max} streams"
        print(f"{sub.name}: last level that held: {held}")
        if sub.stopped_by:
            print(f"  stopped by {sub.stopped_by}")
    print(f"report: {Path(result.out_dir) / 'report.md'}")


def main(argv: list[str] | None = None) -> int:
    """``scripts/loadtest.py``: the same command without the ``streamserver`` prefix."""
    from ..runtime import run_async

    p = argparse.ArgumentParser(
        prog="loadtest.py",
        description=_DESCRIPTION,
        epilog=_EPILOG.replace("streamserver loadtest", "scripts/loadtest.py"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _configure(p)
    args = p.parse_args(argv)
    try:
        code: int = run_async(lambda: loadtest_main(args))
    except KeyboardInterrupt:
        return 130
    return code
