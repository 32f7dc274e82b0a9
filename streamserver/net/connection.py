"""One TCP connection: an HTTP request, then (maybe) a WebSocket stream fed to its session.

A lean :class:`asyncio.Protocol`: bytes in, one :class:`~streamserver.protocol.websocket.
FrameReader` call per read, messages straight into the :class:`~streamserver.session.
Session`; no task, coroutine or future per frame. The HTTP request and the upgrade go
through websockets' sans-I/O ``ServerProtocol`` (request parsing, handshake checks,
responses); what the request gets is the :class:`~streamserver.net.gate.Gate`'s decision.
Compression is never negotiated (permessage-deflate costs CPU and memory on base64 audio
for nothing). The connection's state moves only through :mod:`streamserver.net.state`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Protocol, cast

from websockets.exceptions import InvalidMessage
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.speedups import apply_mask

from ..handler import StopReason
from ..metrics import Metrics
from ..protocol.websocket import (
    OK_CLOSE_CODES,
    CloseCode,
    FrameReader,
    Opcode,
    WebSocketError,
    close_payload,
    frame_header,
    server_frame,
)
from ..session import Session, SessionLimits
from .batching import ReadBatcher, WriteCoalescer
from .gate import TEXT_PLAIN, Accept, Gate, Reply
from .http_rules import as_http11
from .limits import ConnectionLimits, PingBudget
from .state import ConnState, Event, transition

__all__ = [
    "CLOSE_TIMEOUT_S",
    "MAX_DEFERRED_FRAMES",
    "MAX_REQUEST_BYTES",
    "Connection",
    "ConnectionOwner",
]

log = logging.getLogger("streamserver.net")
_ws_log = logging.getLogger("websockets.server")

#: Audio frames one pass of the loop may queue before they are written anyway.
MAX_DEFERRED_FRAMES = 64
#: A peer that does not answer our close frame within this is cut off (RFC 6455 §7.1.1).
CLOSE_TIMEOUT_S = 3.0
#: A request head larger than this gets a 431.
MAX_REQUEST_BYTES = 16384

_HANDSHAKE = ConnState.HANDSHAKE
_OPEN = ConnState.OPEN
_CLOSING = ConnState.CLOSING


class ConnectionOwner(Protocol):
    """What a connection needs from its server (a narrow interface, like aiohttp's manager)."""

    @property
    def metrics(self) -> Metrics: ...
    @property
    def limits(self) -> SessionLimits: ...
    @property
    def gate(self) -> Gate: ...
    @property
    def reads(self) -> ReadBatcher: ...
    @property
    def writes(self) -> WriteCoalescer: ...
    @property
    def max_message_bytes(self) -> int: ...
    @property
    def conn_limits(self) -> ConnectionLimits: ...

    def connection_made(self, conn: Connection) -> None:
        """A TCP connection arrived."""
        ...

    def open_session(self, conn: Connection, accept: Accept) -> Session:
        """The session that consumes the stream ``conn`` was upgraded to."""
        ...

    def stream_opened(self, conn: Connection) -> None:
        """``conn`` was upgraded: its :attr:`Connection.session` is live."""
        ...

    def connection_lost(self, conn: Connection) -> None:
        """The TCP connection is gone (its session, if any, has ended)."""
        ...

    def hand_off(self, conn: Connection, transport: asyncio.Transport, data: bytes) -> None:
        """Give the HTTP app on this port the socket and the bytes read (see Gate.for_app)."""
        ...


class Connection(asyncio.Protocol):
    """One TCP connection; the :class:`~streamserver.session.Outlet` of its session.

    Its :attr:`state` is HANDSHAKE, OPEN, CLOSING or CLOSED (:mod:`.state`).
    """

    __slots__ = (
        "_close_handle",
        "_fast",
        "_fast_max",
        "_fast_session",
        "_handshake",
        "_head",
        "_lim",
        "_line_seen",
        "_linger",
        "_metrics",
        "_out",
        "_overflow_at",
        "_owner",
        "_paused",
        "_pings",
        "_reader",
        "_reads",
        "_writable",
        "_writes",
        "close_code",
        "connected_at",
        "health_only",
        "interactive",
        "out_due",
        "paused_at",
        "peer",
        "read_batch",
        "session",
        "state",
        "transport",
    )

    _fast_session: Session  # (no value until the stream opens; only _fast reads it)

    def __init__(self, owner: ConnectionOwner) -> None:
        self._owner = owner
        self._metrics = owner.metrics
        self._reads = owner.reads
        self._writes = owner.writes
        self.state = _HANDSHAKE
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.peer = ""
        self.connected_at = time.monotonic()
        # Only for the HTTP request and handshake; dropped after it (it holds the request,
        # its parser and buffers: memory and GC work for every open stream otherwise).
        self._handshake: ServerProtocol | None = None
        self._head = bytearray()  # the request head as it arrives
        self._line_seen = False  # its first line was checked (Gate.screen_line)
        self._linger = False  # a reply to a request that may have a body: half-close
        self._reader: FrameReader | None = None
        # True while the next read may take the one-frame fast path (see data_received),
        # which hands the frame to _fast_session (the session, set when the stream opens;
        # these three slots share the object's first cache line).
        self._fast = False
        self._fast_max = owner.max_message_bytes + 8
        #: The code of the close frame that began the closing handshake (either side's).
        self.close_code: int | None = None
        self._close_handle: asyncio.TimerHandle | None = None
        #: The socket's SO_RCVLOWAT in bytes (0: not batched, -1: cannot be).
        self.read_batch = 0
        #: Has sent something back: a conversation, whose reads are never batched.
        self.interactive = False
        self._out: list[bytes] = []  # coalesced outgoing audio frames
        self.out_due = 0.0  # when the first of them must be written (loop time)
        self._paused = False
        self.paused_at = 0.0
        self._writable: asyncio.Future[None] | None = None
        self._lim = lim = owner.conn_limits
        self._pings = PingBudget(lim.max_pings_per_s, self.connected_at)
        #: When the output buffer went over max_send_buffer_bytes (0.0: it is not).
        self._overflow_at = 0.0
        #: Over the pending-connection cap: only the health endpoints are served.
        self.health_only = False

    def _to(self, event: Event) -> None:
        self.state = transition(self.state, event)

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
        self._handshake = ServerProtocol(max_size=self._owner.max_message_bytes, logger=_ws_log)
        self._owner.connection_made(self)

    def data_received(self, data: bytes) -> None:
        if self._fast:
            # The common case, every Plivo media frame: the read is exactly one final masked
            # text frame with a 16-bit length, and the reader holds nothing (no partial
            # frame, no fragments). Checked here rather than in FrameReader.feed: a call
            # per frame costs about 1 % of the frame's whole Python path.
            n = len(data)
            if (
                134 <= n <= self._fast_max  # 8-byte header + at least 126 bytes
                and data[0] == 0x81
                and data[1] == 0xFE
                and ((data[2] << 8) | data[3]) + 8 == n
            ):
                self._fast_session.feed_text(apply_mask(data[8:], data[4:8]))
                return
        self._received(data)

    def _received(self, data: bytes) -> None:
        """Everything but a whole single frame: frames for the reader, or the request."""
        reader = self._reader
        if reader is not None:
            try:
                reader.feed(data)
            except WebSocketError as exc:
                self._fail(exc)
            self._fast = self.state is _OPEN and reader.idle
        elif self.state is _HANDSHAKE:
            self._request_data(data)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._to(Event.LOST)
        self._fast = False
        if self.read_batch > 0:
            self._reads.release(self)
        if self._close_handle is not None:
            self._close_handle.cancel()
            self._close_handle = None
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        session = self.session
        if session is not None:
            code = self.close_code
            if code is None:
                code = self.close_code = CloseCode.ABNORMAL
            if not session.ended:
                session.end(StopReason.CLOSED if code in OK_CLOSE_CODES else StopReason.ERROR)
                if not session.started:
                    session.logger.info(
                        "connection from %s closed before start (code %d)", self.peer, code
                    )
        self._owner.connection_lost(self)

    def pause_writing(self) -> None:
        self._paused = True
        self.paused_at = time.monotonic()

    def resume_writing(self) -> None:
        self._paused = False
        if self._overflow_at:  # drained in time: read again
            self._overflow_at = 0.0
            if self.transport is not None and self.state is _OPEN:
                self.transport.resume_reading()
        w = self._writable
        if w is not None and not w.done():
            w.set_result(None)
        self._writable = None

    # -- Outlet (used by the session) -----------------------------------------------------

    def send_text(self, data: bytes, urgent: bool = True) -> None:
        """Send one text message; audio (``urgent=False``) may wait to share a write."""
        if self.state is not _OPEN or self.transport is None:
            return
        if not self.interactive:
            # A conversation (echo, a bot): input latency matters, reads are not batched
            # again. (Batching them while output is paired too measured ~4 % less CPU at
            # 1,000 echo streams but a worse worst-case round trip: not worth it.)
            self.interactive = True
            if self.read_batch > 0:
                self._reads.release(self)
        if self._paused and self._overflowing():
            return  # the peer is not reading: nothing more is queued for it
        n = len(data)
        if 126 <= n < 65536:  # a playAudio frame: the usual case, header inlined
            frame = b"\x81\x7e" + n.to_bytes(2, "big") + data
        else:
            frame = frame_header(Opcode.TEXT, n) + data
        self._send_frame(frame, urgent)

    def _send_frame(self, frame: bytes, urgent: bool) -> None:
        assert self.transport is not None
        if urgent:
            if self._out:
                self._flush_out()  # keep the order: queued audio first
            self.transport.write(frame)
            return
        # Audio: written at the end of this pass of the loop, with whatever else this
        # stream queued in it; on a busy server, per `frames` frames or the flush timer.
        w = self._writes
        out = self._out
        out.append(frame)
        n = len(out)
        if w.pairing:
            if n >= w.frames:
                self._flush_out()
            elif n == 1:
                self.out_due = w.schedule(self)
        elif n == 1:
            self.out_due = 0.0
            w.defer(self)
        elif n >= MAX_DEFERRED_FRAMES:
            # A whole clip in one pass (a bot's play()): write it as it comes, so the
            # transport's back-pressure and max_send_buffer_bytes bound what is queued.
            self._flush_out()

    def send_binary(self, data: bytes, urgent: bool = True) -> None:
        """Send one binary message (Vonage audio); like :meth:`send_text`, audio
        (``urgent=False``) may share a write."""
        if self.state is not _OPEN or self.transport is None:
            return
        self.interactive = True  # a conversation: reads are not batched (see send_text)
        if self.read_batch > 0:
            self._reads.release(self)
        if self._paused and self._overflowing():
            return  # the peer is not reading: nothing more is queued for it
        self._send_frame(frame_header(Opcode.BINARY, len(data)) + data, urgent)

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (RFC 6455 §5.5.1); abort if the peer never answers."""
        if self.state is not _OPEN or self.transport is None:
            return
        self._to(Event.CLOSE)
        if self.close_code is None:
            self.close_code = code
        self._fast = False
        if self._reader is not None:
            self._reader.expect_close()
        if self.read_batch > 0:
            self._reads.release(self)  # the peer's close reply must not wait below the mark
        self._flush_out()
        self.transport.write(server_frame(Opcode.CLOSE, close_payload(code, reason)))
        self._close_handle = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self.abort)

    def write_paused(self) -> bool:
        return self._paused

    async def wait_writable(self) -> None:
        if not self._paused:
            return
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._writable)

    # -- used by the server and its batching ----------------------------------------------

    def abort(self) -> None:
        """Drop the TCP connection now (no closing handshake)."""
        if self.transport is not None:
            self.transport.abort()

    def tick(self, now: float) -> bool:
        """Timeouts, a few times a second (``now`` is ``time.monotonic()``): no request in
        time, a peer that stopped reading, and the session's own. True when the stream is
        flowing (frames since the last tick) and its reads could be batched."""
        session = self.session
        if session is None:
            limit = self._lim.header_timeout_s
            if limit and now - self.connected_at > limit:
                self.abort()  # no HTTP request in time
            return False
        if session.ended:
            return False
        if self._overflow_at and now - self._overflow_at > self._lim.send_grace_s:
            session.logger.warning(
                "send buffer over %d bytes for %.1fs (peer not reading); closing",
                self._lim.max_send_buffer_bytes,
                self._lim.send_grace_s,
            )
            self.close(CloseCode.POLICY_VIOLATION, "send buffer full")
            return False
        limit = self._owner.limits.send_timeout_s
        if session.started and self._paused and now - self.paused_at > limit:
            session.logger.warning(
                "socket not writable for %.1fs (peer not reading); closing", limit
            )
            session.end(StopReason.ERROR)
            self.abort()
            return False
        return session.tick(now) and self.state is _OPEN and not self.interactive

    def received(self) -> tuple[int, int] | None:
        """``(frames, bytes)`` the live stream received so far; None when there is none."""
        s = self.session
        if s is None or s.ended:
            return None
        return s.frames, s.bytes_received

    def set_read_batch(self, lowat: int) -> None:
        """Wake on this socket only once ``lowat`` bytes are waiting (0: at every byte).

        SO_RCVLOWAT: the kernel reports the socket readable when that much is queued, or
        on FIN, so a batched stream still sees its peer close at once; a last message
        shorter than the mark (``stop``) is released by the batcher's stall check.
        """
        transport = self.transport
        if transport is None or lowat == self.read_batch or self.read_batch < 0:
            return
        try:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(1, lowat))
        except (OSError, AttributeError) as exc:
            log.debug("SO_RCVLOWAT not available (%s); reads not batched", exc)
            lowat = -1  # do not try again on this connection
        self.read_batch = lowat

    def flush_due(self, limit: float) -> None:
        """Write the queued audio if its first frame is due by ``limit`` (loop time)."""
        if self._out and self.out_due <= limit:
            self._flush_out()

    # -- internals -----------------------------------------------------------------------

    def _overflowing(self) -> bool:
        """Paused: is the output buffer past its bound? Then stop reading from the peer
        (no more pings to answer, no more frames to echo) until it drains; :meth:`tick`
        closes it with 1008 if it has not after the grace period."""
        transport = self.transport
        if self._overflow_at or transport is None:
            return True
        if transport.get_write_buffer_size() <= self._lim.max_send_buffer_bytes:
            return False
        self._overflow_at = time.monotonic()
        self._metrics.send_buffer_overflows += 1
        transport.pause_reading()
        return True

    def _flush_out(self) -> None:
        out = self._out
        if out and self.transport is not None:
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])
        out.clear()

    def _request_data(self, data: bytes) -> None:
        """The HTTP request: hand websockets exactly its head; bytes after it are frames.

        Whatever is not an upgrade or a health check gets a status line (the gate's
        ``screen_line`` and ``screen``: 400, 405, 505), never a silent close."""
        head = self._head
        head += data
        gate = self._owner.gate
        if not self._line_seen and (nl := head.find(b"\n")) >= 0:
            self._line_seen = True
            refused = gate.screen_line(bytes(head[:nl]), self.peer)
            if refused is not None:
                head.clear()
                return self._refuse(refused)
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > MAX_REQUEST_BYTES:
                head.clear()
                self._refuse(Reply(431, "request headers too large\n"))
            return
        if gate.http_paths and gate.for_app(head) and self.transport:
            self._to(Event.HAND_OFF)  # not a stream: the control app's request (shared port)
            transport, self.transport, self._handshake = self.transport, None, None
            return self._owner.hand_off(self, transport, bytes(head))
        request = bytes(head[: end + 4])
        rest = bytes(head[end + 4 :])
        head.clear()
        refused = gate.screen(request[:end], self.peer)
        if refused is not None:
            return self._refuse(refused)
        proto = self._handshake
        assert proto is not None
        proto.receive_data(as_http11(request))
        parsed = False
        for ev in proto.events_received():
            if type(ev) is Request:
                parsed = True
                self._request(ev)
        if not parsed and isinstance(proto.handshake_exc, InvalidMessage):
            # websockets could not parse it and would only close: say so first.
            self._metrics.connections_rejected["bad_request"] += 1
            return self._refuse(Reply(400, "malformed request\n", linger=True))
        self._send_handshake()
        if self.state is _OPEN:
            self._handshake = None
            if rest:
                self._received(rest)
            else:
                self._fast = True

    def _send_handshake(self) -> None:
        transport = self.transport
        proto = self._handshake
        if transport is None or proto is None:
            return
        for chunk in proto.data_to_send():
            if chunk:
                transport.write(chunk)
            else:
                # websockets signals "close the TCP connection" with an empty chunk: it
                # follows every response but a 101.
                if self.state is _HANDSHAKE:
                    self._to(Event.REJECT)
                if self._linger and transport.can_write_eof():
                    # The request's body may still be arriving: closing now could reset
                    # the connection before the peer reads the reply. Half-close; the
                    # peer ends it (or the header timeout does).
                    transport.write_eof()
                else:
                    transport.close()

    def _refuse(self, resp: Reply) -> None:
        """Answer ``resp`` before (or instead of) websockets seeing a request, and close."""
        # A fresh handshake parser: the one that saw the request may have given up on it.
        self._handshake = ServerProtocol(logger=_ws_log)
        self._reply(resp)
        self._send_handshake()

    def _reply(self, resp: Reply) -> None:
        proto = self._handshake
        assert proto is not None
        response = proto.reject(resp.status, resp.body)
        if resp.content_type != TEXT_PLAIN:
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = resp.content_type
        for name, value in resp.headers:
            response.headers[name] = value
        self._linger = resp.linger
        proto.send_response(response)

    def _request(self, req: Request) -> None:
        decision = self._owner.gate.decide(req.path, req.headers, self.peer)
        if self.health_only and type(decision) is Accept:
            decision = Reply(503, "too many pending connections\n")
        if type(decision) is Reply:
            return self._reply(decision)
        assert type(decision) is Accept
        proto = self._handshake
        assert proto is not None
        response = proto.accept(req)
        proto.send_response(response)
        if response.status_code != 101:  # not a valid upgrade (websockets wrote why)
            self._metrics.connections_rejected["bad_upgrade"] += 1
            return
        self._open(decision)

    def _open(self, accept: Accept) -> None:
        owner = self._owner
        session = owner.open_session(self, accept)
        self.session = self._fast_session = session
        self._reader = FrameReader(
            on_text=session.feed_text,
            on_binary=self._on_binary,
            on_ping=self._on_ping,
            on_close=self._on_close,
            masked=True,
            max_size=owner.max_message_bytes,
            max_fragments=self._lim.max_fragments,
        )
        self._to(Event.ACCEPT)
        owner.stream_opened(self)

    def _on_binary(self, data: bytes) -> None:
        if self.session is not None:
            self.session.feed_binary(data)

    def _on_ping(self, payload: bytes) -> None:
        if not self._pings.take(time.monotonic()):
            self._metrics.pings_unanswered += 1
        elif self.transport is not None and not (self._paused and self._overflowing()):
            self.transport.write(server_frame(Opcode.PONG, payload))

    def _on_close(self, code: int, reason: str) -> None:
        answer = self.state is _OPEN
        self._to(Event.PEER_CLOSE)
        if self.close_code is None:
            self.close_code = code
        session = self.session
        if session is not None and not session.ended:
            session.end(StopReason.CLOSED if code in OK_CLOSE_CODES else StopReason.ERROR)
        transport = self.transport
        if transport is None:
            return
        if answer:  # echo the peer's code (§5.5.1); 1005 ("none") is answered with 1000
            self._flush_out()
            reply = CloseCode.NORMAL if code == CloseCode.NO_STATUS else code
            transport.write(server_frame(Opcode.CLOSE, close_payload(reply)))
        # Handshake complete: the server closes TCP first (§7.1.1).
        transport.close()

    def _fail(self, exc: WebSocketError) -> None:
        """Fail the connection (RFC 6455 §7.1.7): close frame with the error's code, then
        no more processing; our side of TCP ends at once, the peer's when it closes."""
        session = self.session
        if session is not None and not session.ended:
            session.logger.warning("closing stream: %s (%d)", exc.reason, exc.code)
            self._metrics.frames_invalid["websocket"] += 1
            session.end(StopReason.ERROR)
        self.close(exc.code, exc.reason)
        transport = self.transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            # Half-close, not close: a close() with the peer's unread bytes still queued
            # would reset the connection and could lose our close frame on the way.
            transport.write_eof()
