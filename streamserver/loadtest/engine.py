"""The load generator: many simulated Plivo streams in one event loop, cheaply.

One task plus one ``websockets`` client connection per stream costs a future, a coroutine
step and a queue per frame, and cannot pace 1,000+ streams at 50 frames/s from one core.
Here each stream is a small :class:`asyncio.Protocol` and one shared ticker walks the
sub-slots of the 20 ms cycle: every stream belongs to one sub-slot (its phase, random unless
``burst``), and at each sub-slot's absolute due time the ticker writes the next frame of every
stream in it. Frames come from :class:`~streamserver.loadtest.wire.MediaTemplates`, so a send
is two concatenations, a C masking call and a ``transport.write``.

The ticker never sends early. A late wake-up sends at once and records the lateness, so
delays never accumulate into drift; the lateness distribution says whether the generator
kept up (a run where it did not is invalid, whatever the server did).

``plan.dialect`` picks the provider the streams play (Plivo by default; Twilio, Telnyx,
Exotel, Vonage): their templates, first messages and ``stop``; the server's audio is
``playAudio`` (Plivo), ``media`` (Twilio, Telnyx, Exotel) or a binary frame (Vonage).

Received frames are parsed in place (server frames are unmasked): ``playAudio`` is counted,
its inter-arrival time gives the return-path gap, and with echo tagging the frame index in
its payload gives the round trip against the send time of that frame.

:func:`worker_main` runs an :class:`Engine` in a child process for ``--processes K``.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import random
import signal
import socket
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from websockets.speedups import apply_mask

from ..audio import AudioFormat
from ..protocol.plivo import random_account_id
from ..protocol.websocket import (
    OK_CLOSE_CODES,
    CloseCode,
    FrameReader,
    Opcode,
    WebSocketError,
    client_frame,
    close_payload,
)
from .stats import Sparse, sparse_of
from .wire import (
    HandshakeError,
    MediaTemplates,
    Target,
    new_key,
    parse_response,
    start_frames,
    stop_frame,
    tag_of,
    tag_of_raw,
    tagged_frames,
    upgrade_request,
)

__all__ = ["Engine", "EnginePlan", "EngineResult", "StreamRecord", "Window", "worker_main"]

_now = time.monotonic
_FRAME_S = 0.020
_RING = 1024  # send times remembered per stream for echo matching (~20 s)
_RING_MASK = _RING - 1
_MAX_HEAD = 16384  # an upgrade response head larger than this is refused

# Stream states
_CONNECTING, _HANDSHAKE, _OPEN, _TAIL, _CLOSING, _DONE = range(6)


@dataclass(frozen=True)
class EnginePlan:
    """Everything one generator process needs (picklable)."""

    url: str
    audio: bytes  # wire-encoded caller audio, whole frames, looped
    content_type: str = "audio/x-mulaw;rate=8000"
    dialect: str = "plivo"
    tracks: str = "inbound"  # or "both"
    streams: int = 10
    frames: int = 500  # per stream (per track)
    ramp_s: float = 2.0
    burst: bool = False
    slot_ms: float = 1.0
    echo: bool = False
    extra_headers: str = ""
    auth_token: str | None = None
    seed: int | None = None
    #: Monotonic time shared by all processes of one run: window numbers count from it.
    run_t0: float = 0.0
    window_s: float = 1.0
    worker: int = 0
    #: Run the generator under SCHED_FIFO so other processes on its CPU cannot delay a tick.
    realtime: bool = False
    # Timeouts (seconds)
    tail_s: float = 0.5
    connect_timeout_s: float = 10.0
    close_timeout_s: float = 5.0


@dataclass
class Window:
    """What one process saw during one window (counters are cumulative)."""

    worker: int
    index: int
    t: float  # seconds since run_t0 at the window's end
    active: int
    open: int
    frames_sent: int
    play_received: int
    lateness: Sparse
    rtt: Sparse
    gap: Sparse


@dataclass
class StreamRecord:
    """One stream's outcome (enough to verify its recording)."""

    call_id: str
    stream_id: str
    frames_sent: int
    connected: bool
    close_code: int | None
    closed_by_server: bool
    error: str | None


@dataclass
class EngineResult:
    """One process's totals."""

    worker: int
    streams: list[StreamRecord] = field(default_factory=list)
    connected: int = 0
    failed: int = 0
    abnormal: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    play_received: int = 0
    other_received: int = 0
    echo_matched: int = 0
    echo_unmatched: int = 0
    write_paused: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    #: Seconds since run_t0: all streams open / first stream ended / last stream ended.
    t_all_open: float | None = None
    t_first_done: float | None = None
    t_end: float = 0.0
    cpu_s: float = 0.0


class _Stream(asyncio.Protocol):
    """One simulated call's connection; the engine's ticker drives its sending."""

    __slots__ = (
        "call_id",
        "close_code",
        "close_handle",
        "closed_by_server",
        "cycle0",
        "engine",
        "error",
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
        self.state = _CONNECTING
        self.transport: asyncio.Transport | None = None
        self.k = 0
        self.cycle0 = 0
        self.rx = b""  # the upgrade response as it arrives
        # Server frames are never masked (RFC 6455 §5.1); messages are not bounded here.
        self.reader = FrameReader(
            on_text=partial(engine._on_text, self),
            on_binary=self._on_binary,
            on_ping=self._on_ping,
            on_close=self._on_close,
            masked=False,
            max_size=None,
        )
        self.last_play = 0.0
        self.sent_at = array("d", bytes(8 * _RING)) if engine.plan.echo else array("d")
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
        self.state = _HANDSHAKE
        e = self.engine
        t.write(upgrade_request(e.target, self.key, e.plan.auth_token))
        self.close_handle = asyncio.get_running_loop().call_later(
            e.plan.connect_timeout_s, self._handshake_timeout
        )

    def data_received(self, data: bytes) -> None:
        if self.state == _HANDSHAKE:
            self._handshake(data)
            return
        try:
            self.reader.feed(data)
        except WebSocketError as exc:
            self._fail(f"{exc.reason} (RFC 6455, close code {exc.code:d})")

    def pause_writing(self) -> None:
        self.engine.result.write_paused += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_handle is not None:
            self.close_handle.cancel()
            self.close_handle = None
        prev = self.state
        self.state = _DONE
        if prev == _DONE:
            return
        if self.was_connected and self.close_code is None:
            self.close_code = CloseCode.ABNORMAL
            if self.error is None:
                self.error = "connection lost without a close frame" + (f": {exc}" if exc else "")
        elif not self.was_connected and self.error is None:
            self.error = "connection closed during the upgrade" + (f": {exc}" if exc else "")
        self.engine._done(self)

    # -- internals -----------------------------------------------------------------------

    def _handshake(self, data: bytes) -> None:
        self.rx += data
        head, sep, rest = self.rx.partition(b"\r\n\r\n")
        if not sep:
            if len(self.rx) > _MAX_HEAD:
                self._fail("upgrade response head too large")
            return
        try:
            parse_response(head, self.key)
        except HandshakeError as exc:
            self._fail(f"upgrade refused: {exc}")
            return
        self.rx = b""
        if self.close_handle is not None:
            self.close_handle.cancel()
            self.close_handle = None
        self.was_connected = True
        self.engine._opened(self)
        if rest:
            self.data_received(rest)

    def _on_close(self, code: int, reason: str) -> None:
        self.close_code = code
        t = self.transport
        if self.state != _CLOSING:
            # The server ended the stream: answer its close (RFC 6455 §5.5.1).
            self.closed_by_server = True
            if self.k < self.engine.templates.n and self.error is None:
                self.error = f"closed by the server after {self.k} frames (code {code})"
            if t is not None:
                t.write(client_frame(Opcode.CLOSE, close_payload(code), self.mask))
        self.state = _CLOSING
        if t is not None:
            t.close()

    def _on_ping(self, payload: bytes) -> None:
        if self.transport is not None and self.state != _CLOSING:
            self.transport.write(client_frame(Opcode.PONG, payload, self.mask))

    def _on_binary(self, payload: bytes) -> None:
        e = self.engine
        if not e.templates.binary:
            e._error("unexpected binary message from the server")
            return
        e._on_play(self, tag_of_raw(payload[:3]) if e.plan.echo else -1)

    def _fail(self, message: str) -> None:
        self.error = message
        if self.transport is not None:
            self.transport.abort()

    def finish(self) -> None:
        """End the call: ``stop`` then a normal close, as Plivo does when the caller hangs up."""
        t = self.transport
        if self.state not in (_OPEN, _TAIL) or t is None:
            return
        e = self.engine
        seq = 2 + self.k * len(e.tracks)
        msg = stop_frame(seq, self.call_id, self.stream_id, e.tracks, e.plan.dialect)
        stop = b"" if msg is None else client_frame(Opcode.TEXT, msg, self.mask)
        t.write(stop + client_frame(Opcode.CLOSE, close_payload(CloseCode.NORMAL), self.mask))
        self.state = _CLOSING
        self.close_handle = asyncio.get_running_loop().call_later(
            e.plan.close_timeout_s, self._close_timeout
        )

    def _handshake_timeout(self) -> None:
        self.close_handle = None
        if self.state == _HANDSHAKE:
            self._fail(f"no upgrade response within {self.engine.plan.connect_timeout_s} s")

    def _close_timeout(self) -> None:
        self.close_handle = None
        if self.state != _DONE and self.transport is not None:
            if self.error is None:
                self.error = "no close frame from the server within the close timeout"
            self.transport.abort()


class Engine:
    """Runs ``plan.streams`` paced streams; ``await run()`` returns an :class:`EngineResult`.

    ``on_window`` is called once per window with what this process saw in it.
    """

    def __init__(
        self, plan: EnginePlan, *, on_window: Callable[[Window], None] | None = None
    ) -> None:
        self.plan = plan
        self.target = Target.parse(plan.url)
        self.fmt = AudioFormat.from_content_type(plan.content_type)
        self.tracks: tuple[str, ...] = (
            ("inbound", "outbound") if plan.tracks == "both" else ("inbound",)
        )
        if plan.tracks not in ("inbound", "both"):
            raise ValueError(f"tracks must be inbound or both, got {plan.tracks!r}")
        if plan.echo and plan.tracks != "inbound":
            raise ValueError("echo needs a bidirectional stream, whose track is inbound only")
        if plan.streams < 0 or plan.frames < 1:
            raise ValueError("need streams >= 0 and frames >= 1")
        payloads = tagged_frames(plan.audio, self.fmt.frame_bytes, plan.frames, tag=plan.echo)
        self.templates = MediaTemplates(
            payloads, self.tracks, plan.extra_headers, dialect=plan.dialect
        )
        # How the server's audio starts (binary frames on Vonage need no marker).
        self._play_marker = b'"playAudio"' if plan.dialect == "plivo" else b'"media"'
        self.on_window = on_window
        self.result = EngineResult(worker=plan.worker)
        self._rng = random.Random(plan.seed)
        n_slots = max(1, round(20.0 / plan.slot_ms))
        self._slot_s = _FRAME_S / n_slots
        self._slots: list[list[_Stream]] = [[] for _ in range(n_slots)]
        self._streams: list[_Stream] = []
        self._account = random_account_id()
        self._lateness = array("d")
        self._rtt = array("d")
        self._gap = array("d")
        self._open = 0
        self._active = 0
        self._done_count = 0
        self._finished: asyncio.Future[None] | None = None
        self._base = 0.0
        self._cycle = 0
        self._slot_i = 0
        self._tick_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._window_i = 0
        self._window_handle: asyncio.TimerHandle | None = None
        self._connects: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- running -------------------------------------------------------------------------

    async def run(self) -> EngineResult:
        """Connect (ramping), stream, end every call, return the totals."""
        loop = asyncio.get_running_loop()
        plan = self.plan
        self._finished = loop.create_future()
        restore = _enter_realtime() if plan.realtime else None
        cpu0 = time.process_time()
        n = plan.streams
        n_slots = len(self._slots)
        for _ in range(n):
            slot = 0 if plan.burst else self._rng.randrange(n_slots)
            st = _Stream(self, slot)
            self._streams.append(st)
            self._slots[slot].append(st)
        # Start-up garbage stays out of the collector's way (shorter pauses while pacing).
        gc.collect()
        gc.freeze()
        now = _now()
        self._base = now
        self._tick_handle = loop.call_soon(self._tick)
        self._window_handle = loop.call_later(self._next_window_delay(), self._window)
        for i, st in enumerate(self._streams):
            delay = plan.ramp_s * i / n if n > 1 else 0.0
            loop.call_later(delay, self._connect, st)
        try:
            if n:
                await self._finished
        finally:
            if self._tick_handle is not None:
                self._tick_handle.cancel()
            if self._window_handle is not None:
                self._window_handle.cancel()
            for task in list(self._connects):
                task.cancel()
            for st in self._streams:
                if st.state != _DONE and st.transport is not None:
                    st.transport.abort()
            gc.unfreeze()
            if restore is not None:
                restore()
        self._emit_window(_now())
        r = self.result
        r.t_end = _now() - plan.run_t0
        r.cpu_s = time.process_time() - cpu0
        for st in self._streams:
            r.streams.append(
                StreamRecord(
                    st.call_id,
                    st.stream_id,
                    st.k,
                    st.was_connected,
                    st.close_code,
                    st.closed_by_server,
                    st.error,
                )
            )
        return r

    def stop(self) -> None:
        """Hang up every call now (stop + close); ``run`` returns once they have ended."""
        if self._stopping:
            return
        self._stopping = True
        for st in self._streams:
            if st.state in (_OPEN, _TAIL):
                st.finish()
            elif st.state == _HANDSHAKE:
                st._fail("stopped during the upgrade")
        # Connections being made are cancelled; those not yet begun end in _connect.
        for task in list(self._connects):
            task.cancel()

    def _connect(self, st: _Stream) -> None:
        if self._stopping:
            st.error = st.error or "stopped before connecting"
            st.state = _DONE
            self._done(st)
            return
        task = asyncio.get_running_loop().create_task(self._open_connection(st))
        self._connects.add(task)
        task.add_done_callback(self._connects.discard)

    async def _open_connection(self, st: _Stream) -> None:
        loop = asyncio.get_running_loop()
        plan = self.plan
        try:
            async with asyncio.timeout(plan.connect_timeout_s):
                await loop.create_connection(lambda: st, self.target.host, self.target.port)
        except TimeoutError:
            st.error = f"TCP connect timed out after {plan.connect_timeout_s} s"
        except asyncio.CancelledError:
            st.error = st.error or "stopped before the connection was made"
            raise
        except OSError as exc:
            st.error = f"cannot connect: {exc.strerror or exc}"
        finally:
            if st.state == _CONNECTING:
                st.state = _DONE
                self._done(st)

    def _opened(self, st: _Stream) -> None:
        """Upgrade accepted: send ``start``, join the ticker at the next slot time."""
        plan = self.plan
        assert st.transport is not None
        msgs = start_frames(
            plan.dialect, st.call_id, st.stream_id, self._account, self.tracks, self.fmt,
            plan.extra_headers,
        )  # fmt: skip
        st.transport.write(b"".join(client_frame(Opcode.TEXT, m, st.mask) for m in msgs))
        now = _now()
        # First cycle whose slot time for this stream is not in the past.
        offset = self._base + st.slot * self._slot_s
        st.cycle0 = math.ceil((now - offset) / _FRAME_S)
        st.state = _OPEN
        self._open += 1
        self._active += 1
        self.result.connected += 1
        if self._open == plan.streams:
            self.result.t_all_open = now - plan.run_t0

    def _done(self, st: _Stream) -> None:
        r = self.result
        if st.was_connected:
            self._active -= 1
            if st.close_code not in OK_CLOSE_CODES or st.error is not None:
                r.abnormal += 1
        else:
            r.failed += 1
        if st.error is not None:
            self._error(_generalise(st.error))
        if r.t_first_done is None:
            r.t_first_done = _now() - self.plan.run_t0
        self._done_count += 1
        if self._done_count == len(self._streams) and self._finished is not None:
            if not self._finished.done():
                self._finished.set_result(None)

    def _error(self, message: str) -> None:
        errors = self.result.errors
        errors[message] = errors.get(message, 0) + 1

    # -- the ticker ------------------------------------------------------------------------

    def _tick(self) -> None:
        """Send the frames of the current sub-slot, then schedule the next one."""
        slot_i = self._slot_i
        due = self._base + self._cycle * _FRAME_S + slot_i * self._slot_s
        now = _now()
        loop = asyncio.get_running_loop()
        if now < due:
            self._tick_handle = loop.call_later(_timer_delay(due - now), self._tick)
            return
        cycle = self._cycle
        tpl = self.templates
        n = tpl.n
        sent = 0
        nbytes = 0
        lat = self._lateness.append
        echo = self.plan.echo
        one_track = len(self.tracks) == 1
        pre0, post0, head0 = tpl.pre[0], tpl.post[0], tpl.head[0]
        for st in self._slots[slot_i]:
            if st.state != _OPEN or st.cycle0 > cycle:
                continue
            k = st.k
            mask = st.mask
            if one_track:
                frame = head0[k] + mask + apply_mask(pre0[k] + st.sid + post0[k], mask)
            else:
                sid = st.sid
                frame = b"".join(
                    tpl.head[t][k] + mask + apply_mask(tpl.pre[t][k] + sid + tpl.post[t][k], mask)
                    for t in range(len(self.tracks))
                )
            now = _now()
            st.transport.write(frame)  # type: ignore[union-attr]
            lat((now - due) * 1000.0)
            if echo:
                st.sent_at[k & _RING_MASK] = now
            sent += 1
            nbytes += len(frame)
            k += 1
            st.k = k
            if k >= n:
                st.state = _TAIL
                # With echo, listen a little longer for the last frames to come back.
                loop.call_later(self.plan.tail_s if echo else 0.0, st.finish)
        r = self.result
        r.frames_sent += sent * len(self.tracks)
        r.bytes_sent += nbytes
        slot_i += 1
        if slot_i == len(self._slots):
            slot_i = 0
            self._cycle += 1
        self._slot_i = slot_i
        nxt = self._base + self._cycle * _FRAME_S + slot_i * self._slot_s
        delay = nxt - _now()
        if delay <= 0:
            self._tick_handle = loop.call_soon(self._tick)
        else:
            self._tick_handle = loop.call_later(_timer_delay(delay), self._tick)

    # -- receiving -------------------------------------------------------------------------

    def _on_text(self, st: _Stream, data: bytes) -> None:
        """A text message from the server to stream ``st`` (its FrameReader's callback)."""
        if data.find(self._play_marker) < 0:
            self.result.other_received += 1
            return
        k = -1
        if self.plan.echo:
            i = data.find(b'"payload"')
            if i >= 0:
                i = data.find(b'"', i + 9)
            k = tag_of(data[i + 1 : i + 5]) if i >= 0 else -1
        self._on_play(st, k)

    def _on_play(self, st: _Stream, k: int) -> None:
        """Audio from the server to ``st``, tagged with frame index ``k`` (-1: none)."""
        now = _now()
        r = self.result
        r.play_received += 1
        last = st.last_play
        if last:
            g = (now - last) * 1000.0 - 20.0
            self._gap.append(g if g > 0.0 else 0.0)
        st.last_play = now
        if not self.plan.echo:
            return
        if 0 <= k < st.k and st.k - k <= _RING:
            self._rtt.append((now - st.sent_at[k & _RING_MASK]) * 1000.0)
            r.echo_matched += 1
        else:
            r.echo_unmatched += 1

    # -- windows ---------------------------------------------------------------------------

    def _next_window_delay(self) -> float:
        plan = self.plan
        nxt = plan.run_t0 + (self._window_i + 1) * plan.window_s
        return max(0.0, nxt - _now())

    def _window(self) -> None:
        self._emit_window(_now())
        self._window_i += 1
        self._window_handle = asyncio.get_running_loop().call_later(
            self._next_window_delay(), self._window
        )

    def _emit_window(self, now: float) -> None:
        lateness, rtt, gap = self._lateness, self._rtt, self._gap
        self._lateness, self._rtt, self._gap = array("d"), array("d"), array("d")
        if self.on_window is None:
            return
        r = self.result
        self.on_window(
            Window(
                worker=self.plan.worker,
                index=self._window_i,
                t=now - self.plan.run_t0,
                active=self._active,
                open=self._open,
                frames_sent=r.frames_sent,
                play_received=r.play_received,
                lateness=sparse_of(lateness),
                rtt=sparse_of(rtt),
                gap=sparse_of(gap),
            )
        )


def _timer_delay(delay: float) -> float:
    """Round a delay up to the event loop's whole-millisecond timer resolution.

    uvloop rounds timer delays to the nearest millisecond and counts them from a clock cached
    at the start of the loop iteration, so a plain ``call_later`` fires up to a millisecond
    early; re-arming it for the remainder then spins the loop. Rounding up costs a fraction
    of a millisecond of lateness (measured and reported) and keeps wake-ups to one per slot.
    """
    return math.ceil(delay * 1000.0) / 1000.0 + 0.0002


def _enter_realtime() -> Callable[[], None]:
    """Switch this process to SCHED_FIFO; return how to switch back.

    A load generator shares its CPU with whatever else runs there; under the fair scheduler
    a busy neighbour delays its wake-ups by milliseconds, which shows up as send lateness
    that is not the generator's own. Real-time priority (root or CAP_SYS_NICE) removes that;
    the kernel's RT throttling still leaves the neighbours 5 % of the CPU.
    """
    policy = os.sched_getscheduler(0)
    param = os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except PermissionError as exc:
        raise RuntimeError(
            "--generator-rt needs root or CAP_SYS_NICE (real-time scheduling)"
        ) from exc

    def restore() -> None:
        os.sched_setscheduler(0, policy, param)

    return restore


def _generalise(message: str) -> str:
    """Errors counted by kind: drop per-stream numbers so 1,000 alike streams make one line."""
    import re

    return re.sub(r"after \d+ frames", "after N frames", message)


# --- child processes ------------------------------------------------------------------------


def worker_main(plan: EnginePlan, queue: Any, cpus: list[int] | None = None) -> None:
    """Entry point of a ``--processes`` child: run one engine, report through ``queue``.

    Puts ``("window", Window)`` once per window and finally ``("done", EngineResult)`` (or
    ``("error", message)``).
    """
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        uvloop = None  # type: ignore[assignment]

    async def main() -> EngineResult:
        engine = Engine(plan, on_window=lambda w: queue.put(("window", w)))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, engine.stop)
        return await engine.run()

    try:
        if uvloop is not None:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                result = runner.run(main())
        else:  # pragma: no cover
            result = asyncio.run(main())
        queue.put(("done", result))
    except Exception as exc:  # process boundary: report, never hang the parent
        queue.put(("error", f"worker {plan.worker}: {exc!r}"))


def count_errors(results: list[EngineResult]) -> dict[str, int]:
    """Merge the error counts of several processes."""
    total: Counter[str] = Counter()
    for r in results:
        total.update(r.errors)
    return dict(total.most_common())
