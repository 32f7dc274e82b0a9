"""The generator's clock: one shared ticker that sends every stream's frames on time.

Every stream belongs to one sub-slot of the 20 ms cycle (its phase), and at each
sub-slot's absolute due time the :class:`Pacer` writes the next frame of every open stream
in it. Frames come from :class:`~streamserver.loadtest.wire.MediaTemplates`, so a send is
two concatenations, a C masking call and a ``transport.write``.

The pacer never sends early. A late wake-up sends at once and records the lateness, so
delays never accumulate into drift; the lateness distribution says whether the generator
kept up (a run where it did not is invalid, whatever the server did).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from array import array
from collections.abc import Callable

from websockets.speedups import apply_mask

from .stream import OPEN, RING_MASK, TAIL, Stream
from .tally import EngineResult
from .wire import MediaTemplates

__all__ = ["FRAME_S", "Pacer", "enter_realtime", "timer_delay"]

_now = time.monotonic
FRAME_S = 0.020


class Pacer:
    """The sub-slots of the 20 ms cycle and the ticker that walks them.

    Streams are put in ``slots[stream.slot]`` before :meth:`start`; a stream is sent to
    from its ``cycle0`` (see :meth:`first_cycle`) while it is ``OPEN``. Each send adds its
    lateness in milliseconds to ``lateness`` (the engine takes the array once per window).
    """

    def __init__(
        self,
        templates: MediaTemplates,
        tracks: tuple[str, ...],
        result: EngineResult,
        *,
        slot_ms: float,
        stamp: bool,
        tail_s: float,
        faults: bool = False,
    ) -> None:
        self.templates = templates
        self.tracks = tracks
        self.result = result
        #: Keep each frame's send time in the stream's ring (echo round trip, bot onsets).
        self.stamp = stamp
        self.tail_s = tail_s
        n_slots = max(1, round(20.0 / slot_ms))
        self.slot_s = FRAME_S / n_slots
        self.slots: list[list[Stream]] = [[] for _ in range(n_slots)]
        self.lateness = array("d")
        self.base = 0.0
        self._cycle = 0
        self._slot_i = 0
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        #: Under frame faults each stream walks its own plan (``Stream.fault_at``); the
        #: choice is made once, so a run without faults pays nothing for it.
        self._send = self._send_planned if faults else self._send_next

    def start(self, now: float) -> None:
        """Cycle 0 begins at ``now``; tick from the next loop iteration."""
        self.base = now
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def cancel(self) -> None:
        """Stop ticking."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def first_cycle(self, slot: int, now: float) -> int:
        """The first cycle whose due time for sub-slot ``slot`` is not before ``now``."""
        offset = self.base + slot * self.slot_s
        return math.ceil((now - offset) / FRAME_S)

    def _send_next(self, streams: list[Stream], cycle: int, due: float) -> tuple[int, int]:
        """Each open stream of the sub-slot sends its next frame."""
        loop = asyncio.get_running_loop()
        tpl = self.templates
        n = tpl.n
        sent = 0
        nbytes = 0
        lat = self.lateness.append
        stamp = self.stamp
        one_track = len(self.tracks) == 1
        pre0, post0, head0 = tpl.pre[0], tpl.post[0], tpl.head[0]
        for st in streams:
            if st.state != OPEN or st.cycle0 > cycle:
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
            if stamp:
                st.sent_at[k & RING_MASK] = now
            sent += 1
            nbytes += len(frame)
            k += 1
            st.k = k
            if k >= n:
                st.state = TAIL
                # Listen a little longer for the last answers (echoes, a clear) to come back.
                loop.call_later(self.tail_s if stamp else 0.0, st.finish)
        return sent, nbytes

    def _send_planned(self, streams: list[Stream], cycle: int, due: float) -> tuple[int, int]:
        """Each open stream of the sub-slot sends what its fault plan has due by now:
        nothing (a drop, a frame held back), one frame, or several (a duplicate, a burst
        released, a late frame behind its successors)."""
        tpl = self.templates
        sent = 0
        nbytes = 0
        lat = self.lateness.append
        stamp = self.stamp
        tracks = range(len(self.tracks))
        loop = asyncio.get_running_loop()
        for st in streams:
            if st.state != OPEN or st.cycle0 > cycle:
                continue
            at, frames = st.fault_at, st.fault_frames
            assert at is not None and frames is not None
            j = cycle - st.cycle0
            i = st.fault_i
            mask, sid = st.mask, st.sid
            while i < len(at) and at[i] <= j:
                k = frames[i]
                frame = b"".join(
                    tpl.head[t][k] + mask + apply_mask(tpl.pre[t][k] + sid + tpl.post[t][k], mask)
                    for t in tracks
                )
                now = _now()
                st.transport.write(frame)  # type: ignore[union-attr]
                if stamp:
                    st.sent_at[k & RING_MASK] = now
                sent += 1
                nbytes += len(frame)
                st.k = max(st.k, k + 1)
                i += 1
            lat((_now() - due) * 1000.0)
            st.fault_i = i
            if i >= len(at):
                st.state = TAIL
                loop.call_later(self.tail_s if stamp else 0.0, st.finish)
        return sent, nbytes

    def _tick(self) -> None:
        """Send the frames of the current sub-slot, then schedule the next one."""
        slot_i = self._slot_i
        due = self.base + self._cycle * FRAME_S + slot_i * self.slot_s
        now = _now()
        loop = asyncio.get_running_loop()
        if now < due:
            self._handle = loop.call_later(timer_delay(due - now), self._tick)
            return
        sent, nbytes = self._send(self.slots[slot_i], self._cycle, due)
        r = self.result
        r.frames_sent += sent * len(self.tracks)
        r.bytes_sent += nbytes
        slot_i += 1
        if slot_i == len(self.slots):
            slot_i = 0
            self._cycle += 1
        self._slot_i = slot_i
        nxt = self.base + self._cycle * FRAME_S + slot_i * self.slot_s
        delay = nxt - _now()
        if delay <= 0:
            self._handle = loop.call_soon(self._tick)
        else:
            self._handle = loop.call_later(timer_delay(delay), self._tick)


def timer_delay(delay: float) -> float:
    """Round a delay up to the event loop's whole-millisecond timer resolution.

    uvloop rounds timer delays to the nearest millisecond and counts them from a clock cached
    at the start of the loop iteration, so a plain ``call_later`` fires up to a millisecond
    early; re-arming it for the remainder then spins the loop. Rounding up costs a fraction
    of a millisecond of lateness (measured and reported) and keeps wake-ups to one per slot.
    """
    return math.ceil(delay * 1000.0) / 1000.0 + 0.0002


def enter_realtime() -> Callable[[], None]:
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
