"""``streamserver demo``: the whole system in one process, a few calls, a readable summary.

One event loop runs the stream server (recorder, echo, and the transcriber when installed),
its control app and the local Plivo emulator. The demo places calls through
:class:`~streamserver.rest.AsyncPlivoClient` to the emulator; each callee "says" one of the
bundled speech samples; the emulator fetches the control app's ``/answer`` (signed), whose
``<Stream>`` sends the call audio to the server in real time; the echo plays it back and the
emulator records what the caller heard. Stream upgrades and callbacks are signed and
verified. Afterwards the summary shows each call, its stream's numbers, the recording, what
the caller heard (saved as WAV) and any transcript. Nothing leaves the loopback interface
and no Plivo account is needed.

Output (``--out``, default ``./demo-output``)::

    recordings/{call_id}/{stream_id}.inbound.wav   what the server recorded (+ .json sidecar)
    heard/{call_id}.wav                            what the caller heard (the echo)
    summary.json                                   the summary, machine-readable
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..handler import BusEvent, Handler, HandlerLoadError, HandlerSpec, StopReason, StreamContext
from ..settings import ConfigError, RouteSettings, Settings, load_settings

__all__ = ["DEMO_CALLS", "DemoResult", "add_parser", "demo_settings", "run_demo"]

log = logging.getLogger("streamserver.demo")

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

_EPILOG = """\
what happens:
  stream server (recorder, echo, transcriber if installed) + control app + Plivo emulator
  start on free loopback ports; N calls go through the REST client to the emulator; each
  callee says a bundled sample; the emulator fetches the control app's answer XML and
  streams the call to the server, which records it and echoes it back; the caller's side
  records what it heard. Then a summary, and files under --out.

The same setup by hand, in three terminals:
  streamserver serve --config config/demo.toml
  streamserver emulate --config config/demo.toml
  streamserver call --api-url http://127.0.0.1:8090 --to 14155550101 --from 14155550100 \\
      --stream-url --config config/demo.toml      (with the emulator's PLIVO_AUTH_* exported)
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamserver demo``."""
    p = subparsers.add_parser(
        "demo",
        help="run server, control app and emulator together and place a few calls",
        description="End-to-end demo in one process: no network beyond loopback, no account.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", default="demo-output", metavar="DIR", help="output directory (demo-output)"
    )
    p.add_argument("--calls", type=int, default=3, metavar="N", help="calls to place (1-9; 3)")
    p.add_argument(
        "--no-transcribe", action="store_true", help="leave the transcriber out even if installed"
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="give up after (60)"
    )
    p.add_argument("--verbose", "-v", action="store_true", help="show the components' logs")
    p.set_defaults(func=demo_main)


# -- settings ----------------------------------------------------------------------------------


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


# -- what the demo collects --------------------------------------------------------------------


@dataclass
class StreamResult:
    """One stream as the server saw it (final numbers from the last handler's ``on_stop``)."""

    call_id: str
    stream_id: str
    stats: dict[str, Any] = field(default_factory=dict)
    stop_reason: str = ""
    transcripts: list[str] = field(default_factory=list)
    #: Plivo callbacks that reached the stream's handlers while it was live.
    callbacks: list[str] = field(default_factory=list)


class _StreamStats(Handler):
    """Last handler of the demo route: keeps each stream's final numbers, its transcripts
    and the callbacks that reached it (``options`` is the shared result dict)."""

    def __init__(self, ctx: StreamContext, options: Any = None) -> None:
        super().__init__(ctx, options)
        sink: dict[str, StreamResult] = options
        self.result = sink.setdefault(ctx.stream_id, StreamResult(ctx.call_id, ctx.stream_id))

    def on_audio_nowait(self, chunk: Any) -> None:
        pass  # audio is not needed here; this keeps it off the handler's queue

    async def on_event(self, event: Any) -> None:
        if not isinstance(event, BusEvent):
            return
        if event.topic == "transcript":
            text = str(getattr(event.data, "text", "") or "")
            if text:
                self.result.transcripts.append(text)
        elif event.topic == "plivo.callback":
            self.result.callbacks.append(event.data.event or event.data.kind)

    async def on_stop(self, reason: StopReason) -> None:
        self.result.stats = self.ctx.stats()
        self.result.stop_reason = reason.value


@dataclass
class CallResult:
    """One demo call, end to end."""

    number: str
    sample: str
    call_uuid: str = ""
    status: str = ""
    hangup: str = ""
    duration_s: int = 0
    stream_id: str = ""
    stream_ok: bool = False
    stream_errors: list[str] = field(default_factory=list)
    frames_sent: int = 0
    audio_s: float = 0.0
    stream_duration_s: float = 0.0
    server_frames: int = 0
    gaps: int = 0
    handler_drops: int = 0
    recordings: list[str] = field(default_factory=list)
    recorded_s: float = 0.0
    heard_path: str = ""
    heard_s: float = 0.0
    heard_rms_dbfs: float | None = None
    echo_frames: int = 0
    echo_rtt_p50_ms: float | None = None
    echo_rtt_max_ms: float | None = None
    transcripts: list[str] = field(default_factory=list)
    callbacks: list[str] = field(default_factory=list)
    callbacks_live: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Streamed, recorded and echoed."""
        return (
            self.stream_ok
            and self.frames_sent > 0
            and self.server_frames > 0
            and bool(self.recordings)
            and self.echo_frames > 0
        )


@dataclass
class DemoResult:
    """Everything the summary shows."""

    out: str
    calls: list[CallResult]
    elapsed_s: float
    transcriber: str
    signatures_ok: int = 0
    signatures_rejected: int = 0
    callbacks: dict[str, int] = field(default_factory=dict)
    #: Longest the server's event loop was late (a blocked loop delays every stream).
    loop_lag_max_ms: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.calls) and all(c.ok for c in self.calls)


# -- progress --------------------------------------------------------------------------------


class Progress:
    """One live status line on ``stream`` (rewritten in place on a terminal, else a line
    every second or so)."""

    def __init__(self, stream: TextIO, *, expected_frames: int) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.expected = max(1, expected_frames)
        self.t0 = time.monotonic()
        self._last_line = 0.0
        self._shown = False

    def update(self, *, answered: int, ended: int, calls: int, live: int, rx: int, tx: int) -> None:
        elapsed = time.monotonic() - self.t0
        frac = min(1.0, rx / self.expected)
        bar = "#" * round(frac * 20)
        line = (
            f"[demo] {elapsed:5.1f}s  calls {answered}/{calls} answered, {ended} ended  "
            f"streams live {live}  audio in {rx / 50:5.1f}s  echoed {tx / 50:5.1f}s  "
            f"[{bar:<20}]"
        )
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self.stream.flush()
            self._shown = True
        elif elapsed - self._last_line >= 1.0 or not self._last_line:
            self._last_line = max(elapsed, 1e-9)
            self.stream.write(line + "\n")
            self.stream.flush()

    def done(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()


# -- running -----------------------------------------------------------------------------------


def _rms_dbfs(pcm: np.ndarray) -> float | None:
    if pcm.size == 0:
        return None
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    return round(20 * math.log10(rms / 32768), 1) if rms > 0 else -math.inf


def _build_server(out: Path, transcribe: bool, auth_id: str, auth_token: str) -> tuple[Any, str]:
    """The stream server, with the transcriber when it loads (else the reason it does not)."""
    from ..net import StreamServer

    note = "left out (--no-transcribe)"
    if transcribe:
        try:
            settings = demo_settings(out, transcribe=True, auth_id=auth_id, auth_token=auth_token)
            return StreamServer(settings), "on"
        except HandlerLoadError as exc:
            note = f"not available ({exc})"
    settings = demo_settings(out, transcribe=False, auth_id=auth_id, auth_token=auth_token)
    return StreamServer(settings), note


def _transcriber_installed() -> bool:
    from importlib.metadata import entry_points

    from ..handler import ENTRY_POINT_GROUP

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

    from ..control import Callback, ControlApp, load_control_settings
    from ..emulator import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SAMPLES_DIR, Emulator
    from ..emulator.settings import EmulatorSettings
    from ..rest import AsyncPlivoClient
    from ..session import Route
    from ..signature import NonceCache, UpgradeVerifier

    started = time.monotonic()
    out = await asyncio.to_thread(_prepare, out)
    plan = [DEMO_CALLS[i % len(DEMO_CALLS)] for i in range(calls)]
    plan = [(f"{number[:-1]}{i + 1}", sample) for i, (number, sample) in enumerate(plan)]
    auth_id, auth_token = DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN

    want_transcriber = transcribe and _transcriber_installed()
    server, transcriber_note = _build_server(out, want_transcriber, auth_id, auth_token)
    if transcribe and not want_transcriber:
        transcriber_note = "not installed (handlers/transcribe)"
    streams: dict[str, StreamResult] = {}
    route = server.routes[ROUTE]
    server.routes[ROUTE] = Route(
        route.path,
        (*route.handlers, HandlerSpec("demo-stats", _StreamStats, streams)),
        route.bidirectional,
    )
    control = ControlApp(server, load_control_settings(server.settings))
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
        await server.start()
        stack.push_async_callback(server.shutdown)
        # Plivo signs every stream upgrade: check them, as in production.
        server.verifier = UpgradeVerifier([auth_token], server.url, NonceCache())
        await control.start()
        stack.push_async_callback(control.aclose)
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


def _prepare(out: Path) -> Path:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
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


# -- summary -----------------------------------------------------------------------------------


def _rel(path: str) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(path).relative_to(Path.cwd()))
    return path


def format_summary(result: DemoResult) -> str:
    """The human-readable summary printed at the end."""
    lines = [
        f"streamserver demo: {len(result.calls)} call(s) through the local Plivo emulator "
        f"in {result.elapsed_s:.1f} s",
        "",
    ]
    for i, c in enumerate(result.calls, 1):
        lines.append(
            f"call {i}  to {c.number}  says {c.sample}  {c.status or '?'}"
            f"{'  ' + c.hangup if c.hangup else ''}  ({c.call_uuid})"
        )
        if not c.stream_id:
            lines.append("  no stream was started")
            continue
        lines.append(
            f"  stream    {c.stream_id}: {c.stream_duration_s:.1f} s, "
            f"{c.frames_sent} frames sent, {c.server_frames} received, "
            f"{c.gaps} gaps, {c.handler_drops} samples dropped"
            + ("" if c.stream_ok else f"  PROBLEM: {'; '.join(c.stream_errors) or 'not ok'}")
        )
        for path in c.recordings:
            lines.append(f"  recorded  {_rel(path)} ({c.recorded_s:.2f} s)")
        if not c.recordings:
            lines.append("  recorded  nothing (PROBLEM)")
        if c.heard_path:
            rms = "silence" if c.heard_rms_dbfs is None else f"RMS {c.heard_rms_dbfs} dBFS"
            echo = (
                f"echo of {c.echo_frames}/{c.frames_sent} frames, round trip "
                f"p50 {c.echo_rtt_p50_ms} ms, max {c.echo_rtt_max_ms} ms"
                if c.echo_frames
                else "no echo heard (PROBLEM)"
            )
            lines.append(f"  heard     {_rel(c.heard_path)}: {c.heard_s:.2f} s, {rms}; {echo}")
        for text in c.transcripts:
            lines.append(f'  said      "{text}"')
        if c.callbacks:
            live = f" ({', '.join(c.callbacks_live)} reached the live stream)"
            lines.append(f"  callbacks {', '.join(c.callbacks)}{live if c.callbacks_live else ''}")
    lines.append("")
    cb = result.callbacks
    lines.append(
        f"signatures: {result.signatures_ok} stream upgrade(s) and "
        f"{sum(v for k, v in cb.items() if k != 'rejected')} webhook(s) verified "
        f"({', '.join(f'{k} {v}' for k, v in sorted(cb.items()) if k != 'rejected')}); "
        f"{result.signatures_rejected} rejected"
    )
    lines.append(f"transcriber: {result.transcriber}")
    lines.append(f"server event loop: longest delay {result.loop_lag_max_ms:.1f} ms")
    lines.append(f"output: {_rel(result.out)}/ (summary.json, recordings/, heard/)")
    if result.error:
        lines.append(f"PROBLEM: {result.error}")
    elif not result.ok:
        lines.append("PROBLEM: some calls did not stream, record and echo as expected")
    return "\n".join(lines)


def demo_main(args: argparse.Namespace) -> int:
    """Run ``streamserver demo``."""
    from ..logs import setup_logging
    from ..runtime import run_async

    if not 1 <= args.calls <= 9:
        print("streamserver demo: --calls must be 1 to 9", file=sys.stderr)
        return 2
    if not args.timeout > 0:
        print("streamserver demo: --timeout must be > 0", file=sys.stderr)
        return 2
    setup_logging("INFO" if args.verbose else "WARNING")

    async def run() -> DemoResult:
        return await run_demo(
            Path(args.out),
            calls=args.calls,
            transcribe=not args.no_transcribe,
            timeout_s=args.timeout,
        )

    from ..rest import PlivoError

    try:
        result: DemoResult = run_async(run)
    except (ConfigError, HandlerLoadError, OSError, PlivoError) as exc:
        print(f"streamserver demo: {exc}", file=sys.stderr)
        return 1
    print(format_summary(result))
    return 0 if result.ok else 1
