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

``StreamClientOptions.faults`` makes the network bad on purpose
(:mod:`streamserver.netfaults`): frames dropped, duplicated, reordered, jittered, held in
bursts or sent on a drifting clock follow the fault plan; a socket vanishes (a reset, or a
path gone quiet), a new socket resumes the stream, a second one opens beside it, the
playback side reads slowly. What was done is in the report (``faults``, ``fault_counts``,
``links``).

Everything that happens ends up in a :class:`StreamReport`. A refused upgrade, a server that
closes early or sends garbage is recorded there, never raised; only invalid options raise
``ValueError``. The call emulator, ``streamserver replay`` and the end-to-end tests use this
one client; the load tester writes the same frames (:mod:`streamserver.protocol.plivo`) from
its own lean engine.

Clocks
------
``t0`` is the ``time.monotonic()`` reading just before ``start`` is sent. Media frame ``k``
is due at ``t0 + k * frame_ms / speed`` (or at its send time in the fault plan), never sent
before it; a late frame is sent at once and its lateness recorded, so delays never
accumulate into drift. With ``speed=None`` frames go out as fast as the socket accepts
them and no lateness is recorded.

Playback always runs in real time on ticks ``t0 + j * frame_ms``, whatever ``speed`` is: a
phone's loudspeaker does not speed up because the caller's audio was sent faster.
``heard`` sample ``j * frame_samples`` is what sounded at ``t0 + j * frame_ms``; what
sounds is decided by when the audio arrived, never by when a task got to run
(:mod:`.speaker`), and an answer (``playedStream``) always goes out after every media
frame due before the moment its audio ended, so the server's inbound position when it
arrives is where the caller's playback was. All times in the report are seconds since
``t0``; at ``speed=1.0`` they line up with the caller's audio.

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

import numpy as np
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ...netfaults import carriers, plan_frames
from ...protocol.websocket import OK_CLOSE_CODES, CloseCode
from .links import Link, connect
from .options import StreamClientOptions, limit_send_buffer, prepare
from .playback import EchoTracker, Playback, Sleeper
from .playback import now as _now
from .receive import Receiver
from .report import StreamReport
from .sockets import Sockets
from .speaker import Answer, Speaker
from .wire import ClientWire

__all__ = ["PlivoStreamClient"]

_ECHO_WINDOW_S = 10.0  # sent payloads remembered for echo matching
# In speed=None mode, yield to the loop every this many ticks so received frames are handled.
_YIELD_EVERY = 16


class PlivoStreamClient:
    """One Plivo Audio Stream, from the Plivo side. Use :meth:`run` once.

    Raises ``ValueError`` on invalid options; everything else goes into the report.
    """

    def __init__(self, options: StreamClientOptions) -> None:
        self._o = options
        prepared = prepare(options)
        self._prepared = prepared
        fmt = prepared.fmt
        self._rate = fmt.sample_rate
        self._frame_ms = options.frame_ms
        self._frame_s = options.frame_ms / 1000.0
        self._fs = prepared.frame_samples
        self._tracks = prepared.tracks
        self.wire = ClientWire(
            prepared.dialect,
            call_id=options.call_id,
            stream_id=options.stream_id,
            account_id=options.account_id,
            tracks=prepared.tracks,
            encoding=fmt.encoding,
            sample_rate=fmt.sample_rate,
            extra_headers=options.extra_headers,
        )
        self._n_ticks = n_ticks = prepared.n_ticks
        self._faults = faults = options.faults.seeded() if options.faults else options.faults
        self._plan = plan_frames(faults, n_ticks, self._frame_s)

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
            faults=faults.describe() if faults else "",
        )
        if faults:
            self._report.fault_counts = {**self._plan.counts(), "lost": 0}
        self._seq = 0
        self._state = "new"
        self._abort = asyncio.Event()
        self._finished = asyncio.Event()
        self._sleeper = Sleeper()
        self._lock = asyncio.Lock()  # one writer at a time: answers and frames keep order
        self._t0 = 0.0
        self._echo = EchoTracker(_ECHO_WINDOW_S) if options.bidirectional else None
        self._receiver = Receiver(self, options.bidirectional, self._echo)
        self._sockets = sockets = Sockets(
            self._faults,
            self._report,
            open_socket=self._open_socket,
            opening=self._send_opening,
            on_message=self._receiver.on_message,
            lock=self._lock,
            wake=self._sleeper.wake,
        )
        self._links = sockets.links
        self._links_gone = sockets.gone
        self._next_send = 0.0  # when the next unsent media send is due (seconds since t0)
        self._media_moved = asyncio.Event()
        self._sent_plan = 0  # sends of the plan done
        self._playback: Playback | None = None

    @property
    def report(self) -> StreamReport:
        """The report, filled in as the stream runs."""
        return self._report

    @property
    def playback(self) -> Playback | None:
        """The caller's loudspeaker (bidirectional streams, once started)."""
        return self._playback

    @property
    def send_lock(self) -> asyncio.Lock:
        """Held while messages are written, so answers and frames keep their order."""
        return self._lock

    @property
    def t0(self) -> float:
        """The stream's start (:func:`~.playback.now` time)."""
        return self._t0

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

    async def _open_socket(self) -> ClientConnection | str:
        o = self._o
        slow = self._faults.slow_read_at_s is not None
        got = await connect(
            o.url,
            auth_token=o.auth_token,
            main_account_token=o.main_account_token,
            open_timeout_s=o.connect_timeout_s,
            close_timeout_s=o.close_timeout_s,
            max_queue=2 if slow else None,  # a slow reader backs up into the kernel soon
        )
        return got if isinstance(got, str) else limit_send_buffer(got, o.send_buffer_bytes)

    async def _connect(self) -> ClientConnection | None:
        report = self._report
        got = await self._open_socket()
        if not isinstance(got, str):
            return got
        if got.startswith("HTTP "):
            status, _, body = got.partition(": ")
            report.http_status = int(status.split()[1])
            report.close_reason = status
            report.add_error(
                f"the server refused the WebSocket upgrade: {status}{': ' + body if body else ''}"
            )
        else:
            report.add_error(got)
        return None

    # --- the stream ---------------------------------------------------------------------

    async def _stream(self, ws: ClientConnection) -> None:
        o = self._o
        self._t0 = self._sockets.t0 = _now()
        first = self._sockets.add(ws)
        if o.bidirectional:
            speaker = Speaker(
                rate=self._rate,
                frame_samples=self._fs,
                frame_s=self._frame_s,
                record=o.record_heard,
            )
            speaker.segments = self._report.played_segments
            self._playback = Playback(
                t0=self._t0,
                speaker=speaker,
                report=self._report,
                deliver=self._deliver,
                media_limit=self._media_limit,
            )
        player = asyncio.create_task(self._playback.run()) if self._playback else None
        cancelled = False
        try:
            try:
                async with self._lock:
                    await self._send_opening(first)
                await self._send_media()
                await self._tail()
                if o.send_stop:
                    await self._send_stop()
            except ConnectionClosed:
                pass  # the server closed: recorded below from the connection's state
            for link in self._links:
                await link.close(CloseCode.NORMAL)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            for task in (player, self._sockets.connecting):
                if task is not None and not task.done():
                    task.cancel()
            if player is not None and not cancelled:
                await asyncio.gather(player, return_exceptions=True)
            for link in self._links:
                await link.finish(cancelled=cancelled)
            self._finish()

    def _finish(self) -> None:
        report = self._report
        report.duration_s = _now() - self._t0
        last = self._links[-1].report
        report.close_code = last.close_code
        report.close_reason = last.close_reason
        report.closed_by_server = last.closed_by_server
        code = last.close_code
        what = f"code {code}" + (f" ({last.close_reason})" if last.close_reason else "")
        if last.vanished:
            pass  # made to vanish: no close to judge
        elif last.closed_by_server and self._sent_plan < len(self._plan):
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

    async def _tail(self) -> None:
        """Keep listening after the last frame; let queued playback finish (bounded)."""
        if self._abort.is_set() or self._links_gone.is_set():
            return
        o = self._o
        gone = asyncio.create_task(self._links_gone.wait())
        aborted = asyncio.create_task(self._abort.wait())
        waiters: list[asyncio.Task[Any]] = [gone, aborted]
        try:
            if o.tail_s > 0:
                await asyncio.wait(waiters, timeout=o.tail_s, return_when=asyncio.FIRST_COMPLETED)
            playback = self._playback
            if playback is not None and not playback.idle and not (gone.done() or aborted.done()):
                idle = asyncio.create_task(playback.wait_idle())
                waiters.append(idle)
                await asyncio.wait(
                    waiters, timeout=o.drain_timeout_s, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            for task in waiters:
                task.cancel()

    # --- sending ------------------------------------------------------------------------

    def next_seq(self) -> int:
        """The next sequence number (one counter over every message of the stream)."""
        self._seq += 1
        return self._seq

    async def send(self, link: Link, data: bytes, *, text: bool = True) -> bool:
        """Send on ``link`` (the caller holds the send lock); False if it no longer sends.
        A socket the server closed is recorded by its link, never raised from here unless
        it was the only one."""
        report = self._report
        try:
            sent = await link.send(data, text=text)
        except ConnectionClosed:
            if len(self._links) == 1 and not self._sockets.more_coming():
                raise
            return False
        if sent:
            report.bytes_sent += len(data)
            report.messages_sent += 1
        return sent

    async def send_answers(self, answers: list[Answer]) -> None:
        """``playedStream`` (or the dialect's word) for each answer, on its own socket."""
        for a in answers:
            if a.link < len(self._links):
                await self.send(self._links[a.link], self.wire.played(self.next_seq(), a.name))

    async def _deliver(self, limit: float) -> None:
        # The playback task's way to answer: under the send lock, like the media sender.
        playback = self._playback
        assert playback is not None
        async with self._lock:
            await self.send_answers(playback.take(limit))

    def _media_limit(self) -> float:
        return self._next_send

    async def media_sent_through(self, t: float) -> None:
        """Wait until every media frame due by ``t`` (seconds since ``t0``) has gone out
        (or the sender stopped): an answer about that moment may follow them."""
        while self._next_send <= t:
            self._media_moved.clear()
            await self._media_moved.wait()

    async def _send_opening(self, link: Link) -> None:
        for frame in self.wire.opening(self.next_seq()):
            await self.send(link, frame)

    async def _send_stop(self) -> None:
        async with self._lock:
            for link in self._links:
                if link.alive:
                    stop = self.wire.stop(self.next_seq())
                    if stop is not None and await self.send(link, stop):
                        self._report.stop_sent = True

    async def _send_media(self) -> None:
        try:
            await self._send_plan()
        finally:
            self._next_send = math.inf
            if self._playback is not None:
                self._playback.media_moved()
            self._media_moved.set()

    async def _send_plan(self) -> None:
        o, report, wire, plan = self._o, self._report, self.wire, self._plan
        encode_media, text = wire.media, not wire.binary_media
        payload_of = self._prepared.payload
        speed = o.speed
        lateness = report.lateness_ms
        dtmf = self._prepared.dtmf
        next_dtmf = 0
        echo = self._echo
        playback = self._playback
        faults = self._faults
        connection_faults = faults.connection_faults
        links = self._links
        counts = report.fault_counts
        frames: list[bytes] = []
        run = 0  # sends since the last wait
        # A reconnect of the call emulator's stream goes on counting from earlier sockets.
        first = o.first_frame
        base_ms = first * self._frame_ms
        for i in range(len(plan)):
            at, k = plan.at_s[i], plan.frames[i]
            rel = at / speed if speed is not None else 0.0
            self._next_send = rel
            if self._abort.is_set() or self._links_gone.is_set():
                return
            if speed is not None:
                due = self._t0 + rel
                if _now() < due:
                    run = 0
                    await self._sleeper.until(due)
                    if self._abort.is_set() or self._links_gone.is_set():
                        return
                lateness.append(max(0.0, (_now() - due) * 1000.0))
            run += 1
            if run % _YIELD_EVERY == 0:  # at full speed, or late (an overloaded process):
                await asyncio.sleep(0)  # let replies, playback, a stop or SIGTERM run
            if connection_faults:
                if self._sockets.faults_due(at) and playback is not None:
                    if not self._sockets.alive:
                        playback.clear(_now())  # the audio path is gone: nothing plays
                targets = [links[c] for c in carriers(faults, at) if c < len(links)]
                targets = [link for link in targets if link.alive]
            else:
                targets = links[:1]
            async with self._lock:
                if playback is not None:
                    await self.send_answers(playback.take(rel))
                while next_dtmf < len(dtmf) and dtmf[next_dtmf][0] <= k:
                    _, at_ms, digit = dtmf[next_dtmf]
                    next_dtmf += 1
                    message = wire.dtmf(self.next_seq(), digit, at_ms + base_ms)
                    for link in targets:
                        if await self.send(link, message):
                            report.dtmf_sent += 1
                if not plan.copies[i]:  # a duplicate goes out as the very same bytes
                    frames = []
                    timestamp = base_ms + k * self._frame_ms
                    for track in self._tracks:
                        payload = payload_of(track, k)
                        if echo is not None and track == "inbound":
                            echo.sent(payload, _now())
                        seq = self.next_seq()
                        chunk = first + k + 1
                        frames.append(encode_media(seq, track, timestamp, chunk, payload))
                if not targets:
                    counts["lost"] = counts.get("lost", 0) + len(frames)
                for link in targets:
                    for frame in frames:
                        if await self.send(link, frame, text=text):
                            report.frames_sent += 1
            self._sent_plan = i + 1
            if i + 1 < len(plan):  # the next unsent send: what answers must not pass
                self._next_send = plan.at_s[i + 1] / speed if speed is not None else 0.0
            if playback is not None:
                playback.media_moved()
            self._media_moved.set()
            if o.on_progress is not None:
                o.on_progress(report.frames_sent, report.frames_total)
