"""Workers on one host: the port bound by the supervisor, N forked worker processes serving it.

``streamserver serve --workers N`` runs a :class:`Supervisor`: it binds the listening
sockets, then forks N workers that inherit them; each runs its own uvloop with a
:class:`~streamserver.service.StreamService` on its socket.

- **One ``SO_REUSEPORT`` socket per worker** (nginx's ``listen ... reuseport``): the kernel
  picks the socket of each new connection by a hash of its 4-tuple, so connections spread
  evenly over the workers whatever their load or wake-up order. (One socket shared by all
  workers lets whichever worker wakes first accept a whole burst: 200 streams landed on
  one worker of two.) The supervisor keeps every worker's socket open for its whole life,
  so a worker that exits never closes its socket: the connections queued on it wait for
  the restarted worker instead of being reset, which is what makes ``SO_REUSEPORT`` safe
  here. With one worker there is one plain socket.
- A worker that dies is restarted after a backoff (0.5 s, doubling while it keeps dying
  within 10 s of its start, at most 30 s), counted in
  ``streamserver_worker_restarts_total{worker}`` and logged; the other workers and their
  calls are not touched.
- SIGTERM / SIGINT: every worker gets SIGTERM at once (so ``/readyz`` answers 503 from
  all of them) and drains as a single server does; the supervisor closes its copies of
  the sockets, waits for the workers and exits 0.
- ``/metrics``: see :mod:`streamserver.worker_metrics` (every worker's series, labelled).
- The control app (``[control]``, its own port) runs in worker 0 only; on the stream
  port (``port = "same"``) every worker serves it. Either way ``GET /streams`` lists the
  whole host's streams and a callback reaches its call's streams on any worker: the
  workers answer each other on Unix sockets in the shared directory
  (:mod:`streamserver.worker_peers`).

The supervisor is a plain synchronous loop (``sigtimedwait``): it never runs an event
loop, so each worker starts from a clean fork.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .settings import Settings
from .worker_metrics import SUPERVISOR_FILE, MetricsBoard, worker_file

__all__ = ["Supervisor", "listen_sockets", "usable_cores", "worker_count"]

log = logging.getLogger("streamserver.supervisor")

#: Restart backoff: first delay, cap, and how long a worker must live to reset it.
BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STABLE_S = 10.0
_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def worker_count(value: int | str) -> int:
    """``[server] workers`` as a number: ``"auto"`` is :func:`usable_cores`."""
    return usable_cores() if value == "auto" else int(value)


def listen_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port`` (0: a free port, the same for all).

    One: a plain socket. More: each with ``SO_REUSEPORT``, after a plain probe bind of the
    port, so that a port another server holds is refused (as with one worker) rather than
    silently shared with a reuse-port group of the same user.
    """
    if count <= 1:
        return [socket.create_server((host, port), backlog=1024)]
    with socket.create_server((host, port)) as probe:
        port = probe.getsockname()[1]
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(socket.create_server((host, port), backlog=1024, reuse_port=True))
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


@dataclass
class _Worker:
    index: int
    pid: int = 0
    started: float = 0.0
    restarts: int = 0
    failures: int = 0  # consecutive quick deaths (the backoff's exponent)
    due: float = 0.0  # when to start it again (0: running)


class Supervisor:
    """Binds ``[server] host:port`` once and keeps ``workers`` worker processes serving it.

    :meth:`run` blocks until SIGTERM/SIGINT and every worker drained; returns the exit code.
    """

    def __init__(self, settings: Settings, *, workers: int, cpus: Sequence[int] = ()) -> None:
        self.settings = settings
        self.workers = [_Worker(i) for i in range(workers)]
        self.cpus = list(cpus)
        self.socks: list[socket.socket] = []
        self.metrics_dir = Path()
        self.draining = False

    # -- the supervisor's loop -------------------------------------------------------------

    def run(self) -> int:
        sv = self.settings.server
        try:
            self.socks = listen_sockets(sv.host, sv.port, len(self.workers))
        except OSError as exc:
            log.error(
                "cannot listen on %s:%s: %s (is another server using the port? try --port)",
                sv.host,
                sv.port,
                exc.strerror or exc,
            )
            return 1
        port = self.socks[0].getsockname()[1]
        shm = Path("/dev/shm")
        base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
        self.metrics_dir = Path(tempfile.mkdtemp(prefix="streamserver-metrics-", dir=base))
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            print(
                f"streamserver {__version__} listening on ws://{sv.host}:{port} "
                f"({len(self.workers)} workers)",
                file=sys.stderr,
                flush=True,
            )
            self._write_metrics()
            for w in self.workers:
                self._spawn(w)
            self._loop()
            return 0
        finally:
            self._close_sockets()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            due = [w.due for w in self.workers if w.due]
            timeout = max(0.0, min(due) - now) if due else 1.0
            sig = signal.sigtimedwait(_SIGNALS, timeout) if timeout > 0 else None
            if sig is not None and sig.si_signo in (signal.SIGTERM, signal.SIGINT):
                self._drain()
                return
            self._reap()
            now = time.monotonic()
            for w in self.workers:
                if w.due and w.due <= now:
                    self._spawn(w)

    def _reap(self) -> list[_Worker]:
        """Collect dead workers; outside a drain, schedule their restart."""
        gone = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            w = next((w for w in self.workers if w.pid == pid), None)
            if w is None:
                continue
            w.pid = 0
            gone.append(w)
            worker_file(self.metrics_dir, w.index).unlink(missing_ok=True)
            (self.metrics_dir / f"worker-{w.index}.sock").unlink(missing_ok=True)  # its peers'
            how = (
                f"signal {os.WTERMSIG(status)}"
                if os.WIFSIGNALED(status)
                else f"exit code {os.waitstatus_to_exitcode(status)}"
            )
            if self.draining:
                log.info("worker %d (pid %d) finished (%s)", w.index, pid, how)
                continue
            lived = time.monotonic() - w.started
            w.failures = w.failures + 1 if lived < STABLE_S else 1
            delay = min(MAX_BACKOFF_S, BACKOFF_S * 2 ** (w.failures - 1))
            w.restarts += 1
            w.due = time.monotonic() + delay
            log.error(
                "worker %d (pid %d) died (%s) after %.1fs; restarting it in %.1fs (restart #%d)",
                w.index,
                pid,
                how,
                lived,
                delay,
                w.restarts,
            )
            self._write_metrics()
        return gone

    def _drain(self) -> None:
        self.draining = True
        live = [w for w in self.workers if w.pid]
        log.info("signal received: draining %d worker(s)", len(live))
        for w in self.workers:
            w.due = 0.0
            if w.pid:
                os.kill(w.pid, signal.SIGTERM)
        self._close_sockets()  # the workers hold their own copies until they finish
        sv = self.settings.server
        # Each worker bounds its own drain; this is only a backstop against a stuck one.
        deadline = time.monotonic() + sv.drain_timeout_s + sv.handler_stop_timeout_s + 15
        while any(w.pid for w in self.workers):
            left = deadline - time.monotonic()
            if left <= 0:
                for w in self.workers:
                    if w.pid:
                        log.error("worker %d (pid %d) did not drain: killing it", w.index, w.pid)
                        os.kill(w.pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
            signal.sigtimedwait(_SIGNALS, min(1.0, max(0.01, left)))
            self._reap()
        log.info("all workers drained; bye")

    def _close_sockets(self) -> None:
        for sock in self.socks:
            sock.close()

    def _write_metrics(self) -> None:
        lines = [
            "# HELP streamserver_worker_restarts_total Workers restarted after they died.",
            "# TYPE streamserver_worker_restarts_total counter",
            *(f'streamserver_worker_restarts_total{{worker="{w.index}"}} {w.restarts}'
              for w in self.workers),
            "# HELP streamserver_workers Worker processes of this host.",
            "# TYPE streamserver_workers gauge",
            f"streamserver_workers {len(self.workers)}",
        ]  # fmt: skip
        path = self.metrics_dir / SUPERVISOR_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    # -- a worker --------------------------------------------------------------------------

    def _spawn(self, w: _Worker) -> None:
        w.due = 0.0
        w.started = time.monotonic()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            w.pid = pid
            log.info("worker %d started (pid %d)", w.index, pid)
            return
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            if self.cpus:
                os.sched_setaffinity(0, {self.cpus[w.index % len(self.cpus)]})
            # Only its own socket: a copy of another worker's would keep that one open
            # (queued connections never refused) after the supervisor closed it.
            sock = self.socks[w.index % len(self.socks)]
            for other in self.socks:
                if other is not sock:
                    other.close()
            code = _run_worker(self.settings, sock, w.index, self.metrics_dir)
        except BaseException:
            log.exception("worker %d failed", w.index)
        finally:
            sys.stderr.flush()
            os._exit(code)


def _run_worker(settings: Settings, sock: socket.socket, index: int, metrics_dir: Path) -> int:
    # Imported here: the supervisor itself never builds a service (nor its imports' state).
    import asyncio

    from .runtime import run_async
    from .service import StreamService
    from .worker_peers import Peers, PeerServer

    parent = os.getppid()

    async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
        # A supervisor killed with -9 cannot drain its workers: they drain themselves.
        while True:
            await asyncio.sleep(1.0)
            if os.getppid() != pid:
                break
        log.error("worker %d: the supervisor (pid %d) is gone; draining", index, pid)
        stop.set()

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        orphan_watch = loop.create_task(_watch_parent(parent, stop))
        service = StreamService(settings, sock=sock, control=index == 0, worker=str(index))
        gate = service.server.gate
        board = MetricsBoard(
            metrics_dir, index, lambda draining: service.server.metrics.render(draining=draining)
        )
        gate.render_metrics = board.render
        peer_server = PeerServer(metrics_dir, index, service.server)
        if service.control is not None:
            service.control.peers = Peers(metrics_dir, index)
        await service.start()
        await peer_server.start()
        board.start()
        log.info("worker %d (pid %d) serving on %s", index, os.getpid(), service.url)
        if service.control is not None:
            print(f"control app on {service.control.base_url}", file=sys.stderr, flush=True)
        await stop.wait()
        log.info("worker %d: signal received: draining", index)
        gate.draining = True
        board.set_draining()
        await service.aclose()
        await peer_server.aclose()
        await board.aclose()
        orphan_watch.cancel()
        return 0

    code: int = run_async(main)
    return code
