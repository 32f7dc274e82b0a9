"""Audio streams on simulated calls: each one a :class:`~.streamclient.PlivoStreamClient`
per socket, carrying the callee's timeline from the moment the stream starts.

A stream starts from ``<Stream>`` or the REST API. Like Plivo, the emulator retries a
socket that fails to connect or drops during streaming ``stream_retries`` times (default
2), waiting ``stream_retry_delay_s`` (default 0.5 s) before the first attempt and twice
as long before each further one; a socket that connects again under the same stream id
resets that budget. A reconnected socket sends ``start`` again (same ``streamId``) and
goes on from the call's current moment, ``chunk`` and ``timestamp`` counting on from the
stream's start, so the audio spoken while no socket was up is a gap of exact length.
A server's normal close (1000) ends the stream; any other close, a lost connection or a
refused upgrade is a drop.

Status callbacks (signed): ``StartStream`` each time a socket starts streaming,
``DegradedStream`` when the audio held for a server that does not keep up reaches 30, 60
and 90 % of ``stream_buffer_s`` (40 s), ``StopStream`` at a normal end (call over, stopped,
``streamTimeout``), ``DroppedStream`` with ``Error`` when the retries are used up or the
buffer is full (such a stream is not retried). A never-hanging-up callee's stream is fed at
most :data:`MAX_STREAM_AUDIO_S` of audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audio import PCM
from ..protocol.websocket import OK_CLOSE_CODES, CloseCode
from .callbacks import Webhooks
from .callstate import STOP_TIMEOUT_S, CallRuntime
from .context import SimContext
from .media import FRAME, RATE
from .store import Call, Stream
from .stream_backlog import SendBacklog
from .streamclient import PlivoStreamClient, StreamClientOptions, StreamReport
from .values import cdr_time, new_uuid
from .xml import StreamVerb, parse_extra_headers

__all__ = ["MAX_STREAM_AUDIO_S", "StreamRuntime", "Streams"]

log = logging.getLogger("streamserver.emulator")

#: A never-hanging-up callee's stream is fed at most this much audio (memory bound).
MAX_STREAM_AUDIO_S = 600.0
_FRAME_S = FRAME / RATE
#: Each stream socket's kernel send buffer: small, so that what a server leaves unread
#: piles up in the sender's backlog (Plivo's buffer, measured) and not in the kernel.
SEND_BUFFER_BYTES = 32 * 1024


@dataclass
class StreamRuntime:
    """One stream's live state: its sockets one after the other, and how it ends."""

    task: asyncio.Task[None] | None = None
    client: PlivoStreamClient | None = None
    #: The running socket's ``client.run()`` (cancelled when its buffer overflows).
    socket: asyncio.Future[StreamReport] | None = None
    #: Every socket's report, oldest first, and the stream frame each one started at.
    reports: list[StreamReport] = field(default_factory=list)
    first_frames: list[int] = field(default_factory=list)
    #: Callee timeline samples where the stream starts and where its audio ends.
    start_pos: int = 0
    end_pos: int = 0
    stopping: bool = False
    #: Set to cut a reconnect back-off short (a stop).
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Streams:
    """Starts and stops the streams of every call; keeps their reports."""

    def __init__(self, ctx: SimContext, hooks: Webhooks) -> None:
        self._ctx = ctx
        self._hooks = hooks

    def _runtime(self, stream_id: str) -> StreamRuntime | None:
        stream = self._ctx.store.streams.get(stream_id)
        runtime: StreamRuntime | None = None if stream is None else stream.runtime
        return runtime

    def report(self, stream_id: str) -> StreamReport | None:
        """The last socket's report (frames sent, what the caller heard...), once ended."""
        srt = self._runtime(stream_id)
        return srt.reports[-1] if srt is not None and srt.reports else None

    def reports(self, stream_id: str) -> list[StreamReport]:
        """Every socket's report, oldest first (one per connect attempt)."""
        srt = self._runtime(stream_id)
        return list(srt.reports) if srt is not None else []

    def heard(self, stream_id: str) -> tuple[PCM, int] | None:
        """What the caller heard over the whole stream (every socket at its place on the
        stream's timeline) and its sample rate; None before the stream has reported."""
        srt = self._runtime(stream_id)
        if srt is None or not srt.reports:
            return None
        rate = srt.reports[-1].sample_rate
        fs = rate * 20 // 1000
        # A socket still running has a first frame but no report yet: strict=False.
        firsts = zip(srt.first_frames, srt.reports, strict=False)
        parts = [(first * fs, r.heard) for first, r in firsts]
        out = np.zeros(max(at + pcm.shape[0] for at, pcm in parts), dtype=np.int16)
        for at, pcm in parts:
            out[at : at + pcm.shape[0]] = pcm
        return out, rate

    def of_call(self, call_uuid: str) -> list[Stream]:
        """Every stream of a call, oldest first (reports via :meth:`report`)."""
        return [s for s in self._ctx.store.streams.values() if s.call_uuid == call_uuid]

    def start(self, call: Call, spec: StreamVerb) -> Stream:
        """Start a stream on an answered call (from ``<Stream>`` or the REST API)."""
        rt: CallRuntime = call.runtime
        rt.begin_voice()
        stream = Stream(
            auth_id=self._ctx.settings.auth_id,
            stream_id=new_uuid(),
            call_uuid=call.call_uuid,
            service_url=spec.url,
            audio_track=spec.audio_track,
            bidirectional=spec.bidirectional,
            content_type=spec.content_type,
            stream_timeout_s=spec.stream_timeout_s,
            status_callback_url=spec.status_callback_url,
            status_callback_method=spec.status_callback_method,
            extra_headers=spec.extra_headers,
            keep_call_alive=spec.keep_call_alive,
        )
        srt = StreamRuntime()
        stream.runtime = srt
        self._ctx.store.streams[stream.stream_id] = stream
        rt.streams[stream.stream_id] = stream
        srt.task = self._ctx.spawn(self._run(rt, stream), f"stream {stream.stream_id}")
        return stream

    async def stop(self, stream: Stream) -> None:
        """Stop a stream (``stop`` sent, socket closed) and wait until it has ended."""
        srt: StreamRuntime = stream.runtime
        srt.stopping = True
        srt.wake.set()
        if srt.client is not None:
            try:
                await asyncio.wait_for(srt.client.aclose(), STOP_TIMEOUT_S)
            except TimeoutError:  # a sender stuck on a server that reads nothing
                if srt.socket is not None:
                    srt.socket.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(srt.done.wait(), STOP_TIMEOUT_S)

    def _options(self, rt: CallRuntime, stream: Stream, started: Any) -> StreamClientOptions:
        srt: StreamRuntime = stream.runtime
        pos = rt.position() // FRAME * FRAME
        if not srt.reports:  # the stream's first socket: where its audio starts and ends
            srt.start_pos = pos
            if rt.hangup_pos is not None:
                srt.end_pos = max(pos, rt.hangup_pos)
            else:
                srt.end_pos = pos + int(min(stream.stream_timeout_s, MAX_STREAM_AUDIO_S) * RATE)
        pos = min(max(pos, srt.start_pos), srt.end_pos)
        end = srt.end_pos
        inbound = rt.caller_slice(pos, end)
        outbound = rt.outbound_slice(pos, end) if stream.audio_track != "inbound" else None
        dtmf = [
            (at - pos / RATE, digit)
            for at, digit in self._ctx.settings.caller_dtmf
            if pos <= at * RATE < end
        ]
        return StreamClientOptions(
            url=stream.service_url,
            inbound=inbound,
            source_rate=RATE,
            content_type=stream.content_type,
            tracks=stream.audio_track,
            outbound=outbound,
            bidirectional=stream.bidirectional,
            extra_headers=parse_extra_headers(stream.extra_headers),
            dtmf=dtmf,
            speed=1.0,
            send_stop=True,
            call_id=rt.call.call_uuid,
            stream_id=stream.stream_id,
            account_id=self._ctx.settings.auth_id,
            auth_token=self._ctx.settings.auth_token,
            first_frame=(pos - srt.start_pos) // FRAME,
            send_buffer_bytes=SEND_BUFFER_BYTES,
            on_progress=started,
        )

    async def _run(self, rt: CallRuntime, stream: Stream) -> None:
        srt: StreamRuntime = stream.runtime
        settings = self._ctx.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + stream.stream_timeout_s
        retries, delay = settings.stream_retries, settings.stream_retry_delay_s
        error = ""
        try:
            while not srt.stopping:
                error, retry, connected = await self._socket(rt, stream, deadline)
                if connected:
                    retries, delay = settings.stream_retries, settings.stream_retry_delay_s
                if not retry or srt.stopping:
                    break
                if retries <= 0 or loop.time() + delay >= deadline:
                    break
                retries -= 1
                log.warning("emulator: stream %s: %s; reconnecting in %.2f s (%d retries left)",
                            stream.stream_id, error, delay, retries)  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(srt.wake.wait(), delay)
                delay *= 2
        finally:
            stream.end_time = time.time()
            if srt.stopping:
                error = ""  # stopped (call over, API, timeout): a stop, not a drop
            stream.status = "failed" if error else "stopped"
            event = "DroppedStream" if error else "StopStream"
            self._status(rt, stream, event, error)
            rt.streams.pop(stream.stream_id, None)
            srt.done.set()
            log.info(
                "emulator: stream %s ended (%s) after %d socket(s): %d frames sent%s",
                stream.stream_id, event, len(srt.reports),
                sum(r.frames_sent for r in srt.reports), f", {error}" if error else "",
            )  # fmt: skip

    async def _socket(
        self, rt: CallRuntime, stream: Stream, deadline: float
    ) -> tuple[str, bool, bool]:
        """Run one socket to its end: (error, worth a retry, it connected)."""
        srt: StreamRuntime = stream.runtime
        loop = asyncio.get_running_loop()
        backlog = SendBacklog(self._ctx.settings.stream_buffer_s, _FRAME_S)
        tracks = 2 if stream.audio_track == "both" else 1
        opened = False

        def progress(frames_sent: int, frames_total: int) -> None:
            nonlocal opened
            backlog.progress(loop.time(), frames_sent // tracks, done=frames_sent >= frames_total)
            if not opened:
                opened = True
                if stream.start_time is None:
                    stream.start_time = time.time()
                stream.status = "in-progress"
                log.info("emulator: stream %s of call %s streaming to %s", stream.stream_id,
                         rt.call.call_uuid, stream.service_url)  # fmt: skip
                self._status(rt, stream, "StartStream")

        try:
            options = self._options(rt, stream, progress)
            client = PlivoStreamClient(options)
        except ValueError as exc:
            return str(exc), False, False
        srt.client = client
        srt.first_frames.append(options.first_frame)
        timer = loop.call_later(max(0.0, deadline - loop.time()), self._timeout, stream)
        socket = srt.socket = asyncio.ensure_future(client.run())
        overflow = False
        poll_s = min(0.2, backlog.buffer_s / 20)
        try:
            while not socket.done():
                await asyncio.wait([socket], timeout=poll_s)
                now = loop.time()
                for level in backlog.check(now):
                    log.warning("emulator: stream %s: %d %% of its %.0f s buffer held",
                                stream.stream_id, level, backlog.buffer_s)  # fmt: skip
                    self._status(rt, stream, "DegradedStream")
                if not socket.done() and backlog.full(now):
                    overflow = True
                    socket.cancel()
                    break
        finally:
            timer.cancel()
            if not socket.done():
                socket.cancel()  # the stream's own task was cancelled
            with contextlib.suppress(asyncio.CancelledError):
                await socket
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
        report = client.report
        srt.reports.append(report)
        if overflow:
            return f"slow connection: {backlog.buffer_s:.0f} s of audio held", False, True
        if not report.connected:
            return "; ".join(report.errors) or "connection failed", True, False
        if srt.stopping:
            return "", False, True
        if report.frames_sent >= report.frames_total and report.close_code in OK_CLOSE_CODES:
            return "", False, True  # all the call's audio went out
        if report.closed_by_server and report.close_code == CloseCode.NORMAL:
            return "", False, True  # the server ended the stream on purpose
        return "; ".join(report.errors) or "connection lost", True, True

    def _timeout(self, stream: Stream) -> None:
        srt: StreamRuntime = stream.runtime
        srt.stopping = True
        srt.wake.set()
        if srt.client is not None:
            self._ctx.spawn(srt.client.aclose(), "stream timeout")

    def _status(self, rt: CallRuntime, stream: Stream, event: str, error: str = "") -> None:
        params = {
            "CallUUID": rt.call.call_uuid,
            "Event": event,
            "From": rt.call.from_number.lstrip("+"),
            "ServiceURL": stream.service_url,
            "StreamID": stream.stream_id,
            "Timestamp": cdr_time(time.time()) or "",
            "To": rt.call.to_number.lstrip("+"),
        }
        if error:
            params["Error"] = error
        self._hooks.callback(
            stream.status_callback_url, stream.status_callback_method, params, "stream status"
        )
