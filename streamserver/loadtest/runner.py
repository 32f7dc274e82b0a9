"""Runs load tests: one level (N streams for a duration), a ladder, side by side.

A *level* starts the server under test (or uses a running one), scrapes ``/metrics``,
starts the CPU/RSS samplers, runs the generator (in this process, or ``processes`` child
processes each with a share of the streams), merges what they saw window by window, stops
the server, verifies the recordings and judges the level against the service levels in
:class:`Thresholds`. A *ladder* raises N until a level fails and reports the last that held.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import platform
import queue as queue_mod
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..audio import AudioFormat
from .engine import Engine, EnginePlan, EngineResult, Window, worker_main
from .stats import Histogram, Summary
from .target import ManagedServer, ProcSample, ProcSampler, free_port, scrape_metrics
from .verify import VerifyResult, verify_recordings, wait_for_sidecars
from .wire import SAMPLES_DIR, Target, load_audio, tagged_frames

__all__ = [
    "LevelResult",
    "LoadTestConfig",
    "RunResult",
    "Subject",
    "SubjectResult",
    "Thresholds",
    "run_loadtest",
]

_M = "streamserver_"


@dataclass
class Thresholds:
    """Service levels a level must meet to *hold*."""

    #: The generator's own send lateness p99; above it the level is invalid.
    max_lateness_p99_ms: float = 5.0
    max_rtt_p99_ms: float = 50.0
    #: Mean CPU of the server (% of one core) while all streams run.
    max_cpu_pct: float = 95.0
    #: Largest event-loop lag the server reports in /metrics.
    max_loop_lag_ms: float = 100.0
    #: Server memory per stream (RSS growth / streams); None: report only.
    max_rss_kib_per_stream: float | None = None


@dataclass
class Subject:
    """A server under test: a command to start (``{host}``, ``{port}``, ``{record_dir}`` are
    filled in) or the URL of one already running."""

    name: str
    cmd: str | None = None
    url: str | None = None
    pid: int | None = None


@dataclass
class LoadTestConfig:
    """Everything a load test run needs; the CLI builds one from its flags."""

    # Target
    subjects: list[Subject] = field(default_factory=list)
    path: str = "/stream"
    #: http://.../metrics of an external server; "" disables scraping; None: same port.
    metrics_url: str | None = None
    server_cpus: list[int] | None = None
    generator_cpus: list[int] | None = None
    #: Real-time scheduling for the generator (see EnginePlan.realtime).
    generator_rt: bool = False
    record_dir: Path | None = None
    keep_recordings: bool = False
    # Load
    streams: int = 100
    duration_s: float = 30.0
    #: Seconds over which a level opens its streams; None: ``streams / ramp_rate``.
    ramp_s: float | None = None
    #: New streams per second when ``ramp_s`` is None (a call-arrival rate, not a storm).
    ramp_rate: float = 100.0
    ladder: list[int] | None = None
    burst: bool = False
    processes: int = 1
    slot_ms: float = 1.0
    seed: int | None = None
    # Audio
    audio: Path = SAMPLES_DIR / "hello-8k.wav"
    content_type: str = "audio/x-mulaw;rate=8000"
    tracks: str = "inbound"
    echo: bool = False
    verify: bool = False
    extra_headers: str = ""
    auth_token: str | None = None
    tail_s: float = 0.5
    thresholds: Thresholds = field(default_factory=Thresholds)
    # Output
    out_dir: Path = Path("loadtest-results")
    plots: bool = True
    progress: TextIO | None = None
    command_line: str = ""


@dataclass
class LevelResult:
    """One level: N streams against one server, measured and judged."""

    subject: str
    streams: int
    duration_s: float
    burst: bool
    processes: int
    held: bool = False
    valid: bool = True
    failures: list[str] = field(default_factory=list)
    # Generator
    connected: int = 0
    failed: int = 0
    abnormal: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    frames_sent: int = 0
    bytes_sent: int = 0
    play_received: int = 0
    other_received: int = 0
    echo_matched: int = 0
    echo_unmatched: int = 0
    write_paused: int = 0
    lateness_ms: Summary | None = None
    rtt_ms: Summary | None = None
    return_gap_ms: Summary | None = None
    generator_cpu_pct: float | None = None
    # Server
    server_metrics: bool = False
    server_frames_received: int | None = None
    server_frames_lost: int | None = None
    server_gaps: int | None = None
    server_handler_dropped_samples: int | None = None
    server_frames_invalid: int | None = None
    server_frames_sent: int | None = None
    #: streamserver's read batching: most streams batched at once, stall releases.
    server_read_batched_max: int | None = None
    server_read_batch_stalls: int | None = None
    #: Largest event-loop lag while all streams ran (opening and closing storms excluded).
    server_loop_lag_max_ms: float | None = None
    server_loop_lag_max_all_ms: float | None = None
    cpu_mean_pct: float | None = None
    cpu_max_pct: float | None = None
    rss_base_mib: float | None = None
    rss_peak_mib: float | None = None
    rss_per_stream_kib: float | None = None
    recordings: VerifyResult | None = None
    # Timing (seconds since the level's start)
    t_all_open: float | None = None
    t_first_done: float | None = None
    t_end: float = 0.0
    timeline: list[dict[str, float]] = field(default_factory=list)
    #: (t, CPU % of one core, RSS MiB) of the server every 0.5 s
    cpu_samples: list[tuple[float, float, float]] = field(default_factory=list)
    #: (t, event-loop lag ms, streams active) from the server's /metrics every second
    server_lag_samples: list[tuple[float, float, float]] = field(default_factory=list)
    server_log: str | None = None
    server_cmd: str | None = None


@dataclass
class SubjectResult:
    name: str
    cmd: str | None
    url: str | None
    levels: list[LevelResult] = field(default_factory=list)
    #: Largest N that held (ladder: before the first failure).
    held_max: int | None = None
    #: Why the ladder stopped ("" when every step held).
    stopped_by: str = ""


@dataclass
class RunResult:
    started_at: str
    command_line: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    subjects: list[SubjectResult]
    out_dir: str
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 every run held (a ladder: at least one step), 3 the generator lagged, else 1."""
        for s in self.subjects:
            if not s.levels:
                return 1
            if all(not lv.valid for lv in s.levels):
                return 3
            if s.held_max is None:
                return 1
        return 0


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


# --- merging windows ------------------------------------------------------------------------


class _Collector:
    """Merges the windows of all processes into one timeline and overall histograms."""

    def __init__(self, window_s: float, workers: int) -> None:
        self.window_s = window_s
        self.workers = workers
        self.lateness = Histogram()
        self.rtt = Histogram()
        self.gap = Histogram()
        self._by_index: dict[int, dict[int, Window]] = {}
        self._last: dict[int, Window] = {}

    def add(self, w: Window) -> None:
        self.lateness.add(w.lateness)
        self.rtt.add(w.rtt)
        self.gap.add(w.gap)
        self._by_index.setdefault(w.index, {})[w.worker] = w
        self._last[w.worker] = w

    def live(self) -> dict[str, float]:
        """Totals of the latest windows (for the progress line)."""
        ws = list(self._last.values())
        return {
            "open": sum(w.open for w in ws),
            "active": sum(w.active for w in ws),
            "frames_sent": sum(w.frames_sent for w in ws),
            "play_received": sum(w.play_received for w in ws),
        }

    def latest_summaries(self) -> tuple[Summary | None, Summary | None]:
        if not self._by_index:
            return None, None
        idx = max(self._by_index)
        ws = self._by_index[idx]
        if len(ws) < len(self._last) and idx - 1 in self._by_index:
            ws = self._by_index[idx - 1]
        lat, rtt = Histogram(), Histogram()
        for w in ws.values():
            lat.add(w.lateness)
            rtt.add(w.rtt)
        return lat.summary(), rtt.summary()

    def timeline(self) -> list[dict[str, float]]:
        out: list[dict[str, float]] = []
        prev_sent: dict[int, int] = {}
        prev_rx: dict[int, int] = {}
        carry: dict[int, Window] = {}
        for idx in sorted(self._by_index):
            ws = self._by_index[idx]
            carry.update(ws)
            lat, rtt, gap = Histogram(), Histogram(), Histogram()
            sent = rx = 0
            for worker, w in ws.items():
                lat.add(w.lateness)
                rtt.add(w.rtt)
                gap.add(w.gap)
                sent += w.frames_sent - prev_sent.get(worker, 0)
                rx += w.play_received - prev_rx.get(worker, 0)
                prev_sent[worker] = w.frames_sent
                prev_rx[worker] = w.play_received
            t = max(w.t for w in ws.values())
            span = self.window_s
            point: dict[str, float] = {
                "t": round(t, 3),
                "active": sum(w.active for w in carry.values()),
                "frames_per_s": sent / span,
                "play_per_s": rx / span,
            }
            for name, h in (("lateness", lat), ("rtt", rtt), ("gap", gap)):
                s = h.summary()
                if s is not None:
                    point[f"{name}_p50"] = s.p50
                    point[f"{name}_p90"] = s.p90
                    point[f"{name}_p99"] = s.p99
                    point[f"{name}_max"] = s.max
            out.append(point)
        return out


# --- the runner -----------------------------------------------------------------------------


def _metric_sum(m: dict[str, float], name: str) -> float:
    """Sum of a metric over all its label sets."""
    full = _M + name
    return sum(v for k, v in m.items() if k == full or k.startswith(full + "{"))


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "server"


class _Runner:
    def __init__(self, cfg: LoadTestConfig) -> None:
        self.cfg = cfg
        self.fmt = AudioFormat.from_content_type(cfg.content_type)
        self.audio = load_audio(cfg.audio, self.fmt)
        self.frames = max(1, round(cfg.duration_s * 50))
        payloads = tagged_frames(self.audio, self.fmt.frame_bytes, self.frames, tag=cfg.echo)
        self.reference = self.fmt.decode(b"".join(payloads))
        self.tracks: tuple[str, ...] = (
            ("inbound", "outbound") if cfg.tracks == "both" else ("inbound",)
        )
        self.interrupted = False
        self._engine: Engine | None = None
        self._procs: list[Any] = []
        self.out = cfg.out_dir

    def ramp_s(self, n: int) -> float:
        cfg = self.cfg
        return cfg.ramp_s if cfg.ramp_s is not None else n / cfg.ramp_rate

    # -- progress --------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        p = self.cfg.progress
        if p is not None:
            p.write(text + "\n")
            p.flush()

    async def _progress(
        self,
        label: str,
        n: int,
        t0: float,
        col: _Collector,
        server: ProcSampler | None,
        gen: ProcSampler,
    ) -> None:
        p = self.cfg.progress
        if p is None:
            return
        tty = p.isatty()
        last_line = 0.0
        try:
            while True:
                await asyncio.sleep(1.0)
                live = col.live()
                lat, rtt = col.latest_summaries()
                parts = [
                    f"[{label} N={n}] {time.monotonic() - t0:6.1f}s",
                    f"open {live['active']:.0f}/{n}",
                    f"sent {live['frames_sent']:,.0f}",
                ]
                if lat is not None:
                    parts.append(f"late p99 {lat.p99:.1f} ms")
                if rtt is not None:
                    parts.append(f"rtt p99 {rtt.p99:.1f} ms")
                if server is not None and server.samples:
                    s = server.samples[-1]
                    parts.append(f"server cpu {s.cpu_pct:.0f}% rss {s.rss_bytes / 2**20:.0f} MiB")
                if gen.samples:
                    parts.append(f"gen cpu {gen.samples[-1].cpu_pct:.0f}%")
                line = "  ".join(parts)
                if tty:
                    p.write("\r\x1b[K" + line)
                    p.flush()
                elif time.monotonic() - last_line >= 5.0:
                    p.write(line + "\n")
                    p.flush()
                    last_line = time.monotonic()
        finally:
            if tty:
                p.write("\r\x1b[K")
                p.flush()

    # -- one level ---------------------------------------------------------------------------

    def _plan(self, url: str, n: int, worker: int, share: int, run_t0: float) -> EnginePlan:
        cfg = self.cfg
        return EnginePlan(
            url=url,
            audio=self.audio,
            content_type=cfg.content_type,
            tracks=cfg.tracks,
            streams=share,
            frames=self.frames,
            ramp_s=self.ramp_s(n),
            burst=cfg.burst,
            slot_ms=cfg.slot_ms,
            echo=cfg.echo,
            extra_headers=cfg.extra_headers,
            auth_token=cfg.auth_token,
            seed=None if cfg.seed is None else cfg.seed + worker,
            run_t0=run_t0,
            worker=worker,
            tail_s=cfg.tail_s,
            realtime=cfg.generator_rt,
        )

    async def _generate(
        self, url: str, n: int, run_t0: float, col: _Collector, gen: ProcSampler
    ) -> list[EngineResult]:
        cfg = self.cfg
        k = max(1, min(cfg.processes, n or 1))
        shares = [n // k + (1 if i < n % k else 0) for i in range(k)]
        if k == 1:
            engine = self._engine = Engine(self._plan(url, n, 0, n, run_t0), on_window=col.add)
            try:
                return [await engine.run()]
            finally:
                self._engine = None
        ctx = multiprocessing.get_context("spawn")
        q: Any = ctx.Queue()
        procs = [
            ctx.Process(
                target=worker_main,
                args=(self._plan(url, n, i, shares[i], run_t0), q, cfg.generator_cpus),
                daemon=True,
            )
            for i in range(k)
        ]
        for proc in procs:
            proc.start()
        self._procs = procs
        gen.extra_pids = [p.pid for p in procs if p.pid is not None]
        results: list[EngineResult] = []
        errors: list[str] = []
        loop = asyncio.get_running_loop()
        try:
            while len(results) + len(errors) < k:
                try:
                    kind, item = await loop.run_in_executor(None, q.get, True, 0.5)
                except queue_mod.Empty:
                    if all(not p.is_alive() for p in procs):
                        # A worker died without a word (killed): do not wait forever.
                        with contextlib.suppress(queue_mod.Empty):
                            while True:
                                kind, item = q.get_nowait()
                                self._take(kind, item, col, results, errors)
                        break
                    continue
                self._take(kind, item, col, results, errors)
        finally:
            for proc in procs:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.kill()
            self._procs = []
        if errors:
            raise RuntimeError("; ".join(errors))
        if len(results) < k:
            raise RuntimeError(f"{k - len(results)} generator process(es) died")
        return results

    @staticmethod
    def _take(
        kind: str,
        item: Any,
        col: _Collector,
        results: list[EngineResult],
        errors: list[str],
    ) -> None:
        if kind == "window":
            col.add(item)
        elif kind == "done":
            results.append(item)
        else:
            errors.append(str(item))

    async def _scrape_loop(
        self, url: str, t0: float, series: list[tuple[float, float, float]], lv: LevelResult
    ) -> None:
        while True:
            await asyncio.sleep(1.0)
            m = await scrape_metrics(url)
            if m is not None:
                if _M + "streams_read_batched" in m:
                    batched = round(_metric_sum(m, "streams_read_batched"))
                    lv.server_read_batched_max = max(lv.server_read_batched_max or 0, batched)
                series.append(
                    (
                        time.monotonic() - t0,
                        _metric_sum(m, "event_loop_lag_seconds") * 1000.0,
                        _metric_sum(m, "streams_active"),
                    )
                )

    async def run_level(self, subject: Subject, n: int) -> LevelResult:
        cfg = self.cfg
        lv = LevelResult(subject.name, n, cfg.duration_s, cfg.burst, cfg.processes)
        server: ManagedServer | None = None
        record_dir: Path | None = cfg.record_dir
        pid = subject.pid
        if subject.cmd is not None:
            port = free_port()
            if record_dir is None:
                record_dir = self.out / "recordings" / f"{_slug(subject.name)}-{n}"
            record_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.out / "logs" / f"{_slug(subject.name)}-{n}.log"
            server = ManagedServer(
                subject.cmd,
                host="127.0.0.1",
                port=port,
                record_dir=record_dir,
                log_path=log_path,
                cpus=cfg.server_cpus,
                env={"STREAMSERVER_SERVER__MAX_STREAMS": str(max(2000, 2 * n + 100))},
            )
            lv.server_log = str(log_path)
            lv.server_cmd = server.command
            await server.start()
            url = f"ws://127.0.0.1:{port}{cfg.path}"
            pid = server.pid
        else:
            assert subject.url is not None
            url = subject.url
        target = Target.parse(url)
        metrics_url = cfg.metrics_url
        if metrics_url is None:
            metrics_url = f"{target.http_base}/metrics"
        results: list[EngineResult] = []
        lag_series: list[tuple[float, float, float]] = []
        col = _Collector(1.0, max(1, cfg.processes))
        tasks: list[asyncio.Task[None]] = []
        sampler: ProcSampler | None = None
        try:
            before = await scrape_metrics(metrics_url) if metrics_url else None
            run_t0 = time.monotonic()
            gen = ProcSampler(os.getpid(), run_t0, tree=False)
            gen.start()
            if pid is not None:
                sampler = ProcSampler(pid, run_t0)
                base_rss = sampler.rss_now()
                lv.rss_base_mib = None if base_rss is None else base_rss / 2**20
                sampler.start()
            loop = asyncio.get_running_loop()
            if before is not None and metrics_url:
                tasks.append(
                    loop.create_task(self._scrape_loop(metrics_url, run_t0, lag_series, lv))
                )
            tasks.append(
                loop.create_task(self._progress(subject.name, n, run_t0, col, sampler, gen))
            )
            try:
                results = await self._generate(url, n, run_t0, col, gen)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await gen.stop()
                if sampler is not None:
                    await sampler.stop()
            after = None
            if before is not None and metrics_url:
                after = await self._settled_metrics(metrics_url)
        finally:
            if server is not None:
                await server.stop()
        self._fill(lv, results, col, gen, sampler, before, after, lag_series)
        if server is not None and server.returncode not in (0, None):
            lv.failures.append(f"the server exited with code {server.returncode}")
        if cfg.verify and record_dir is not None:
            streams = [s for r in results for s in r.streams]
            if server is None:
                await asyncio.to_thread(wait_for_sidecars, record_dir, streams)
            lv.recordings = await asyncio.to_thread(
                verify_recordings, record_dir, streams, self.reference, self.fmt, self.tracks
            )
        if server is not None and record_dir is not None and not cfg.keep_recordings:
            shutil.rmtree(record_dir, ignore_errors=True)
        self._judge(lv)
        return lv

    async def _settled_metrics(self, url: str) -> dict[str, float] | None:
        """/metrics once the server has seen every stream end (bounded wait)."""
        deadline = time.monotonic() + 15.0
        m = await scrape_metrics(url)
        while m is not None and _metric_sum(m, "streams_active") > 0:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
            m = await scrape_metrics(url)
        return m

    def _fill(
        self,
        lv: LevelResult,
        results: list[EngineResult],
        col: _Collector,
        gen: ProcSampler,
        sampler: ProcSampler | None,
        before: dict[str, float] | None,
        after: dict[str, float] | None,
        lag_series: list[tuple[float, float, float]],
    ) -> None:
        errors: dict[str, int] = {}
        for r in results:
            lv.connected += r.connected
            lv.failed += r.failed
            lv.abnormal += r.abnormal
            lv.frames_sent += r.frames_sent
            lv.bytes_sent += r.bytes_sent
            lv.play_received += r.play_received
            lv.other_received += r.other_received
            lv.echo_matched += r.echo_matched
            lv.echo_unmatched += r.echo_unmatched
            lv.write_paused += r.write_paused
            for msg, count in r.errors.items():
                errors[msg] = errors.get(msg, 0) + count
        lv.errors = dict(sorted(errors.items(), key=lambda kv: -kv[1]))
        lv.lateness_ms = col.lateness.summary()
        lv.rtt_ms = col.rtt.summary()
        lv.return_gap_ms = col.gap.summary()
        opens = [r.t_all_open for r in results]
        lv.t_all_open = None if None in opens else max(o for o in opens if o is not None)
        firsts = [r.t_first_done for r in results if r.t_first_done is not None]
        lv.t_first_done = min(firsts) if firsts else None
        lv.t_end = max((r.t_end for r in results), default=0.0)
        lv.timeline = col.timeline()
        if gen.samples:
            lv.generator_cpu_pct = _steady_mean(gen.samples, lv)
        if sampler is not None and sampler.samples:
            lv.cpu_samples = [(s.t, s.cpu_pct, s.rss_bytes / 2**20) for s in sampler.samples]
            lv.cpu_mean_pct = _steady_mean(sampler.samples, lv)
            lv.cpu_max_pct = max(s.cpu_pct for s in sampler.samples)
            peak = max(s.rss_bytes for s in sampler.samples) / 2**20
            lv.rss_peak_mib = peak
            if lv.rss_base_mib is not None and lv.streams:
                lv.rss_per_stream_kib = (peak - lv.rss_base_mib) * 1024 / lv.streams
        if before is not None and after is not None:
            lv.server_metrics = True

            def delta(name: str) -> int:
                return round(_metric_sum(after, name) - _metric_sum(before, name))

            lv.server_frames_received = delta("media_frames_total")
            lv.server_frames_lost = lv.frames_sent - lv.server_frames_received
            lv.server_gaps = delta("gaps_total")
            lv.server_handler_dropped_samples = delta("handler_dropped_samples_total")
            lv.server_frames_invalid = delta("frames_invalid_total")
            lv.server_frames_sent = delta("frames_sent_total")
            if _M + "read_batch_stalls_total" in after:
                lv.server_read_batch_stalls = delta("read_batch_stalls_total")
            lv.server_lag_samples = [(round(t, 3), lag, n) for t, lag, n in lag_series]
            lags = [lag for _, lag, _ in lag_series]
            lv.server_loop_lag_max_all_ms = max(lags) if lags else None
            lo, hi = _steady_window(lv)
            steady = [lag for t, lag, _ in lag_series if lo <= t <= hi]
            lv.server_loop_lag_max_ms = max(steady) if steady else lv.server_loop_lag_max_all_ms

    def _judge(self, lv: LevelResult) -> None:
        th = self.cfg.thresholds
        f = lv.failures
        if lv.lateness_ms is not None and lv.lateness_ms.p99 > th.max_lateness_p99_ms:
            lv.valid = False
            f.append(
                f"INVALID: generator send lateness p99 {lv.lateness_ms.p99:.1f} ms > "
                f"{th.max_lateness_p99_ms:g} ms (the load generator lagged)"
            )
        if lv.failed:
            f.append(f"{lv.failed} of {lv.streams} streams failed to connect")
        if lv.abnormal:
            f.append(f"{lv.abnormal} streams ended abnormally")
        if lv.connected and lv.frames_sent == 0:
            f.append("no frames were sent")
        if lv.server_metrics:
            if lv.server_frames_lost:
                f.append(f"server received {lv.server_frames_lost:+d} frames fewer than sent")
            if lv.server_gaps:
                f.append(f"server saw {lv.server_gaps} gaps")
            if lv.server_handler_dropped_samples:
                f.append(f"handlers dropped {lv.server_handler_dropped_samples} samples")
            if lv.server_frames_invalid:
                f.append(f"server rejected {lv.server_frames_invalid} frames as invalid")
            lag = lv.server_loop_lag_max_ms
            if lag is not None and lag > th.max_loop_lag_ms:
                f.append(f"server event-loop lag {lag:.0f} ms > {th.max_loop_lag_ms:g} ms")
        if self.cfg.echo:
            expected = lv.frames_sent
            if lv.echo_matched < expected:
                f.append(f"{expected - lv.echo_matched} of {expected} frames never echoed back")
            if lv.echo_unmatched:
                f.append(f"{lv.echo_unmatched} playAudio frames matched no sent frame")
            if lv.rtt_ms is not None and lv.rtt_ms.p99 > th.max_rtt_p99_ms:
                f.append(f"echo round trip p99 {lv.rtt_ms.p99:.1f} ms > {th.max_rtt_p99_ms:g} ms")
        if lv.cpu_mean_pct is not None and lv.cpu_mean_pct > th.max_cpu_pct:
            f.append(f"server CPU {lv.cpu_mean_pct:.0f}% > {th.max_cpu_pct:g}% (saturated)")
        if (
            th.max_rss_kib_per_stream is not None
            and lv.rss_per_stream_kib is not None
            and lv.rss_per_stream_kib > th.max_rss_kib_per_stream
        ):
            f.append(
                f"server memory {lv.rss_per_stream_kib:.0f} KiB/stream > "
                f"{th.max_rss_kib_per_stream:g} KiB"
            )
        if lv.recordings is not None and not lv.recordings.ok:
            r = lv.recordings
            f.append(
                f"recordings: {r.exact} of {r.checked} sample-exact "
                f"({r.missing} missing, {r.mismatched} different)"
            )
        lv.held = not f

    # -- runs ----------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Ctrl-C: hang up the running level's calls; no further levels."""
        self.interrupted = True
        if self._engine is not None:
            self._engine.stop()
        for proc in self._procs:
            if proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, 2)

    async def run_subject(self, subject: Subject) -> SubjectResult:
        cfg = self.cfg
        sr = SubjectResult(subject.name, subject.cmd, subject.url)
        steps = cfg.ladder or [cfg.streams]
        for n in steps:
            if self.interrupted:
                sr.stopped_by = "interrupted"
                break
            self._say(f"-- {subject.name}: {n} streams for {cfg.duration_s:g} s")
            lv = await self.run_level(subject, n)
            sr.levels.append(lv)
            self._say(_one_line(lv))
            if lv.held:
                sr.held_max = n
            else:
                sr.stopped_by = f"{n} streams: " + "; ".join(lv.failures)
                break
        return sr


def _raise_fd_limit(streams: int) -> None:
    """One socket per stream here, and a socket plus files per stream in a server started
    from here (it inherits the limit): lift the soft limit to the hard one when needed."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * streams + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(hard, max(want, soft))
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def _steady_window(lv: LevelResult) -> tuple[float, float]:
    """While every stream ran: from all open (+0.5 s) to the first stream's end."""
    lo = (lv.t_all_open or 0.0) + 0.5
    hi = lv.t_first_done if lv.t_first_done is not None else float("inf")
    return lo, hi


def _steady_mean(samples: list[ProcSample], lv: LevelResult) -> float:
    """Mean CPU while every stream ran; all samples if that window is empty."""
    lo, hi = _steady_window(lv)
    steady = [s.cpu_pct for s in samples if lo <= s.t <= hi]
    if not steady:
        steady = [s.cpu_pct for s in samples]
    return float(np.mean(steady))


def _one_line(lv: LevelResult) -> str:
    verdict = "HELD" if lv.held else ("INVALID" if not lv.valid else "FAILED")
    parts = [f"   {verdict}: {lv.connected}/{lv.streams} connected"]
    if lv.lateness_ms is not None:
        parts.append(f"late p99 {lv.lateness_ms.p99:.1f} ms")
    if lv.rtt_ms is not None:
        parts.append(f"rtt p50/p99 {lv.rtt_ms.p50:.1f}/{lv.rtt_ms.p99:.1f} ms")
    if lv.cpu_mean_pct is not None:
        parts.append(f"server cpu {lv.cpu_mean_pct:.0f}%")
    if lv.rss_per_stream_kib is not None:
        parts.append(f"{lv.rss_per_stream_kib:.0f} KiB/stream")
    if lv.server_frames_lost is not None:
        parts.append(f"lost {lv.server_frames_lost}")
    if lv.recordings is not None:
        parts.append(f"recordings {lv.recordings.exact}/{lv.recordings.checked} exact")
    line = ", ".join(parts)
    if lv.failures:
        line += "\n   " + "\n   ".join(lv.failures)
    return line


async def run_loadtest(
    cfg: LoadTestConfig, *, on_runner: Callable[[Any], None] | None = None
) -> RunResult:
    """Run every subject (ladder or single level); write JSON, Markdown and plots to
    ``cfg.out_dir``; return the result."""
    from .report import write_outputs

    if not cfg.subjects:
        raise ValueError("nothing to test: give a URL or a server command")
    if cfg.generator_cpus:
        os.sched_setaffinity(0, cfg.generator_cpus)
    _raise_fd_limit(max([cfg.streams, *(cfg.ladder or [])]))
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    runner = _Runner(cfg)
    if on_runner is not None:
        on_runner(runner)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    machine = machine_info()
    subjects: list[SubjectResult] = []
    for subject in cfg.subjects:
        if runner.interrupted:
            break
        subjects.append(await runner.run_subject(subject))
    settings = {
        "streams": cfg.streams,
        "ladder": cfg.ladder,
        "duration_s": cfg.duration_s,
        "ramp_s": cfg.ramp_s,
        "ramp_rate": cfg.ramp_rate,
        "burst": cfg.burst,
        "processes": cfg.processes,
        "slot_ms": cfg.slot_ms,
        "content_type": cfg.content_type,
        "tracks": cfg.tracks,
        "echo": cfg.echo,
        "verify_recordings": cfg.verify,
        "audio": str(cfg.audio),
        "server_cpus": cfg.server_cpus,
        "generator_cpus": cfg.generator_cpus,
        "generator_rt": cfg.generator_rt,
        "thresholds": asdict(cfg.thresholds),
    }
    result = RunResult(
        started_at=started,
        command_line=cfg.command_line or " ".join(sys.argv),
        machine=machine,
        settings=settings,
        subjects=subjects,
        out_dir=str(cfg.out_dir),
        interrupted=runner.interrupted,
    )
    write_outputs(result, cfg.out_dir, plots=cfg.plots)
    return result
