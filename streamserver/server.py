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
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl

from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from .handler import StopReason, load_handler
from .metrics import Metrics
from .session import CLOSE_GOING_AWAY, CLOSE_POLICY, Route, Session, SessionLimits
from .settings import Settings
from .signature import NonceCache, UpgradeVerifier

__all__ = ["StreamServer", "build_routes"]

log = logging.getLogger("streamserver.server")
_ws_log = logging.getLogger("websockets.server")

OP_TEXT = Opcode.TEXT
OP_CONT = Opcode.CONT
OP_BINARY = Opcode.BINARY
OP_CLOSE = Opcode.CLOSE

CLOSE_TIMEOUT_S = 3.0
TICK_S = 0.5


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
    """One TCP connection: HTTP request, then (maybe) a WebSocket stream."""

    __slots__ = (
        "_close_handle",
        "_frag",
        "_frag_binary",
        "_paused",
        "_writable",
        "connected_at",
        "peer",
        "proto",
        "server",
        "session",
        "transport",
    )

    def __init__(self, server: StreamServer) -> None:
        self.server = server
        self.proto = ServerProtocol(
            max_size=server.settings.server.max_message_bytes, logger=_ws_log
        )
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self._frag: list[bytes] | None = None
        self._frag_binary = False
        self._paused = False
        self._writable: asyncio.Future[None] | None = None
        self._close_handle: asyncio.TimerHandle | None = None
        self.connected_at = time.monotonic()
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
        proto = self.proto
        proto.receive_data(data)
        session = self.session
        if session is not None:
            session.last_rx = time.monotonic()
        for ev in proto.events_received():
            if type(ev) is Frame:
                self._frame(ev)
            elif type(ev) is Request:
                self._request(ev)
        self._flush()

    def eof_received(self) -> bool | None:
        self.proto.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self._close_handle is not None:
            self._close_handle.cancel()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        session = self.session
        if session is None:
            return
        proto = self.proto
        code = (
            proto.close_rcvd.code
            if proto.close_rcvd
            else (proto.close_sent.code if proto.close_sent else 1006)
        )
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

    def resume_writing(self) -> None:
        self._paused = False
        w = self._writable
        if w is not None and not w.done():
            w.set_result(None)
        self._writable = None

    # -- Outlet (used by the session) -----------------------------------------------------

    def send_text(self, data: bytes) -> None:
        proto = self.proto
        if proto.state is not State.OPEN:
            return
        proto.send_text(data)
        self._flush()

    def close(self, code: int, reason: str) -> None:
        proto = self.proto
        if proto.state is State.OPEN:
            proto.send_close(code, reason)
            self._flush()
            if self._close_handle is None and self.transport is not None:
                self._close_handle = asyncio.get_running_loop().call_later(
                    CLOSE_TIMEOUT_S, self._abort
                )

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
        if transport is None:
            return
        for chunk in self.proto.data_to_send():
            if chunk:
                transport.write(chunk)
            else:
                # websockets signals "close the TCP connection" with an empty chunk.
                transport.close()

    def _frame(self, frame: Frame) -> None:
        session = self.session
        if session is None:  # pragma: no cover - frames only follow a successful upgrade
            return
        op = frame.opcode
        if op is OP_TEXT:
            if frame.fin:
                session.feed_text(frame.data)  # type: ignore[arg-type]
            else:
                self._frag = [bytes(frame.data)]
                self._frag_binary = False
        elif op is OP_CONT:
            if self._frag is None:  # pragma: no cover - the protocol rejects this
                return
            self._frag.append(bytes(frame.data))
            if frame.fin:
                data = b"".join(self._frag)
                self._frag = None
                if self._frag_binary:
                    session.feed_binary()
                else:
                    session.feed_text(data)
        elif op is OP_BINARY:
            if frame.fin:
                session.feed_binary()
            else:
                self._frag = []
                self._frag_binary = True
        elif op is OP_CLOSE:
            if not session.ended:
                rcvd = self.proto.close_rcvd
                code = rcvd.code if rcvd else 1005
                session.end(StopReason.CLOSED if code in (1000, 1001, 1005) else StopReason.ERROR)

    def _reply(self, resp: _Http) -> None:
        proto = self.proto
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
        response: Response = self.proto.accept(req)
        if response.status_code != 101:
            m.connections_rejected["bad_upgrade"] += 1
            self.proto.send_response(response)
            return
        self.proto.send_response(response)
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
            for conn in list(self.connections):
                s = conn.session
                if s is None:
                    if sv.start_timeout_s and mono - conn.connected_at > sv.start_timeout_s:
                        conn._abort()  # no HTTP request in time
                    continue
                if s.ended:
                    continue
                if not s.started:
                    if sv.start_timeout_s and mono - s.connected_at > sv.start_timeout_s:
                        s.logger.warning(
                            "no start event within %.1fs from %s; closing",
                            sv.start_timeout_s,
                            conn.peer,
                        )
                        s.end(StopReason.TIMEOUT)
                        conn.close(CLOSE_POLICY, "start timeout: no start event")
                elif sv.idle_timeout_s and mono - s.last_rx > sv.idle_timeout_s:
                    s.logger.warning("no frames for %.1fs; closing idle stream", sv.idle_timeout_s)
                    s.end(StopReason.TIMEOUT)
                    conn.close(CLOSE_POLICY, "idle timeout")

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
                conn.close(CLOSE_GOING_AWAY, "server shutting down")
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
        await self._server.wait_closed()
        log.info("drained; bye")

    async def __aenter__(self) -> StreamServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()
