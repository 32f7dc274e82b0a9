"""One simulated call's connection: the generator's per-stream client protocol.

A :class:`Stream` is a small :class:`asyncio.Protocol` (no task, no queue): it writes the
upgrade request, checks the response, then reads the server's frames in place (server
frames are unmasked) and answers pings and the close handshake. It never paces itself:
the :class:`~streamserver.loadtest.pacer.Pacer` writes its media frames.

What it reads depends on the dialect the run plays: the server's audio is ``playAudio``
(Plivo), ``media`` (Twilio, Telnyx, Exotel) or a binary frame (Vonage). Each is counted,
its inter-arrival time gives the return-path gap, and with echo tagging the frame index in
its payload gives the round trip against the send time of that frame (:data:`RING` of them
are remembered per stream).

What the caller would hear is worked out as the audio arrives: the first audio's delay
after ``start``, a simulated playout buffer (:mod:`.playout`, one call per frame) and, in
the bot profile, barge-in (:mod:`.bargein`): the server's clear against the send time of
the caller's speech onset. Checkpoints are answered once the audio before them has played
and clears with the provider's cleared message, as the provider does; in the bot profile
the caller presses the script's digit at the start of every turn after the first.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from ..protocol.neutral import Checkpoint, Clear, ProtocolError
from ..protocol.websocket import (
    CloseCode,
    FrameReader,
    Opcode,
    WebSocketError,
    client_frame,
    close_payload,
)
from .bargein import Turns
from .playout import TICK_S, Playout
from .wire import (
    HandshakeError,
    new_key,
    parse_response,
    stop_frame,
    tag_of,
    tag_of_raw,
    upgrade_request,
)

if TYPE_CHECKING:
    from .engine import Engine

__all__ = [
    "CLOSING",
    "CONNECTING",
    "DONE",
    "HANDSHAKE",
    "OPEN",
    "RING",
    "RING_MASK",
    "TAIL",
    "Stream",
]

_now = time.monotonic
RING = 1024  # send times remembered per stream for echo matching (~20 s)
RING_MASK = RING - 1
_MAX_HEAD = 16384  # an upgrade response head larger than this is refused

# Stream states
CONNECTING, HANDSHAKE, OPEN, TAIL, CLOSING, DONE = range(6)


class Stream(asyncio.Protocol):
    """One simulated call's connection; the engine's pacer drives its sending."""

    __slots__ = (
        "call_id",
        "close_code",
        "close_handle",
        "closed_by_server",
        "cycle0",
        "engine",
        "epoch",
        "error",
        "fault_at",
        "fault_frames",
        "fault_i",
        "final",
        "first_audio_ms",
        "heard_done",
        "k",
        "key",
        "last_play",
        "mask",
        "playout",
        "reader",
        "rx",
        "sent_at",
        "sid",
        "slot",
        "state",
        "stream_id",
        "t_start",
        "transport",
        "turn_handle",
        "turns",
        "was_connected",
    )

    def __init__(self, engine: Engine, slot: int) -> None:
        self.engine = engine
        self.slot = slot
        self.call_id = str(uuid.uuid4())
        self.stream_id = str(uuid.uuid4())
        self.sid = engine.templates.frame_id(self.stream_id)
        self.mask = os.urandom(4)
        self.key = new_key()
        self.state = CONNECTING
        self.transport: asyncio.Transport | None = None
        self.k = 0  # frames sent (per track); under frame faults, the newest frame sent + 1
        #: Under frame faults (netfaults): the stream's sends, as the pacer's cycle each one
        #: is due in and the frame it carries, and how many went out.
        self.fault_at: array[int] | None = None
        self.fault_frames: array[int] | None = None
        self.fault_i = 0
        self.cycle0 = 0  # the pacer's first cycle for this stream
        self.rx = b""  # the upgrade response as it arrives
        # Server frames are never masked (RFC 6455 §5.1); messages are not bounded here.
        self.reader = FrameReader(
            on_text=self.on_text,
            on_binary=self._on_binary,
            on_ping=self._on_ping,
            on_close=self._on_close,
            masked=False,
            max_size=None,
        )
        self.last_play = 0.0
        self.sent_at = array("d", bytes(8 * RING)) if engine.stamp else array("d")
        # What the caller hears
        self.t_start = 0.0  # when ``start`` was sent
        self.first_audio_ms: float | None = None
        self.playout = Playout(frame_ticks=engine.frame_ticks)
        bot = engine.plan.bot
        self.turns = Turns(bot) if bot is not None else None
        self.turn_handle: asyncio.TimerHandle | None = None
        self.epoch = 0  # clears so far: a checkpoint answer due from before a clear is dropped
        self.heard_done = False
        self.final: tuple[float | None, int, float, float] | None = None
        self.close_code: int | None = None
        self.closed_by_server = False
        self.close_handle: asyncio.TimerHandle | None = None
        self.error: str | None = None
        self.was_connected = False

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t = self.transport = cast(asyncio.Transport, transport)
        sock = t.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.state = HANDSHAKE
        e = self.engine
        t.write(upgrade_request(e.target, self.key, e.plan.auth_token))
        self.close_handle = asyncio.get_running_loop().call_later(
            e.plan.connect_timeout_s, self._handshake_timeout
        )

    def data_received(self, data: bytes) -> None:
        if self.state == HANDSHAKE:
            self._handshake(data)
            return
        try:
            self.reader.feed(data)
        except WebSocketError as exc:
            self.fail(f"{exc.reason} (RFC 6455, close code {exc.code:d})")

    def pause_writing(self) -> None:
        self.engine.result.write_paused += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_handle is not None:
            self.close_handle.cancel()
            self.close_handle = None
        if self.was_connected:
            self.hang_up(_now())
        prev = self.state
        self.state = DONE
        if prev == DONE:
            return
        if self.was_connected and self.close_code is None:
            self.close_code = CloseCode.ABNORMAL
            if self.error is None:
                self.error = "connection lost without a close frame" + (f": {exc}" if exc else "")
        elif not self.was_connected and self.error is None:
            self.error = "connection closed during the upgrade" + (f": {exc}" if exc else "")
        self.engine.done(self)

    # -- the server's audio (per dialect) ------------------------------------------------

    def on_text(self, data: bytes) -> None:
        """A text message from the server (the FrameReader's callback)."""
        e = self.engine
        if data.find(e.play_marker) < 0:
            e.result.other_received += 1
            self._command(data)
            return
        k = -1
        if e.plan.echo:
            i = data.find(b'"payload"')
            if i >= 0:
                i = data.find(b'"', i + 9)
            k = tag_of(data[i + 1 : i + 5]) if i >= 0 else -1
        self.on_play(k)

    def _on_binary(self, payload: bytes) -> None:
        e = self.engine
        if not e.templates.binary:
            e.result.count_error("unexpected binary message from the server")
            return
        self.on_play(tag_of_raw(payload[:3]) if e.plan.echo else -1)

    def on_play(self, k: int) -> None:
        """Audio from the server, tagged with frame index ``k`` (-1: none)."""
        now = _now()
        e = self.engine
        r = e.result
        r.play_received += 1
        last = self.last_play
        if last:
            g = (now - last) * 1000.0 - 20.0
            e.gap.append(g if g > 0.0 else 0.0)
        self.last_play = now
        silent = self.playout.arrive(now)
        if silent:
            self._heard(now, silent)
        if not e.plan.echo:
            return
        if 0 <= k < self.k and self.k - k <= RING:
            e.rtt.append((now - self.sent_at[k & RING_MASK]) * 1000.0)
            r.echo_matched += 1
        else:
            r.echo_unmatched += 1

    # -- what the caller hears ------------------------------------------------------------

    def _heard(self, now: float, silent: int) -> None:
        """The playout's news (rare): ``silent`` ticks of silence before this frame, or -1
        when the bot's speech began."""
        if self.heard_done:
            return  # audio after the hang-up: nobody listens
        e = self.engine
        if silent > 0:
            e.result.underruns += silent
            return
        if self.first_audio_ms is None:
            ms = (now - self.t_start) * 1000.0
            self.first_audio_ms = ms
            e.first_audio.append(ms)
        if self.turns is not None:
            self.turns.heard_audio(now)

    def _command(self, data: bytes) -> None:
        """A message from the server that is not audio: checkpoints and clears get the
        provider's answers."""
        try:
            cmd = self.engine.side.decode_command(data)
        except ProtocolError:
            return
        if type(cmd) is Checkpoint:
            now = _now()
            delay = self.playout.played_by(now) - now
            asyncio.get_running_loop().call_later(delay, self._played, cmd.name, self.epoch)
        elif type(cmd) is Clear:
            self._clear()

    def _played(self, name: str, epoch: int) -> None:
        # The audio before the checkpoint has played (unless a clear dropped it since).
        if epoch != self.epoch or self.state not in (OPEN, TAIL) or self.transport is None:
            return
        e = self.engine
        self._send(e.side.encode_played(name, self.stream_id, self._seq()))
        e.result.checkpoints += 1

    def _clear(self) -> None:
        e = self.engine
        r = e.result
        now = _now()
        r.clears += 1
        self.epoch += 1
        self.playout.end(now)
        self.last_play = 0.0
        tr = self.turns
        if tr is not None:
            onset, k = tr.onset, self.k
            sent_at = self.sent_at[onset & RING_MASK] if onset < k and k - onset <= RING else 0.0
            ms = tr.clear(now, k, sent_at)
            if ms is None:
                r.unexpected_clears += 1
            else:
                e.barge_in.append(ms)
        if self.state in (OPEN, TAIL):
            self._send(e.side.encode_cleared(self.stream_id, self._seq()))

    def start_turns(self, first_frame_at: Callable[[int], float]) -> None:
        """Bot profile: press the script's digit at the start of every turn after the first;
        ``first_frame_at(k)`` is when this stream's frame ``k`` is due."""
        tr = self.turns
        if tr is None:
            return
        start = tr.script.turn_start(tr.turn + 1)
        if start >= self.engine.templates.n:
            return  # the call ends first
        delay = max(0.0, first_frame_at(start) - _now())
        self.turn_handle = asyncio.get_running_loop().call_later(
            delay, self._next_turn, first_frame_at
        )

    def _next_turn(self, first_frame_at: Callable[[int], float]) -> None:
        self.turn_handle = None
        tr = self.turns
        if tr is None or self.state != OPEN:
            return
        e = self.engine
        if tr.next_turn(self.k):
            e.result.barge_in_missed += 1
        self.playout.end(_now())
        self.last_play = 0.0
        self._send(e.side.encode_dtmf(tr.script.digit, self.stream_id, self._seq()))
        e.result.dtmf_sent += 1
        self.start_turns(first_frame_at)

    def hang_up(self, now: float) -> None:
        """The caller stops listening: close the playout and the last turn (once)."""
        if self.heard_done:
            return
        self.heard_done = True
        if self.turn_handle is not None:
            self.turn_handle.cancel()
            self.turn_handle = None
        po = self.playout
        po.end(now)
        if self.turns is not None and self.turns.finish(self.k):
            self.engine.result.barge_in_missed += 1
        self.final = self.heard()
        # What still arrives during the close goes to a buffer nobody reads.
        self.playout = Playout(frame_ticks=po.frame_ticks)

    def heard(self) -> tuple[float | None, int, float, float]:
        """(first audio ms, underrun ticks, longest silence ms, playout s) of this call."""
        if self.final is not None:
            return self.final
        po = self.playout
        return self.first_audio_ms, po.underruns, po.longest * TICK_S * 1000.0, po.ticks * TICK_S

    def _seq(self) -> int:
        # The next sequenceNumber: the server orders media by chunk, never by this.
        return 2 + self.k * len(self.engine.tracks)

    def _send(self, msg: bytes | None) -> None:
        if msg is not None and self.transport is not None:
            self.transport.write(client_frame(Opcode.TEXT, msg, self.mask))

    # -- the upgrade and the close -------------------------------------------------------

    def _handshake(self, data: bytes) -> None:
        self.rx += data
        head, sep, rest = self.rx.partition(b"\r\n\r\n")
        if not sep:
            if len(self.rx) > _MAX_HEAD:
                self.fail("upgrade response head too large")
            return
        try:
            parse_response(head, self.key)
        except HandshakeError as exc:
            self.fail(f"upgrade refused: {exc}")
            return
        self.rx = b""
        if self.close_handle is not None:
            self.close_handle.cancel()
            self.close_handle = None
        self.was_connected = True
        self.engine.opened(self)
        if rest:
            self.data_received(rest)

    def _on_close(self, code: int, reason: str) -> None:
        self.close_code = code
        t = self.transport
        if self.state != CLOSING:
            # The server ended the stream: answer its close (RFC 6455 §5.5.1).
            self.closed_by_server = True
            if self.k < self.engine.templates.n and self.error is None:
                self.error = f"closed by the server after {self.k} frames (code {code})"
            if t is not None:
                t.write(client_frame(Opcode.CLOSE, close_payload(code), self.mask))
        self.state = CLOSING
        if t is not None:
            t.close()

    def _on_ping(self, payload: bytes) -> None:
        if self.transport is not None and self.state != CLOSING:
            self.transport.write(client_frame(Opcode.PONG, payload, self.mask))

    def fail(self, message: str) -> None:
        """Record ``message`` as this stream's error and drop the connection."""
        self.error = message
        if self.transport is not None:
            self.transport.abort()

    def finish(self) -> None:
        """End the call: ``stop`` then a normal close, as Plivo does when the caller hangs up."""
        t = self.transport
        if self.state not in (OPEN, TAIL) or t is None:
            return
        e = self.engine
        self.hang_up(_now())
        seq = 2 + self.k * len(e.tracks)
        msg = stop_frame(seq, self.call_id, self.stream_id, e.tracks, e.plan.dialect)
        stop = b"" if msg is None else client_frame(Opcode.TEXT, msg, self.mask)
        t.write(stop + client_frame(Opcode.CLOSE, close_payload(CloseCode.NORMAL), self.mask))
        self.state = CLOSING
        self.close_handle = asyncio.get_running_loop().call_later(
            e.plan.close_timeout_s, self._close_timeout
        )

    def _handshake_timeout(self) -> None:
        self.close_handle = None
        if self.state == HANDSHAKE:
            self.fail(f"no upgrade response within {self.engine.plan.connect_timeout_s} s")

    def _close_timeout(self) -> None:
        self.close_handle = None
        if self.state != DONE and self.transport is not None:
            if self.error is None:
                self.error = "no close frame from the server within the close timeout"
            self.transport.abort()
