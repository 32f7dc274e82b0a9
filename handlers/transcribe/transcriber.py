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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from streamserver.handler import AudioChunk, Handler, StopReason, StreamContext

from .engines import (
    EngineStream,
    Recognition,
    StreamingEngine,
    UtteranceInfo,
)
from .events import SpeechEnded, SpeechStarted, Transcript
from .options import TranscriberOptions, create_engine
from .vad import Segmenter, SpeechAudio, SpeechEnd, SpeechStart, Utterance, VadEvent

__all__ = [
    "SpeechEnded",
    "SpeechStarted",
    "Transcriber",
    "TranscriberOptions",
    "Transcript",
    "create_engine",
    "stats",
]

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
