"""Run Autobahn|Testsuite's fuzzing client against the echo server; fail unless every case
is OK, NON-STRICT or INFORMATIONAL (``make autobahn``).

Starts ``echo_server.py`` on a free port, writes the fuzzing client's spec (cases 1-7, 9
and 10; 12 and 13 are permessage-deflate, which the server never negotiates), runs
``wstest -m fuzzingclient`` (Python 2.7, from the environment ``make autobahn`` builds),
reads its ``index.json`` and prints a table of results per case group and behaviour. The
HTML report stays in ``--report`` (``build/autobahn/`` by default).

    python scripts/autobahn/run.py --wstest .tools/autobahn/bin/wstest
    python scripts/autobahn/run.py --wstest ... --cases 1.1.1 5.*   # a subset
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
EXCLUDED = ["12.*", "13.*"]
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
AGENT = "streamserver"
#: wstest's own bound; the 9.x cases take most of it
TIMEOUT_S = 1200


def start_echo(python: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [python, str(HERE / "echo_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"echo server did not start: {line!r}")
    return proc, int(line.split()[-1])


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(p) for p in case.split("."))


def summarize(index: dict[str, dict[str, dict[str, object]]]) -> tuple[str, list[str]]:
    """A markdown table (group x behaviour) and the cases that did not pass."""
    results = index[AGENT]
    groups: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    bad = []
    for case in sorted(results, key=case_key):
        r = results[case]
        behavior, close = str(r["behavior"]), str(r["behaviorClose"])
        groups[case.split(".")[0]][behavior] += 1
        if behavior not in PASSING or close not in PASSING:
            bad.append(f"{case}: {behavior} (close: {close})")
    kinds = sorted({k for c in groups.values() for k in c})
    lines = ["| cases | " + " | ".join(kinds) + " | total |", "|---" * (len(kinds) + 2) + "|"]
    totals: collections.Counter[str] = collections.Counter()
    for g in sorted(groups, key=int):
        c = groups[g]
        totals.update(c)
        row = " | ".join(str(c.get(k, 0)) for k in kinds)
        lines.append(f"| {g}.x | {row} | {sum(c.values())} |")
    row = " | ".join(str(totals.get(k, 0)) for k in kinds)
    lines.append(f"| all | {row} | {sum(totals.values())} |")
    return "\n".join(lines), bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wstest", required=True, help="wstest of the Autobahn environment")
    parser.add_argument("--report", default="build/autobahn", help="directory for the report")
    parser.add_argument("--cases", nargs="*", default=CASES, help="case patterns to run")
    parser.add_argument("--python", default=sys.executable, help="runs the echo server")
    args = parser.parse_args()
    report = Path(args.report).resolve()
    shutil.rmtree(report, ignore_errors=True)
    report.mkdir(parents=True)
    echo, port = start_echo(args.python)
    try:
        spec = {
            "outdir": str(report),
            "servers": [{"agent": AGENT, "url": f"ws://127.0.0.1:{port}/echo"}],
            "cases": args.cases,
            "exclude-cases": EXCLUDED,
            "exclude-agent-cases": {},
        }
        spec_path = report / "fuzzingclient.json"
        spec_path.write_text(json.dumps(spec, indent=2))
        started = time.monotonic()
        env = dict(os.environ, PYTHONWARNINGS="ignore")  # py2 deprecation noise
        wstest = subprocess.run(
            [str(Path(args.wstest).resolve()), "-m", "fuzzingclient", "-s", str(spec_path)],
            cwd=report,
            env=env,
            stdout=subprocess.DEVNULL,
            timeout=TIMEOUT_S,
            check=False,
        )
        elapsed = time.monotonic() - started
    finally:
        echo.send_signal(signal.SIGTERM)
        try:
            echo.wait(10)
        except subprocess.TimeoutExpired:
            echo.kill()
    index_path = report / "index.json"
    if wstest.returncode != 0 or not index_path.exists():
        print(f"wstest failed (exit {wstest.returncode}); see {report}", file=sys.stderr)
        return 1
    table, bad = summarize(json.loads(index_path.read_text()))
    (report / "summary.md").write_text(table + "\n")
    print(table)
    print(f"\n{elapsed:.0f} s; report: {report}/index.html")
    if bad:
        print(f"\n{len(bad)} case(s) failed:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    print("every case OK, NON-STRICT or INFORMATIONAL")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
