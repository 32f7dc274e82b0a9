"""``transcriber``: cuts each track into utterances and hands them to a speech recogniser.

Per stream and track, a :class:`~handlers.transcribe.vad.Segmenter` (WebRTC VAD) finds the
utterances; each finished utterance goes to a bounded backlog that one worker per stream
drains through the engine (``pocketsphinx``, ``openai`` or ``module:callable``), at most
``max_concurrency`` engine calls at a time in the whole process. Ingest never waits for the
engine: when the backlog is full the oldest waiting utterance is dropped, counted and logged.

Every transcript is

- published on the stream's event bus as topic ``"transcript"`` with a :class:`Transcript`
  (streaming engines also publish ``"transcript.partial"`` while the caller speaks),
- appended as one JSON line to ``{record_dir}/{call_id}/{stream_id}.transcript.jsonl``, beside
  the recorder's files,
- logged at INFO.

The VAD's decisions are published too: ``"speech.start"`` (:class:`SpeechStarted`) the moment
speech is recognised, which a player uses for barge-in, and ``"speech.end"``
(:class:`SpeechEnded`).

Put the transcriber *before* the handlers that consume transcripts in a route (they stop in
route order, so transcripts of the last utterance, produced in ``on_stop``, still reach them)
and *after* the recorder (whose files then close without waiting for the engine).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import msgspec

from streamserver.handler import AudioChunk, Handler, StopReason, StreamContext

from .engines import (
    CallableEngine,
    Engine,
    EngineStream,
    OpenAIEngine,
    OpenAIOptions,
    PocketsphinxEngine,
    PocketsphinxOptions,
    Recognition,
    StreamingEngine,
    UtteranceInfo,
    resolve_callable,
)
from .vad import Segmenter, SpeechAudio, SpeechEnd, SpeechStart, Utterance, VadEvent, VadOptions

__all__ = [
    "SpeechEnded",
    "SpeechStarted",
    "Transcriber",
    "TranscriberOptions",
    "Transcript",
    "create_engine",
    "stats",
]

BUILTIN_ENGINES = ("pocketsphinx", "openai")


class TranscriberOptions(msgspec.Struct, forbid_unknown_fields=True):
    """``[handler.transcriber]`` options (nested tables ``vad``, ``pocketsphinx``,
    ``openai``, ``engine_options``)."""

    #: "pocketsphinx", "openai", or "package.module:callable" (an Engine class or function).
    engine: str = "pocketsphinx"
    #: Tracks to transcribe; empty means every track of the stream.
    tracks: list[Literal["inbound", "outbound"]] = msgspec.field(default_factory=list)
    #: Transcripts go to {record_dir}/{call_id}/{stream_id}.transcript.jsonl.
    record_dir: str = "recordings"
    write_jsonl: bool = True
    #: Log each transcript's text at INFO (turn off where transcripts are sensitive).
    log_text: bool = True
    #: Utterances waiting for the engine, per stream; more drop the oldest waiting one.
    max_backlog: int = 8
    #: Engine calls running at once in the whole process (pocketsphinx: worker processes).
    max_concurrency: int = 2
    #: One engine call taking longer than this fails (the utterance is counted as failed).
    engine_timeout_s: float = 30.0
    #: At stream end, wait this long for utterances still waiting or being recognised.
    stop_timeout_s: float = 5.0
    #: Publish transcripts whose text is empty (nothing recognised).
    publish_empty: bool = False
    vad: VadOptions = msgspec.field(default_factory=VadOptions)
    pocketsphinx: PocketsphinxOptions = msgspec.field(default_factory=PocketsphinxOptions)
    openai: OpenAIOptions = msgspec.field(default_factory=OpenAIOptions)
    #: Passed to a ``module:Class`` engine's constructor.
    engine_options: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_backlog < 1 or self.max_concurrency < 1:
            raise ValueError("max_backlog and max_concurrency must be at least 1")
        if self.engine_timeout_s <= 0 or self.stop_timeout_s < 0:
            raise ValueError("engine_timeout_s must be > 0 and stop_timeout_s >= 0")
        if ":" in self.engine:
            resolve_callable(self.engine)  # fail at start-up, not on the first call
        elif self.engine not in BUILTIN_ENGINES:
            raise ValueError(
                f"unknown engine {self.engine!r}: use {', '.join(BUILTIN_ENGINES)} "
                "or 'package.module:callable'"
            )
        elif self.engine == "pocketsphinx":
            try:
                import pocketsphinx  # noqa: F401
            except ImportError:
                raise ValueError(
                    "engine 'pocketsphinx' needs the pocketsphinx package: "
                    "pip install 'streamserver[asr]'"
                ) from None


class Transcript(msgspec.Struct, frozen=True, kw_only=True):
    """One recognised utterance (bus topic ``"transcript"``, one line of the JSONL file).

    Times are seconds from stream start on the track's clock (``*_sample`` / ``sample_rate``);
    ``latency_s`` runs from the end of the utterance (the VAD's decision) to the result, and
    includes waiting in the backlog. ``confidence`` is in 0..1, or None when the engine does
    not say. ``is_final`` is False for a streaming engine's partial results.
    """

    text: str
    confidence: float | None
    track: str
    start_s: float
    end_s: float
    start_sample: int
    end_sample: int
    sample_rate: int
    engine: str
    latency_s: float
    is_final: bool = True
    utterance: int = 0
    call_id: str = ""
    stream_id: str = ""


class SpeechStarted(msgspec.Struct, frozen=True, kw_only=True):
    """Bus topic ``"speech.start"``: the caller (``track``) started speaking.

    Speech began at ``start_sample``; the VAD was sure of it at ``detected_sample``.
    """

    track: str
    start_sample: int
    detected_sample: int
    sample_rate: int

    @property
    def start_s(self) -> float:
        return self.start_sample / self.sample_rate

    @property
    def detected_s(self) -> float:
        return self.detected_sample / self.sample_rate


class SpeechEnded(msgspec.Struct, frozen=True, kw_only=True):
    """Bus topic ``"speech.end"``: the utterance ended; ``kept`` False if it was too short."""

    track: str
    start_sample: int
    end_sample: int
    sample_rate: int
    kept: bool


# --- process-wide state ---------------------------------------------------------------------

_stats: Counter[str] = Counter()


def stats() -> dict[str, int]:
    """Process totals: utterances, transcripts, dropped, failed, empty."""
    return dict(_stats)


_writer: ThreadPoolExecutor | None = None
_writer_lock = threading.Lock()


def _jsonl_writer() -> ThreadPoolExecutor:
    # One thread appends every stream's lines: appends stay in order and off the event loop.
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = ThreadPoolExecutor(1, thread_name_prefix="transcript-writer")
        return _writer


_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _limit(key: str, n: int) -> asyncio.Semaphore:
    """The process-wide bound on concurrent calls of one engine configuration."""
    per_loop = _limits.setdefault(asyncio.get_running_loop(), {})
    sem = per_loop.get(key)
    if sem is None:
        sem = per_loop[key] = asyncio.Semaphore(n)
    return sem


def create_engine(
    options: TranscriberOptions, *, environ: Mapping[str, str] | None = None
) -> Engine:
    """The engine named by ``options.engine``, configured from its table."""
    name = options.engine
    if name == "pocketsphinx":
        return PocketsphinxEngine(options.pocketsphinx, max_concurrency=options.max_concurrency)
    if name == "openai":
        return OpenAIEngine(options.openai, environ=environ)
    obj = resolve_callable(name)
    if isinstance(obj, type) and issubclass(obj, Engine):
        engine = obj(**options.engine_options)
        if engine.name == Engine.name:
            engine.name = name
        return engine
    return CallableEngine(obj, name, max_concurrency=options.max_concurrency)


class _Live:
    """A streaming engine's utterance in progress."""

    __slots__ = ("discard", "end_sample", "ended_at", "info", "stream", "task")

    def __init__(self, info: UtteranceInfo, stream: EngineStream) -> None:
        self.info = info
        self.stream = stream
        self.end_sample: int | None = None
        self.ended_at: float | None = None
        self.discard = False
        self.task: asyncio.Task[None] | None = None


class Transcriber(Handler):
    """Voice-activity segmentation plus a pluggable recogniser; see the module docstring."""

    Options = TranscriberOptions

    def __init__(self, ctx: StreamContext, options: Any = None) -> None:
        super().__init__(ctx, options or TranscriberOptions())
        self.opts: TranscriberOptions = self.options
        self.engine = create_engine(self.opts)
        self._streaming = isinstance(self.engine, StreamingEngine)
        self._engine_key = f"{self.opts.engine}:{id(type(self.engine))}"
        wanted = self.opts.tracks
        self._segmenters = {
            t: Segmenter(ctx.sample_rate, self.opts.vad, track=t, emit_audio=self._streaming)
            for t in ctx.tracks
            if not wanted or t in wanted
        }
        self._backlog: deque[tuple[Utterance, float]] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        self._live: dict[str, _Live] = {}
        self._live_tasks: set[asyncio.Task[None]] = set()
        self._consumers: set[asyncio.Task[None]] = set()
        self._busy = 0
        self._index: Counter[str] = Counter()
        self._jsonl = (
            Path(self.opts.record_dir).resolve() / ctx.call_id / f"{ctx.stream_id}.transcript.jsonl"
        )
        self._drop_logged = False
        self.counts: Counter[str] = Counter()
        self._latency_sum = 0.0
        self._latency_max = 0.0

    # -- hooks -----------------------------------------------------------------------------

    async def on_start(self) -> None:
        if not self._segmenters:
            self.ctx.logger.warning(
                "transcriber: none of the tracks %s is streamed (%s)",
                self.opts.tracks,
                ",".join(self.ctx.tracks),
            )
        if not self._streaming:
            self._worker = asyncio.create_task(
                self._work(), name=f"transcriber:{self.ctx.stream_id}"
            )

    def on_audio_nowait(self, chunk: AudioChunk) -> None:
        # Inline on the receive path: the VAD costs a few µs per frame, and what is slow
        # (the engine) runs on the worker task.
        seg = self._segmenters.get(chunk.track)
        if seg is not None:
            self._handle(seg.push(chunk.samples, chunk.position))

    async def on_stop(self, reason: StopReason) -> None:
        for seg in self._segmenters.values():
            self._handle(seg.flush())
        self._closing = True
        self._wake.set()
        pending: list[asyncio.Task[None]] = list(self._live_tasks)
        if self._worker is not None:
            pending.append(self._worker)
        try:
            if pending:
                _, late = await asyncio.wait(pending, timeout=self.opts.stop_timeout_s)
                if late:
                    lost = len(self._backlog) + self._busy
                    lost += sum(1 for live in self._consumers if not live.done())
                    for task in late:
                        task.cancel()
                    await asyncio.wait(late, timeout=1.0)
                    self._count("dropped", lost)
                    self.ctx.logger.warning(
                        "transcriber: engine did not finish within stop_timeout_s=%.1f; "
                        "%d utterance(s) not transcribed",
                        self.opts.stop_timeout_s,
                        lost,
                    )
        finally:
            await self.engine.aclose()
        c = self.counts
        n = c["transcripts"]
        self.ctx.logger.info(
            "transcriber: %d utterances, %d transcripts, %d empty, %d dropped, %d failed, "
            "latency mean %.3fs max %.3fs",
            c["utterances"],
            n,
            c["empty"],
            c["dropped"],
            c["failed"],
            self._latency_sum / n if n else 0.0,
            self._latency_max,
        )

    # -- VAD events ----------------------------------------------------------------------------

    def _handle(self, events: list[VadEvent]) -> None:
        rate = self.ctx.sample_rate
        for e in events:
            kind = type(e)
            if kind is SpeechStart:
                assert isinstance(e, SpeechStart)
                self.publish(
                    "speech.start",
                    SpeechStarted(
                        track=e.track,
                        start_sample=e.position,
                        detected_sample=e.detected_at,
                        sample_rate=rate,
                    ),
                )
                if self._streaming:
                    self._open_live(e)
            elif kind is SpeechAudio:
                assert isinstance(e, SpeechAudio)
                live = self._live.get(e.track)
                if live is not None:
                    live.stream.feed(e.samples)
            elif kind is SpeechEnd:
                assert isinstance(e, SpeechEnd)
                self.publish(
                    "speech.end",
                    SpeechEnded(
                        track=e.track,
                        start_sample=e.start,
                        end_sample=e.end,
                        sample_rate=rate,
                        kept=e.kept,
                    ),
                )
                if self._streaming:
                    self._close_live(e)
            elif kind is Utterance:
                assert isinstance(e, Utterance)
                self._count("utterances")
                if not self._streaming:
                    self._enqueue(e)

    def _enqueue(self, utt: Utterance) -> None:
        backlog = self._backlog
        if len(backlog) >= self.opts.max_backlog:
            old, _ = backlog.popleft()
            self._count("dropped")
            log = self.ctx.logger.debug if self._drop_logged else self.ctx.logger.warning
            self._drop_logged = True
            log(
                "transcriber: engine too slow, backlog of %d full; dropped the utterance "
                "%s %.2f-%.2fs",
                self.opts.max_backlog,
                old.track,
                old.start_s,
                old.end_s,
            )
        backlog.append((utt, time.monotonic()))
        self._wake.set()

    def _count(self, key: str, n: int = 1) -> None:
        self.counts[key] += n
        _stats[key] += n
        self.count(key, n)  # streamserver_handler_events_total{handler="transcriber"}

    # -- batch engines ---------------------------------------------------------------------------

    async def _work(self) -> None:
        sem = _limit(self._engine_key, self.opts.max_concurrency)
        while True:
            if not self._backlog:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            utt, ended_at = self._backlog.popleft()
            self._busy = 1
            try:
                async with sem:
                    rec = await self._recognise(utt)
                if rec is not None:
                    await self._emit(
                        rec, utt.track, utt.start_sample, utt.end_sample, utt.index, ended_at
                    )
            finally:
                self._busy = 0

    async def _recognise(self, utt: Utterance) -> Recognition | None:
        try:
            rec = await asyncio.wait_for(
                self.engine.transcribe(utt), timeout=self.opts.engine_timeout_s
            )
        except TimeoutError:
            self._count("failed")
            self.ctx.logger.warning(
                "transcriber: engine %s timed out after %.1fs on %s %.2f-%.2fs",
                self.engine.name,
                self.opts.engine_timeout_s,
                utt.track,
                utt.start_s,
                utt.end_s,
            )
            return None
        except Exception as exc:
            self._count("failed")
            self.ctx.logger.warning(
                "transcriber: engine %s failed on %s %.2f-%.2fs: %s: %s",
                self.engine.name,
                utt.track,
                utt.start_s,
                utt.end_s,
                type(exc).__name__,
                exc,
            )
            return None
        return rec if rec is not None else Recognition("")

    # -- streaming engines -------------------------------------------------------------------

    def _open_live(self, e: SpeechStart) -> None:
        old = self._live.pop(e.track, None)
        if old is not None:  # cannot happen in order, but never leak a stream
            old.discard = True
            self._spawn(old.stream.close())
        if len(self._live_tasks) >= self.opts.max_backlog:
            self._count("dropped")
            self.ctx.logger.warning(
                "transcriber: %d utterances still being recognised; dropped the one at %.2fs",
                len(self._live_tasks),
                e.position / self.ctx.sample_rate,
            )
            return
        info = UtteranceInfo(e.track, self.ctx.sample_rate, e.start, self._index[e.track])
        self._index[e.track] += 1
        try:
            stream = self.engine.open_stream(info)  # type: ignore[attr-defined]
        except Exception as exc:
            self._count("failed")
            self.ctx.logger.warning(
                "transcriber: open_stream failed: %s: %s", type(exc).__name__, exc
            )
            return
        live = _Live(info, stream)
        self._live[e.track] = live
        if len(e.samples):
            stream.feed(e.samples)
        live.task = task = self._spawn(self._consume(live))
        self._consumers.add(task)
        task.add_done_callback(self._consumers.discard)

    def _close_live(self, e: SpeechEnd) -> None:
        live = self._live.pop(e.track, None)
        if live is None:
            return
        live.end_sample = e.end
        live.ended_at = time.monotonic()
        live.discard = not e.kept
        self._spawn(self._close_stream(live))

    async def _close_stream(self, live: _Live) -> None:
        try:
            await live.stream.close()
        except Exception as exc:
            self._count("failed")
            self.ctx.logger.warning(
                "transcriber: stream close failed: %s: %s", type(exc).__name__, exc
            )

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._live_tasks.add(task)
        task.add_done_callback(self._live_tasks.discard)
        return task

    async def _consume(self, live: _Live) -> None:
        info = live.info
        try:
            async for rec in live.stream.results():
                if live.discard:
                    continue
                end = live.end_sample
                if end is None:
                    seg = self._segmenters.get(info.track)
                    end = seg.position if seg is not None else info.start_sample
                await self._emit(rec, info.track, info.start_sample, end, info.index, live.ended_at)
        except Exception as exc:
            self._count("failed")
            self.ctx.logger.warning(
                "transcriber: streaming engine %s failed: %s: %s",
                self.engine.name,
                type(exc).__name__,
                exc,
            )

    # -- results ---------------------------------------------------------------------------------

    async def _emit(
        self,
        rec: Recognition,
        track: str,
        start: int,
        end: int,
        index: int,
        ended_at: float | None,
    ) -> None:
        now = time.monotonic()
        latency = max(0.0, now - ended_at) if ended_at is not None else 0.0
        rate = self.ctx.sample_rate
        t = Transcript(
            text=rec.text,
            confidence=rec.confidence,
            track=track,
            start_s=round(start / rate, 3),
            end_s=round(end / rate, 3),
            start_sample=start,
            end_sample=end,
            sample_rate=rate,
            engine=self.engine.name,
            latency_s=round(latency, 4),
            is_final=rec.is_final,
            utterance=index,
            call_id=self.ctx.call_id,
            stream_id=self.ctx.stream_id,
        )
        if not rec.is_final:
            self.publish("transcript.partial", t)
            return
        if not rec.text:
            self._count("empty")
            if not self.opts.publish_empty:
                return
        else:
            self._count("transcripts")
            self._latency_sum += latency
            self._latency_max = max(self._latency_max, latency)
        self.publish("transcript", t)
        if self.opts.log_text:
            self.ctx.logger.info(
                "transcript %s %.2f-%.2fs: %r (confidence %s, %s, %.0f ms)",
                track,
                t.start_s,
                t.end_s,
                t.text,
                f"{t.confidence:.2f}" if t.confidence is not None else "-",
                t.engine,
                latency * 1000,
            )
        else:
            self.ctx.logger.info(
                "transcript %s %.2f-%.2fs: %d chars", track, t.start_s, t.end_s, len(t.text)
            )
        if self.opts.write_jsonl:
            line = msgspec.json.encode(t) + b"\n"
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(_jsonl_writer(), self._append, line)
            except OSError as exc:
                self.ctx.logger.warning("transcriber: cannot write %s: %s", self._jsonl, exc)

    def _append(self, line: bytes) -> None:
        path = self._jsonl
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)  # one write of a whole line: readers never see half of it
        finally:
            os.close(fd)
