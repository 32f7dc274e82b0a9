"""The WebSocket listener: routing, auth, limits, health/metrics endpoints, graceful drain.

Each connection is a lean :class:`asyncio.Protocol` driving websockets' sans-I/O
``ServerProtocol``: bytes in, frames out, no coroutine or future per message. Frames go
straight into the connection's :class:`~streamserver.session.Session`; replies are written
to the transport as soon as they are produced. Compression is never negotiated
(permessage-deflate costs CPU and memory on base64 audio for nothing).

HTTP on the same port: ``GET /healthz`` (200 while the process runs), ``GET /readyz``
(503 while draining), ``GET /metrics`` (Prometheus text). WebSocket paths come from the
configured routes; anything else is a 404.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl

from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.speedups import apply_mask

from .handler import StopReason, load_handler
from .metrics import Metrics
from .protocol.websocket import CloseCode
from .session import Route, Session, SessionLimits
from .settings import Settings
from .signature import NonceCache, UpgradeVerifier

__all__ = ["StreamServer", "build_routes"]

log = logging.getLogger("streamserver.server")
_ws_log = logging.getLogger("websockets.server")

CLOSE_TIMEOUT_S = 3.0
TICK_S = 0.5
CLOSE_PROTOCOL = 1002
CLOSE_TOO_BIG = 1009
_MAX_REQUEST_BYTES = 16384
_WHEEL_TICK_S = 0.005  # resolution of the outgoing-audio flush timer
_CAN_BATCH_READS = sys.platform.startswith("linux") and hasattr(socket, "SO_RCVLOWAT")


def _header(first: int, n: int) -> bytes:
    """An unmasked frame header (server frames are never masked, RFC 6455 §5.1)."""
    if n < 126:
        return bytes((first, n))
    if n < 65536:
        return bytes((first, 126)) + n.to_bytes(2, "big")
    return bytes((first, 127)) + n.to_bytes(8, "big")


def build_routes(settings: Settings) -> dict[str, Route]:
    """Resolve every route's handlers (raises ``HandlerLoadError`` on bad names/options)."""
    specs: dict[str, Any] = {}
    routes: dict[str, Route] = {}
    for path, rs in settings.routes.items():
        resolved = []
        for name in rs.handlers:
            if name not in specs:
                specs[name] = load_handler(name, settings.handler.get(name, {}))
            resolved.append(specs[name])
        routes[path] = Route(path, tuple(resolved), rs.bidirectional)
    return routes


@dataclass
class _Http:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


class _Connection(asyncio.Protocol):
    """One TCP connection: an HTTP request, then (maybe) a WebSocket stream.

    The HTTP request and the upgrade go through websockets' ``ServerProtocol`` (request
    parsing, handshake validation, responses). After a 101, frames are read and written
    here directly (RFC 6455 §5): a Plivo stream is a steady flow of small unfragmented text
    frames, and a flat parser over one buffer costs a fraction of a generic frame pipeline.
    """

    __slots__ = (
        "_buf",
        "_close_handle",
        "_close_rcvd",
        "_close_sent",
        "_fast",
        "_fast_max",
        "_frag",
        "_frag_binary",
        "_frag_size",
        "_lowat",
        "_max_size",
        "_out",
        "_paused",
        "_rx_mark",
        "_writable",
        "connected_at",
        "interactive",
        "out_due",
        "paused_at",
        "peer",
        "proto",
        "server",
        "session",
        "transport",
    )

    def __init__(self, server: StreamServer) -> None:
        self.server = server
        self._max_size = server.settings.server.max_message_bytes
        # Only for the HTTP request and handshake; dropped after a 101 (it holds the request,
        # its parser and buffers: memory and GC work for every open stream otherwise).
        self.proto: ServerProtocol | None = ServerProtocol(max_size=self._max_size, logger=_ws_log)
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        # Bytes received but not consumed yet (the handshake, a partial frame). Empty in
        # the steady state: each read is one whole frame, handled without copying here.
        self._buf = bytearray()
        # True while the next read may take the one-frame fast path (see data_received).
        self._fast = False
        self._fast_max = self._max_size + 8
        # Read batching (see [session] read_batch_frames): the socket's SO_RCVLOWAT in bytes
        # (0: not batched, -1: cannot be), and the session's frame count at the last check.
        self._lowat = 0
        self._rx_mark = 0
        self.interactive = False  # has sent something back
        self._frag: list[bytes] | None = None
        self._frag_binary = False
        self._frag_size = 0
        self._close_sent: int | None = None
        self._close_rcvd: int | None = None
        self._out: list[bytes] = []  # coalesced outgoing audio frames
        self.out_due = 0.0  # when the first of them must be written (loop time)
        self._paused = False
        self._writable: asyncio.Future[None] | None = None
        self._close_handle: asyncio.TimerHandle | None = None
        self.connected_at = time.monotonic()
        self.paused_at = 0.0
        self.peer = ""

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._fast:
            # The common case, every Plivo media frame: the read is exactly one final masked
            # text frame with a 16-bit length, nothing is buffered, nothing is fragmented.
            n = len(data)
            if (
                134 <= n <= self._fast_max  # 8-byte header + at least 126 bytes
                and data[0] == 0x81
                and data[1] == 0xFE
                and ((data[2] << 8) | data[3]) + 8 == n
            ):
                self.session.feed_text(apply_mask(data[8:], data[4:8]))  # type: ignore[union-attr]
                return
        self._received(data)

    def _received(self, data: bytes) -> None:
        """Buffer ``data`` and consume what is complete: the handshake, then frames."""
        buf = self._buf
        if self.session is not None:
            if buf:
                buf += data
                self._parse(buf)
            else:  # several whole frames (a batched read): parse them in place
                self._parse(data)
            self._update_fast()
            return
        buf += data
        # Handshake: hand websockets exactly the HTTP request; bytes after it are frames.
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_REQUEST_BYTES:
                buf.clear()
                self._reply(_Http(431, "request headers too large\n"))
                self._flush()
            return
        head = bytes(buf[: end + 4])
        del buf[: end + 4]
        proto = self.proto
        assert proto is not None
        proto.receive_data(head)
        for ev in proto.events_received():
            if type(ev) is Request:
                self._request(ev)
        self._flush()
        if self.session is not None:
            self.proto = None
            if buf:
                self._parse(buf)
            self._update_fast()

    def _update_fast(self) -> None:
        self._fast = (
            self.session is not None
            and not self._buf
            and self._frag is None
            and self._close_sent is None
        )

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self._lowat > 0:
            self.server._note_read_batch(self, False)
        if self._close_handle is not None:
            self._close_handle.cancel()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        session = self.session
        if session is None:
            return
        code = self._close_rcvd or self._close_sent or 1006
        m = self.server.metrics
        m.close_codes[code] += 1
        m.streams_active -= 1
        if not session.ended:
            session.end(StopReason.CLOSED if code in (1000, 1001, 1005) else StopReason.ERROR)
            if not session.started:
                session.logger.info(
                    "connection from %s closed before start (code %d)", self.peer, code
                )
        self.server._stream_finished(self)

    def pause_writing(self) -> None:
        self._paused = True
        self.paused_at = time.monotonic()

    def resume_writing(self) -> None:
        self._paused = False
        w = self._writable
        if w is not None and not w.done():
            w.set_result(None)
        self._writable = None

    # -- Outlet (used by the session) -----------------------------------------------------

    def send_text(self, data: bytes, urgent: bool = True) -> None:
        if self._close_sent is not None or self.transport is None:
            return
        if not self.interactive:
            # A conversation (echo, a bot): input latency matters, reads are not batched
            # again. (Batching them while output is paired too measured ~4 % less CPU at
            # 1,000 echo streams but a worse worst-case round trip: not worth it.)
            self.interactive = True
            if self._lowat > 0:
                self.set_read_batch(0)
        n = len(data)
        if 126 <= n < 65536:  # a playAudio frame: the usual case, header inlined
            frame = b"\x81\x7e" + n.to_bytes(2, "big") + data
        else:
            frame = _header(0x81, n) + data
        server = self.server
        batch = server.send_batch_frames
        if batch <= 1 or urgent or server.metrics.streams_active < server.send_batch_min_streams:
            if self._out:
                self._flush_out()  # keep the order: queued audio first
            self.transport.write(frame)
            return
        # Coalesce audio: one write (one syscall) per `batch` frames, or per the server's
        # flush timer, whichever comes first.
        out = self._out
        out.append(frame)
        if len(out) >= batch:
            self._flush_out()
        elif len(out) == 1:
            server._queue_flush(self)

    def _flush_out(self) -> None:
        out = self._out
        if out and self.transport is not None:
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])
        out.clear()

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (RFC 6455 §5.5.1); abort if the peer never answers."""
        if self._close_sent is not None or self.transport is None:
            return
        self._close_sent = code
        self._fast = False
        if self._lowat > 0:
            self.set_read_batch(0)  # the peer's close reply must not wait below the mark
        self._flush_out()
        body = code.to_bytes(2, "big") + reason.encode("utf-8")[:123]
        self.transport.write(_header(0x88, len(body)) + body)
        if self._close_rcvd is not None:
            self.transport.close()  # handshake complete: the server closes TCP first
        elif self._close_handle is None:
            self._close_handle = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self._abort)

    def set_read_batch(self, lowat: int) -> None:
        """Wake on this socket only once ``lowat`` bytes are waiting (0: at every byte).

        SO_RCVLOWAT: the kernel reports the socket readable when that much is queued, or
        on FIN, so a batched stream still sees its peer close at once; a last message
        shorter than the mark (``stop``) is released by the server's stall check.
        """
        transport = self.transport
        if transport is None or lowat == self._lowat or self._lowat < 0:
            return
        try:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(1, lowat))
        except (OSError, AttributeError) as exc:
            log.debug("SO_RCVLOWAT not available (%s); reads not batched", exc)
            lowat = -1  # do not try again on this connection
        self._lowat = lowat
        self._rx_mark = -1  # the next stall check only takes note
        self.server._note_read_batch(self, lowat > 0)

    def write_paused(self) -> bool:
        return self._paused

    async def wait_writable(self) -> None:
        if not self._paused:
            return
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._writable)

    # -- internals -----------------------------------------------------------------------

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or self.proto is None:
            return
        for chunk in self.proto.data_to_send():
            if chunk:
                transport.write(chunk)
            else:
                # websockets signals "close the TCP connection" with an empty chunk.
                transport.close()

    def _fail(self, code: int, reason: str) -> None:
        session = self.session
        if session is not None and not session.ended:
            session.logger.warning("closing stream: %s (%d)", reason, code)
            self.server.metrics.frames_invalid["websocket"] += 1
            session.end(StopReason.ERROR)
        self._buf.clear()
        self.close(code, reason)

    def _parse(self, buf: bytes | bytearray) -> None:
        """Consume every complete frame of ``buf`` (RFC 6455 §5.2): the connection's own
        buffer, or a read taken as is; an incomplete tail is kept in the buffer."""
        session = self.session
        assert session is not None
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            hdr = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hdr = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hdr = 10
            if not b1 & 0x80:
                return self._fail(CLOSE_PROTOCOL, "client frames must be masked")
            if b0 & 0x70:
                return self._fail(CLOSE_PROTOCOL, "reserved bits set (no extension negotiated)")
            opcode = b0 & 0x0F
            if opcode >= 0x8:
                # Checked on the header: a control frame claiming a huge length must not
                # make us buffer it first (RFC 6455 §5.5: ≤ 125 bytes, never fragmented).
                if not b0 & 0x80 or length > 125:
                    return self._fail(CLOSE_PROTOCOL, "invalid control frame")
            elif length > self._max_size:
                return self._fail(
                    CLOSE_TOO_BIG, f"message of {length} bytes exceeds {self._max_size}"
                )
            start = pos + hdr + 4
            end = start + length
            if end > n:
                break
            payload = apply_mask(buf[start:end], buf[pos + hdr : start])
            pos = end
            if self._close_sent is not None and opcode != 0x8:
                continue  # closing: only the peer's close frame matters now
            fin = b0 & 0x80
            if opcode == 0x1:
                if self._frag is not None:
                    return self._fail(CLOSE_PROTOCOL, "new message inside a fragmented one")
                if fin:
                    session.feed_text(payload)
                else:
                    self._start_fragment(payload, binary=False)
            elif opcode == 0x0:
                if self._frag is None:
                    return self._fail(CLOSE_PROTOCOL, "continuation frame without a message")
                self._frag.append(payload)
                self._frag_size += length
                if self._frag_size > self._max_size:
                    return self._fail(CLOSE_TOO_BIG, f"message exceeds {self._max_size} bytes")
                if fin:
                    data = b"".join(self._frag)
                    self._frag = None
                    if self._frag_binary:
                        session.feed_binary()
                    else:
                        session.feed_text(data)
            elif opcode == 0x2:
                if self._frag is not None:
                    return self._fail(CLOSE_PROTOCOL, "new message inside a fragmented one")
                if fin:
                    session.feed_binary()
                else:
                    self._start_fragment(payload, binary=True)
            elif opcode >= 0x8:
                if opcode == 0x9 and self.transport is not None:  # ping -> pong
                    self.transport.write(_header(0x8A, length) + payload)
                elif opcode == 0x8:
                    self._on_close_frame(payload)
                    pos = n
                    break
                elif opcode != 0xA:
                    return self._fail(CLOSE_PROTOCOL, f"unknown opcode {opcode}")
            else:
                return self._fail(CLOSE_PROTOCOL, f"unknown opcode {opcode}")
        if buf is self._buf:
            if pos:
                del self._buf[:pos]
        elif pos < n:
            self._buf += buf[pos:]

    def _start_fragment(self, payload: bytes, *, binary: bool) -> None:
        self._frag = [payload]
        self._frag_binary = binary
        self._frag_size = len(payload)

    def _on_close_frame(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        self._close_rcvd = code
        session = self.session
        if session is not None and not session.ended:
            session.end(StopReason.CLOSED if code in (1000, 1001, 1005) else StopReason.ERROR)
        if self._close_sent is None:
            self.close(code if code != 1005 else 1000, "")
        elif self.transport is not None:
            self.transport.close()

    def _reply(self, resp: _Http) -> None:
        proto = self.proto
        assert proto is not None
        response = proto.reject(resp.status, resp.body)
        if resp.content_type != "text/plain; charset=utf-8":
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = resp.content_type
        proto.send_response(response)

    def _request(self, req: Request) -> None:
        server = self.server
        path, _, qs = req.path.partition("?")
        m = server.metrics
        if path == "/healthz":
            return self._reply(_Http(200, "ok\n"))
        if path == "/readyz":
            if server.draining:
                return self._reply(_Http(503, "draining\n"))
            return self._reply(_Http(200, "ready\n"))
        if path == "/metrics":
            return self._reply(
                _Http(200, m.render(draining=server.draining), "text/plain; version=0.0.4")
            )
        route = server.routes.get(path)
        if route is None:
            m.connections_rejected["not_found"] += 1
            known = ", ".join(sorted(server.routes)) or "none"
            return self._reply(
                _Http(404, f"no stream route at {path}; configured routes: {known}\n")
            )
        if server.draining:
            m.connections_rejected["draining"] += 1
            return self._reply(_Http(503, "server is draining; retry on another instance\n"))
        if m.streams_active >= server.settings.server.max_streams:
            m.connections_rejected["max_streams"] += 1
            log.warning(
                "rejecting connection from %s: max_streams (%d) reached",
                self.peer,
                server.settings.server.max_streams,
            )
            return self._reply(_Http(503, "too many streams on this server\n"))
        verifier = server.verifier
        if verifier is not None:
            result = verifier.verify(req.path, req.headers)
            m.signature_checks["ok" if result.ok else result.reason] += 1
            if not result.ok:
                m.connections_rejected["signature"] += 1
                log.warning(
                    "rejecting connection from %s to %s: signature check failed (%s)",
                    self.peer,
                    path,
                    result.reason,
                )
                return self._reply(_Http(403, f"signature check failed: {result.reason}\n"))
            server._note_signature_form(result.matched_url, result.header)
        proto = self.proto
        assert proto is not None
        response: Response = proto.accept(req)
        if response.status_code != 101:
            m.connections_rejected["bad_upgrade"] += 1
            proto.send_response(response)
            return
        proto.send_response(response)
        query = dict(parse_qsl(qs, keep_blank_values=True))
        self.session = Session(
            self,
            route,
            m,
            path=path,
            query=query,
            limits=server.limits,
            peer=self.peer,
        )
        m.streams_active += 1
        m.streams_total += 1
        server.sessions.add(self)


class StreamServer:
    """The stream server: ``await start()``, serve, ``await shutdown()`` to drain."""

    def __init__(self, settings: Settings, *, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.routes = build_routes(settings)
        ss = settings.session
        self.limits = SessionLimits(
            reorder_window=ss.reorder_window,
            max_invalid_frames=ss.max_invalid_frames,
            send_timeout_s=ss.send_timeout_s,
            handler_queue_s=ss.handler_queue_s,
            start_timeout_s=settings.server.start_timeout_s,
            idle_timeout_s=settings.server.idle_timeout_s,
        )
        tokens = [t for t in [settings.plivo.auth_token, *settings.plivo.extra_auth_tokens] if t]
        self.verifier: UpgradeVerifier | None = None
        if settings.server.verify_signatures:
            self.verifier = UpgradeVerifier(tokens, settings.server.public_url, NonceCache())
        self.connections: set[_Connection] = set()
        self.sessions: set[_Connection] = set()
        self.draining = False
        self._server: asyncio.Server | None = None
        self._finishing: set[asyncio.Task[None]] = set()
        self._tick_task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._forms_logged: set[tuple[str | None, str | None]] = set()
        self._gc_started = 0.0
        # Outgoing audio coalescing (see [session] send_batch_frames).
        self.send_batch_frames = ss.send_batch_frames
        self.send_batch_min_streams = ss.send_batch_min_streams
        self._send_batch_delay_s = ss.send_batch_delay_ms / 1000
        self._wheel: dict[int, list[_Connection]] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        # Incoming read batching (see [session] read_batch_frames).
        self.read_batch_frames = ss.read_batch_frames if _CAN_BATCH_READS else 1
        self.read_batch_min_streams = ss.read_batch_min_streams
        self._read_batched: set[_Connection] = set()
        self._watch_handle: asyncio.TimerHandle | None = None
        # Stall check period: a batched read is due every read_batch_frames x 20 ms (plus
        # one frame of slack for jitter); a message held below the mark waits at most two.
        self._watch_s = (self.read_batch_frames + 1) * 0.02
        self.port = 0

    @property
    def url(self) -> str:
        """Base ``ws://host:port`` of the listener."""
        return f"ws://{self.settings.server.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        sv = self.settings.server
        self._server = await loop.create_server(
            lambda: _Connection(self), sv.host, sv.port, reuse_port=None, backlog=1024
        )
        sockets = self._server.sockets
        self.port = sockets[0].getsockname()[1] if sockets else sv.port
        self._tick_task = loop.create_task(self._tick(), name="streamserver-tick")
        log.info(
            "listening on %s (routes: %s; health: /healthz /readyz /metrics)",
            self.url,
            ", ".join(
                f"{p} -> {'+'.join(s.name for s in r.handlers) or 'none'}"
                for p, r in self.routes.items()
            ),
        )
        if sv.gc_freeze:
            gc.collect()
            gc.freeze()
        gc.callbacks.append(self._gc_callback)

    async def _tick(self) -> None:
        """Event-loop lag, start/idle timeouts: one timer for all connections."""
        loop = asyncio.get_running_loop()
        sv = self.settings.server
        m = self.metrics
        expected = loop.time() + TICK_S
        while True:
            await asyncio.sleep(max(0.0, expected - loop.time()))
            now = loop.time()
            lag = max(0.0, now - expected)
            m.loop_lag_s = lag
            m.loop_lag_max_s = max(m.loop_lag_max_s, lag)
            expected = now + TICK_S
            mono = time.monotonic()
            batch_reads = (
                self.read_batch_frames > 1 and m.streams_active >= self.read_batch_min_streams
            )
            if not batch_reads:
                for conn in list(self._read_batched):
                    conn.set_read_batch(0)
            for conn in list(self.connections):
                s = conn.session
                if s is None:
                    if sv.start_timeout_s and mono - conn.connected_at > sv.start_timeout_s:
                        conn._abort()  # no HTTP request in time
                    continue
                if s.ended:
                    continue
                stuck = mono - conn.paused_at > self.limits.send_timeout_s
                if s.started and conn._paused and stuck:
                    s.logger.warning(
                        "socket not writable for %.1fs (peer not reading); closing",
                        self.limits.send_timeout_s,
                    )
                    s.end(StopReason.ERROR)
                    conn._abort()
                elif (
                    s.tick(mono)
                    and batch_reads
                    and conn._lowat == 0
                    and not conn.interactive
                    and conn._close_sent is None
                ):
                    self._batch_reads(conn, s)

    def _note_read_batch(self, conn: _Connection, batched: bool) -> None:
        if batched:
            self._read_batched.add(conn)
        else:
            self._read_batched.discard(conn)
        self.metrics.streams_read_batched = len(self._read_batched)

    def _batch_reads(self, conn: _Connection, s: Session) -> None:
        if s.frames < 10:
            return  # too early to know the frame size
        # The mark: (N - 1) frames and half of the next, from the stream's mean frame size
        # on the wire (payload + the 8-byte header of a masked frame of 126+ bytes).
        size = s.bytes_received // s.frames + 8
        conn.set_read_batch((self.read_batch_frames - 1) * size + size // 2)
        if self._watch_handle is None and conn._lowat > 0:
            loop = asyncio.get_running_loop()
            self._watch_handle = loop.call_later(self._watch_s, self._watch_reads)

    def _watch_reads(self) -> None:
        """Release batched streams that received nothing since the last check: a message
        below the mark (a final ``stop``, a pause in the audio) must not wait for more."""
        self._watch_handle = None
        m = self.metrics
        for conn in list(self._read_batched):
            s = conn.session
            if s is None or s.ended:
                conn.set_read_batch(0)
            elif s.frames == conn._rx_mark:  # nothing read for a whole check period
                m.read_batch_stalls += 1
                conn.set_read_batch(0)  # the ticker batches it again once it flows
            else:
                conn._rx_mark = s.frames
        if self._read_batched:
            loop = asyncio.get_running_loop()
            self._watch_handle = loop.call_later(self._watch_s, self._watch_reads)

    def _queue_flush(self, conn: _Connection) -> None:
        # A timer wheel: each connection's first queued frame is due send_batch_delay_ms
        # later (so the stream's next frame, 20 ms on, normally joins it in one write);
        # one timer per tick serves every connection.
        loop = asyncio.get_running_loop()
        due = loop.time() + self._send_batch_delay_s
        conn.out_due = due
        key = int(due / _WHEEL_TICK_S) + 1
        bucket = self._wheel.get(key)
        if bucket is None:
            self._wheel[key] = [conn]
        else:
            bucket.append(conn)
        if self._flush_handle is None:
            self._flush_handle = loop.call_later(_WHEEL_TICK_S, self._flush_due)

    def _flush_due(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        current = int(now / _WHEEL_TICK_S)
        wheel = self._wheel
        for key in [k for k in wheel if k <= current]:
            for conn in wheel.pop(key):
                # Skip entries already flushed by a full batch, or re-queued later.
                if conn._out and conn.out_due <= now + _WHEEL_TICK_S:
                    conn._flush_out()
        self._flush_handle = loop.call_later(_WHEEL_TICK_S, self._flush_due) if wheel else None

    def _gc_callback(self, phase: str, info: dict[str, int]) -> None:
        # Garbage-collector pauses stall every stream at once: measure them.
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        m = self.metrics
        m.gc_collections[info.get("generation", 0)] += 1
        m.gc_pause_s += pause
        if pause > m.gc_pause_max_s:
            m.gc_pause_max_s = pause

    def _note_signature_form(self, url: str | None, header: str | None) -> None:
        key = (url, header)
        if key not in self._forms_logged:
            self._forms_logged.add(key)
            log.info("signature verified: %s matched URL form %s", header, url)
        else:
            log.debug("signature verified: %s matched URL form %s", header, url)

    def _stream_finished(self, conn: _Connection) -> None:
        session = conn.session
        assert session is not None
        task = asyncio.get_running_loop().create_task(self._finish(conn, session))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(self, conn: _Connection, session: Session) -> None:
        try:
            await session.wait_handlers(self.settings.server.handler_stop_timeout_s)
        finally:
            self.sessions.discard(conn)
            if not self.sessions:
                self._idle.set()

    def active_sessions(self) -> Iterable[Session]:
        return [c.session for c in self.sessions if c.session is not None]

    async def shutdown(self) -> None:
        """Drain: stop accepting, let streams finish up to ``drain_timeout_s``, close the rest
        with 1001, and wait for every handler's ``on_stop``."""
        if self._server is None:
            return
        self.draining = True
        self._server.close()
        sv = self.settings.server
        n = len(self.sessions)
        log.info("draining: %d active stream(s), waiting up to %.1fs", n, sv.drain_timeout_s)
        if self.sessions:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), sv.drain_timeout_s)
            except TimeoutError:
                pass
        remaining = list(self.sessions)
        if remaining:
            log.info("drain timeout: closing %d stream(s) with 1001", len(remaining))
            for conn in remaining:
                s = conn.session
                if s is not None and not s.ended:
                    s.end(StopReason.DRAIN)
                conn.close(CloseCode.GOING_AWAY, "server shutting down")
        # Wait for sockets to close (bounded by the close timeout) and on_stop hooks.
        deadline = time.monotonic() + CLOSE_TIMEOUT_S + sv.handler_stop_timeout_s + 1
        while (self.sessions or self._finishing) and time.monotonic() < deadline:
            if self._finishing:
                await asyncio.wait(
                    list(self._finishing), timeout=max(0.01, deadline - time.monotonic())
                )
            else:
                await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn._abort()
        if self._tick_task is not None:
            self._tick_task.cancel()
        if self._watch_handle is not None:
            self._watch_handle.cancel()
            self._watch_handle = None
        await self._server.wait_closed()
        if self._gc_callback in gc.callbacks:
            gc.callbacks.remove(self._gc_callback)
        log.info("drained; bye")

    async def __aenter__(self) -> StreamServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()
