"""Running the demo: server, control app and emulator in one loop, a few calls through them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import sys
import time
from dataclasses import asdict
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ...control import Callback
from ...handler import ENTRY_POINT_GROUP, HandlerLoadError, HandlerSpec
from ...service import StreamService
from ...settings import RouteSettings, Settings, load_settings
from .results import CallResult, DemoResult, StreamResult, StreamStats
from .script import SAMPLE_SCRIPTS, word_errors
from .summary import Progress

__all__ = ["DEMO_CALLS", "DEMO_FROM", "OUTPUTS", "ROUTE", "demo_settings", "run_demo"]

#: (destination, what the callee says) for each demo call, in order.
DEMO_CALLS = (
    ("14155550101", "hello-8k.wav"),
    ("14155550102", "question-8k.wav"),
    ("14155550103", "digits-8k.wav"),
)
DEMO_FROM = "14155550100"
ROUTE = "/stream"
#: The callee hangs up this long after their audio ends (the emulator's default is 3 s).
HANGUP_AFTER_S = 0.6
RING_S = 0.3
_TICK_S = 0.2


def demo_settings(out: Path, *, transcribe: bool, auth_id: str, auth_token: str) -> Settings:
    """The server's settings: loopback, free ports, control app on, files under ``out``.

    The environment is not read: the demo is the same on every machine.
    """
    s = load_settings(
        None,
        environ={},
        overrides={"server.host": "127.0.0.1", "server.port": 0, "server.gc_freeze": False},
    )
    handlers = ["recorder", "echo"]
    if transcribe:
        # After the recorder (its files close without waiting for the recogniser).
        handlers.append("transcriber")
    s.routes = {ROUTE: RouteSettings(handlers, bidirectional=True)}
    record_dir = str(out / "recordings")
    s.handler = {"recorder": {"record_dir": record_dir}}
    if transcribe:
        s.handler["transcriber"] = {"record_dir": record_dir, "log_text": False}
    s.server.drain_timeout_s = 5.0
    s.plivo.auth_id = auth_id
    s.plivo.auth_token = auth_token
    s.extra["control"] = {"enabled": True, "host": "127.0.0.1", "port": 0, "route": ROUTE}
    return s


def _rms_dbfs(pcm: np.ndarray) -> float | None:
    if pcm.size == 0:
        return None
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    return round(20 * math.log10(rms / 32768), 1) if rms > 0 else -math.inf


def _build_service(
    out: Path, transcribe: bool, auth_id: str, auth_token: str, streams: dict[str, StreamResult]
) -> tuple[StreamService, str]:
    """Server and control app, with the transcriber when it loads (else the reason it does
    not); the demo's own last handler collects each stream's numbers into ``streams``."""
    extra = {ROUTE: [HandlerSpec("demo-stats", StreamStats, streams)]}
    note = "left out (--no-transcribe)"
    if transcribe:
        try:
            settings = demo_settings(out, transcribe=True, auth_id=auth_id, auth_token=auth_token)
            return StreamService(settings, extra_handlers=extra), "on"
        except HandlerLoadError as exc:
            note = f"not available ({exc})"
    settings = demo_settings(out, transcribe=False, auth_id=auth_id, auth_token=auth_token)
    return StreamService(settings, extra_handlers=extra), note


def _transcriber_installed() -> bool:
    return any(ep.name == "transcriber" for ep in entry_points(group=ENTRY_POINT_GROUP))


async def run_demo(
    out: Path,
    *,
    calls: int = 3,
    transcribe: bool = True,
    timeout_s: float = 60.0,
    progress_stream: TextIO | None = None,
) -> DemoResult:
    """Run the demo; return what happened (files are written under ``out``)."""
    import httpx
    import soundfile as sf

    from ...emulator import (
        DEFAULT_AUTH_ID,
        DEFAULT_AUTH_TOKEN,
        SAMPLES_DIR,
        Emulator,
        EmulatorSettings,
    )
    from ...rest import AsyncPlivoClient

    started = time.monotonic()
    out = await asyncio.to_thread(_prepare, out)
    plan = [DEMO_CALLS[i % len(DEMO_CALLS)] for i in range(calls)]
    plan = [(f"{number[:-1]}{i + 1}", sample) for i, (number, sample) in enumerate(plan)]
    auth_id, auth_token = DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN

    want_transcriber = transcribe and _transcriber_installed()
    streams: dict[str, StreamResult] = {}
    service, transcriber_note = _build_service(out, want_transcriber, auth_id, auth_token, streams)
    if transcribe and not want_transcriber:
        transcriber_note = "not installed (handlers/transcribe)"
    server, control = service.server, service.control
    assert control is not None  # demo_settings enables it
    emulator = Emulator(
        EmulatorSettings(
            host="127.0.0.1",
            port=0,
            auth_id=auth_id,
            auth_token=auth_token,
            ring_s=RING_S,
            calls_per_second=0,
            caller_audio_by_number={n: str(SAMPLES_DIR / s) for n, s in plan},
            caller_hangup_after_audio_s=HANGUP_AFTER_S,
            tts="tone",
        )
    )
    callbacks: list[Callback] = []
    arrived = asyncio.Event()

    def on_callback(cb: Callback) -> None:
        callbacks.append(cb)
        arrived.set()

    control.add_listener(on_callback)
    results = [CallResult(number, sample) for number, sample in plan]
    error = ""
    expected = 0
    for _, sample in plan:
        expected += int((sf.info(str(SAMPLES_DIR / sample)).duration + HANGUP_AFTER_S) * 50)
    progress = Progress(progress_stream or sys.stderr, expected_frames=expected)

    async with contextlib.AsyncExitStack() as stack:
        await service.start()
        stack.push_async_callback(service.aclose)
        # Plivo signs every stream upgrade: check them, as in production.
        service.verify_upgrades([auth_token])
        await emulator.start()
        stack.push_async_callback(emulator.aclose)
        # An explicit transport: no proxy from the environment, loopback only.
        async with AsyncPlivoClient(
            auth_id, auth_token, base_url=emulator.base_url, transport=httpx.AsyncHTTPTransport()
        ) as plivo:
            for res in results:
                created = await plivo.calls.make(
                    DEMO_FROM,
                    res.number,
                    control.answer_url,
                    hangup_url=control.callback_url("hangup"),
                )
                uuid = created.request_uuid
                res.call_uuid = uuid[0] if isinstance(uuid, list) else str(uuid)
        ended = asyncio.gather(
            *(emulator.simulator.wait_call_ended(r.call_uuid, timeout_s) for r in results)
        )
        try:
            deadline = time.monotonic() + timeout_s
            while not ended.done() and time.monotonic() < deadline:
                _show(progress, server, emulator, results)
                await asyncio.wait([ended], timeout=_TICK_S)
            _show(progress, server, emulator, results)
            if not ended.done():
                raise TimeoutError
            await ended
        except TimeoutError:
            error = f"the calls did not end within {timeout_s:.0f} s"
            ended.cancel()
        finally:
            progress.done()
        # The hangup callbacks are sent as the calls end; give them a moment to land.
        hangups_due = time.monotonic() + 5.0
        while sum(cb.kind == "hangup" for cb in callbacks) < len(results):
            arrived.clear()
            left = hangups_due - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), left)
        for res in results:
            _from_emulator(res, emulator)
    # Everything has stopped: every handler's on_stop has run.

    for res in results:
        _from_server(res, streams, callbacks, out)
        await _save_heard(res, emulator, out)
    m = server.metrics
    result = DemoResult(
        out=str(out),
        calls=results,
        elapsed_s=round(time.monotonic() - started, 2),
        transcriber=transcriber_note,
        signatures_ok=m.signature_checks.get("ok", 0),
        signatures_rejected=sum(v for k, v in m.signature_checks.items() if k != "ok")
        + m.callbacks.get("rejected", 0),
        callbacks=dict(m.callbacks),
        loop_lag_max_ms=round(m.loop_lag_max_s * 1000, 1),
        error=error,
    )
    doc = asdict(result)
    doc["ok"] = result.ok
    await asyncio.to_thread(
        (out / "summary.json").write_text, json.dumps(doc, indent=2) + "\n", "utf-8"
    )
    return result


#: What a run writes under --out; each run removes the previous run's first, so that
#: summary.json always describes exactly the folders beside it.
OUTPUTS = ("recordings", "heard", "summary.json")


def _prepare(out: Path) -> Path:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    return out


def _show(progress: Progress, server: Any, emulator: Any, results: list[CallResult]) -> None:
    store = emulator.store.calls
    calls = [store.get(r.call_uuid) for r in results]
    m = server.metrics
    progress.update(
        answered=sum(1 for c in calls if c is not None and c.answer_time is not None),
        ended=sum(1 for c in calls if c is not None and c.ended),
        calls=len(results),
        live=sum(1 for s in server.active_sessions() if s.started and not s.ended),
        rx=m.media_frames,
        tx=m.frames_sent,
    )


def _from_emulator(res: CallResult, emulator: Any) -> None:
    call = emulator.store.calls.get(res.call_uuid)
    if call is None:
        return
    res.status = call.status
    res.hangup = (
        f"{call.hangup_cause_name} ({call.hangup_cause_code}, {call.hangup_source})"
        if call.hangup_cause_name
        else ""
    )
    res.duration_s = call.duration_s
    streams = emulator.simulator.streams_of(res.call_uuid)
    if not streams:
        return
    stream = streams[0]
    res.stream_id = stream.stream_id
    report = emulator.simulator.stream_report(stream.stream_id)
    if report is None:
        return
    res.stream_ok = report.ok
    res.stream_errors = list(report.errors)
    res.frames_sent = report.frames_sent
    res.audio_s = round(report.audio_s, 2)
    res.stream_duration_s = round(report.duration_s, 2)
    res.echo_frames = len(report.echo_rtt_ms)
    rtt = report.echo_rtt
    if rtt is not None:
        res.echo_rtt_p50_ms = round(rtt.p50, 2)
        res.echo_rtt_max_ms = round(rtt.max, 2)


def _from_server(
    res: CallResult, streams: dict[str, StreamResult], callbacks: list[Any], out: Path
) -> None:
    seen = streams.get(res.stream_id)
    if seen is not None:
        stats = seen.stats
        res.server_frames = int(stats.get("media_frames", 0))
        res.gaps = int(stats.get("gaps", 0))
        res.handler_drops = int(stats.get("handler_dropped_samples", 0))
        res.transcripts = list(seen.transcripts)
        res.callbacks_live = list(seen.callbacks)
    res.script = SAMPLE_SCRIPTS.get(res.sample, "")
    if res.script and res.transcripts:
        errors = word_errors(res.script, " ".join(res.transcripts))
        res.word_errors, res.script_words = errors
        res.word_error_rate = round(errors.rate, 3)
    res.callbacks = [
        cb.event or cb.kind
        for cb in callbacks
        if cb.call_uuid == res.call_uuid and (not cb.stream_id or cb.stream_id == res.stream_id)
    ]
    sidecar = out / "recordings" / res.call_uuid / f"{res.stream_id}.json"
    if res.stream_id and sidecar.is_file():
        doc = json.loads(sidecar.read_text(encoding="utf-8"))
        res.recordings = [str(Path(p)) for p in doc.get("files", {}).values() if p]
        res.recorded_s = float(max(doc.get("duration_s", {}).values(), default=0.0))


async def _save_heard(res: CallResult, emulator: Any, out: Path) -> None:
    import soundfile as sf

    if not res.stream_id:
        return
    report = emulator.simulator.stream_report(res.stream_id)
    if report is None:
        return
    heard = np.asarray(report.heard, dtype=np.int16)
    path = out / "heard" / f"{res.call_uuid}.wav"
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(sf.write, str(path), heard, report.sample_rate, "PCM_16")
    res.heard_path = str(path)
    res.heard_s = round(heard.size / report.sample_rate, 2)
    res.heard_rms_dbfs = _rms_dbfs(heard)
