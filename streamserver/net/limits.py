"""What one connection may cost: the ``[server]`` limits a :class:`~.connection.Connection`
enforces, and the small per-connection budgets behind them.

Every limit here guards the process against one peer: a client that never reads (its
output buffer), one that floods pings, one that sends a message in a million fragments,
one that opens a socket and sends nothing (the header timeout).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FD_HEADROOM", "HEALTH_RESERVE", "ConnectionLimits", "PingBudget", "raise_fd_limit"]


@dataclass(frozen=True)
class ConnectionLimits:
    """The limits of one connection (``[server]`` keys of the same names)."""

    #: Bytes queued for a peer (pongs, echoes, playback) before it is cut off: reading
    #: stops, and it is closed with 1008 unless it drains within ``send_grace_s``.
    max_send_buffer_bytes: int = 1 << 20
    #: How long a connection over ``max_send_buffer_bytes`` may take to drain.
    send_grace_s: float = 5.0
    #: Pings answered per second (a bucket of that many); the rest are read, not answered
    #: (RFC 6455 §5.5.3 lets an endpoint answer only the latest ping).
    max_pings_per_s: float = 10.0
    #: Fragments of one message (§5.4); more fails the connection with 1009.
    max_fragments: int = 1024
    #: The whole HTTP request head must arrive within this (0: never cut off).
    header_timeout_s: float = 10.0


class PingBudget:
    """A token bucket of ``rate`` pongs per second, ``rate`` at most at once."""

    __slots__ = ("_at", "_rate", "_tokens")

    def __init__(self, rate: float, now: float) -> None:
        self._rate = rate
        self._tokens = rate
        self._at = now

    def take(self, now: float) -> bool:
        """May one more ping be answered at ``now`` (seconds, monotonic)?"""
        tokens = min(self._rate, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


#: Connections beyond max_pending_connections that may still ask for /healthz, /readyz or
#: /metrics (anything else gets 503), so a flood never blinds the operator.
HEALTH_RESERVE = 16
#: File descriptors kept free beyond streams and pending connections (logs, the control
#: app, recordings' files, the writer thread).
FD_HEADROOM = 256


def raise_fd_limit(needed: int) -> tuple[int, int]:
    """Raise ``RLIMIT_NOFILE``'s soft limit to the hard one; ``(soft, hard)`` after it.

    ``needed`` is only compared by the caller (a warning when it is over the soft limit).
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard
