"""The worst event-loop lag of the last few ticks, for scrapers that read once a second.

The server's ticker measures how late its timer fired twice a second. A gauge of only the
latest tick hides a stall from a scraper that reads between two later ticks; this keeps
each tick's lag for ``window_s`` and gives the worst, so a scrape at least once per window
sees every stall (at most twice: once in each of two consecutive scrapes).

Pure: no clock of its own, the caller passes the time of each tick.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RECENT_LAG_S", "RecentMax"]

#: How long a tick's lag stays in ``event_loop_lag_recent_max_seconds``: longer than the
#: load tester's (and a typical fast Prometheus) scrape interval of 1 s.
RECENT_LAG_S = 1.5


class RecentMax:
    """The largest value seen in the last ``window_s`` (by the times given to :meth:`add`)."""

    __slots__ = ("_items", "_window")

    def __init__(self, window_s: float = RECENT_LAG_S) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, not {window_s!r}")
        self._window = window_s
        self._items: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float) -> float:
        """Record ``value`` at time ``now`` (never earlier than the last) and return the
        largest value of the window ending at ``now``."""
        items = self._items
        # Values smaller than the new one can never be the maximum again: drop them (a
        # monotone queue, so the front is always the window's maximum).
        while items and items[-1][1] <= value:
            items.pop()
        items.append((now, value))
        horizon = now - self._window
        while items[0][0] <= horizon:
            items.popleft()
        return items[0][1]
