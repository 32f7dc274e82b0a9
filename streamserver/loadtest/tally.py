"""What the load generator counts: per-window samples, per-stream outcomes, process totals.

The :class:`~streamserver.loadtest.engine.Engine` fills these in (its streams and its pacer
add to the counters directly, once per frame); they cross the process boundary pickled, and
the collector, measure and verify read them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from .stats import Sparse

__all__ = ["EngineResult", "StreamRecord", "Window", "count_errors", "generalise"]


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
    #: Stream start sent -> the server's first audio received (one value per stream).
    first_audio: Sparse = field(default_factory=Sparse.empty)
    #: The caller's speech onset sent -> the server's clear received (bot profile).
    barge_in: Sparse = field(default_factory=Sparse.empty)
    #: Playout ticks with an empty buffer so far (cumulative, like the counters above).
    underruns: int = 0


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
    #: What the caller heard: start sent -> first audio (None: no audio came), playout
    #: ticks with an empty buffer, the longest run of them and the playout time.
    first_audio_ms: float | None = None
    underruns: int = 0
    longest_silence_ms: float = 0.0
    playout_s: float = 0.0
    #: frames below ``frames_sent`` that were never sent (frame faults' drops)
    lost: list[int] = field(default_factory=list)


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
    # What the caller heard (see playout.py and bargein.py)
    underruns: int = 0
    checkpoints: int = 0
    clears: int = 0
    dtmf_sent: int = 0
    barge_in_missed: int = 0
    unexpected_clears: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    #: Seconds since run_t0: all streams open / first stream ended / last stream ended.
    t_all_open: float | None = None
    t_first_done: float | None = None
    t_end: float = 0.0
    cpu_s: float = 0.0

    def count_error(self, message: str) -> None:
        """Count one error of kind ``message``."""
        errors = self.errors
        errors[message] = errors.get(message, 0) + 1


def generalise(message: str) -> str:
    """Errors counted by kind: drop per-stream numbers so 1,000 alike streams make one line."""
    return re.sub(r"after \d+ frames", "after N frames", message)


def count_errors(results: list[EngineResult]) -> dict[str, int]:
    """Merge the error counts of several processes."""
    total: Counter[str] = Counter()
    for r in results:
        total.update(r.errors)
    return dict(total.most_common())
