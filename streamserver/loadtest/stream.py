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
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from array import array
from typing import TYPE_CHECKING, cast

from ..protocol.websocket import (
    CloseCode,
    FrameReader,
    Opcode,
    WebSocketError,
    client_frame,
    close_payload,
)
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
        "error",
        "fault_at",
        "fault_frames",
        "fault_i",
        "k",
        "key",
        "last_play",
        "mask",
        "reader",
        "rx",
        "sent_at",
        "sid",
        "slot",
        "state",
        "stream_id",
        "transport",
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
        self.sent_at = array("d", bytes(8 * RING)) if engine.plan.echo else array("d")
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
        if not e.plan.echo:
            return
        if 0 <= k < self.k and self.k - k <= RING:
            e.rtt.append((now - self.sent_at[k & RING_MASK]) * 1000.0)
            r.echo_matched += 1
        else:
            r.echo_unmatched += 1

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
