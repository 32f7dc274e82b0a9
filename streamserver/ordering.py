"""Per-track ordering of media: the reorder window, gaps and duplicates (pure, no I/O).

A stream's media arrives as ``(track, chunk, timestamp, payload)``. :class:`Ordering` turns
that into audio placed at exact sample positions per track, telling its owner through two
callbacks what to deliver and which gaps to declare::

    deliver(track, position, num_samples, payload)   # in order, contiguous unless a gap
    gap(track, position, num_samples)                # audio that never arrived

Rules, per track:

- Plivo's ``chunk`` counts media from 1. The expected chunk is delivered at once. A chunk
  ahead of it waits in a small reorder window (``window`` frames) for the missing ones;
  when the window overflows, the missing chunks are declared a gap of exact length
  (missing chunks × the samples of the first held chunk) and delivery goes on.
- Chunks older than the expected one, or already held, are duplicates: dropped, counted.
- Without ``chunk``, the media ``timestamp`` (ms) places audio: a jump of at least half a
  frame is a gap, a frame that lies wholly in the past is a duplicate. Without both, audio
  is contiguous.
- :meth:`Ordering.flush` (end of stream) declares whatever is still missing and delivers
  everything held.
- **Jumps.** A frame that would open a gap longer than ``max_gap_samples``, or lies more than
  a second back (a counter or clock reset), is held as a jump candidate
  instead: one frame alone is invalid input (a forward jump is reported ``"jump"``, a
  backward one is a duplicate); when the next such frame follows it (the sender really
  moved its timeline) the track resyncs: the gap is declared but capped at
  ``max_gap_samples`` (``"gap_capped"``), positions go on from there (``"resync"``).
  So no input makes a gap longer than the cap, and a timestamp reset never turns the rest
  of a stream into duplicates.

Nothing here knows about handlers, asyncio or sockets, so it is tested with plain calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

__all__ = [
    "UNLIMITED",
    "AnomalyFn",
    "DeliverFn",
    "GapFn",
    "OrderCounters",
    "OrderStats",
    "Ordering",
    "TrackOrder",
]

#: ``deliver(track, position, num_samples, payload)``
DeliverFn = Callable[[str, int, int, bytes], None]
#: ``gap(track, position, num_samples)``
GapFn = Callable[[str, int, int], None]
#: ``anomaly(track, kind, samples)``: kind "jump" (a lone jumping frame dropped),
#: "gap_capped" (a gap of ``samples`` was cut to the cap) or "resync" (by ``samples``)
AnomalyFn = Callable[[str, str, int], None]

#: No cap (the default of a bare :class:`Ordering`).
UNLIMITED = 1 << 62


def _no_anomaly(track: str, kind: str, samples: int) -> None:
    pass


class OrderCounters(Protocol):
    """Counters that ordering adds to (a stream's :class:`OrderStats`, process totals)."""

    duplicates: int
    reordered: int
    gaps: int
    gap_samples: int
    gaps_capped: int
    resyncs: int


class OrderStats:
    """What ordering did on one stream."""

    __slots__ = ("duplicates", "gap_samples", "gaps", "gaps_capped", "reordered", "resyncs")

    def __init__(self) -> None:
        self.duplicates = 0  # media frames dropped as duplicates
        self.reordered = 0  # frames released from the reorder window
        self.gaps = 0
        self.gap_samples = 0
        self.gaps_capped = 0  # gaps cut to max_gap_samples
        self.resyncs = 0  # timeline jumps followed (forward or back)


class TrackOrder:
    """The ordering state of one track (see the module docstring for the rules)."""

    __slots__ = (
        "_anomaly",
        "_back",
        "_deliver",
        "_gap",
        "_max_gap",
        "_rate",
        "_totals",
        "_window",
        "frames",
        "jump",
        "name",
        "next_chunk",
        "next_pos",
        "pending",
        "shift",
        "stats",
        "ts0",
    )

    def __init__(
        self,
        name: str,
        *,
        shift: int,
        sample_rate: int,
        window: int,
        deliver: DeliverFn,
        gap: GapFn,
        stats: OrderStats,
        totals: OrderCounters,
        max_gap_samples: int = UNLIMITED,
        anomaly: AnomalyFn = _no_anomaly,
    ) -> None:
        self.name = name
        self.shift = shift  # log2(bytes per sample)
        self._rate = sample_rate
        self._window = window
        self._deliver = deliver
        self._gap = gap
        self.stats = stats
        self._totals = totals
        self.next_chunk = 1  # the chunk number expected next
        self.next_pos = 0  # the sample position of the next audio
        self.pending: dict[int, bytes] = {}  # held chunks ahead of next_chunk
        self.frames = 0  # frames delivered
        self.ts0: int | None = None  # first timestamp (ms), when placing by time
        self._max_gap = max_gap_samples
        # further back than this (and than the window) is a reset, not a late frame: 1 s
        self._back = sample_rate
        self._anomaly = anomaly
        #: a jumping frame waiting for the next one to confirm it: (chunk, timestamp,
        #: payload, forward)
        self.jump: tuple[int | None, int | None, bytes, bool] | None = None

    def push(self, chunk: int | None, timestamp_ms: int | None, payload: bytes) -> None:
        """Place one frame of this track: deliver it (and any it released), hold it, or
        drop it as a duplicate."""
        if chunk == self.next_chunk and not self.pending:  # in order: the common case
            pos = self.next_pos
            n = len(payload) >> self.shift
            self.next_pos = pos + n
            self.next_chunk = chunk + 1
            self.frames += 1
            self._deliver(self.name, pos, n, payload)
            return
        if chunk is None:
            self._place_by_time(timestamp_ms, payload)
            return
        ahead = chunk - self.next_chunk
        moved = ahead * (len(payload) >> self.shift)
        if moved > self._max_gap or moved < -self._back:
            self._jumped(chunk, timestamp_ms, payload, ahead > 0)
            return
        if self.jump is not None:
            self._drop_jump()
        if ahead == 0:
            self._emit(payload)
            self._release()
        elif ahead < 0 or chunk in self.pending:
            self._duplicate()
        else:
            self.pending[chunk] = payload
            if len(self.pending) > self._window:
                self._skip_missing()

    def seed(self, next_chunk: int, next_pos: int, ts0: int | None, frames: int) -> None:
        """Continue a timeline where an earlier connection of the stream left it (the
        next chunk expected, the next sample position, the first timestamp, the frames
        delivered): the new connection's frames are placed on it."""
        self.next_chunk, self.next_pos, self.ts0, self.frames = next_chunk, next_pos, ts0, frames

    def flush(self) -> None:
        """End of stream: declare every missing chunk a gap and deliver all held audio."""
        if self.jump is not None:
            self._drop_jump()
        while self.pending:
            self._skip_missing()

    # -- jumps: a lone one is dropped, two in a row move the timeline ----------------------

    def _jumped(self, chunk: int | None, ts: int | None, payload: bytes, forward: bool) -> None:
        held = self.jump
        if held is not None:
            self.jump = None
            if self._confirms(held, chunk, ts, len(payload) >> self.shift):
                self._resync(held)
                self.push(chunk, ts, payload)  # placed on the new timeline
                return
            self._count_dropped(held[3])
        self.jump = (chunk, ts, payload, forward)

    def _confirms(
        self,
        held: tuple[int | None, int | None, bytes, bool],
        chunk: int | None,
        ts: int | None,
        n: int,
    ) -> bool:
        """Does a frame (chunk, ts) follow the held jump closely, as a moved timeline would?"""
        h_chunk, h_ts = held[0], held[1]
        if h_chunk is not None and chunk is not None:
            return 0 < chunk - h_chunk <= self._window + 1
        if h_chunk is None and chunk is None and h_ts is not None and ts is not None:
            return 0 < (ts - h_ts) * self._rate // 1000 <= (self._window + 1) * n
        return False

    def _resync(self, held: tuple[int | None, int | None, bytes, bool]) -> None:
        h_chunk, h_ts, payload, _ = held
        while self.pending:  # what was held before the jump goes out first
            self._skip_missing()
        rate = self._rate
        if h_chunk is not None:
            moved = (h_chunk - self.next_chunk) * (len(payload) >> self.shift)
            self._declare_gap(moved)
            self.next_chunk = h_chunk
        else:
            assert h_ts is not None and self.ts0 is not None
            moved = (h_ts - self.ts0) * rate // 1000 - self.next_pos
            self._declare_gap(moved)
            self.ts0 = h_ts - self.next_pos * 1000 // rate
        for c in (self.stats, self._totals):
            c.resyncs += 1
        self._anomaly(self.name, "resync", moved)
        self._emit(payload)

    def _drop_jump(self) -> None:
        held = self.jump
        self.jump = None
        if held is not None:
            self._count_dropped(held[3])

    def _count_dropped(self, forward: bool) -> None:
        if forward:
            self._anomaly(self.name, "jump", 0)
        else:
            self._duplicate()

    def _emit(self, payload: bytes) -> None:
        pos = self.next_pos
        n = len(payload) >> self.shift
        self.next_pos = pos + n
        self.next_chunk += 1
        self.frames += 1
        self._deliver(self.name, pos, n, payload)

    def _release(self) -> None:
        pending = self.pending
        while self.next_chunk in pending:
            payload = pending.pop(self.next_chunk)
            self.stats.reordered += 1
            self._totals.reordered += 1
            self._emit(payload)

    def _skip_missing(self) -> None:
        # The window overflowed: the chunks before the first held one are lost.
        first = min(self.pending)
        samples_per_chunk = len(self.pending[first]) >> self.shift
        self._declare_gap((first - self.next_chunk) * samples_per_chunk)
        self.next_chunk = first
        self._release()

    def _place_by_time(self, ts: int | None, payload: bytes) -> None:
        if ts is not None:
            if self.ts0 is None:
                self.ts0 = ts
            pos = (ts - self.ts0) * self._rate // 1000
            n = len(payload) >> self.shift
            half = n // 2
            if self.frames:
                d = pos - self.next_pos
                if d > self._max_gap or d < -self._back:
                    self._jumped(None, ts, payload, d > 0)
                    return
                if self.jump is not None:
                    self._drop_jump()
                if d <= -half - n + 1:
                    self._duplicate()
                    return
                if d >= half:
                    self._declare_gap(d)
        self._emit(payload)

    def _declare_gap(self, n: int) -> None:
        if n <= 0:
            return
        if n > self._max_gap:
            for c in (self.stats, self._totals):
                c.gaps_capped += 1
            self._anomaly(self.name, "gap_capped", n)
            n = self._max_gap
        pos = self.next_pos
        self.next_pos = pos + n
        for c in (self.stats, self._totals):
            c.gaps += 1
            c.gap_samples += n
        self._gap(self.name, pos, n)

    def _duplicate(self) -> None:
        self.stats.duplicates += 1
        self._totals.duplicates += 1


class Ordering:
    """The ordering of one stream: a :class:`TrackOrder` per announced track.

    ``bytes_per_sample`` is 1 (μ-law) or 2 (L16); ``window`` is how many frames a track
    holds while waiting for a missing chunk (0: a missing chunk is a gap at once);
    ``max_gap_samples`` caps every gap and ``anomaly`` hears of jumps (module docstring).
    Counts go to :attr:`stats` and, when given, also to ``totals`` (process-wide counters).
    """

    __slots__ = ("stats", "tracks")

    def __init__(
        self,
        tracks: Iterable[str],
        *,
        bytes_per_sample: int,
        sample_rate: int,
        window: int,
        deliver: DeliverFn,
        gap: GapFn,
        totals: OrderCounters | None = None,
        max_gap_samples: int = UNLIMITED,
        anomaly: AnomalyFn = _no_anomaly,
    ) -> None:
        if bytes_per_sample not in (1, 2):
            raise ValueError(f"bytes_per_sample must be 1 or 2, not {bytes_per_sample}")
        self.stats = OrderStats()
        shift = bytes_per_sample - 1
        if totals is None:
            totals = OrderStats()
        self.tracks: dict[str, TrackOrder] = {
            name: TrackOrder(
                name,
                shift=shift,
                sample_rate=sample_rate,
                window=window,
                deliver=deliver,
                gap=gap,
                stats=self.stats,
                totals=totals,
                max_gap_samples=max_gap_samples,
                anomaly=anomaly,
            )
            for name in tracks
        }

    def push(self, track: str, chunk: int | None, timestamp_ms: int | None, payload: bytes) -> bool:
        """Place one frame; False if ``track`` was not announced (nothing happens).

        The per-frame path of a session looks the track up once in :attr:`tracks` and calls
        :meth:`TrackOrder.push` itself.
        """
        tr = self.tracks.get(track)
        if tr is None:
            return False
        tr.push(chunk, timestamp_ms, payload)
        return True

    def flush(self) -> None:
        """End of stream on every track (see :meth:`TrackOrder.flush`)."""
        for tr in self.tracks.values():
            tr.flush()
