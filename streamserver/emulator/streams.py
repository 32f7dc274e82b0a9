"""Audio streams on simulated calls: each one a :class:`~.streamclient.PlivoStreamClient`
carrying the callee's timeline from the moment it starts.

A stream starts from ``<Stream>`` or the REST API; Plivo retries a failed connect twice;
``StartStream``, ``StopStream`` and ``DroppedStream`` status callbacks are signed. A
never-hanging-up callee's stream is fed at most :data:`MAX_STREAM_AUDIO_S` of audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .callbacks import Webhooks
from .callstate import STOP_TIMEOUT_S, CallRuntime
from .context import SimContext
from .media import FRAME, RATE
from .store import Call, Stream
from .streamclient import PlivoStreamClient, StreamClientOptions, StreamReport
from .values import cdr_time, new_uuid
from .xml import StreamVerb, parse_extra_headers

__all__ = ["MAX_STREAM_AUDIO_S", "StreamRuntime", "Streams"]

log = logging.getLogger("streamserver.emulator")

#: A never-hanging-up callee's stream is fed at most this much audio (memory bound).
MAX_STREAM_AUDIO_S = 600.0
_CONNECT_ATTEMPTS = 3  # Plivo retries a failed stream connect twice
_RETRY_DELAY_S = 0.25


@dataclass
class StreamRuntime:
    task: asyncio.Task[None] | None = None
    client: PlivoStreamClient | None = None
    report: StreamReport | None = None
    stopping: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Streams:
    """Starts and stops the streams of every call; keeps their reports."""

    def __init__(self, ctx: SimContext, hooks: Webhooks) -> None:
        self._ctx = ctx
        self._hooks = hooks

    def report(self, stream_id: str) -> StreamReport | None:
        """The stream client's report (frames sent, what the caller heard...), once ended."""
        stream = self._ctx.store.streams.get(stream_id)
        if stream is None or stream.runtime is None:
            return None
        report: StreamReport | None = stream.runtime.report
        return report

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
        if srt.client is not None:
            await srt.client.aclose()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(srt.done.wait(), STOP_TIMEOUT_S)

    def _options(self, rt: CallRuntime, stream: Stream, started: Any) -> StreamClientOptions:
        pos = rt.position() // FRAME * FRAME
        if rt.hangup_pos is not None:
            end = max(pos, rt.hangup_pos)
        else:
            end = pos + int(min(stream.stream_timeout_s, MAX_STREAM_AUDIO_S) * RATE)
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
            on_progress=started,
        )

    async def _run(self, rt: CallRuntime, stream: Stream) -> None:
        srt: StreamRuntime = stream.runtime
        loop = asyncio.get_running_loop()
        error = ""

        def started(frames_sent: int, frames_total: int) -> None:
            if stream.start_time is None:
                stream.start_time = time.time()
                stream.status = "in-progress"
                log.info("emulator: stream %s of call %s connected to %s", stream.stream_id,
                         rt.call.call_uuid, stream.service_url)  # fmt: skip
                self._status(rt, stream, "StartStream")

        try:
            for attempt in range(_CONNECT_ATTEMPTS):
                if srt.stopping:
                    break
                try:
                    client = PlivoStreamClient(self._options(rt, stream, started))
                except ValueError as exc:
                    error = str(exc)
                    break
                srt.client = client
                timer = loop.call_later(stream.stream_timeout_s, self._timeout, client)
                try:
                    report = await client.run()
                finally:
                    timer.cancel()
                srt.report = report
                if report.connected:
                    if not report.ok and not srt.stopping and report.closed_by_server is False:
                        error = "; ".join(report.errors) or "connection lost"
                    break
                error = "; ".join(report.errors) or "connection failed"
                log.warning("emulator: stream %s connect attempt %d failed: %s",
                            stream.stream_id, attempt + 1, error)  # fmt: skip
                if attempt + 1 < _CONNECT_ATTEMPTS and not srt.stopping:
                    await asyncio.sleep(_RETRY_DELAY_S)
        finally:
            stream.end_time = time.time()
            connected = srt.report is not None and srt.report.connected
            if srt.stopping and not connected:
                error = ""  # stopped before it connected: a stop, not a drop
            stream.status = "stopped" if connected or not error else "failed"
            event = "DroppedStream" if error else "StopStream"
            self._status(rt, stream, event, error)
            rt.streams.pop(stream.stream_id, None)
            srt.done.set()
            final = srt.report
            log.info(
                "emulator: stream %s ended (%s): %d frames sent%s",
                stream.stream_id, event, final.frames_sent if final else 0,
                f", {error}" if error else "",
            )  # fmt: skip

    def _timeout(self, client: PlivoStreamClient) -> None:
        self._ctx.spawn(client.aclose(), "stream timeout")

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
