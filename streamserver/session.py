"""One live stream: protocol state, ordering and gap detection, fan-out to handlers, playback.

The session is transport-agnostic: the server feeds it text frames with :meth:`feed_text`
and gives it an :class:`Outlet` to send frames and close the socket. Nothing here awaits per
frame: decoding, ordering and queueing into every handler's input are plain function calls;
each handler runs on its own task (:class:`HandlerRunner`).

Ordering (per track): Plivo's ``chunk`` counts media per track from 1. In-order chunks are
delivered at once; a chunk ahead of the expected one waits in a small reorder window for the
missing ones; when the window overflows, the missing chunks are declared a :class:`Gap`
(exact sample count) and delivery continues. Older chunks are duplicates and dropped.
Without ``chunk``, the media ``timestamp`` (ms) places audio; without both, audio is
contiguous.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from . import audio
from .audio import AudioFormat
from .handler import (
    AudioChunk,
    BusEvent,
    Gap,
    Handler,
    HandlerSpec,
    StopReason,
    StreamContext,
)
from .metrics import Metrics
from .protocol import plivo
from .protocol.events import (
    ClearedAudio,
    Dtmf,
    Event,
    Media,
    PlayedStream,
    Start,
    Stop,
    Unknown,
)

__all__ = ["Outlet", "Route", "Session", "SessionLimits"]

log = logging.getLogger("streamserver.session")

# Close codes (RFC 6455 §7.4.1)
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011

#: Ids become path parts (recordings); only safe characters are accepted.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")


class Outlet(Protocol):
    """What a session needs from its transport."""

    def send_text(self, data: bytes, urgent: bool = True) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def write_paused(self) -> bool: ...
    async def wait_writable(self) -> None: ...


@dataclass(frozen=True)
class Route:
    """A WebSocket path and the handlers every stream on it gets."""

    path: str
    handlers: tuple[HandlerSpec, ...]
    bidirectional: bool = True


@dataclass(frozen=True)
class SessionLimits:
    """Per-stream tunables (see ``[session]`` in the config)."""

    reorder_window: int = 5  # frames held while waiting for a missing chunk
    max_invalid_frames: int = 100  # then close 1007
    send_timeout_s: float = 5.0  # a blocked socket for this long ends the session
    handler_queue_s: float = 10.0  # default audio bound per handler input
    start_timeout_s: float = 10.0  # no 'start' event this long after the upgrade: close 1008
    idle_timeout_s: float = 0.0  # no frame for this long: close 1008 (0: never)


class _Track:
    __slots__ = ("frames", "name", "next_chunk", "next_pos", "pending", "ts0")

    def __init__(self, name: str) -> None:
        self.name = name
        self.next_chunk = 1
        self.next_pos = 0
        self.pending: dict[int, bytes] = {}
        self.frames = 0
        self.ts0: int | None = None


_STOP = object()
_WAKEUP = object()


def _exc_text() -> str:
    exc = sys.exc_info()[1]
    return f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"


class HandlerRunner:
    """One handler's bounded, ordered, coalescing input and the task that drains it."""

    __slots__ = (
        "_waiter",
        "_wakeup_pending",
        "dropped_samples",
        "failed",
        "handler",
        "max_samples",
        "nowait",
        "queue",
        "queued_samples",
        "session",
        "spec",
        "task",
    )

    def __init__(self, session: Session, spec: HandlerSpec, handler: Handler, max_samples: int):
        self.session = session
        self.spec = spec
        self.handler = handler
        self.max_samples = max_samples
        self.queue: deque[Any] = deque()
        self.queued_samples = 0
        self.dropped_samples = 0
        self.failed = False
        self._waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self._wakeup_pending = False
        #: the handler's synchronous audio hook, when it overrides ``on_audio_nowait``
        self.nowait = (
            handler.on_audio_nowait
            if type(handler).on_audio_nowait is not Handler.on_audio_nowait
            else None
        )
        handler._runner = self

    def request_wakeup(self) -> None:
        if not self._wakeup_pending and not self.failed:
            self._wakeup_pending = True
            self.push(_WAKEUP)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"handler:{self.spec.name}:{self.session.stream_id}"
        )

    def push_audio(self, chunk: AudioChunk) -> None:
        if self.failed:
            return
        self.queue.append(chunk)
        self.queued_samples += chunk.num_samples
        if self.queued_samples > self.max_samples:
            self._drop_oldest_audio()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(self, item: Any) -> None:
        if self.failed and item is not _STOP:
            return
        self.queue.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _drop_oldest_audio(self) -> None:
        # Drop from the oldest end until under the bound; control events stay.
        kept: deque[Any] = deque()
        q = self.queue
        while self.queued_samples > self.max_samples and q:
            item = q.popleft()
            if type(item) is AudioChunk:
                n = item.num_samples
                self.queued_samples -= n
                self.dropped_samples += n
                self.session.metrics.handler_dropped_samples[self.spec.name] += n
            else:
                kept.append(item)
        if kept:
            kept.extend(q)
            self.queue = kept

    async def _wait(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = fut
        try:
            await fut
        finally:
            self._waiter = None

    def _take(self) -> Any:
        item = self.queue.popleft()
        if type(item) is not AudioChunk:
            return item
        self.queued_samples -= item.num_samples
        q = self.queue
        if not q or type(q[0]) is not AudioChunk:
            return item
        # Coalesce contiguous audio of the same track: a lagging handler catches up in
        # fewer, bigger calls (natural batching).
        parts = [item]
        end = item.end
        while q and type(q[0]) is AudioChunk and q[0].track == item.track and q[0].position == end:
            nxt = q.popleft()
            self.queued_samples -= nxt.num_samples
            parts.append(nxt)
            end = nxt.end
        if len(parts) == 1:
            return item
        total = sum(p.num_samples for p in parts)
        if all(p.payload is not None and p.encoding == item.encoding for p in parts):
            return AudioChunk(
                item.track,
                item.position,
                item.sample_rate,
                total,
                b"".join(p.payload for p in parts),  # type: ignore[misc]
                item.encoding,
            )
        return AudioChunk.from_pcm(
            item.track,
            np.concatenate([p.samples for p in parts]),
            item.position,
            item.sample_rate,
        )

    async def _run(self) -> None:
        handler = self.handler
        try:
            await self._call(handler.on_start())
            while True:
                if not self.queue:
                    await self._wait()
                    continue
                item = self._take()
                if item is _STOP:
                    break
                if self.failed:
                    continue
                if item is _WAKEUP:
                    self._wakeup_pending = False
                    await self._call(handler.on_wakeup())
                    continue
                kind = type(item)
                if kind is AudioChunk:
                    await self._call(handler.on_audio(item))
                elif kind is Dtmf:
                    await self._call(handler.on_dtmf(item))
                else:
                    await self._call(handler.on_event(item))
        finally:
            try:
                await handler.on_stop(self.session.stop_reason or StopReason.CLOSED)
            except Exception:
                self._failed("on_stop")
            finally:
                self.session._runner_stopped(self)

    async def _call(self, coro: Any) -> None:
        if self.failed:
            coro.close()
            return
        try:
            await coro
        except Exception:
            self._failed(coro.__qualname__.rsplit(".", 1)[-1])

    def _failed(self, hook: str) -> None:
        ctx = self.handler.ctx
        ctx.logger.exception(
            "handler %s failed in %s; disabled for this stream", self.spec.name, hook
        )
        self.session.metrics.handler_errors[self.spec.name] += 1
        self.failed = True
        self.session.publish(
            BusEvent(
                "handler.error",
                {"handler": self.spec.name, "hook": hook, "error": _exc_text()},
                "session",
            )
        )
        # Keep only the stop marker: the handler gets nothing else.
        stop_pending = any(item is _STOP for item in self.queue)
        self.queue.clear()
        self.queued_samples = 0
        if stop_pending:
            self.queue.append(_STOP)
        self.session.update_sinks()


class Session:
    """One WebSocket stream from connect to close."""

    __slots__ = (
        "_checkpoints",
        "_clear_epoch",
        "_encoding",
        "_invalid_logged",
        "_last_seq",
        "_odd_mask",
        "_rate",
        "_shift",
        "_sinks",
        "_tracks",
        "audio_bytes",
        "bytes_received",
        "call_id",
        "connected_at",
        "ctx",
        "duplicates",
        "ended",
        "fmt",
        "frames",
        "frames_sent",
        "gap_samples",
        "gaps",
        "idle_mark_frames",
        "invalid_frames",
        "last_rx",
        "limits",
        "logger",
        "media_frames",
        "metrics",
        "outlet",
        "path",
        "peer",
        "query",
        "route",
        "runners",
        "start_event",
        "started",
        "started_at_wall",
        "stop_reason",
        "stream_id",
        "unknown_events",
    )

    def __init__(
        self,
        outlet: Outlet,
        route: Route,
        metrics: Metrics,
        *,
        path: str,
        query: Mapping[str, str],
        limits: SessionLimits | None = None,
        peer: str = "",
    ) -> None:
        self.outlet = outlet
        self.route = route
        self.metrics = metrics
        self.path = path
        self.query = query
        self.limits = limits or SessionLimits()
        self.peer = peer
        self.started = False
        self.ended = False
        self.stop_reason: StopReason | None = None
        self.start_event: Start | None = None
        self.stream_id = "-"
        self.call_id = "-"
        self.ctx: StreamContext | None = None
        self.runners: list[HandlerRunner] = []
        self.connected_at = time.monotonic()
        self.started_at_wall: float | None = None
        self.last_rx = self.connected_at  # updated by the server's ticker
        self.idle_mark_frames = 0
        self.fmt: AudioFormat | None = None
        self._tracks: dict[str, _Track] = {}
        # per-stream constants of the hot path, set at start
        self._shift = 0  # log2(bytes per sample)
        self._odd_mask = 0  # 1 for L16: an odd byte count is invalid
        self._rate = 8000
        self._encoding = audio.ENCODING_MULAW
        self._last_seq: int | None = None
        # counters (also reported per stream)
        self.frames = 0
        self.media_frames = 0
        self.invalid_frames = 0
        self.duplicates = 0
        self.gaps = 0
        self.gap_samples = 0
        self.unknown_events = 0
        self.frames_sent = 0
        self.bytes_received = 0
        self.audio_bytes = 0
        metrics.live.add(self)
        self._sinks: list[Callable[[AudioChunk], None]] = []
        self._invalid_logged: set[str] = set()
        # playback
        self._checkpoints: dict[str, deque[tuple[asyncio.Future[bool], int]]] = {}
        self._clear_epoch = 0
        self.logger: logging.LoggerAdapter[logging.Logger] = logging.LoggerAdapter(
            log, {"stream_id": "-", "call_id": "-"}
        )

    # -- time --------------------------------------------------------------------------

    def tick(self, now: float) -> bool:
        """Enforce the start and idle timeouts; ``now`` is ``time.monotonic()``.

        Called by the server for every stream a few times a second (one timer for all,
        instead of a clock read per frame). Returns True when frames arrived since the
        previous tick (the stream is flowing).
        """
        if self.ended:
            return False
        lim = self.limits
        if not self.started:
            if lim.start_timeout_s and now - self.connected_at > lim.start_timeout_s:
                self.logger.warning(
                    "no start event within %.1fs from %s; closing", lim.start_timeout_s, self.peer
                )
                self.end(StopReason.TIMEOUT)
                self.outlet.close(CLOSE_POLICY, "start timeout: no start event")
            return False
        if self.frames != self.idle_mark_frames:
            self.idle_mark_frames = self.frames
            self.last_rx = now
            return True
        if lim.idle_timeout_s and now - self.last_rx > lim.idle_timeout_s:
            self.logger.warning("no frames for %.1fs; closing idle stream", lim.idle_timeout_s)
            self.end(StopReason.TIMEOUT)
            self.outlet.close(CLOSE_POLICY, "idle timeout")
        return False

    # -- inbound -------------------------------------------------------------------------

    def feed_text(self, data: bytes) -> None:
        """Handle one text frame. Never raises for bad input: counts, logs, maybe closes."""
        if self.ended:
            return
        # Counted here, added up by Metrics when read (one update per frame, not two).
        frames = self.frames = self.frames + 1
        self.bytes_received += len(data)
        try:
            if frames & 15:
                event = plivo.decode(data)
            else:
                # Decode time is sampled (1 frame in 16, scaled): two clock reads per frame
                # would cost more than the statistic is worth.
                t0 = time.perf_counter()
                try:
                    event = plivo.decode(data)
                finally:
                    self.metrics.decode_seconds += (time.perf_counter() - t0) * 16
        except plivo.ProtocolError as exc:
            self._invalid(exc.kind, exc.reason)
            return
        if type(event) is Media:
            if self.started:
                self._on_media(event)
            else:
                self._violation("media before start: the first event must be 'start'")
            return
        self._on_event(event)

    def feed_binary(self) -> None:
        """Plivo sends only text frames; binary is unsupported data (1003)."""
        self.metrics.frames_invalid["binary"] += 1
        self.logger.warning("binary frame received; Plivo streams use text frames only")
        self.close(CLOSE_UNSUPPORTED, "binary frames are not supported")

    def _invalid(self, kind: str, reason: str) -> None:
        self.metrics.frames_invalid[kind] += 1
        self.invalid_frames += 1
        if kind not in self._invalid_logged:
            self._invalid_logged.add(kind)
            self.logger.warning("invalid frame skipped (%s): %s", kind, reason)
        else:
            self.logger.debug("invalid frame skipped (%s): %s", kind, reason)
        if self.invalid_frames > self.limits.max_invalid_frames:
            self.close(CLOSE_INVALID_DATA, f"too many invalid frames (last: {kind})")

    def _violation(self, reason: str) -> None:
        self.metrics.frames_invalid["policy"] += 1
        self.logger.warning("closing stream: %s", reason)
        self.close(CLOSE_POLICY, reason)

    def _on_event(self, event: Event) -> None:
        kind = type(event)
        if kind is Start:
            self._on_start(event)  # type: ignore[arg-type]
            return
        if kind is Unknown:
            self.unknown_events += 1
            self.metrics.events_unknown += 1
            if self.unknown_events == 1:
                self.logger.info("ignoring unknown event %r", event.event)  # type: ignore[union-attr]
            if self.started:
                self._fanout(event)
            return
        if not self.started:
            self._violation(f"{kind.__name__} before start: the first event must be 'start'")
            return
        if kind is Dtmf:
            self.metrics.dtmf_received += 1
            self.logger.info("dtmf %s on %s", event.digit, event.track)  # type: ignore[union-attr]
            self._fanout(event)
        elif kind is PlayedStream:
            self._on_played(event.name)  # type: ignore[union-attr]
            self._fanout(event)
        elif kind is ClearedAudio:
            self._on_cleared()
            self._fanout(event)
        elif kind is Stop:
            self.end(StopReason.STOP_EVENT)
            self.close(CLOSE_NORMAL, "stream stopped")

    def _on_start(self, start: Start) -> None:
        if self.started:
            self._invalid("duplicate_start", "a second 'start' event was ignored")
            return
        for label, value in (("streamId", start.stream_id), ("callId", start.call_id)):
            if not _SAFE_ID.match(value):
                self._violation(f"invalid {label} {value[:64]!r}: expected [A-Za-z0-9._:-]")
                return
        if start.account_id and not _SAFE_ID.match(start.account_id):
            self._violation("invalid accountId")
            return
        self.started = True
        self.started_at_wall = time.time()
        self.start_event = start
        self.stream_id = start.stream_id
        self.call_id = start.call_id
        self.fmt = AudioFormat(start.encoding, start.sample_rate)
        l16 = start.encoding == audio.ENCODING_L16
        self._shift = 1 if l16 else 0
        self._odd_mask = 1 if l16 else 0
        self._rate = start.sample_rate
        self._encoding = start.encoding
        self._tracks = {t: _Track(t) for t in start.tracks}
        self.logger = logging.LoggerAdapter(
            log, {"stream_id": start.stream_id, "call_id": start.call_id}
        )
        ctx = StreamContext(
            self,
            call_id=start.call_id,
            stream_id=start.stream_id,
            account_id=start.account_id,
            format=self.fmt,
            tracks=start.tracks,
            extra_headers=start.extra_headers,
            path=self.path,
            query=self.query,
            route=self.route.path,
            bidirectional=self.route.bidirectional,
            logger=logging.LoggerAdapter(
                logging.getLogger("streamserver.handler"),
                {"stream_id": start.stream_id, "call_id": start.call_id},
            ),
        )
        self.ctx = ctx
        rate = start.sample_rate
        for spec in self.route.handlers:
            try:
                handler = spec.create(ctx)
            except Exception:
                self.logger.exception("handler %s could not be created; skipped", spec.name)
                self.metrics.handler_errors[spec.name] += 1
                continue
            max_s = min(handler.max_queue_s, self.limits.handler_queue_s)
            runner = HandlerRunner(self, spec, handler, max(int(max_s * rate), rate // 50))
            self.runners.append(runner)
            runner.start()
        self.update_sinks()
        self.logger.info(
            "stream started: call=%s stream=%s account=%s route=%s format=%s tracks=%s "
            "handlers=%s peer=%s",
            start.call_id,
            start.stream_id,
            start.account_id or "-",
            self.route.path,
            self.fmt.content_type,
            ",".join(start.tracks),
            ",".join(r.spec.name for r in self.runners) or "-",
            self.peer,
        )

    def _on_media(self, media: Media) -> None:
        tr = self._tracks.get(media.track)
        if tr is None:
            self._invalid("track", f"media for track {media.track!r} not announced in start")
            return
        payload = media.payload
        # Samples are decoded lazily (AudioChunk.samples); only the length is checked here.
        if len(payload) & self._odd_mask:
            self._invalid("audio", f"L16 payload of odd length {len(payload)}")
            return
        self.media_frames += 1
        self.audio_bytes += len(payload)
        c = media.chunk
        if c == tr.next_chunk:  # in order: the common case
            self._deliver(tr, payload, tr.next_pos)
            if tr.pending:
                self._drain_pending(tr)
        elif c is None:
            self._place_by_time(tr, media.timestamp_ms, payload)
        elif c < tr.next_chunk or c in tr.pending:
            self.duplicates += 1
            self.metrics.duplicates += 1
        else:
            tr.pending[c] = payload
            if len(tr.pending) > self.limits.reorder_window:
                self._skip_missing(tr)

    def _drain_pending(self, tr: _Track) -> None:
        pending = tr.pending
        while tr.next_chunk in pending:
            payload = pending.pop(tr.next_chunk)
            self.metrics.reordered += 1
            self._deliver(tr, payload, tr.next_pos)

    def _skip_missing(self, tr: _Track) -> None:
        """The reorder window overflowed: declare the missing chunks lost (a gap)."""
        first = min(tr.pending)
        missing = first - tr.next_chunk
        samples_per_chunk = len(tr.pending[first]) >> self._shift
        self._gap(tr, missing * samples_per_chunk)
        tr.next_chunk = first
        self._drain_pending(tr)

    def _place_by_time(self, tr: _Track, ts: int | None, payload: bytes) -> None:
        if ts is None:
            self._deliver(tr, payload, tr.next_pos)
            return
        if tr.ts0 is None:
            tr.ts0 = ts
        assert self.fmt is not None
        pos = (ts - tr.ts0) * self.fmt.sample_rate // 1000
        n = len(payload) >> self._shift
        half = n // 2
        if pos <= tr.next_pos - half - n + 1 and tr.frames:
            self.duplicates += 1
            self.metrics.duplicates += 1
            return
        if pos >= tr.next_pos + half and tr.frames:
            self._gap(tr, pos - tr.next_pos)
        self._deliver(tr, payload, tr.next_pos)

    def _gap(self, tr: _Track, n: int) -> None:
        if n <= 0:
            return
        gap = Gap(tr.name, tr.next_pos, n)
        tr.next_pos += n
        self.gaps += 1
        self.gap_samples += n
        self.metrics.gaps += 1
        self.metrics.gap_samples += n
        self.logger.debug("gap of %d samples on %s at %d", n, tr.name, gap.position)
        for r in self.runners:
            r.push(gap)

    def _deliver(self, tr: _Track, payload: bytes, pos: int) -> None:
        n = len(payload) >> self._shift
        chunk = AudioChunk(tr.name, pos, self._rate, n, payload, self._encoding)
        tr.next_pos = pos + n
        tr.next_chunk += 1
        tr.frames += 1
        for sink in self._sinks:
            try:
                sink(chunk)
            except Exception:
                if not self._sink_failed(sink):
                    raise  # not a handler's hook: our own bug, let it surface

    def _sink_failed(self, sink: Callable[[AudioChunk], None]) -> bool:
        for r in self.runners:
            if sink == r.nowait:
                r._failed("on_audio_nowait")
                return True
        return False

    def update_sinks(self) -> None:
        """Where delivered audio goes: each live handler's ``on_audio_nowait``, or its queue."""
        self._sinks = [r.nowait or r.push_audio for r in self.runners if not r.failed]

    def _fanout(self, event: Any) -> None:
        for r in self.runners:
            r.push(event)

    def publish(self, event: BusEvent) -> None:
        """Deliver a bus event to every handler of the stream except its source."""
        for r in self.runners:
            if r.spec.name != event.source:
                r.push(event)

    def _runner_stopped(self, runner: HandlerRunner) -> None:
        i = self.runners.index(runner) + 1
        if i < len(self.runners):
            self.runners[i].push(_STOP)

    # -- outbound (bidirectional) ---------------------------------------------------------

    def _send(self, data: bytes, urgent: bool = True) -> None:
        # Audio is not urgent: the transport may coalesce it (send_batch_frames); control
        # messages are, and flush what is queued before them, so the order never changes.
        if self.ended:
            return
        self.outlet.send_text(data, urgent)
        self.frames_sent += 1
        self.metrics.frames_sent += 1
        self.metrics.bytes_sent += len(data)

    async def _backpressure(self) -> None:
        if self.outlet.write_paused():
            try:
                await asyncio.wait_for(self.outlet.wait_writable(), self.limits.send_timeout_s)
            except TimeoutError:
                self.logger.warning(
                    "socket not writable for %.1f s; closing stream", self.limits.send_timeout_s
                )
                self.close(CLOSE_GOING_AWAY, "send timeout")

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        fmt = self.fmt
        if fmt is None or self.ended:
            return
        samples = audio.to_int16(np.asarray(pcm))
        if rate != fmt.sample_rate:
            # Each play() is a whole clip: resample it completely (a streaming resampler
            # would hold back its tail until the next call).
            samples = audio.resample(samples, rate, fmt.sample_rate)
        await self.play_encoded(fmt.encode(samples))

    async def play_encoded(self, payload: bytes) -> None:
        self.send_encoded(payload)
        if self.outlet.write_paused():
            await self._backpressure()

    def send_encoded(self, payload: bytes) -> None:
        """Queue encoded audio as playAudio frames without waiting (see play_encoded)."""
        fmt = self.fmt
        if fmt is None or self.ended or not payload:
            return
        step = fmt.frame_bytes
        if len(payload) <= step:
            # One frame (the per-frame echo/bot case): _send inlined.
            data = plivo.encode_play_audio(payload, fmt.encoding, fmt.sample_rate, self.stream_id)
            self.outlet.send_text(data, False)
            self.frames_sent += 1
            m = self.metrics
            m.frames_sent += 1
            m.bytes_sent += len(data)
            return
        enc, rate, sid = fmt.encoding, fmt.sample_rate, self.stream_id
        for i in range(0, len(payload), step):
            self._send(plivo.encode_play_audio(payload[i : i + step], enc, rate, sid), False)

    def checkpoint(self, name: str) -> asyncio.Future[bool]:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.ended:
            fut.set_result(False)
            return fut
        self._checkpoints.setdefault(name, deque()).append((fut, self._clear_epoch))
        self._send(plivo.encode_checkpoint(self.stream_id, name))
        return fut

    def clear_audio(self) -> None:
        self._clear_epoch += 1
        self._send(plivo.encode_clear_audio(self.stream_id))

    def send_dtmf(self, digits: str) -> None:
        self._send(plivo.encode_send_dtmf(digits))

    def _on_played(self, name: str) -> None:
        waiting = self._checkpoints.get(name)
        while waiting:
            fut, _ = waiting.popleft()
            if not fut.done():
                fut.set_result(True)
                break
        if waiting is not None and not waiting:
            del self._checkpoints[name]

    def _on_cleared(self) -> None:
        # Checkpoints sent before the latest clear will never be played.
        epoch = self._clear_epoch
        for name in list(self._checkpoints):
            waiting = self._checkpoints[name]
            keep = deque((f, e) for f, e in waiting if e >= epoch)
            for fut, e in waiting:
                if e < epoch and not fut.done():
                    fut.set_result(False)
            if keep:
                self._checkpoints[name] = keep
            else:
                del self._checkpoints[name]

    # -- end -----------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` (the session ends when the transport is lost)."""
        if code != CLOSE_NORMAL and not self.ended:
            self.end(StopReason.DRAIN if code == CLOSE_GOING_AWAY else StopReason.ERROR)
        self.outlet.close(code, reason)

    def end(self, reason: StopReason) -> None:
        """Finish the stream: flush ordering buffers, stop every handler. Idempotent."""
        if self.ended:
            return
        if self.started:
            for tr in self._tracks.values():
                while tr.pending:
                    self._skip_missing(tr)
        self.ended = True
        self.stop_reason = reason
        self.metrics.retire(self)
        for waiting in self._checkpoints.values():
            for fut, _ in waiting:
                if not fut.done():
                    fut.set_result(False)
        self._checkpoints.clear()
        # Handlers stop one after the other, in route order, so what a handler publishes
        # in its on_stop (a last transcript, say) still reaches the handlers after it.
        if self.runners:
            self.runners[0].push(_STOP)
        if self.started:
            self.metrics.stop_reasons[reason.value] += 1
            dropped = sum(r.dropped_samples for r in self.runners)
            self.logger.info(
                "stream ended: call=%s stream=%s reason=%s duration=%.1fs frames=%d media=%d "
                "gaps=%d gap_samples=%d duplicates=%d invalid=%d handler_drops=%d sent=%d",
                self.call_id,
                self.stream_id,
                reason.value,
                time.monotonic() - self.connected_at,
                self.frames,
                self.media_frames,
                self.gaps,
                self.gap_samples,
                self.duplicates,
                self.invalid_frames,
                dropped,
                self.frames_sent,
            )

    async def wait_handlers(self, timeout_s: float) -> None:
        """Wait for every handler's ``on_stop`` to finish (cancel after ``timeout_s``)."""
        tasks = [r.task for r in self.runners if r.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for t in pending:
            self.logger.warning(
                "handler task %s did not stop in %.1fs; cancelled", t.get_name(), timeout_s
            )
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    def summary(self) -> dict[str, Any]:
        """Live numbers for ops endpoints."""
        return {
            "call_id": self.call_id,
            "stream_id": self.stream_id,
            "route": self.route.path,
            "handlers": [r.spec.name for r in self.runners],
            "failed_handlers": [r.spec.name for r in self.runners if r.failed],
            "duration_s": round(time.monotonic() - self.connected_at, 3),
            "frames": self.frames,
            "media_frames": self.media_frames,
            "gaps": self.gaps,
            "gap_samples": self.gap_samples,
            "duplicates": self.duplicates,
            "handler_dropped_samples": sum(r.dropped_samples for r in self.runners),
            "format": self.fmt.content_type if self.fmt else None,
        }
