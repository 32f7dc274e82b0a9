"""One live stream: validate its frames, order its audio, fan out to handlers, play back.

The session is transport-agnostic: the network layer feeds it text frames with
:meth:`Session.feed_text`, calls :meth:`Session.tick` a few times a second, and gives it an
:class:`Outlet` to send frames and close the socket. Nothing here awaits per frame:
decoding, ordering (:mod:`streamserver.ordering`) and handing audio to every handler
(inline ``on_audio_nowait``, or a :class:`~streamserver.runner.HandlerRunner`'s queue) are
plain function calls. Playback and checkpoints are :mod:`streamserver.playback`'s; the
session is the :class:`~streamserver.handler.StreamControl` its handlers' contexts use.

Its states (AWAIT_START, STREAMING, ENDED) and their transitions are in
:mod:`streamserver.session_state`; what runs once per stream is beside it:
:mod:`~streamserver.dialect_binding`, :mod:`~streamserver.stream_start`,
:mod:`~streamserver.frame_faults`, :mod:`~streamserver.stream_report`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import audio
from .audio import AudioFormat
from .dialect_binding import DialectBinding
from .doctor import Doctor
from .frame_faults import FrameFaults
from .handler import AudioChunk, BusEvent, Gap, StopReason, StreamContext
from .logs import LogBudget, clean
from .metrics import Metrics
from .observer import StreamObserver
from .ordering import Ordering, OrderStats, TrackOrder
from .playback import Playback
from .protocol import detect, plivo
from .protocol.dialect import Dialect
from .protocol.events import ClearedAudio, Dtmf, Media, PlayedStream, Start, Stop, Unknown
from .protocol.neutral import AnyEvent, Connected, ProviderError
from .protocol.websocket import CloseCode
from .resume import Continuation, Resume, Resumes
from .runner import HandlerRunner
from .session_config import Outlet, Route, SessionLimits
from .session_state import SessionState, Trigger, next_state
from .stream_control import SessionControl
from .stream_handlers import StreamHandlers
from .stream_report import log_ended, summary
from .stream_start import log_started, safe_id, stream_context, stream_ids

__all__ = ["Outlet", "Route", "Session", "SessionLimits", "safe_id"]

log = logging.getLogger("streamserver.session")


class Session:
    """One WebSocket stream from connect to close.

    ``state`` is a :class:`SessionState`; ``started`` (the stream got past
    ``AWAIT_START``) and ``ended`` are plain attributes derived from it in
    :meth:`_transition`, for the per-frame checks.
    """

    __slots__ = (
        "_binding",
        "_decode",
        "_encoding",
        "_faults",
        "_logs",
        "_odd_mask",
        "_playback",
        "_rate",
        "_tracks",
        "audio_bytes",
        "bytes_received",
        "call_id",
        "connected_at",
        "continuation",
        "control",
        "ctx",
        "dialect",
        "doctor",
        "ended",
        "fmt",
        "frames",
        "handlers",
        "idle_mark_frames",
        "last_rx",
        "limits",
        "logger",
        "media_frames",
        "metrics",
        "observer",
        "order_stats",
        "outlet",
        "path",
        "peer",
        "query",
        "route",
        "runners",
        "start_event",
        "started",
        "started_at_wall",
        "state",
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
        resumes: Resumes | None = None,
    ) -> None:
        self.outlet = outlet
        self.route = route
        self.metrics = metrics
        self.path = path
        self.query = query
        self.limits = limits or SessionLimits()
        self.peer = peer
        self.state = SessionState.AWAIT_START
        self.started = False
        self.ended = False
        self.stop_reason: StopReason | None = None
        #: told of start, DTMF, bus events and end (set by the server; None: nobody)
        self.observer: StreamObserver | None = None
        self.start_event: Start | None = None
        #: its place among the process's streams by ids, for a reconnect
        self.continuation = Continuation(resumes)
        self.stream_id = "-"
        self.call_id = "-"
        self.ctx: StreamContext | None = None
        self.handlers = StreamHandlers(metrics, route.required, self._required_failed)
        #: the stream's handler runners, in route order
        self.runners: list[HandlerRunner] = self.handlers.runners
        self.connected_at = time.monotonic()
        self.started_at_wall: float | None = None
        self.last_rx = self.connected_at  # updated by tick()
        self.idle_mark_frames = 0
        self.fmt: AudioFormat | None = None
        self._tracks: dict[str, TrackOrder] = {}  # the ordering's tracks (the hot path)
        # per-stream constants of the hot path, set at start
        self._odd_mask = 0  # 1 for L16: an odd byte count is invalid
        self._rate = 8000
        self._encoding = audio.ENCODING_MULAW
        # counters (also reported per stream)
        self.frames = 0
        self.media_frames = 0
        self.unknown_events = 0
        self.bytes_received = 0
        self.audio_bytes = 0
        #: duplicates, reordered, gaps (the ordering's own once started)
        self.order_stats = OrderStats()
        metrics.live.add(self)
        #: per-stream budget of repetitive lines (DTMF...): a flood gets a summary line
        self._logs = LogBudget(5, 10.0, counter=metrics.log_suppressed)
        self._playback = pb = Playback(
            outlet,
            metrics,
            send_timeout_s=self.limits.send_timeout_s,
            on_stuck=lambda: self.close(CloseCode.GOING_AWAY, "send timeout"),
        )
        #: what the handlers' contexts reach the stream through (StreamControl)
        self.control = SessionControl(self, pb)
        self.logger: logging.LoggerAdapter[logging.Logger] = logging.LoggerAdapter(
            log, {"stream_id": "-", "call_id": "-"}
        )
        #: bad frames: counted, logged once per kind, too many close the stream
        self._faults = FrameFaults(metrics, self.limits, self.close, self.logger)
        #: the provider's dialect: the route's pin, else detected from the first message
        self.dialect: Dialect | None = None
        self._binding = binding = DialectBinding(self._bind)
        self._decode: Callable[[bytes], AnyEvent] = binding.detect_first
        if route.dialect is not None:
            binding.pin(route.dialect)
        self.doctor = Doctor(metrics, self.publish, self.logger, now=self.connected_at)

    def _bind(self, dialect: Dialect) -> None:
        # The dialect binding's callback: from now on frames go to the dialect's decode.
        self.dialect = dialect
        self._decode = dialect.decode
        self.logger.debug("dialect: %s", dialect.name)

    def _transition(self, trigger: Trigger) -> None:
        """The one place the state changes (and the flags derived from it)."""
        self.state = new = next_state(self.state, trigger)
        self.ended = new is SessionState.ENDED
        if new is SessionState.STREAMING:
            self.started = True

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
                self.outlet.close(CloseCode.POLICY_VIOLATION, "start timeout: no start event")
            return False
        if lim.doctor_silence_s:
            self.doctor.watch(now, self.media_frames, lim.doctor_silence_s)
        if self.frames != self.idle_mark_frames:
            self.idle_mark_frames = self.frames
            self.last_rx = now
            return True
        if lim.idle_timeout_s and now - self.last_rx > lim.idle_timeout_s:
            self.logger.warning("no frames for %.1fs; closing idle stream", lim.idle_timeout_s)
            self.end(StopReason.TIMEOUT)
            self.outlet.close(CloseCode.POLICY_VIOLATION, "idle timeout")
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
                event = self._decode(data)
            else:
                # Decode time is sampled (1 frame in 16, scaled): two clock reads per frame
                # would cost more than the statistic is worth.
                t0 = time.perf_counter()
                try:
                    event = self._decode(data)
                finally:
                    self.metrics.decode_seconds += (time.perf_counter() - t0) * 16
        except plivo.ProtocolError as exc:
            self._faults.undecodable(exc, data)
            return
        if type(event) is Media:
            if not self.started:
                self._faults.violation("media before start: the first event must be 'start'")
                return
            # The per-frame path, inline (a call would cost ~1 % per frame): validate,
            # count, order (which delivers). Binary frames (Vonage) take _media.
            tr = self._tracks.get(event.track)
            payload = event.payload
            size = len(payload)
            if tr is None or size & self._odd_mask:
                self._faults.bad_media(event, tr is not None)
                return
            self.media_frames += 1
            self.audio_bytes += size
            tr.push(event.chunk, event.timestamp_ms, payload)
            return
        self._on_event(event)

    def _media(self, event: Media) -> None:
        """Media from a binary frame (Vonage): what feed_text does inline."""
        if not self.started:
            self._faults.violation("media before start: the first event must be 'start'")
            return
        tr = self._tracks.get(event.track)
        if tr is None or len(event.payload) & self._odd_mask:
            self._faults.bad_media(event, tr is not None)
            return
        self.media_frames += 1
        self.audio_bytes += len(event.payload)
        tr.push(event.chunk, event.timestamp_ms, event.payload)

    def feed_binary(self, data: bytes) -> None:
        """One binary frame: audio on Vonage (a binary first frame means Vonage); on every
        other dialect unsupported data (1003)."""
        if self.ended:
            return
        dialect = self.dialect
        if dialect is None:
            dialect = self._binding.detect_binary()
        try:
            event = dialect.decode_binary(data)
        except plivo.ProtocolError as exc:
            self._faults.bad_binary(exc)
            return
        self.frames += 1
        self.bytes_received += len(data)
        self._media(event)

    @property
    def invalid_frames(self) -> int:
        """Invalid frames skipped so far."""
        return self._faults.count

    def _on_event(self, event: AnyEvent) -> None:
        if type(event) is Connected:
            return  # the provider's hello before 'start': nothing a stream needs
        if type(event) is ProviderError:
            self.logger.warning(
                "provider reports an error: %s %s: %s",
                *(clean(event.code, 32), clean(event.title), clean(event.detail, 300)),
            )
            return
        if type(event) is Start:
            if self.started:
                self._faults.invalid("duplicate_start", "a second 'start' event was ignored")
            else:
                self._on_start(event)
            return
        if type(event) is Unknown:
            self.unknown_events += 1
            self.metrics.events_unknown += 1
            if self.unknown_events == 1:
                self.logger.info("ignoring unknown event %r", clean(event.event, 64))
            if self.started:
                self.handlers.push(event)
            return
        if not self.started:
            name = type(event).__name__
            self._faults.violation(f"{name} before start: the first event must be 'start'")
            return
        if type(event) is Dtmf:
            dtmf = self._faults.dtmf(event)
            if dtmf is None:
                return
            self.metrics.dtmf_received += 1
            track = clean(dtmf.track, 32)
            self._logs.log(self.logger, logging.INFO, "dtmf", "dtmf %s on %s", dtmf.digit, track)
            self.handlers.push(dtmf)
            if self.observer is not None:
                self.observer.stream_event(self, "dtmf", {"digit": dtmf.digit, "track": dtmf.track})
        elif type(event) is PlayedStream:
            played = self._playback.played(event.name)
            if played is not None:  # None: a mark echoed after our clear, never played
                self.handlers.push(event if played == event.name else PlayedStream(played))
        elif type(event) is ClearedAudio:
            self._playback.cleared()
            self.handlers.push(event)
        elif type(event) is Stop:
            self.end(StopReason.STOP_EVENT)
            self.handlers.close_after_stop(self.outlet.close)  # 1000, or why not

    def _on_start(self, start: Start) -> None:
        ids = stream_ids(start, self.query)
        if isinstance(ids, str):
            self._faults.violation(ids)
            return
        dialect = self.dialect or detect.get("plivo")
        self._transition(Trigger.START)
        self.started_at_wall = time.time()
        self.start_event = start
        self.stream_id, self.call_id = sid, cid = ids
        self.fmt = fmt = AudioFormat(start.encoding, start.sample_rate)
        self._odd_mask = 1 if start.encoding == audio.ENCODING_L16 else 0
        self._rate = self._faults.rate = rate = start.sample_rate
        self._encoding = start.encoding
        self.logger = self._faults.logger = logging.LoggerAdapter(
            log, {"stream_id": sid, "call_id": cid}
        )
        route = self.route
        took_over = self.continuation.arrive((route.path, sid, cid), self, fmt, self.logger)
        if self.continuation.prior is not None:
            self.metrics.streams_resumed += 1
        order = Ordering(
            start.tracks,
            bytes_per_sample=fmt.bytes_per_sample,
            sample_rate=rate,
            window=self.limits.reorder_window,
            deliver=self._deliver,
            gap=self._on_gap,
            totals=self.metrics,
            max_gap_samples=max(1, int(self.limits.max_gap_s * rate)),
            anomaly=self._faults.timeline,
        )
        resumed = self.continuation.seed(order.tracks)
        self.order_stats = order.stats
        self._tracks = tracks = order.tracks
        self._playback.start(fmt, sid, self.logger, dialect)
        if any(spec.cls.taps_playback(spec.options) for spec in route.handlers):
            inbound = tracks.get("inbound") or next(iter(tracks.values()), None)
            self.control.tap((lambda: inbound.next_pos) if inbound is not None else (lambda: 0))
        self.ctx = ctx = stream_context(
            self.control,
            start,
            route,
            provider=dialect.name,
            fmt=fmt,
            ids=ids,
            path=self.path,
            query=self.query,
            resumed=resumed,
            connection=self.continuation.connection,
        )
        lim = self.limits
        self.handlers.create(
            route.handlers, ctx, queue_s=lim.handler_queue_s, max_events=lim.handler_max_events
        )
        self.metrics.streams_by_provider[dialect.name] += 1
        self.doctor.examine(
            fmt, route.expect_format, route.path, ids, self.logger, dialect.name, took_over
        )
        log_started(self.logger, ctx, [r.spec.name for r in self.runners], self.peer)
        if self.observer is not None:
            self.observer.stream_started(self)

    def hand_over(self) -> Resume:
        """A newer socket of this stream took over (:mod:`streamserver.resume`): end now
        (``REPLACED``), close with 1000 and say where the stream's timelines stand."""
        self.end(StopReason.REPLACED)
        self.outlet.close(CloseCode.NORMAL, "replaced by a newer connection of this stream")
        self.metrics.streams_replaced += 1
        assert self.fmt is not None
        return self.continuation.timelines(self.fmt, self._tracks)

    # -- fan-out -------------------------------------------------------------------------

    def _deliver(self, track: str, position: int, num_samples: int, payload: bytes) -> None:
        # The ordering's deliver callback: once per media frame.
        chunk = AudioChunk(track, position, self._rate, num_samples, payload, self._encoding)
        for sink in self.handlers.sinks:
            try:
                sink(chunk)
            except Exception:
                if not self.handlers.sink_failed(sink):
                    raise  # not a handler's hook: our own bug, let it surface

    def _on_gap(self, track: str, position: int, num_samples: int) -> None:
        # The ordering's gap callback.
        self.logger.debug("gap of %d samples on %s at %d", num_samples, track, position)
        self.handlers.push(Gap(track, position, num_samples))

    def publish(self, event: BusEvent) -> None:
        """Deliver a bus event to every handler of the stream except its source."""
        self.handlers.publish(event)
        if self.observer is not None:
            self.observer.stream_event(self, event.topic, event.data)

    # -- end -----------------------------------------------------------------------------

    def _required_failed(self, handler: str, reason: str) -> bool:
        """A handler the route requires failed: the stream cannot go on (1011)."""
        if self.ended:
            return False
        self.logger.error("closing stream: required handler %s failed", handler)
        self.close(CloseCode.INTERNAL_ERROR, reason)
        return True

    def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` (the session ends when the transport is lost)."""
        if code != CloseCode.NORMAL and not self.ended:
            self.end(StopReason.DRAIN if code == CloseCode.GOING_AWAY else StopReason.ERROR)
        self.outlet.close(code, reason)

    def end(self, reason: StopReason) -> None:
        """Finish the stream: flush ordering buffers, stop every handler. Idempotent."""
        if self.ended:
            return
        for tr in self._tracks.values():
            tr.flush()  # what is still missing is a gap; held audio is delivered
        self._logs.flush(self.logger)
        self._transition(Trigger.END)
        self.stop_reason = reason
        self.metrics.retire(self)
        self.doctor.release()
        self._playback.close()  # pending checkpoints resolve False
        # A socket lost or timed out may come back; a stop, a normal close or a takeover
        # ends the stream.
        keep = reason in (StopReason.ERROR, StopReason.TIMEOUT)
        self.continuation.leave(self, keep, self.fmt, self._tracks)
        self.handlers.stop(reason)  # one after the other, in route order
        if self.started:
            self.metrics.stop_reasons[reason.value] += 1
            log_ended(self.logger, self, reason, self._playback.frames_sent)

    async def wait_handlers(self, timeout_s: float) -> None:
        """Wait for every handler's ``on_stop`` to finish (cancel after ``timeout_s``)."""
        await self.handlers.wait(timeout_s, self.logger)

    def summary(self) -> dict[str, Any]:
        """Live numbers for ops endpoints (and ``StreamContext.stats``)."""
        return summary(self)
