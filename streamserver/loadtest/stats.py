"""Latency histograms that merge across windows and processes.

Per frame the load generator only appends a float to an ``array('d')`` (tens of
nanoseconds). Once per window the values are binned (0.1 ms bins up to 10 s) into a sparse
histogram that pickles small, merges by addition and answers percentiles, so the merged
result of K processes is the same as if one process had seen every value.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["BIN_MS", "Histogram", "LatencySummary", "Sparse", "sparse_of"]

#: Width of one histogram bin in milliseconds (the resolution of every percentile).
BIN_MS = 0.1
_N_BINS = 100_001  # 0 .. 10 s; the last bin collects everything longer


@dataclass(frozen=True, slots=True)
class Sparse:
    """A histogram's non-empty bins, plus exact count, sum and max of the values."""

    bins: tuple[int, ...]
    counts: tuple[int, ...]
    count: int
    total: float
    max: float

    @classmethod
    def empty(cls) -> Sparse:
        return cls((), (), 0, 0.0, 0.0)


def sparse_of(values: array[float]) -> Sparse:
    """Bin ``values`` (milliseconds; negatives count as 0)."""
    if not values:
        return Sparse.empty()
    a = np.frombuffer(values, dtype=np.float64)
    a = np.maximum(a, 0.0)
    idx = np.minimum((a * (1.0 / BIN_MS)).astype(np.int64), _N_BINS - 1)
    # bincount, not unique: no sort, so binning 100k values takes well under a millisecond.
    dense = np.bincount(idx)
    bins = np.flatnonzero(dense)
    return Sparse(
        tuple(bins.tolist()),
        tuple(dense[bins].tolist()),
        int(a.size),
        float(a.sum()),
        float(np.max(a)),
    )


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Distribution of milliseconds: count, mean, p50/p90/p99/p99.9, max."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    p999: float
    max: float

    def __str__(self) -> str:
        return f"p50 {self.p50:.1f}  p90 {self.p90:.1f}  p99 {self.p99:.1f}  max {self.max:.1f} ms"


class Histogram:
    """A mergeable histogram of milliseconds with 0.1 ms bins."""

    __slots__ = ("_counts", "count", "max", "total")

    def __init__(self) -> None:
        self._counts: npt.NDArray[np.int64] | None = None
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, s: Sparse) -> None:
        """Merge a sparse histogram into this one."""
        if not s.count:
            return
        if self._counts is None:
            self._counts = np.zeros(_N_BINS, dtype=np.int64)
        np.add.at(self._counts, np.asarray(s.bins, dtype=np.int64), np.asarray(s.counts))
        self.count += s.count
        self.total += s.total
        self.max = max(self.max, s.max)

    def merge(self, other: Histogram) -> None:
        """Add every value of ``other``."""
        if other._counts is None:
            return
        if self._counts is None:
            self._counts = np.zeros(_N_BINS, dtype=np.int64)
        self._counts += other._counts
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100): the upper edge of the bin it falls in, capped
        at the exact maximum, so a reported p99 is never below the true one by a bin."""
        if self._counts is None or not self.count:
            return 0.0
        rank = max(1, int(np.ceil(self.count * q / 100.0)))
        cum = np.cumsum(self._counts)
        i = int(np.searchsorted(cum, rank))
        return min((i + 1) * BIN_MS, self.max)

    def summary(self) -> LatencySummary | None:
        """None when empty."""
        if not self.count:
            return None
        p = self.percentile
        return LatencySummary(
            self.count, self.total / self.count, p(50), p(90), p(99), p(99.9), self.max
        )
