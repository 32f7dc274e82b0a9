"""Scale-out benchmarks: the bus and storage on vs off, the supervisor's overhead, --workers 2.

Each case is one ``streamserver loadtest`` run (the load tester starts the server, samples
the CPU of its whole process tree, scrapes /metrics) of at most ~20 s, recorder handler,
μ-law 8 kHz, streams at random phases of the 20 ms cycle::

    off         serve, pinned to CPU 0; the generator on CPU 1
    on          the same with [bus] (a real nats-server with JetStream) and [storage]
                (a real SeaweedFS S3) configured: events and uploads as in production
    supervised  `serve` under the supervisor with one worker (pinned to CPU 0)
    one         serve, unpinned, with more streams (the scaling pair's baseline)
    two         `serve --workers 2`, unpinned, the same streams

    python scripts/bench_scale.py                       # every case, 300 / 600 streams
    python scripts/bench_scale.py --cases off,on -n 300 --duration 12

NATS and SeaweedFS come from the dev extra's wheels and are started the way the tests start
them (tests/bus_support.py). On a 2-core machine the generator needs about a core of its
own: the scaling pair shares both cores with it, so it shows the cost per stream, not a
2x capacity. Numbers are indicative on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CASES = ("off", "on", "supervised", "one", "two")

# Started as a module: `serve` under the supervisor with one worker (the CLI runs a
# supervisor only for two or more).
SUPERVISED = """
import sys
from streamserver.logs import setup_logging
from streamserver.settings import load_settings
from streamserver.supervisor import Supervisor
host, port, record_dir = sys.argv[1:4]
s = load_settings(overrides={"server.host": host, "server.port": int(port),
                             "handler.recorder.record_dir": record_dir})
for route in s.routes.values():
    route.handlers = ["recorder"]
setup_logging("WARNING")
sys.exit(Supervisor(s, workers=1).run())
"""


def serve_cmd(*extra: str) -> str:
    return shlex.join([
        sys.executable, "-m", "streamserver", "serve", "--host", "{host}", "--port", "{port}",
        "--handlers", "recorder", "--record-dir", "{record_dir}", "--log-level", "WARNING",
        *extra,
    ])  # fmt: skip


@contextlib.contextmanager
def real_servers(workdir: Path) -> Iterator[dict[str, str]]:
    """nats-server with JetStream and SeaweedFS S3 on loopback; the server's environment."""
    sys.path.insert(0, str(ROOT / "tests"))
    import bus_support

    nats_bin = bus_support.find_binary("nats-server")
    if nats_bin is None:
        raise SystemExit("nats-server not found (make install brings it)")
    (workdir / "nats").mkdir(parents=True)
    (workdir / "s3").mkdir()
    nats = bus_support.NatsServer(nats_bin, workdir / "nats")
    s3 = bus_support.S3Server(workdir / "s3")
    nats.start()
    try:
        s3.start()
        try:
            s3.create_bucket("bench-recordings")
            yield {
                "STREAMSERVER_BUS__URL": nats.url,
                "STREAMSERVER_STORAGE__URL": "s3://bench-recordings/calls",
                "STREAMSERVER_STORAGE__ENDPOINT_URL": s3.endpoint_url,
                **s3.env,
            }
        finally:
            s3.stop()
    finally:
        nats.stop()


def loadtest(
    name: str, cmd: str, streams: int, duration: float, out: Path, env: dict[str, str],
    pinned: bool,
) -> dict[str, Any]:
    """One load-test run; its level's result."""
    args = [
        sys.executable, "-m", "streamserver", "loadtest", "--server-cmd", cmd, "--name", name,
        "-n", str(streams), "--duration", str(duration), "--out", str(out / name),
        "--no-plots", "--quiet",
    ]  # fmt: skip
    if pinned:
        args += ["--server-cpus", "0", "--generator-cpus", "1"]
    proc = subprocess.run(args, env={**os.environ, **env}, capture_output=True, text=True)
    try:
        result = json.loads((out / name / "result.json").read_text())
    except (OSError, ValueError):
        raise SystemExit(f"{name}: no result ({proc.returncode}):\n{proc.stderr[-2000:]}") from None
    level: dict[str, Any] = result["subjects"][0]["levels"][0]
    level["exit_code"] = proc.returncode
    return level


def row(name: str, level: dict[str, Any]) -> str:
    n = level.get("streams") or level.get("n") or 0
    cpu = level.get("cpu_mean_pct")
    per100 = f"{cpu / n * 100:.1f}" if cpu is not None and n else "-"
    lag = level.get("server_loop_lag_max_ms")
    rtt = (level.get("rtt_ms") or {}).get("p99")
    lost = level.get("server_frames_lost")
    return (
        f"| {name} | {n} | {cpu:.1f} | {per100} | {lost} | "
        f"{lag if lag is None else round(lag, 1)} | {rtt if rtt is None else round(rtt, 1)} | "
        f"{'ok' if level['exit_code'] == 0 else 'FAILED (' + str(level['exit_code']) + ')'} |"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    p.add_argument("-n", "--streams", type=int, default=300, help="streams (default 300)")
    p.add_argument("--scale-streams", type=int, default=600, help="for one/two (default 600)")
    p.add_argument("--duration", type=float, default=12.0, help="seconds of audio (12)")
    args = p.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        p.error(f"unknown cases: {', '.join(sorted(unknown))}")
    print("| case | streams | server CPU % | CPU % per 100 streams | frames lost "
          "| loop lag max ms | echo/rtt p99 ms | run |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        out = Path(tmp)
        for case in cases:
            if case == "on":
                with real_servers(out / "servers") as env:
                    level = loadtest(case, serve_cmd(), args.streams, args.duration, out, env, True)
            elif case == "supervised":
                script = out / "supervised.py"
                script.write_text(SUPERVISED)
                cmd = shlex.join([sys.executable, str(script), "{host}", "{port}", "{record_dir}"])
                level = loadtest(case, cmd, args.streams, args.duration, out, {}, True)
            elif case == "two":
                cmd = serve_cmd("--workers", "2")
                level = loadtest(case, cmd, args.scale_streams, args.duration, out, {}, False)
            elif case == "one":
                level = loadtest(case, serve_cmd(), args.scale_streams, args.duration, out, {},
                                 False)  # fmt: skip
            else:
                level = loadtest(case, serve_cmd(), args.streams, args.duration, out, {}, True)
            print(row(case, level), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
