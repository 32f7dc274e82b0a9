"""Runs load tests: one level (N streams for a duration), a ladder, side by side.

A *level* starts the server under test (or uses a running one), scrapes ``/metrics``,
starts the CPU/RSS samplers, runs the generator (in this process, or ``processes`` child
processes each with a share of the streams), merges what they saw window by window, stops
the server, verifies the recordings, judges the level against the service levels in
:class:`Thresholds` and gives what its callers heard a verdict (:mod:`.verdict`). A
*ladder* raises N until a level fails and reports the last that held.

The bot profile builds the caller's turns from the ``--audio`` speech (:mod:`.bot`) and
writes the bot's prompt to ``<out>/bot/prompt.wav``; a started server gets it as the
player's prompt (on start and on the script's digit) through the environment, and a
``--server-cmd`` as ``{prompt}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import queue as queue_mod
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import soundfile as sf

from ..audio import AudioFormat
from ..protocol.detect import provider_format
from .bot import caller_turn, prompt_audio
from .collector import WindowCollector
from .config import LoadTestConfig, Subject
from .engine import Engine, EnginePlan, EngineResult, worker_main
from .judge import judge
from .measure import fill_level, metric_sum, sample_metrics
from .report import one_line, write_outputs
from .results import LevelResult, RunResult, SubjectResult, file_slug
from .target import ManagedServer, ProcSampler, free_port, scrape_metrics
from .verdict import qoe_verdict
from .verify import verify_recordings, wait_for_sidecars
from .wire import Target, load_audio, tagged_frames

__all__ = ["machine_info", "run_loadtest"]


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


# --- the runner -----------------------------------------------------------------------------


class _Runner:
    def __init__(self, cfg: LoadTestConfig) -> None:
        self.cfg = cfg
        asked = AudioFormat.from_content_type(cfg.content_type)
        # The wire format (Telnyx L16 is big-endian); ValueError if the provider has none such.
        self.fmt = AudioFormat(*provider_format(cfg.dialect, asked.encoding, asked.sample_rate))
        self.audio = load_audio(cfg.audio, self.fmt)
        self.prompt: Path | None = None
        if cfg.profile == "bot":
            rate = self.fmt.sample_rate
            self.audio = self.fmt.encode(caller_turn(self.fmt.decode(self.audio), rate, cfg.bot))
            self.prompt = cfg.out_dir / "bot" / "prompt.wav"
            self.prompt.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(self.prompt), prompt_audio(cfg.bot.prompt_s, rate), rate, "PCM_16")
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
        col: WindowCollector,
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
            content_type=self.fmt.content_type,
            dialect=cfg.dialect,
            tracks=cfg.tracks,
            streams=share,
            frames=self.frames,
            ramp_s=self.ramp_s(n),
            burst=cfg.burst,
            slot_ms=cfg.slot_ms,
            echo=cfg.echo,
            bot=cfg.bot if cfg.profile == "bot" else None,
            extra_headers=cfg.extra_headers,
            auth_token=cfg.auth_token,
            seed=None if cfg.seed is None else cfg.seed + worker,
            faults=cfg.faults,
            run_t0=run_t0,
            worker=worker,
            tail_s=cfg.tail_s,
            realtime=cfg.generator_rt,
        )

    async def _generate(
        self, url: str, n: int, run_t0: float, col: WindowCollector, gen: ProcSampler
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
        col: WindowCollector,
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
                series.append(sample_metrics(lv, m, time.monotonic() - t0))

    async def run_level(self, subject: Subject, n: int) -> LevelResult:
        cfg = self.cfg
        lv = LevelResult(subject.name, n, cfg.duration_s, cfg.burst, cfg.processes)
        server: ManagedServer | None = None
        record_dir: Path | None = cfg.record_dir
        pid = subject.pid
        if subject.cmd is not None:
            port = free_port()
            if record_dir is None:
                record_dir = self.out / "recordings" / f"{file_slug(subject.name)}-{n}"
            record_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.out / "logs" / f"{file_slug(subject.name)}-{n}.log"
            server = ManagedServer(
                subject.cmd,
                host="127.0.0.1",
                port=port,
                record_dir=record_dir,
                log_path=log_path,
                cpus=cfg.server_cpus,
                env={
                    "STREAMSERVER_SERVER__MAX_STREAMS": str(max(2000, 2 * n + 100)),
                    **self._bot_env(),
                },
                prompt=self.prompt,
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
        col = WindowCollector(1.0, max(1, cfg.processes))
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
        server_samples = sampler.samples if sampler is not None else []
        fill_level(
            lv, results, col, gen.samples, server_samples, before, after, lag_series,
            late_ms=cfg.thresholds.max_lateness_p99_ms,
        )  # fmt: skip
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
        judge(lv, cfg.thresholds, echo=cfg.echo, bot=cfg.profile == "bot", faults=bool(cfg.faults))
        qoe_verdict(lv, cfg.qoe_limits, profile=cfg.profile)
        return lv

    def _bot_env(self) -> dict[str, str]:
        """The player's prompt, on start and on the script's digit, for a started server."""
        if self.prompt is None:
            return {}
        path = json.dumps(str(self.prompt))  # a TOML basic string as well
        digit = json.dumps(self.cfg.bot.digit)
        return {
            "STREAMSERVER_HANDLER__PLAYER__PROMPT": str(self.prompt),
            "STREAMSERVER_HANDLER__PLAYER__ON_DTMF": f"{{ {digit} = {path} }}",
        }

    async def _settled_metrics(self, url: str) -> dict[str, float] | None:
        """/metrics once the server has seen every stream end (bounded wait)."""
        deadline = time.monotonic() + 15.0
        m = await scrape_metrics(url)
        while m is not None and metric_sum(m, "streams_active") > 0:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
            m = await scrape_metrics(url)
        return m

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
            self._say(one_line(lv))
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


async def run_loadtest(
    cfg: LoadTestConfig, *, on_runner: Callable[[Any], None] | None = None
) -> RunResult:
    """Run every subject (ladder or single level); write JSON, Markdown and plots to
    ``cfg.out_dir``; return the result."""
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
        "dialect": cfg.dialect,
        "tracks": cfg.tracks,
        "profile": cfg.profile,
        "bot": asdict(cfg.bot) if cfg.profile == "bot" else None,
        "echo": cfg.echo,
        "verify_recordings": cfg.verify,
        "faults": cfg.faults.describe() if cfg.faults else "",
        "audio": str(cfg.audio),
        "server_cpus": cfg.server_cpus,
        "generator_cpus": cfg.generator_cpus,
        "generator_rt": cfg.generator_rt,
        "thresholds": asdict(cfg.thresholds),
        "qoe_limits": asdict(cfg.qoe_limits),
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
