"""Retry policy and client-side rate limiting (pure: no I/O, the caller sleeps)."""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["RateLimit", "RetryPolicy", "TokenBucket", "parse_retry_after"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before repeating a failed request.

    Requests are repeated after a 429, a 500/502/503/504 or a transport error (connection
    failure, reset, timeout) — and only when repeating them cannot do something twice:
    GET, DELETE and the POSTs that set a state (see the package docs). Creating a call
    (``POST Call/``) is repeated only with ``retry_on_post_call=True`` or ``retry=True`` on
    that call, because a 5xx or a timeout may come after Plivo already dialled.

    The wait before retry *n* (0-based) is "full jitter": uniform in
    ``[0, min(backoff_max_s, backoff_base_s * 2**n)]``. A ``Retry-After`` header wins over
    the backoff; when it asks for more than ``max_retry_after_s`` the error is raised at once
    instead, so a caller is never parked for minutes without knowing.
    """

    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    retry_on_post_call: bool = False
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("RetryPolicy.max_retries must be >= 0")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("RetryPolicy backoff_base_s and backoff_max_s must be >= 0")
        if self.max_retry_after_s < 0:
            raise ValueError("RetryPolicy.max_retry_after_s must be >= 0")

    def backoff_s(self, retry_index: int, jitter: float) -> float:
        """Wait before retry ``retry_index`` (0-based); ``jitter`` is uniform in [0, 1)."""
        # Cap the exponent: 2**1000 overflows a float long before it matters.
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** min(retry_index, 62))
        return ceiling * jitter


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Client-side request budget: at most ``requests`` per ``per_s`` seconds.

    The default matches Plivo's account limit (300 requests per 5 s). Requests beyond the
    budget wait for a token instead of being sent and rejected with 429. Every attempt
    takes a token — retries, downloads and call creation included (Plivo counts calls
    against a separate calls-per-second limit, so this errs on the safe side).
    """

    requests: int = 300
    per_s: float = 5.0

    def __post_init__(self) -> None:
        if self.requests < 1:
            raise ValueError("RateLimit.requests must be >= 1")
        if not self.per_s > 0:
            raise ValueError("RateLimit.per_s must be > 0")


class TokenBucket:
    """Token bucket that hands out reservations: each call returns how long to wait.

    A reservation may drive the balance below zero; the debt is the queue. That makes the
    bucket fair (first come, first served) without a loop or a lock held while sleeping.
    """

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self._capacity = float(limit.requests)
        self._rate = limit.requests / limit.per_s
        self._clock = clock
        self._tokens = self._capacity
        self._stamp = clock()

    def reserve(self) -> float:
        """Take one token; return the seconds to wait before using it (0.0 if none)."""
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate) - 1.0
        if self._tokens >= 0.0:
            return 0.0
        return -self._tokens / self._rate


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (RFC 9110 §10.2.3), or ``None``.

    Accepts delta-seconds (``"3"``, and leniently ``"1.5"``) and HTTP dates; a date in the
    past means 0. Anything unparsable means the header is ignored.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
