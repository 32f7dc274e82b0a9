"""One live stream: validate its frames, order its audio, fan out to handlers, play back.

The session is transport-agnostic: the network layer feeds it text frames with
:meth:`Session.feed_text`, calls :meth:`Session.tick` a few times a second, and gives it an
:class:`Outlet` to send frames and close the socket. Nothing here awaits per frame:
decoding, ordering (:mod:`streamserver.ordering`) and handing audio to every handler
(inline ``on_audio_nowait``, or a :class:`~streamserver.runner.HandlerRunner`'s queue) are
plain function calls. Playback and checkpoints are :mod:`streamserver.playback`'s; the
session is the :class:`~streamserver.handler.StreamControl` its handlers' contexts use.

Its states (AWAIT_START, STREAMING, ENDED) and their transitions are in
:mod:`streamserver.session_state`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from . import audio
from .audio import AudioFormat
from .doctor import Doctor, provider_bidirectional
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
from .observer import StreamObserver
from .ordering import Ordering, OrderStats, TrackOrder
from .playback import Playback
from .protocol import detect, plivo
from .protocol.dialect import Dialect
from .protocol.events import ClearedAudio, Dtmf, Media, PlayedStream, Start, Stop, Unknown
from .protocol.neutral import AnyEvent, Connected, ProviderError
from .protocol.websocket import CloseCode
from .runner import HandlerRunner, StreamHandlers
from .session_state import SessionState, Trigger, next_state

__all__ = ["Outlet", "Route", "Session", "SessionLimits", "safe_id"]

log = logging.getLogger("streamserver.session")

#: Ids become path parts (recordings): every id a real provider sends (Plivo uuids, Twilio
#: ``MZ…``/``CA…``, Telnyx ``v3:AbC…_dEf-…``, Exotel hex) and nothing that could leave a
#: directory: no ``/``, ``\``, NUL or leading dot, no ``..``, at most 256 characters.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,255}\Z")


def safe_id(value: str) -> bool:
    """True if the id from the network may become a path part."""
    return _SAFE_ID.match(value) is not None and ".." not in value


class Outlet(Protocol):
    """What a session needs from its transport."""

    def send_text(self, data: bytes, urgent: bool = True) -> None: ...
    def send_binary(self, data: bytes, urgent: bool = True) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def write_paused(self) -> bool: ...
    async def wait_writable(self) -> None: ...


@dataclass(frozen=True)
class Route:
    """A WebSocket path and the handlers every stream on it gets.

    ``dialect`` pins the provider (``"twilio"``, ...); None detects it from the first
    message. ``expect_format``: a stream in another media format is a doctor finding.
    """

    path: str
    handlers: tuple[HandlerSpec, ...]
    bidirectional: bool = True
    dialect: str | None = None
    expect_format: AudioFormat | None = None


@dataclass(frozen=True)
class SessionLimits:
    """Per-stream tunables (see ``[session]`` in the config)."""

    reorder_window: int = 5  # frames held while waiting for a missing chunk
    max_invalid_frames: int = 100  # then close 1007
    send_timeout_s: float = 5.0  # a blocked socket for this long ends the session
    handler_queue_s: float = 10.0  # default audio bound per handler input
    start_timeout_s: float = 10.0  # no 'start' event this long after the upgrade: close 1008
    idle_timeout_s: float = 0.0  # no frame for this long: close 1008 (0: never)
    doctor_silence_s: float = 10.0  # no inbound audio this long: a doctor finding (0: off)


class Session:
    """One WebSocket stream from connect to close.

    ``state`` is a :class:`SessionState`; ``started`` (the stream got past
    ``AWAIT_START``) and ``ended`` are plain attributes derived from it in
    :meth:`_transition`, for the per-frame checks.
    """

    __slots__ = (
        "_decode",
        "_encoding",
        "_invalid_logged",
        "_live_keys",
        "_media_at",
        "_media_mark",
        "_odd_mask",
        "_playback",
        "_rate",
        "_tracks",
        "audio_bytes",
        "bytes_received",
        "call_id",
        "connected_at",
        "ctx",
        "dialect",
        "doctor",
        "ended",
        "fmt",
        "frames",
        "handlers",
        "idle_mark_frames",
        "invalid_frames",
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
        "play_encoded_nowait",
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
        self.stream_id = "-"
        self.call_id = "-"
        self.ctx: StreamContext | None = None
        self.handlers = StreamHandlers(metrics)
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
        self.invalid_frames = 0
        self.unknown_events = 0
        self.bytes_received = 0
        self.audio_bytes = 0
        #: duplicates, reordered, gaps (the ordering's own once started)
        self.order_stats = OrderStats()
        metrics.live.add(self)
        self._invalid_logged: set[str] = set()
        self._playback = pb = Playback(
            outlet,
            metrics,
            send_timeout_s=self.limits.send_timeout_s,
            on_stuck=lambda: self.close(CloseCode.GOING_AWAY, "send timeout"),
        )
        # StreamControl.play_encoded_nowait is the per-frame path of an echo or a bot:
        # the playback's own method, with no call in between.
        self.play_encoded_nowait: Callable[[bytes], None] = pb.play_encoded_nowait
        self.logger: logging.LoggerAdapter[logging.Logger] = logging.LoggerAdapter(
            log, {"stream_id": "-", "call_id": "-"}
        )
        #: the provider's dialect: the route's pin, else detected from the first message
        self.dialect: Dialect | None = None
        self._decode: Callable[[bytes], AnyEvent] = self._detect
        if route.dialect is not None:
            self.dialect = d = detect.get(route.dialect)
            self._decode = d.decode
        self.doctor = Doctor(metrics, self.publish, self.logger)
        self._live_keys: tuple[str, ...] = ()
        self._media_mark = 0  # media frames at the last tick that saw some
        self._media_at = self.connected_at

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
            if self.media_frames != self._media_mark:
                self._media_mark = self.media_frames
                self._media_at = now
            elif now - self._media_at > lim.doctor_silence_s:
                self.doctor.silence(now - self._media_at)
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
            self._invalid(exc.kind, exc.reason)
            return
        if type(event) is Media:
            if not self.started:
                self._violation("media before start: the first event must be 'start'")
                return
            # The per-frame path, inline (a call would cost ~1 % per frame): validate,
            # count, order (which delivers). Binary frames (Vonage) take _media.
            tr = self._tracks.get(event.track)
            payload = event.payload
            size = len(payload)
            if tr is None or size & self._odd_mask:
                self._bad_media(event)
                return
            self.media_frames += 1
            self.audio_bytes += size
            tr.push(event.chunk, event.timestamp_ms, payload)
            return
        self._on_event(event)

    def _detect(self, data: bytes) -> AnyEvent:
        """The first message(s) of an auto-detected stream: pick the dialect, decode with it."""
        try:
            dialect = detect.detect(data)
        except plivo.ProtocolError as exc:
            if exc.kind != "dialect":
                raise
            # No provider's ids: read it as Plivo (the first dialect) would, and detect
            # again on the next message.
            return plivo.decode(data)
        if dialect is None:
            return Connected()  # a bare 'connected' (Telnyx or Exotel): decide on 'start'
        self.dialect = dialect
        self._decode = dialect.decode
        self.logger.debug("dialect detected: %s", dialect.name)
        return dialect.decode(data)

    def _media(self, event: Media) -> None:
        """Media from a binary frame (Vonage): what feed_text does inline."""
        if not self.started:
            self._violation("media before start: the first event must be 'start'")
            return
        tr = self._tracks.get(event.track)
        if tr is None or len(event.payload) & self._odd_mask:
            self._bad_media(event)
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
            self.dialect = dialect = detect.detect_binary()
            self._decode = dialect.decode
        try:
            event = dialect.decode_binary(data)
        except plivo.ProtocolError as exc:
            if exc.kind != "binary":
                self._invalid(exc.kind, exc.reason)
                return
            self.metrics.frames_invalid["binary"] += 1
            self.logger.warning("binary frame received; %s", exc.reason)
            self.close(CloseCode.UNSUPPORTED_DATA, "binary frames are not supported")
            return
        self.frames += 1
        self.bytes_received += len(data)
        self._media(event)

    def _bad_media(self, media: Media) -> None:
        if media.track not in self._tracks:
            self._invalid("track", f"media for track {media.track!r} not announced in start")
        else:
            self._invalid("audio", f"L16 payload of odd length {len(media.payload)}")

    def _invalid(self, kind: str, reason: str) -> None:
        self.metrics.frames_invalid[kind] += 1
        self.invalid_frames += 1
        if kind not in self._invalid_logged:
            self._invalid_logged.add(kind)
            self.logger.warning("invalid frame skipped (%s): %s", kind, reason)
        else:
            self.logger.debug("invalid frame skipped (%s): %s", kind, reason)
        if self.invalid_frames > self.limits.max_invalid_frames:
            self.close(CloseCode.INVALID_DATA, f"too many invalid frames (last: {kind})")

    def _violation(self, reason: str) -> None:
        self.metrics.frames_invalid["policy"] += 1
        self.logger.warning("closing stream: %s", reason)
        self.close(CloseCode.POLICY_VIOLATION, reason)

    def _on_event(self, event: AnyEvent) -> None:
        if type(event) is Connected:
            return  # the provider's hello before 'start': nothing a stream needs
        if type(event) is ProviderError:
            self.logger.warning(
                "provider reports an error: %s %s: %s", event.code, event.title, event.detail
            )
            return
        if type(event) is Start:
            if self.started:
                self._invalid("duplicate_start", "a second 'start' event was ignored")
            else:
                self._on_start(event)
            return
        if type(event) is Unknown:
            self.unknown_events += 1
            self.metrics.events_unknown += 1
            if self.unknown_events == 1:
                self.logger.info("ignoring unknown event %r", event.event)
            if self.started:
                self.handlers.push(event)
            return
        if not self.started:
            name = type(event).__name__
            self._violation(f"{name} before start: the first event must be 'start'")
            return
        if type(event) is Dtmf:
            self.metrics.dtmf_received += 1
            self.logger.info("dtmf %s on %s", event.digit, event.track)
            self.handlers.push(event)
            if self.observer is not None:
                self.observer.stream_event(
                    self, "dtmf", {"digit": event.digit, "track": event.track}
                )
        elif type(event) is PlayedStream:
            played = self._playback.played(event.name)
            if played is not None:  # None: a mark echoed after our clear, never played
                self.handlers.push(event if played == event.name else PlayedStream(played))
        elif type(event) is ClearedAudio:
            self._playback.cleared()
            self.handlers.push(event)
        elif type(event) is Stop:
            self.end(StopReason.STOP_EVENT)
            self.close(CloseCode.NORMAL, "stream stopped")

    def _ids(self, start: Start) -> tuple[str, str] | None:
        """The stream and call ids (checked safe for paths), or None after closing.

        A provider that sends no stream id (Vonage) gets a generated uuid unless the URL
        query carries ``stream_id``; no call id: the query's ``call_id``/``uuid``, else the
        stream id (the recording still gets a directory of its own).
        """
        q = self.query
        sid = start.stream_id or q.get("stream_id") or str(uuid.uuid4())
        cid = start.call_id or q.get("call_id") or q.get("uuid") or sid
        for label, value in (("streamId", sid), ("callId", cid)):
            if not safe_id(value):
                self._violation(
                    f"invalid {label} {value[:64]!r}: expected [A-Za-z0-9._:-], no '..'"
                )
                return None
        if start.account_id and not safe_id(start.account_id):
            self._violation("invalid accountId")
            return None
        return sid, cid

    def _on_start(self, start: Start) -> None:
        ids = self._ids(start)
        if ids is None:
            return
        dialect = self.dialect or detect.get("plivo")
        self._transition(Trigger.START)
        self.started_at_wall = time.time()
        self.start_event = start
        self.stream_id, self.call_id = sid, cid = ids
        self.fmt = fmt = AudioFormat(start.encoding, start.sample_rate)
        self._odd_mask = 1 if start.encoding == audio.ENCODING_L16 else 0
        self._rate = rate = start.sample_rate
        self._encoding = start.encoding
        order = Ordering(
            start.tracks,
            bytes_per_sample=fmt.bytes_per_sample,
            sample_rate=rate,
            window=self.limits.reorder_window,
            deliver=self._deliver,
            gap=self._on_gap,
            totals=self.metrics,
        )
        self.order_stats = order.stats
        self._tracks = order.tracks
        self.logger = logging.LoggerAdapter(log, {"stream_id": sid, "call_id": cid})
        self._playback.start(fmt, sid, self.logger, dialect)
        said = provider_bidirectional(dialect.name, start)
        bidirectional = self.route.bidirectional if said is None else said
        self.ctx = ctx = StreamContext(
            self,
            call_id=cid,
            stream_id=sid,
            account_id=start.account_id,
            format=fmt,
            tracks=start.tracks,
            extra_headers=start.extra_headers,
            path=self.path,
            query=self.query,
            route=self.route.path,
            bidirectional=bidirectional,
            logger=logging.LoggerAdapter(
                logging.getLogger("streamserver.handler"), {"stream_id": sid, "call_id": cid}
            ),
            provider=dialect.name,
        )
        self.handlers.create(self.route.handlers, ctx, queue_s=self.limits.handler_queue_s)
        self.metrics.streams_by_provider[dialect.name] += 1
        self._examine(fmt, sid, cid, dialect.name)
        self.logger.info(
            "stream started: provider=%s call=%s stream=%s account=%s route=%s format=%s "
            "tracks=%s handlers=%s peer=%s",
            dialect.name,
            cid,
            sid,
            start.account_id or "-",
            self.route.path,
            fmt.content_type,
            ",".join(start.tracks),
            ",".join(r.spec.name for r in self.runners) or "-",
            self.peer,
        )
        if self.observer is not None:
            self.observer.stream_started(self)

    def _examine(self, fmt: AudioFormat, sid: str, cid: str, provider: str) -> None:
        """The stream doctor's checks at start: the route's format, ids already live."""
        doc = self.doctor
        doc.logger = self.logger
        doc.provider = provider
        expected = self.route.expect_format
        if expected is not None and expected != fmt:
            doc.format_mismatch(fmt.content_type, expected.content_type, self.route.path)
        live = self.metrics.live_ids
        self._live_keys = keys = (f"s:{sid}", f"c:{self.route.path}:{cid}")
        for key, what, value in zip(keys, ("stream id", "call id"), (sid, cid), strict=True):
            if live[key]:
                doc.duplicate(what, value)
            live[key] += 1

    def play_refused(self, what: str) -> None:
        """A handler tried to play on a one-way stream: a doctor finding."""
        self.doctor.one_way_play(what, self.route.path)

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

    # -- StreamControl (streamserver.handler): what handlers' contexts call -------------

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        """Resample and encode a whole clip to the stream's format, send it."""
        await self._playback.play(pcm, rate)

    async def play_encoded(self, payload: bytes) -> None:
        """Send encoded audio; wait (up to ``send_timeout_s``) while the socket is full."""
        await self._playback.play_encoded(payload)

    def checkpoint(self, name: str) -> asyncio.Future[bool]:
        """Send a checkpoint; resolved True by ``playedStream``, False by a clear or the end."""
        return self._playback.checkpoint(name)

    def clear(self) -> None:
        """Send ``clearAudio`` (checkpoints sent before it will resolve False)."""
        self._playback.clear()

    def send_dtmf(self, digits: str) -> None:
        """Send ``sendDTMF``."""
        self._playback.send_dtmf(digits)

    def count(self, handler: str, event: str, n: int) -> None:
        """Add to the handler-defined counter ``(handler, event)``."""
        self.metrics.handler_events[(handler, event)] += n

    def wakeup(self, handler: Handler) -> None:
        """Queue ``handler.on_wakeup`` on its task."""
        self.handlers.wakeup(handler)

    # -- end -----------------------------------------------------------------------------

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
        self._transition(Trigger.END)
        self.stop_reason = reason
        self.metrics.retire(self)
        live = self.metrics.live_ids
        for key in self._live_keys:
            live[key] -= 1
            if live[key] <= 0:
                del live[key]
        self._playback.close()  # pending checkpoints resolve False
        self.handlers.stop(reason)  # one after the other, in route order
        if self.started:
            self.metrics.stop_reasons[reason.value] += 1
            st = self.order_stats
            self.logger.info(
                "stream ended: call=%s stream=%s reason=%s duration=%.1fs frames=%d media=%d "
                "gaps=%d gap_samples=%d duplicates=%d invalid=%d handler_drops=%d sent=%d",
                self.call_id,
                self.stream_id,
                reason.value,
                time.monotonic() - self.connected_at,
                self.frames,
                self.media_frames,
                st.gaps,
                st.gap_samples,
                st.duplicates,
                self.invalid_frames,
                self.handlers.dropped_samples,
                self._playback.frames_sent,
            )

    async def wait_handlers(self, timeout_s: float) -> None:
        """Wait for every handler's ``on_stop`` to finish (cancel after ``timeout_s``)."""
        await self.handlers.wait(timeout_s, self.logger)

    def summary(self) -> dict[str, Any]:
        """Live numbers for ops endpoints (and ``StreamContext.stats``)."""
        st = self.order_stats
        return {
            "call_id": self.call_id,
            "stream_id": self.stream_id,
            "route": self.route.path,
            "state": self.state.value,
            "handlers": [r.spec.name for r in self.runners],
            "failed_handlers": [r.spec.name for r in self.runners if r.failed],
            "duration_s": round(time.monotonic() - self.connected_at, 3),
            "frames": self.frames,
            "media_frames": self.media_frames,
            "gaps": st.gaps,
            "gap_samples": st.gap_samples,
            "duplicates": st.duplicates,
            "handler_dropped_samples": self.handlers.dropped_samples,
            "format": self.fmt.content_type if self.fmt else None,
            "provider": self.dialect.name if self.dialect else None,
        }
