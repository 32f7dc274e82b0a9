"""The load generator: many simulated Plivo streams in one event loop, cheaply.

One task plus one ``websockets`` client connection per stream costs a future, a coroutine
step and a queue per frame, and cannot pace 1,000+ streams at 50 frames/s from one core.
Here each stream is a small :class:`asyncio.Protocol` (:mod:`.stream`) and one shared
ticker (:mod:`.pacer`) walks the sub-slots of the 20 ms cycle: every stream belongs to one
sub-slot (its phase, random unless ``burst``), and at each sub-slot's absolute due time the
ticker writes the next frame of every stream in it. :mod:`.dialer` opens the connections
on the ramp's schedule; the counters and outcomes are :mod:`.tally`'s.

The :class:`Engine` puts these together: it builds the frame templates and the streams,
starts the pacer and the dialer, counts each stream's opening and end, emits one
:class:`Window` per window and returns the :class:`EngineResult`.

``plan.dialect`` picks the provider the streams play (Plivo by default; Twilio, Telnyx,
Exotel, Vonage): their templates, first messages and ``stop``; the server's audio is
``playAudio`` (Plivo), ``media`` (Twilio, Telnyx, Exotel) or a binary frame (Vonage).

``plan.bot`` (a :class:`~.bot.BotScript`) plays the bot profile: the caller's audio holds
speech at the script's onsets, every turn after the first starts with a DTMF digit, and
the streams measure barge-in; every stream measures its first audio and playout.

:func:`worker_main` runs an :class:`Engine` in a child process for ``--processes K``.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import random
import signal
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..audio import AudioFormat
from ..netfaults import NetFaults, plan_frames
from ..protocol.detect import DIALECTS, get_provider
from ..protocol.plivo import random_account_id
from ..protocol.websocket import OK_CLOSE_CODES, Opcode, client_frame
from .bot import BotScript
from .dialer import Dialer
from .pacer import FRAME_S, Pacer, enter_realtime
from .stats import sparse_of
from .stream import DONE, HANDSHAKE, OPEN, TAIL, Stream
from .tally import EngineResult, StreamRecord, Window, count_errors, generalise
from .wire import MediaTemplates, Target, start_frames, tagged_frames

__all__ = [
    "Engine",
    "EnginePlan",
    "EngineResult",
    "StreamRecord",
    "Window",
    "count_errors",
    "worker_main",
]

_now = time.monotonic


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
    #: The bot profile's script (None: the echo profile, the caller just streams).
    bot: BotScript | None = None
    extra_headers: str = ""
    auth_token: str | None = None
    seed: int | None = None
    #: Frame faults applied to every stream (netfaults; each stream draws its own from the
    #: seed and its number), None: a perfect network.
    faults: NetFaults | None = None
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
        if (plan.echo or plan.bot is not None) and plan.tracks != "inbound":
            raise ValueError("echo needs a bidirectional stream, whose track is inbound only")
        if plan.echo and plan.bot is not None:
            raise ValueError("the bot profile plays prompts, not an echo: no echo with it")
        if plan.streams < 0 or plan.frames < 1:
            raise ValueError("need streams >= 0 and frames >= 1")
        payloads = tagged_frames(plan.audio, self.fmt.frame_bytes, plan.frames, tag=plan.echo)
        self.templates = MediaTemplates(
            payloads, self.tracks, plan.extra_headers, dialect=plan.dialect
        )
        # How the server's audio starts (binary frames on Vonage need no marker).
        self.play_marker = b'"playAudio"' if plan.dialect == "plivo" else b'"media"'
        self.side = get_provider(plan.dialect)
        # An outbound frame's length in 20 ms playout ticks (Exotel plays 200 ms frames).
        self.frame_ticks = max(1, DIALECTS[self.side.name].play_frame_ms // 20)
        # Send times are kept for the echo's round trip and the bot's speech onsets.
        self.stamp = plan.echo or plan.bot is not None
        self.on_window = on_window
        self.result = EngineResult(worker=plan.worker)
        self._rng = random.Random(plan.seed)
        faults = plan.faults
        if faults is not None and faults.connection_faults:
            raise ValueError(
                "the load tester applies frame faults only (drop, dup, reorder, jitter, "
                "burst, drift); use streamserver replay or the emulator for connection faults"
            )
        self.faults = faults if faults else None
        self.pacer = Pacer(
            self.templates,
            self.tracks,
            self.result,
            slot_ms=plan.slot_ms,
            stamp=self.stamp,
            tail_s=plan.tail_s,
            faults=self.faults is not None,
        )
        self.dialer = Dialer(self.target, plan.connect_timeout_s, self.done)
        self._streams: list[Stream] = []
        self._account = random_account_id()
        # Samples of the current window (the streams append to them as replies arrive).
        self.rtt = array("d")
        self.gap = array("d")
        self.first_audio = array("d")
        self.barge_in = array("d")
        self._open = 0
        self._active = 0
        self._done_count = 0
        self._finished: asyncio.Future[None] | None = None
        self._window_i = 0
        self._window_handle: asyncio.TimerHandle | None = None

    # -- running -------------------------------------------------------------------------

    async def run(self) -> EngineResult:
        """Connect (ramping), stream, end every call, return the totals."""
        loop = asyncio.get_running_loop()
        plan = self.plan
        self._finished = loop.create_future()
        restore = enter_realtime() if plan.realtime else None
        cpu0 = time.process_time()
        n = plan.streams
        slots = self.pacer.slots
        for i in range(n):
            slot = 0 if plan.burst else self._rng.randrange(len(slots))
            st = Stream(self, slot)
            if self.faults is not None:
                self._fault_plan(st, i)
            self._streams.append(st)
            slots[slot].append(st)
        # Start-up garbage stays out of the collector's way (shorter pauses while pacing).
        gc.collect()
        gc.freeze()
        self.pacer.start(_now())
        self._window_handle = loop.call_later(self._next_window_delay(), self._window)
        self.dialer.schedule(self._streams, plan.ramp_s)
        try:
            if n:
                await self._finished
        finally:
            self.pacer.cancel()
            if self._window_handle is not None:
                self._window_handle.cancel()
            self.dialer.cancel()
            for st in self._streams:
                if st.state != DONE and st.transport is not None:
                    st.transport.abort()
            gc.unfreeze()
            if restore is not None:
                restore()
        self._emit_window(_now())
        r = self.result
        r.t_end = _now() - plan.run_t0
        r.cpu_s = time.process_time() - cpu0
        for st in self._streams:
            first_audio, underruns, longest_ms, playout_s = st.heard()
            r.streams.append(
                StreamRecord(
                    st.call_id,
                    st.stream_id,
                    st.k,
                    st.was_connected,
                    st.close_code,
                    st.closed_by_server,
                    st.error,
                    first_audio,
                    underruns,
                    longest_ms,
                    playout_s,
                    self._lost(st),
                )
            )
        return r

    def _fault_plan(self, st: Stream, i: int) -> None:
        """Stream ``i``'s sends under the run's frame faults, as pacer cycles."""
        faults = self.faults
        assert faults is not None
        base = faults.seed if faults.seed is not None else (self.plan.seed or 0)
        seed = (base * 1_000_003 + self.plan.worker * 100_003 + i) % 2**63
        fp = plan_frames(replace(faults, seed=seed), self.plan.frames, FRAME_S)
        # A send is due in the first cycle that starts at or after its time.
        st.fault_at = array("i", (math.ceil(t / FRAME_S - 1e-9) for t in fp.at_s))
        st.fault_frames = fp.frames

    @staticmethod
    def _lost(st: Stream) -> list[int]:
        """The frames (below ``st.k``) a stream never sent: the fault plan's drops."""
        sent = st.fault_frames
        if sent is None:
            return []
        done = set(sent[: st.fault_i])
        return [k for k in range(st.k) if k not in done]

    def stop(self) -> None:
        """Hang up every call now (stop + close); ``run`` returns once they have ended."""
        if self.dialer.stopping:
            return
        for st in self._streams:
            if st.state in (OPEN, TAIL):
                st.finish()
            elif st.state == HANDSHAKE:
                st.fail("stopped during the upgrade")
        # Connections being made are cancelled; those not yet begun end in the dialer.
        self.dialer.stop()

    def opened(self, st: Stream) -> None:
        """Upgrade accepted: send ``start``, join the pacer at the next slot time."""
        plan = self.plan
        assert st.transport is not None
        msgs = start_frames(
            plan.dialect, st.call_id, st.stream_id, self._account, self.tracks, self.fmt,
            plan.extra_headers,
        )  # fmt: skip
        st.transport.write(b"".join(client_frame(Opcode.TEXT, m, st.mask) for m in msgs))
        now = st.t_start = _now()
        st.cycle0 = self.pacer.first_cycle(st.slot, now)
        st.state = OPEN
        if st.turns is not None:
            st.start_turns(lambda k: self._frame_due(st, k))
        self._open += 1
        self._active += 1
        self.result.connected += 1
        if self._open == plan.streams:
            self.result.t_all_open = now - plan.run_t0

    def done(self, st: Stream) -> None:
        """``st`` has ended (connected or not): count how."""
        r = self.result
        if st.was_connected:
            self._active -= 1
            if st.close_code not in OK_CLOSE_CODES or st.error is not None:
                r.abnormal += 1
        else:
            r.failed += 1
        if st.error is not None:
            r.count_error(generalise(st.error))
        if r.t_first_done is None:
            r.t_first_done = _now() - self.plan.run_t0
        self._done_count += 1
        if self._done_count == len(self._streams) and self._finished is not None:
            if not self._finished.done():
                self._finished.set_result(None)

    def _frame_due(self, st: Stream, k: int) -> float:
        """When the pacer sends frame ``k`` of ``st`` (monotonic seconds)."""
        pacer = self.pacer
        return pacer.base + (st.cycle0 + k) * FRAME_S + st.slot * pacer.slot_s

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
        pacer = self.pacer
        lateness, rtt, gap = pacer.lateness, self.rtt, self.gap
        pacer.lateness, self.rtt, self.gap = array("d"), array("d"), array("d")
        first_audio, barge_in = self.first_audio, self.barge_in
        self.first_audio, self.barge_in = array("d"), array("d")
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
                first_audio=sparse_of(first_audio),
                barge_in=sparse_of(barge_in),
                underruns=r.underruns,
            )
        )


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
