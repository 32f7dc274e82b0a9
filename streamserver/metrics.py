"""Process-wide counters and gauges, rendered in the Prometheus text format (v0.0.4).

Plain integer attributes keep the per-event cost to one attribute increment; the per-frame
receive counters live on each stream and are added up when read; labelled counters (close
codes, error kinds, handler names) live in small dicts touched only on rare events.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["Metrics", "StreamCounters"]


class StreamCounters(Protocol):
    """What :class:`Metrics` reads of an open stream."""

    frames: int
    bytes_received: int
    media_frames: int
    audio_bytes: int


_STREAM_COUNTERS = ("frames", "bytes_received", "media_frames", "audio_bytes")


class Metrics:
    """All counters of one server process."""

    __slots__ = (
        "_closed",
        "accept_errors",
        "bytes_sent",
        "callbacks",
        "close_codes",
        "connections_rejected",
        "control_rejected",
        "decode_seconds",
        "doctor",
        "dtmf_received",
        "duplicates",
        "events_unknown",
        "frames_invalid",
        "frames_sent",
        "gap_samples",
        "gaps",
        "gaps_capped",
        "gc_collections",
        "gc_pause_max_s",
        "gc_pause_s",
        "handler_dropped_events",
        "handler_dropped_samples",
        "handler_errors",
        "handler_events",
        "live",
        "live_ids",
        "log_suppressed",
        "loop_lag_max_s",
        "loop_lag_recent_max_s",
        "loop_lag_s",
        "loop_stalls",
        "loop_utilisation",
        "pings_unanswered",
        "read_batch_depth",
        "read_batch_stalls",
        "reordered",
        "required_handler_closes",
        "resyncs",
        "send_buffer_overflows",
        "signature_checks",
        "sources",
        "started_at",
        "stop_reasons",
        "streams_active",
        "streams_by_provider",
        "streams_read_batched",
        "streams_replaced",
        "streams_resumed",
        "streams_total",
        "writes_paired",
    )

    def __init__(self) -> None:
        self.started_at = time.time()
        # Streams
        self.streams_active = 0
        self.streams_total = 0
        self.streams_read_batched = 0
        #: frames per wake-up of a batched stream now (0: read batching is off)
        self.read_batch_depth = 0
        #: streams continuing an earlier connection of the same stream (streamserver.resume)
        self.streams_resumed = 0
        #: live streams ended because a newer socket of the same stream took over
        self.streams_replaced = 0
        self.read_batch_stalls = 0
        self.connections_rejected: defaultdict[str, int] = defaultdict(int)
        self.accept_errors = 0
        self.close_codes: defaultdict[int | str, int] = defaultdict(int)
        self.stop_reasons: defaultdict[str, int] = defaultdict(int)
        #: started streams by dialect (plivo, twilio, ...)
        self.streams_by_provider: defaultdict[str, int] = defaultdict(int)
        #: the stream doctor's findings by kind (streamserver.doctor)
        self.doctor: defaultdict[str, int] = defaultdict(int)
        #: ids of the live streams (stream ids, route+call ids) -> how many hold them
        self.live_ids: defaultdict[str, int] = defaultdict(int)
        # Frames. The receive counters are kept per stream (one attribute update per frame
        # instead of two): ``live`` holds the open streams, ``_closed`` the totals of the
        # ended ones, and the properties below add them up when read.
        self.live: set[StreamCounters] = set()
        self._closed = dict.fromkeys(_STREAM_COUNTERS, 0)
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_invalid: defaultdict[str, int] = defaultdict(int)
        self.events_unknown = 0
        self.dtmf_received = 0
        self.pings_unanswered = 0
        self.send_buffer_overflows = 0
        # Ordering
        self.duplicates = 0
        self.reordered = 0
        self.gaps = 0
        self.gap_samples = 0
        self.gaps_capped = 0
        self.resyncs = 0
        # Handlers
        self.handler_dropped_samples: defaultdict[str, int] = defaultdict(int)
        #: (handler, event kind) -> events dropped because the handler's queue was full
        self.handler_dropped_events: defaultdict[tuple[str, str], int] = defaultdict(int)
        #: log lines left out by a LogBudget, by kind
        self.log_suppressed: dict[str, int] = {}
        self.handler_errors: defaultdict[str, int] = defaultdict(int)
        #: streams closed (1011) because a handler their route requires failed, by handler
        self.required_handler_closes: defaultdict[str, int] = defaultdict(int)
        #: handler-defined counters: (handler, event) -> count (StreamContext.count)
        self.handler_events: defaultdict[tuple[str, str], int] = defaultdict(int)
        # Timing
        self.decode_seconds = 0.0
        self.loop_lag_s = 0.0
        self.loop_utilisation = 0.0
        self.writes_paired = False
        self.loop_lag_max_s = 0.0
        self.loop_lag_recent_max_s = 0.0
        self.gc_collections: defaultdict[int, int] = defaultdict(int)
        self.gc_pause_s = 0.0
        self.gc_pause_max_s = 0.0
        self.loop_stalls: defaultdict[str, int] = defaultdict(int)
        # Signature checks
        self.signature_checks: defaultdict[str, int] = defaultdict(int)
        # Control callbacks (control app)
        self.callbacks: defaultdict[str, int] = defaultdict(int)
        # Control-app requests refused before the app saw them whole (reason)
        self.control_rejected: defaultdict[str, int] = defaultdict(int)
        #: More families, rendered after these at every scrape (the bus's and the
        #: uploader's counters: :mod:`streamserver.wiring_metrics`)
        self.sources: list[Callable[[], str]] = []

    def retire(self, stream: StreamCounters) -> None:
        """Fold an ended stream's counters into the totals (idempotent)."""
        if stream in self.live:
            self.live.discard(stream)
            for name in _STREAM_COUNTERS:
                self._closed[name] += getattr(stream, name)

    def _total(self, name: str) -> int:
        live: int = sum(getattr(s, name) for s in self.live)
        return self._closed[name] + live

    @property
    def frames_received(self) -> int:
        """Text frames received."""
        return self._total("frames")

    @property
    def bytes_received(self) -> int:
        """Bytes of text frames received."""
        return self._total("bytes_received")

    @property
    def media_frames(self) -> int:
        """Media frames accepted (valid, on an announced track)."""
        return self._total("media_frames")

    @property
    def audio_bytes(self) -> int:
        """Audio payload bytes of those media frames."""
        return self._total("audio_bytes")

    def render(self, *, draining: bool = False) -> str:
        """Prometheus text exposition of every metric."""
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, value: float | None = None) -> None:
            out.append(f"# HELP streamserver_{name} {help_}")
            out.append(f"# TYPE streamserver_{name} {kind}")
            if value is not None:
                out.append(f"streamserver_{name} {_num(value)}")

        def labelled(
            name: str, kind: str, help_: str, label: str, values: Mapping[Any, int]
        ) -> None:
            metric(name, kind, help_)
            for key, value in sorted(values.items(), key=lambda kv: str(kv[0])):
                out.append(f'streamserver_{name}{{{label}="{_esc(str(key))}"}} {_num(value)}')

        metric("up", "gauge", "1 while serving, 0 while draining.", 0 if draining else 1)
        metric("uptime_seconds", "gauge", "Seconds since start.", time.time() - self.started_at)
        metric("streams_active", "gauge", "Streams open now.", self.streams_active)
        metric("streams_total", "counter", "Streams accepted.", self.streams_total)
        metric(
            "streams_read_batched",
            "gauge",
            "Streams read several frames at a time now ([session] read_batch_frames).",
            self.streams_read_batched,
        )
        metric(
            "read_batch_depth",
            "gauge",
            "Frames per wake-up of a batched stream now: read_batch_frames, or "
            "read_batch_frames_busy while the loop is short of CPU (0: off).",
            self.read_batch_depth,
        )
        metric(
            "read_batch_stalls_total",
            "counter",
            "Batched streams switched back to a read per frame because nothing arrived for "
            "a check period (a held last message, a pause, jitter); batched again when "
            "audio flows.",
            self.read_batch_stalls,
        )
        metric(
            "streams_resumed_total",
            "counter",
            "Streams that continued an earlier connection of the same stream (a reconnect "
            "with the same ids): one timeline, one recording.",
            self.streams_resumed,
        )
        metric(
            "streams_replaced_total",
            "counter",
            "Live streams ended because a newer socket of the same stream took over.",
            self.streams_replaced,
        )
        labelled(
            "connections_rejected_total",
            "counter",
            "Connections refused before upgrade.",
            "reason",
            dict(self.connections_rejected),
        )
        metric(
            "accept_errors_total",
            "counter",
            "Connections the listener failed to accept (out of file descriptors, memory).",
            self.accept_errors,
        )
        labelled(
            "close_codes_total",
            "counter",
            "WebSocket close codes of ended streams.",
            "code",
            dict(self.close_codes),
        )
        labelled(
            "stop_reasons_total",
            "counter",
            "Why streams ended.",
            "reason",
            dict(self.stop_reasons),
        )
        metric("frames_received_total", "counter", "Text frames received.", self.frames_received)
        metric("media_frames_total", "counter", "Media frames received.", self.media_frames)
        metric("bytes_received_total", "counter", "Frame bytes received.", self.bytes_received)
        metric("audio_bytes_total", "counter", "Decoded audio payload bytes.", self.audio_bytes)
        metric("frames_sent_total", "counter", "Frames sent to the provider.", self.frames_sent)
        metric("bytes_sent_total", "counter", "Frame bytes sent.", self.bytes_sent)
        labelled(
            "frames_invalid_total",
            "counter",
            "Frames skipped as invalid.",
            "kind",
            dict(self.frames_invalid),
        )
        metric(
            "pings_unanswered_total",
            "counter",
            "Pings over [server] max_pings_per_s, read but not answered.",
            self.pings_unanswered,
        )
        metric(
            "send_buffer_overflows_total",
            "counter",
            "Connections whose output buffer passed [server] max_send_buffer_bytes (reading "
            "paused; closed 1008 unless drained in time).",
            self.send_buffer_overflows,
        )
        labelled(
            "streams_by_provider_total",
            "counter",
            "Streams started, by provider dialect.",
            "provider",
            dict(self.streams_by_provider),
        )
        labelled(
            "doctor_total",
            "counter",
            "Stream doctor findings (one-way play, duplicate stream, format, silence).",
            "kind",
            dict(self.doctor),
        )
        metric("events_unknown_total", "counter", "Unknown events ignored.", self.events_unknown)
        metric("dtmf_total", "counter", "DTMF events received.", self.dtmf_received)
        metric("duplicates_total", "counter", "Duplicate media frames dropped.", self.duplicates)
        metric("reordered_total", "counter", "Media frames put back in order.", self.reordered)
        metric("gaps_total", "counter", "Gaps detected in media.", self.gaps)
        metric("gap_samples_total", "counter", "Samples missing in gaps.", self.gap_samples)
        metric(
            "gaps_capped_total",
            "counter",
            "Gaps longer than [session] max_gap_s, cut to it (the track's timeline resynced).",
            self.gaps_capped,
        )
        metric(
            "timeline_resyncs_total",
            "counter",
            "Tracks whose chunk or timestamp jumped (confirmed by two frames) and were resynced.",
            self.resyncs,
        )
        labelled(
            "handler_dropped_samples_total",
            "counter",
            "Audio samples dropped because a handler fell behind.",
            "handler",
            dict(self.handler_dropped_samples),
        )
        metric(
            "handler_dropped_events_total",
            "counter",
            "Events dropped because a handler's queue held [session] handler_max_events.",
        )
        for (hname, kind), value in sorted(self.handler_dropped_events.items()):
            out.append(
                f'streamserver_handler_dropped_events_total{{handler="{_esc(hname)}",'
                f'kind="{_esc(kind)}"}} {value}'
            )
        labelled(
            "log_lines_suppressed_total",
            "counter",
            "Log lines left out of a flood (one summary line instead), by kind.",
            "kind",
            dict(self.log_suppressed),
        )
        labelled(
            "handler_errors_total",
            "counter",
            "Handler exceptions (handler disabled).",
            "handler",
            dict(self.handler_errors),
        )
        labelled(
            "required_handler_closes_total",
            "counter",
            "Streams closed with 1011 because a handler their route requires failed.",
            "handler",
            dict(self.required_handler_closes),
        )
        metric("handler_events_total", "counter", "Counters kept by handlers (ctx.count).")
        for (hname, event), value in sorted(self.handler_events.items()):
            out.append(
                f'streamserver_handler_events_total{{handler="{_esc(hname)}",'
                f'event="{_esc(event)}"}} {value}'
            )
        metric(
            "decode_seconds_total", "counter", "Time spent decoding frames.", self.decode_seconds
        )
        metric("event_loop_lag_seconds", "gauge", "Latest event-loop lag.", self.loop_lag_s)
        metric(
            "event_loop_lag_recent_max_seconds",
            "gauge",
            "Worst event-loop lag of the last 1.5 s: a scrape each second sees every stall.",
            self.loop_lag_recent_max_s,
        )
        metric(
            "event_loop_lag_max_seconds",
            "gauge",
            "Max event-loop lag since start.",
            self.loop_lag_max_s,
        )
        metric(
            "event_loop_utilisation",
            "gauge",
            "Share of one CPU the event loop's thread used over the last tick.",
            self.loop_utilisation,
        )
        metric(
            "writes_paired",
            "gauge",
            "1 while busy: outgoing audio waits to pair frames per write ([session] send_batch_*).",
            1 if self.writes_paired else 0,
        )
        labelled(
            "gc_collections_total",
            "counter",
            "Garbage collections by generation.",
            "generation",
            dict(self.gc_collections),
        )
        labelled(
            "event_loop_stalls_total",
            "counter",
            "Event loop late by [server] stall_warn_s: blocked by one call, or busy.",
            "kind",
            {"blocked": 0, "busy": 0, **self.loop_stalls},
        )
        metric("gc_pause_seconds_total", "counter", "Time in GC pauses.", self.gc_pause_s)
        metric("gc_pause_max_seconds", "gauge", "Longest GC pause.", self.gc_pause_max_s)
        labelled(
            "signature_checks_total",
            "counter",
            "Upgrade signature checks.",
            "result",
            dict(self.signature_checks),
        )
        labelled(
            "callbacks_total",
            "counter",
            "Provider callbacks received.",
            "kind",
            dict(self.callbacks),
        )
        labelled(
            "control_rejected_total",
            "counter",
            "Control-app requests refused: header_timeout, body_timeout, max_connections, "
            "body_too_large, unsigned, streams_not_local.",
            "reason",
            dict(self.control_rejected),
        )
        out.extend(source().rstrip("\n") for source in self.sources)
        return "\n".join(out) + "\n"


def _num(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
