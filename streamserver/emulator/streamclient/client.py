"""The provider side of an audio stream: a paced WebSocket client that behaves like Plivo
(or Twilio, Telnyx, Exotel, Vonage: ``StreamClientOptions.dialect``).

:class:`PlivoStreamClient` plays the part of Plivo's media server for one call. It opens the
WebSocket (signed like Plivo when an auth token is given), sends ``start``, then the caller's
audio as ``media`` frames on an absolute 20 ms clock, DTMF digits at their time, and at the
end an optional ``stop`` and a normal close (1000). On a bidirectional stream it also plays
back what the server sends, the way the caller would hear it: ``playAudio`` is queued and
played out in real time, ``checkpoint`` is answered with ``playedStream`` once everything
queued before it has played, ``clearAudio`` drops the unplayed queue and is answered with
``clearedAudio``. Other dialects send and answer the same things in their own words
(:mod:`.wire`): Twilio echoes a ``mark`` once its audio has played and, after a ``clear``,
echoes the marks still pending too; Vonage streams binary audio and answers ``notify`` with
``websocket:notify`` and ``clear`` with ``websocket:cleared``.

Everything that happens ends up in a :class:`StreamReport`. A refused upgrade, a server that
closes early or sends garbage is recorded there, never raised; only invalid options raise
``ValueError``. The call emulator, ``streamserver replay`` and the end-to-end tests use this
one client; the load tester writes the same frames (:mod:`streamserver.protocol.plivo`) from
its own lean engine.

Clocks
------
``t0`` is the ``time.monotonic()`` reading just before ``start`` is sent. Media frame ``k``
is due at ``t0 + k * frame_ms / speed``, never sent before it; a late frame is sent at once
and its lateness recorded, so delays never accumulate into drift. With ``speed=None``
frames go out as fast as the socket accepts them and no lateness is recorded.

Playback always runs in real time on ticks ``t0 + j * frame_ms``, whatever ``speed`` is: a
phone's loudspeaker does not speed up because the caller's audio was sent faster. Audio that
arrives while nothing is playing starts at the next tick (as a media server's 20 ms mixer
would), so ``heard`` sample ``j * frame_samples`` is what sounded at ``t0 + j * frame_ms``.
All times in the report are seconds since ``t0`` on that real-time clock; at ``speed=1.0``
they line up with the caller's audio.

Ending
------
After the last frame the client keeps listening for ``tail_s`` (echoes, ``playedStream``);
if audio or checkpoints are still queued for playback then, it waits for them to finish, at
most ``drain_timeout_s`` more. Then it sends ``stop`` (if ``send_stop``) and closes with 1000.
``stop`` comes last because Plivo sends it when the call is over, after which it would play
nothing more. :meth:`PlivoStreamClient.aclose` skips the waiting: the caller hung up.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ... import __version__
from ...audio import PCM, AudioFormat, Resampler, silence_bytes
from ...protocol import (
    Checkpoint,
    ClearAudio,
    Command,
    PlayAudio,
    ProtocolError,
    SendDtmf,
    Unknown,
)
from ...protocol.websocket import OK_CLOSE_CODES, CloseCode
from ...signature import sign_headers
from .options import StreamClientOptions, limit_send_buffer, prepare
from .playback import EchoTracker, Playback, Sleeper
from .playback import now as _now
from .report import StreamReport, wire_record
from .wire import ClientWire

__all__ = ["PlivoStreamClient"]

_USER_AGENT = f"streamserver-plivo-emulator/{__version__}"

# Limits
_MAX_MESSAGE_BYTES = 16 * 2**20  # servers may send a whole prompt in one playAudio
_ECHO_WINDOW_S = 10.0  # sent payloads remembered for echo matching
_YIELD_EVERY = 16  # speed=None: yield to the loop this often, so replies are handled
_COMMANDS = (PlayAudio, Checkpoint, ClearAudio, SendDtmf)


def _http_url(ws_url: str) -> str:
    """The URL Plivo signs for an upgrade: ``http(s)://host[:port]/path[?query]``."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


class PlivoStreamClient:
    """One Plivo Audio Stream, from the Plivo side. Use :meth:`run` once.

    Raises ``ValueError`` on invalid options; everything else goes into the report.
    """

    def __init__(self, options: StreamClientOptions) -> None:
        self._o = options
        prepared = prepare(options)
        self._fmt = fmt = prepared.fmt
        self._inbound, self._outbound = prepared.inbound, prepared.outbound
        self._rate = fmt.sample_rate
        self._frame_ms = options.frame_ms
        self._frame_s = options.frame_ms / 1000.0
        self._fs = fmt.sample_rate * options.frame_ms // 1000
        self._tracks = prepared.tracks
        self._silence = silence_bytes(fmt.encoding, self._fs)
        self._wire = ClientWire(
            prepared.dialect,
            call_id=options.call_id,
            stream_id=options.stream_id,
            account_id=options.account_id,
            tracks=prepared.tracks,
            encoding=fmt.encoding,
            sample_rate=fmt.sample_rate,
            extra_headers=options.extra_headers,
        )
        self._provider = prepared.dialect.capitalize()

        # DTMF digit at t goes right before the first frame whose timestamp is >= t.
        self._dtmf = sorted(
            (math.ceil(round(at * 1000) / self._frame_ms), round(at * 1000), digit)
            for at, digit in options.dtmf
        )
        n_audio = max(
            self._inbound.shape[0] if "inbound" in self._tracks or self._outbound is None else 0,
            0 if self._outbound is None else self._outbound.shape[0],
        )
        n_ticks = -(-n_audio // self._fs)
        if self._dtmf:
            # The caller stays on the line (silence) until its last digit has been pressed.
            n_ticks = max(n_ticks, self._dtmf[-1][0] + 1)
        self._n_ticks = n_ticks

        self._report = StreamReport(
            url=options.url,
            stream_id=options.stream_id,
            call_id=options.call_id,
            content_type=fmt.content_type,
            sample_rate=fmt.sample_rate,
            tracks=self._tracks,
            bidirectional=options.bidirectional,
            dialect=prepared.dialect,
            frames_total=n_ticks * len(self._tracks),
            audio_s=n_ticks * self._frame_s,
        )
        self._seq = 0
        self._state = "new"
        self._abort = asyncio.Event()
        self._finished = asyncio.Event()
        self._sleeper = Sleeper()
        self._ws: ClientConnection | None = None
        self._t0 = 0.0
        self._playback: Playback | None = None
        self._echo = EchoTracker(_ECHO_WINDOW_S) if options.bidirectional else None
        self._resamplers: dict[int, Resampler] = {}
        self._close_called = False

    @property
    def report(self) -> StreamReport:
        """The report, filled in as the stream runs."""
        return self._report

    async def aclose(self) -> None:
        """Stop early, like a caller hanging up: ``stop`` (if configured), close, return."""
        self._abort.set()
        self._sleeper.wake()
        if self._state == "running":
            await self._finished.wait()

    async def run(self) -> StreamReport:
        """Connect, send ``start``, stream on the absolute clock, end, and return the report."""
        if self._state != "new":
            raise RuntimeError("PlivoStreamClient.run() can only be called once")
        self._state = "running"
        try:
            if self._abort.is_set():
                self._report.add_error("closed before the stream started")
                return self._report
            ws = await self._connect()
            if ws is not None:
                self._report.connected = True
                await self._stream(ws)
            return self._report
        finally:
            self._state = "done"
            self._finished.set()

    # --- connection ---------------------------------------------------------------------

    async def _connect(self) -> ClientConnection | None:
        o, report = self._o, self._report
        headers: dict[str, str] = {}
        if o.auth_token:
            headers = sign_headers(
                _http_url(o.url),
                o.auth_token,
                method="GET",
                main_account_token=o.main_account_token,
            )
        try:
            ws = await connect(
                o.url,
                additional_headers=headers,
                compression=None,  # Plivo sends base64 audio uncompressed
                open_timeout=o.connect_timeout_s,
                close_timeout=o.close_timeout_s,
                ping_interval=None,  # measuring the server, not keeping NAT state alive
                max_size=_MAX_MESSAGE_BYTES,
                user_agent_header=_USER_AGENT,
                proxy=None,  # Plivo connects directly; never via the local HTTP(S)_PROXY
            )
            return limit_send_buffer(ws, o.send_buffer_bytes)
        except InvalidStatus as exc:
            response = exc.response
            report.http_status = response.status_code
            status = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            body = response.body.decode("utf-8", "replace").strip()[:200] if response.body else ""
            report.close_reason = status
            detail = f": {body}" if body else ""
            report.add_error(f"the server refused the WebSocket upgrade: {status}{detail}")
        except TimeoutError:
            report.add_error(f"connecting to {o.url} timed out after {o.connect_timeout_s} s")
        except OSError as exc:
            report.add_error(f"cannot connect to {o.url}: {exc}")
        except InvalidHandshake as exc:
            report.add_error(f"WebSocket handshake with {o.url} failed: {exc}")
        return None

    async def _stream(self, ws: ClientConnection) -> None:
        o, report = self._o, self._report
        self._ws = ws
        self._t0 = _now()
        if o.bidirectional:
            self._playback = Playback(
                t0=self._t0,
                rate=self._rate,
                frame_samples=self._fs,
                frame_s=self._frame_s,
                record_heard=o.record_heard,
                report=report,
                send_played=self._send_played,
            )
        receiver = asyncio.create_task(self._receive(ws))
        player = asyncio.create_task(self._playback.run()) if self._playback else None
        cancelled = False
        try:
            try:
                for frame in self._wire.opening(self._next_seq()):
                    await self._send(frame)
                await self._send_media()
                await self._tail(receiver)
                if o.send_stop and not receiver.done():
                    stop = self._wire.stop(self._next_seq())
                    if stop is not None:
                        await self._send(stop)
                        report.stop_sent = True
            except ConnectionClosed:
                pass  # the server closed: recorded below from the connection's state
            self._close_called = True
            await ws.close(CloseCode.NORMAL)
            await receiver
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            for task in (player, receiver):
                if task is not None and not task.done():
                    task.cancel()
            if cancelled:
                ws.transport.abort()  # no waiting for a close handshake on cancellation
            else:
                await asyncio.gather(
                    *(t for t in (player, receiver) if t is not None), return_exceptions=True
                )
            self._finish(ws)

    def _finish(self, ws: ClientConnection) -> None:
        report = self._report
        report.duration_s = _now() - self._t0
        report.close_code = ws.close_code
        report.close_reason = ws.close_reason or ""
        protocol = ws.protocol
        report.closed_by_server = bool(protocol.close_rcvd_then_sent) or (
            protocol.close_rcvd is None and not self._close_called
        )
        code = report.close_code
        what = f"code {code}" + (f" ({report.close_reason})" if report.close_reason else "")
        if report.closed_by_server and report.frames_sent < report.frames_total:
            report.add_error(
                f"the server closed the stream early, after {report.frames_sent} of "
                f"{report.frames_total} frames: {what}"
            )
        elif code not in OK_CLOSE_CODES:
            report.add_error(f"the stream ended abnormally: {what}")
        total = self._n_ticks * self._fs
        if self._playback is not None:
            report.heard = self._playback.heard(total)
        elif self._o.record_heard:
            report.heard = np.zeros(total, dtype=np.int16)

    async def _tail(self, receiver: asyncio.Task[None]) -> None:
        """Keep listening after the last frame; let queued playback finish (bounded)."""
        if self._abort.is_set() or receiver.done():
            return
        o = self._o
        aborted = asyncio.create_task(self._abort.wait())
        waiters: list[asyncio.Task[Any]] = [aborted]
        try:
            first = asyncio.FIRST_COMPLETED
            if o.tail_s > 0:
                await asyncio.wait([receiver, aborted], timeout=o.tail_s, return_when=first)
            playback = self._playback
            if playback is not None and not playback.idle and not aborted.done():
                idle = asyncio.create_task(playback.wait_idle())
                waiters.append(idle)
                await asyncio.wait(
                    [receiver, aborted, idle], timeout=o.drain_timeout_s, return_when=first
                )
        finally:
            for task in waiters:
                task.cancel()

    # --- sending ------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def _send(self, data: bytes, *, text: bool = True) -> None:
        # Frames are built and handed to the socket without an await in between, so
        # sequenceNumber order is wire order even with the player and receiver sending too.
        assert self._ws is not None
        self._report.bytes_sent += len(data)
        self._report.messages_sent += 1
        await self._ws.send(data, text=text)

    async def _send_played(self, name: str) -> None:
        await self._send(self._wire.played(self._next_seq(), name))

    def _payload(self, pcm: PCM | None, tick: int) -> bytes:
        if pcm is None:
            return self._silence
        fs = self._fs
        start = tick * fs
        frame = pcm[start : start + fs]
        n = frame.shape[0]
        if n < fs:
            if n == 0:
                return self._silence
            padded = np.zeros(fs, dtype=np.int16)
            padded[:n] = frame
            frame = padded
        return self._fmt.encode(frame)

    async def _send_media(self) -> None:
        o, report = self._o, self._report
        wire = self._wire
        encode_media, text = wire.media, not wire.binary_media
        # Without outbound audio the outbound track carries silence, as the options say.
        sources: dict[str, PCM | None] = {"inbound": self._inbound, "outbound": self._outbound}
        chunks, base_ms = dict.fromkeys(self._tracks, o.first_frame), o.first_frame * self._frame_ms
        step = self._frame_s / o.speed if o.speed is not None else 0.0
        lateness, dtmf, echo = report.lateness_ms, self._dtmf, self._echo
        next_dtmf = run = 0  # run: frames sent since the last wait
        for tick in range(self._n_ticks):
            if self._abort.is_set():
                return
            if o.speed is not None:
                due = self._t0 + tick * step
                if _now() < due:
                    run = 0
                    await self._sleeper.until(due)
                    if self._abort.is_set():
                        return
                lateness.append(max(0.0, (_now() - due) * 1000.0))
            run += 1
            if run % _YIELD_EVERY == 0:  # at full speed, or late (an overloaded process):
                await asyncio.sleep(0)  # let replies, playback, a stop or SIGTERM run
            while next_dtmf < len(dtmf) and dtmf[next_dtmf][0] <= tick:
                _, at_ms, digit = dtmf[next_dtmf]
                next_dtmf += 1
                await self._send(wire.dtmf(self._next_seq(), digit, at_ms + base_ms))
                report.dtmf_sent += 1
            timestamp = base_ms + tick * self._frame_ms
            for track in self._tracks:
                payload = self._payload(sources[track], tick)
                chunks[track] += 1
                if echo is not None and track == "inbound":
                    echo.sent(payload, _now())
                frame = encode_media(self._next_seq(), track, timestamp, chunks[track], payload)
                await self._send(frame, text=text)
                report.frames_sent += 1
            if o.on_progress is not None:
                o.on_progress(report.frames_sent, report.frames_total)

    # --- receiving ----------------------------------------------------------------------

    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                now = _now()
                try:
                    await self._on_message(message, now)
                except ConnectionClosed:
                    raise
                except Exception as exc:  # task boundary: one bad frame must not end the call
                    self._report.add_error(f"failed to handle a server frame: {exc!r}")
        except ConnectionClosed:
            pass
        finally:
            # A sender waiting for its next frame finds out now, not at its next send.
            self._sleeper.wake()

    async def _on_message(self, message: str | bytes, now: float) -> None:
        report = self._report
        provider = self._provider
        cmd: Command
        try:
            if isinstance(message, str):
                cmd = self._wire.decode(message)
            else:
                cmd = self._wire.decode_binary(message)
        except ProtocolError as exc:
            if exc.kind == "binary":
                report.add_error(
                    f"the server sent a binary frame ({len(message)} bytes); "
                    f"{provider} expects JSON text frames"
                )
            elif exc.kind == "json":
                report.add_error(f"the server sent {exc.reason}: {message[:80]!r}")
            else:
                report.add_error(f"the server sent a frame {provider} rejects: {exc.reason}")
            return
        report.received_events.append(wire_record(cmd))
        if isinstance(cmd, Unknown):
            return  # kept in received_events and otherwise ignored, as Plivo does
        if not self._o.bidirectional:
            event = report.received_events[-1]["event"]
            report.add_error(
                f"{event} on a stream that is not bidirectional; {provider} ignores it"
            )
            return
        if type(cmd) is PlayAudio:
            self._check_stream_id("playAudio", cmd.stream_id)
            self._on_play_audio(cmd, now)
            return
        playback = self._playback
        assert playback is not None
        match cmd:
            case Checkpoint(name=name, stream_id=sid):
                self._check_stream_id("checkpoint", sid)
                playback.enqueue(name)
            case ClearAudio(stream_id=sid):
                self._check_stream_id("clearAudio", sid)
                pending = playback.clear()
                report.cleared.append(now - self._t0)
                if self._wire.echoes_marks_on_clear:
                    # Twilio sends the pending marks back although their audio never played.
                    for name in pending:
                        report.marks_after_clear.append(name)
                        await self._send(self._wire.played(self._next_seq(), name))
                answer = self._wire.cleared(self._next_seq())
                if answer is not None:
                    await self._send(answer)
            case SendDtmf():
                pass  # tones played into the call: nothing to answer

    def _check_stream_id(self, event: str, sid: str | None) -> None:
        if sid is not None and sid != self._o.stream_id:
            self._report.add_error(
                f"{event} for streamId {sid!r}, but this stream is {self._o.stream_id!r}"
            )

    def _on_play_audio(self, cmd: PlayAudio, now: float) -> None:
        report = self._report
        fmt = AudioFormat(cmd.encoding, cmd.sample_rate)  # checked by decode_command
        raw = cmd.payload
        try:
            pcm = fmt.decode(raw)
        except ValueError as exc:
            report.add_error(f"playAudio payload rejected: {exc}")
            return
        if self._echo is not None:
            rtt = self._echo.match(raw, now)
            if rtt is not None:
                report.echo_rtt_ms.append(rtt)
        if fmt.sample_rate != self._rate:
            resampler = self._resamplers.get(fmt.sample_rate)
            if resampler is None:
                # "QQ": sample-by-sample output, so resampling adds no playback latency.
                resampler = Resampler(fmt.sample_rate, self._rate, quality="QQ")
                self._resamplers[fmt.sample_rate] = resampler
            pcm = resampler.process(pcm)
        assert self._playback is not None
        self._playback.enqueue(pcm)
