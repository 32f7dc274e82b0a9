"""The stream server: listen, one ticker for every connection, graceful drain.

:class:`StreamServer` owns the listening socket, the :class:`~.gate.Gate` (what a request
gets), the :class:`~.batching.ReadBatcher` and :class:`~.batching.WriteCoalescer`, and the
set of live connections; each :class:`~.connection.Connection` reports to it through the
:class:`~.connection.ConnectionOwner` methods. One timer (the ticker) measures event-loop
lag and runs every connection's timeouts, instead of a timer per stream.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Any, Protocol

from ..audio import AudioFormat
from ..handler import HandlerSpec, load_handler
from ..logs import LogBudget
from ..looplag import RecentMax
from ..metrics import Metrics
from ..nonce_store import nonce_cache
from ..observer import StreamObserver
from ..protocol.websocket import CloseCode
from ..resume import Resumes
from ..session import Route, Session, SessionLimits
from ..settings import Settings
from ..signature import NonceCache, TwilioUpgradeVerifier, UpgradeVerifier
from .batching import ReadBatcher, WriteCoalescer
from .connection import CLOSE_TIMEOUT_S, Connection
from .gate import Accept, Gate
from .limits import FD_HEADROOM, HEALTH_RESERVE, ConnectionLimits, raise_fd_limit
from .stallwatch import Stall, StallWatch

__all__ = ["TICK_S", "HttpApp", "StreamServer", "build_routes", "tls_context"]

log = logging.getLogger("streamserver.net")

#: Close codes counted under their own label (RFC 6455 §7.4.1); others count as "other".
_CODE_LABELS = frozenset({*CloseCode, 1010, 1012, 1013, 1014})

#: The ticker's period: timeouts are enforced to within this.
TICK_S = 0.5
#: Connections checked per slice of a tick, the loop serving frames between slices.
TICK_SLICE = 250


class HttpApp(Protocol):
    """An HTTP app served on the stream port for the gate's ``http_paths`` (the control
    app with ``[control] port = "same"``): it takes over a connection's socket."""

    def take(self, transport: asyncio.BaseTransport, data: bytes) -> None: ...


def tls_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """The server-side TLS context for ``[server] ssl_certfile`` / ``ssl_keyfile``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile or None)
    return context


def build_routes(settings: Settings) -> dict[str, Route]:
    """Resolve every route's handlers (raises ``HandlerLoadError`` on bad names/options)."""
    specs: dict[str, HandlerSpec] = {}
    routes: dict[str, Route] = {}
    for path, rs in settings.routes.items():
        resolved = []
        for name in rs.handlers:
            if name not in specs:
                specs[name] = load_handler(name, settings.handler.get(name, {}))
            resolved.append(specs[name])
        routes[path] = Route(
            path,
            tuple(resolved),
            rs.bidirectional,
            dialect=None if rs.dialect == "auto" else rs.dialect,
            expect_format=(
                AudioFormat.from_content_type(rs.expect_format) if rs.expect_format else None
            ),
            required=frozenset(rs.required_handlers),
        )
    return routes


class StreamServer:
    """The stream server: ``await start()``, serve, ``await shutdown()`` to drain.

    Also an async context manager. ``sessions`` holds the streams whose handlers have not
    finished yet; ``connections`` every open TCP connection.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        self.settings = settings
        #: A listening socket to serve on instead of binding host:port (a worker's,
        #: inherited from its supervisor).
        self.sock = sock
        self.metrics = metrics or Metrics()
        sv, ss = settings.server, settings.session
        self.limits = SessionLimits(
            reorder_window=ss.reorder_window,
            max_invalid_frames=ss.max_invalid_frames,
            send_timeout_s=ss.send_timeout_s,
            handler_queue_s=ss.handler_queue_s,
            start_timeout_s=sv.start_timeout_s,
            idle_timeout_s=sv.idle_timeout_s,
            max_gap_s=ss.max_gap_s,
            close_on_capped_gap=ss.close_on_capped_gap,
            handler_max_events=ss.handler_max_events,
            doctor_silence_s=ss.doctor_silence_s,
        )
        #: streams by ids: a reconnect (same ids) resumes or takes over its stream
        self.resumes = Resumes(ss.resume_s)
        self._nonces: NonceCache | None = None
        verifier = twilio_verifier = None
        if sv.verify_signatures:
            plivo, twilio = settings.plivo, settings.twilio
            tokens = [t for t in [plivo.auth_token, *plivo.extra_auth_tokens] if t]
            if tokens:
                verifier = UpgradeVerifier(tokens, sv.public_url, self.nonces())
            tokens = [t for t in [twilio.auth_token, *twilio.extra_auth_tokens] if t]
            if tokens:
                twilio_verifier = TwilioUpgradeVerifier(tokens, sv.public_url)
        self.gate = Gate(
            build_routes(settings),
            self.metrics,
            max_streams=sv.max_streams,
            verifier=verifier,
            twilio_verifier=twilio_verifier,
        )
        self.reads = ReadBatcher(
            self.metrics,
            frames=ss.read_batch_frames,
            min_streams=ss.read_batch_min_streams,
            busy_frames=ss.read_batch_frames_busy,
            busy=ss.read_batch_busy,
        )
        self.writes = WriteCoalescer(
            frames=ss.send_batch_frames,
            min_streams=ss.send_batch_min_streams,
            delay_s=ss.send_batch_delay_ms / 1000,
            busy=ss.send_batch_busy,
        )
        self.conn_limits = ConnectionLimits(
            max_send_buffer_bytes=sv.max_send_buffer_bytes,
            send_grace_s=ss.send_timeout_s,
            max_pings_per_s=sv.max_pings_per_s,
            header_timeout_s=sv.header_timeout_s,
        )
        self.tls = tls_context(sv.ssl_certfile, sv.ssl_keyfile) if sv.ssl_certfile else None
        if self.tls is not None:  # SO_RCVLOWAT counts TLS record bytes, not frames
            self.reads = ReadBatcher(self.metrics, frames=1, min_streams=ss.read_batch_min_streams)
        #: Serves the gate's ``http_paths`` on this port (see :class:`HttpApp`).
        self.http_app: HttpApp | None = None
        self.connections: set[Connection] = set()
        self.sessions: set[Session] = set()
        #: handed to every session (the service's bus wiring); None: nobody listens
        self.observer: StreamObserver | None = None
        self.port = 0
        self._server: asyncio.Server | None = None
        self._finishing: set[asyncio.Task[None]] = set()
        self._tick_task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._gc_started = 0.0
        #: rejected connections and accept failures: a line per kind per minute, not per peer
        self._previous_handler: Any = None
        self._logs = LogBudget(1, 60.0, counter=self.metrics.log_suppressed)
        warn_s = settings.server.stall_warn_s
        # Its own log budget: it reports from the watchdog's thread.
        self._stall_logs = LogBudget(3, 60.0)
        self._stalls = StallWatch(warn_s, self._on_stall) if warn_s > 0 else None

    # -- configuration seen by the gate ------------------------------------------------------

    @property
    def routes(self) -> dict[str, Route]:
        """WebSocket path -> route (may be changed while serving)."""
        return self.gate.routes

    def nonces(self) -> NonceCache:
        """The process's replay cache for signed requests (upgrades and the control app's
        callbacks alike): in ``[server] nonce_dir`` across restarts, else in memory. Made
        on first use, so a server that checks no signature creates no file."""
        if self._nonces is None:
            self._nonces = nonce_cache(self.settings.server)
        return self._nonces

    @property
    def verifier(self) -> UpgradeVerifier | None:
        """The upgrade signature check (None: not checked); may be replaced while serving."""
        return self.gate.verifier

    @verifier.setter
    def verifier(self, verifier: UpgradeVerifier | None) -> None:
        self.gate.verifier = verifier

    @property
    def draining(self) -> bool:
        """True once :meth:`shutdown` began: new streams get 503, ``/readyz`` too."""
        return self.gate.draining

    @property
    def max_message_bytes(self) -> int:
        return self.settings.server.max_message_bytes

    @property
    def url(self) -> str:
        """Base ``ws://host:port`` of the listener (``wss://`` with TLS)."""
        scheme = "wss" if self.tls is not None else "ws"
        return f"{scheme}://{self.settings.server.host}:{self.port}"

    # -- ConnectionOwner -------------------------------------------------------------------

    def connection_made(self, conn: Connection) -> None:
        # Connections not upgraded (yet): past max_pending_connections only a small reserve
        # may still ask for the health endpoints; past that they are dropped at once, so
        # a flood of idle sockets never takes the file descriptors streams and health
        # checks need.
        pending = len(self.connections) - self.metrics.streams_active
        limit = self.settings.server.max_pending_connections
        if pending >= limit:
            self.metrics.connections_rejected["pending"] += 1
            self._logs.log(
                log,
                logging.WARNING,
                "pending",
                "over %d pending connections: %s",
                limit,
                "health checks only" if pending < limit + HEALTH_RESERVE else "dropping",
            )
            if pending >= limit + HEALTH_RESERVE:
                conn.abort()
                return
            conn.health_only = True
        self.connections.add(conn)

    def open_session(self, conn: Connection, accept: Accept) -> Session:
        return Session(
            conn,
            accept.route,
            self.metrics,
            path=accept.path,
            query=accept.query,
            limits=self.limits,
            peer=conn.peer,
            resumes=self.resumes,
        )

    def stream_opened(self, conn: Connection) -> None:
        assert conn.session is not None
        m = self.metrics
        m.streams_active += 1
        m.streams_total += 1
        self.sessions.add(conn.session)
        conn.session.observer = self.observer

    def hand_off(self, conn: Connection, transport: asyncio.Transport, data: bytes) -> None:
        self.connections.discard(conn)
        if self.http_app is None:
            transport.close()
        else:
            self.http_app.take(transport, data)

    def connection_lost(self, conn: Connection) -> None:
        self.connections.discard(conn)
        session = conn.session
        if session is None:
            return
        m = self.metrics
        code = conn.close_code or CloseCode.ABNORMAL
        # The peer chooses its code: known codes are labels, the rest one "other" series.
        m.close_codes[code if code in _CODE_LABELS else "other"] += 1
        m.streams_active -= 1
        task = asyncio.get_running_loop().create_task(self._finish(session))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        sv = self.settings.server
        needed = sv.max_streams + sv.max_pending_connections + HEALTH_RESERVE + FD_HEADROOM
        soft, hard = raise_fd_limit(needed)
        if needed > soft:
            log.warning(
                "open-file limit %d (hard %d) is below max_streams %d + max_pending_connections "
                "%d + %d spare: raise it (ulimit -n, LimitNOFILE=) or lower max_streams",
                soft,
                hard,
                sv.max_streams,
                sv.max_pending_connections,
                HEALTH_RESERVE + FD_HEADROOM,
            )
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        if self.sock is not None:
            self._server = await loop.create_server(
                lambda: Connection(self), sock=self.sock, backlog=1024, ssl=self.tls
            )
        else:
            self._server = await loop.create_server(
                lambda: Connection(self),
                sv.host,
                sv.port,
                reuse_port=None,
                backlog=1024,
                ssl=self.tls,
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
        if self._stalls is not None:
            self._stalls.start()  # watches this thread, the loop's

    def active_sessions(self) -> Iterable[Session]:
        """The streams being served (including those whose handlers are still stopping)."""
        return list(self.sessions)

    def finishing(self) -> int:
        """How many ended streams are still waiting for their handlers' ``on_stop``."""
        return len(self._finishing)

    async def shutdown(self) -> None:
        """Drain: stop accepting, let streams finish up to ``drain_timeout_s``, close the rest
        with 1001, and wait for every handler's ``on_stop``."""
        if self._server is None:
            return
        self.gate.draining = True
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
            for s in remaining:
                s.close(CloseCode.GOING_AWAY, "server shutting down")  # ends it: DRAIN
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
            conn.abort()
        if self._tick_task is not None:
            self._tick_task.cancel()
        if self._stalls is not None:
            self._stalls.due(None)  # no ticker from now on: nothing is overdue
        self.reads.close()
        self.writes.close()
        await self._server.wait_closed()
        loop = asyncio.get_running_loop()
        if loop.get_exception_handler() == self._loop_exception:
            loop.set_exception_handler(self._previous_handler)
        if self._gc_callback in gc.callbacks:
            gc.callbacks.remove(self._gc_callback)
        if self._stalls is not None:
            self._stalls.stop()
        log.info("drained; bye")

    async def __aenter__(self) -> StreamServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- internals -----------------------------------------------------------------------

    async def _tick(self) -> None:
        """Event-loop lag, every connection's timeouts, read batching: one timer for all."""
        loop = asyncio.get_running_loop()
        m = self.metrics
        reads = self.reads
        expected = loop.time() + TICK_S
        cpu_mark, wall_mark = time.thread_time(), time.perf_counter()
        recent = RecentMax()
        due = self._stalls.due if self._stalls is not None else _no_watch
        while True:
            wait = max(0.0, expected - loop.time())
            due(time.monotonic() + wait)
            await asyncio.sleep(wait)
            now = loop.time()
            lag = max(0.0, now - expected)
            m.loop_lag_s = lag
            m.loop_lag_max_s = max(m.loop_lag_max_s, lag)
            m.loop_lag_recent_max_s = recent.add(now, lag)
            expected = now + TICK_S
            # The loop thread's share of a CPU since the last tick: busy or not.
            cpu, wall = time.thread_time(), time.perf_counter()
            m.loop_utilisation = (cpu - cpu_mark) / max(wall - wall_mark, 1e-6)
            cpu_mark, wall_mark = cpu, wall
            m.writes_paired = self.writes.update(m.loop_utilisation, m.streams_active, lag)
            reads.update(m.loop_utilisation, m.streams_active, lag)
            mono = time.monotonic()
            batch_reads = reads.active()
            for i, conn in enumerate(list(self.connections)):
                if conn.tick(mono) and batch_reads:
                    reads.consider(conn)
                if i % TICK_SLICE == TICK_SLICE - 1:
                    due(time.monotonic())
                    await asyncio.sleep(0)  # thousands of streams: let frames in between

    async def _finish(self, session: Session) -> None:
        try:
            await session.wait_handlers(self.settings.server.handler_stop_timeout_s)
        finally:
            observer = session.observer
            if observer is not None and session.started and session.stop_reason is not None:
                # After every on_stop: a final transcript or recording comes before it.
                observer.stream_stopped(session, session.stop_reason)
            self.sessions.discard(session)
            if not self.sessions:
                self._idle.set()

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # The loop reports failed accepts (EMFILE, ENFILE, ENOBUFS...) here: count them,
        # one line a minute. (uvloop's libuv resets such connections without a report;
        # max_pending_connections and the fd check at start keep it from happening.)
        exc = context.get("exception")
        if isinstance(exc, OSError) and "accept" in str(context.get("message", "")):
            self.metrics.accept_errors += 1
            self._logs.log(log, logging.ERROR, "accept", "accept failed: %s", exc)
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    def _gc_callback(self, phase: str, info: dict[str, Any]) -> None:
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

    def _on_stall(self, stall: Stall) -> None:
        # On the watchdog's thread: count, and say where the loop's thread is.
        self.metrics.loop_stalls[stall.kind] += 1
        if stall.kind == "blocked":
            self._stall_logs.log(
                log, logging.WARNING, "blocked",
                "event loop blocked for %.2f s so far, every stream waits; its thread is at %s."
                " A handler must not block the loop: await an async API, or run the work in"
                " a thread (asyncio.to_thread)", stall.overdue_s, stall.describe(),
            )  # fmt: skip
        else:
            self._stall_logs.log(
                log, logging.WARNING, "busy",
                "event loop %.2f s behind: busy, not blocked by one call (last seen %s); the"
                " core has more work than it can do (streamserver_event_loop_utilisation):"
                " fewer streams per worker, or more workers", stall.overdue_s,
                stall.place(),
            )  # fmt: skip


def _no_watch(t: float | None) -> None:
    """The ticker's ``due`` when [server] stall_warn_s = 0."""
