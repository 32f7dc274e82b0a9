"""One POST of one event, and the retry policy around it (shared by both webhook modes).

:func:`post_once` sends one attempt and classifies the answer: 2xx is ``delivered``;
408, 429, 5xx and transport errors are ``retry``; anything else ``failed`` (never retried).
:func:`retry_delay` is the wait before the next attempt: exponential, jittered, at least
a ``Retry-After`` the endpoint sent, at most ``backoff_max_s``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx

from .. import __version__
from .options import WebhookOptions
from .signing import SIGNATURE_HEADER, sign

__all__ = ["RETRY_STATUS", "USER_AGENT", "Attempt", "post_once", "retry_after", "retry_delay"]

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT = f"streamserver-webhook/{__version__}"


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: ``outcome``, a ``problem`` for the log, ``retry_after_s``."""

    outcome: Literal["delivered", "retry", "failed"]
    problem: str = ""
    retry_after_s: float | None = None


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def request_headers(
    options: WebhookOptions, secret: str, event: str, delivery_id: str, body: bytes, attempt: int
) -> dict[str, str]:
    """The headers of one attempt (signed afresh each time)."""
    headers = {
        "Content-Type": "application/json",
        "X-Streamserver-Event": event,
        "X-Streamserver-Delivery": delivery_id,
        "X-Streamserver-Attempt": str(attempt),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return headers


def new_client(options: WebhookOptions) -> httpx.AsyncClient:
    """The HTTP client of a sender: the options' timeout and extra headers."""
    headers = {"User-Agent": USER_AGENT, **options.headers}
    return httpx.AsyncClient(timeout=options.timeout_s, headers=headers)


async def post_once(
    client: httpx.AsyncClient,
    options: WebhookOptions,
    secret: str,
    *,
    event: str,
    delivery_id: str,
    body: bytes,
    attempt: int,
) -> Attempt:
    """POST ``body`` once to ``options.url``; never raises for the endpoint's sake."""
    headers = request_headers(options, secret, event, delivery_id, body, attempt)
    try:
        r = await client.post(options.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Attempt("retry", f"{type(exc).__name__}: {exc}")
    if 200 <= r.status_code < 300:
        return Attempt("delivered")
    problem = f"HTTP {r.status_code}"
    if r.status_code not in RETRY_STATUS:
        return Attempt("failed", problem)
    return Attempt("retry", problem, retry_after(r.headers.get("retry-after")))


def retry_delay(options: WebhookOptions, attempt: int, retry_after_s: float | None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1 = the first)."""
    delay = min(options.backoff_max_s, options.backoff_initial_s * 2.0 ** (attempt - 1))
    delay *= random.uniform(0.8, 1.0)  # spread retries of many senders apart
    if retry_after_s is not None:
        delay = min(options.backoff_max_s, max(delay, retry_after_s))
    return delay
