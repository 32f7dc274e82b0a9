"""The server under test: starting it, watching its CPU and memory, scraping ``/metrics``.

CPU and RSS come from ``/proc/<pid>/stat`` and ``/proc/<pid>/statm`` summed over the process
and its descendants (a server started through a shell or with worker processes is measured
whole). ``/metrics`` is fetched with a bare HTTP/1.0 request: it runs next to the load
generator, which must not be slowed by an HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ManagedServer",
    "ProcSample",
    "ProcSampler",
    "default_server_cmd",
    "free_port",
    "parse_metrics",
    "scrape_metrics",
]

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")

#: Starts the server command: pinned to the CPUs in argv[1] ("0", "0,1"; "" for all) before
#: exec, so every thread it ever starts inherits the affinity, and always under the normal
#: scheduler even when the load generator itself runs with real-time priority.
_LAUNCH = (
    "import os,sys;"
    "os.sched_setscheduler(0,os.SCHED_OTHER,os.sched_param(0));"
    "c=sys.argv[1];"
    "os.sched_setaffinity(0,{int(x) for x in c.split(',')} if c else range(os.cpu_count() or 1));"
    "os.execvp(sys.argv[2],sys.argv[2:])"
)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def default_server_cmd(handlers: list[str], *, log_level: str = "WARNING") -> str:
    """``streamserver serve`` with the given handlers, as a command template."""
    return shlex.join(
        [
            sys.executable,
            "-m",
            "streamserver",
            "serve",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--handlers",
            ",".join(handlers),
            "--record-dir",
            "{record_dir}",
            "--log-level",
            log_level,
        ]
    )


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def _tree(pid: int) -> list[int]:
    pids = [pid]
    i = 0
    while i < len(pids) and len(pids) < 256:
        pids.extend(_children(pids[i]))
        i += 1
    return pids


def _cpu_and_rss(pids: list[int]) -> tuple[float, int] | None:
    """(CPU seconds, RSS bytes) summed over ``pids``; None when none of them exists."""
    cpu = 0.0
    rss = 0
    seen = False
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{pid}/statm", "rb") as f:
                statm = f.read()
        except OSError:
            continue
        # Fields after the command name (which may contain spaces) start at ") ".
        fields = stat[stat.rindex(b")") + 2 :].split()
        cpu += (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime
        rss += int(statm.split()[1]) * _PAGE
        seen = True
    return (cpu, rss) if seen else None


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU % of one core over the last interval, and RSS, at ``t`` (seconds)."""

    t: float
    cpu_pct: float
    rss_bytes: int


class ProcSampler:
    """Samples CPU and RSS of a process tree every ``interval_s`` on the event loop."""

    def __init__(self, pid: int, t0: float, interval_s: float = 0.5, *, tree: bool = True) -> None:
        self.pid = pid
        self.t0 = t0
        self.interval_s = interval_s
        self.tree = tree
        self.samples: list[ProcSample] = []
        self.extra_pids: list[int] = []
        self._task: asyncio.Task[None] | None = None
        self._last: tuple[float, float] | None = None

    def _pids(self) -> list[int]:
        base = _tree(self.pid) if self.tree else [self.pid]
        return base + self.extra_pids

    def sample(self) -> ProcSample | None:
        """Take one sample now (the first call only sets the reference point)."""
        now = time.monotonic()
        got = _cpu_and_rss(self._pids())
        if got is None:
            return None
        cpu, rss = got
        last, self._last = self._last, (now, cpu)
        if last is None or now <= last[0]:
            return None
        s = ProcSample(now - self.t0, 100.0 * (cpu - last[1]) / (now - last[0]), rss)
        self.samples.append(s)
        return s

    def rss_now(self) -> int | None:
        got = _cpu_and_rss(self._pids())
        return None if got is None else got[1]

    def start(self) -> None:
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.sample()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sample()


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> ``{"name{labels}": value}`` (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


async def scrape_metrics(url: str, timeout_s: float = 2.0) -> dict[str, float] | None:
    """GET ``url`` (http://host:port/path); None when unreachable or not 200."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
            data = await reader.read()
    except (OSError, TimeoutError):
        return None
    finally:
        if writer is not None:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)
    if len(status) < 2 or status[1] != b"200":
        return None
    return parse_metrics(body.decode("utf-8", "replace"))


class ManagedServer:
    """A server process the load tester starts and stops (SIGTERM, then SIGKILL).

    ``{host}``, ``{port}``, ``{record_dir}`` and ``{prompt}`` (the bot profile's prompt
    file, else empty) in ``cmd`` are filled in."""

    def __init__(
        self,
        cmd: str,
        *,
        host: str,
        port: int,
        record_dir: Path,
        log_path: Path,
        cpus: list[int] | None = None,
        env: dict[str, str] | None = None,
        prompt: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        fill = {"host": host, "port": port, "record_dir": str(record_dir), "prompt": prompt or ""}
        argv = [a.format(**fill) for a in shlex.split(cmd)]
        if not argv:
            raise ValueError("empty server command")
        cpu_list = ",".join(str(c) for c in cpus or ())
        self.command = shlex.join(argv)
        self.argv = [sys.executable, "-c", _LAUNCH, cpu_list, *argv]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            return subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # Ctrl-C in the terminal goes to the tester only
            )

    async def start(self, ready_timeout_s: float = 30.0) -> None:
        """Start the command and wait until its port accepts connections."""
        proc = self.proc = self._spawn()
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited with code {proc.returncode} before listening; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                _, w = await asyncio.open_connection(self.host, self.port)
                w.close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                await self.stop()
                raise RuntimeError(
                    f"the server did not listen on {self.host}:{self.port} within "
                    f"{ready_timeout_s} s; log {self.log_path}:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.05)  # polling a port: there is nothing to wait on

    async def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout_s``; the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            if await asyncio.to_thread(_wait, proc, timeout_s) is None:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        self.returncode = proc.returncode
        return self.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return None
