"""How Plivo writes values: ids, times, money, phone numbers and resource URIs.

Time formats:

- CDR and most objects: ``2017-05-22 17:49:40+05:30`` (Plivo reports in IST);
- recording ``add_time``: the same with microseconds;
- live call ``session_start``: UTC, microseconds, no offset.
"""

from __future__ import annotations

import math
import secrets
import uuid
from datetime import UTC, datetime, timedelta, timezone

__all__ = [
    "CALL_RATE",
    "IST",
    "STREAM_RATE",
    "add_time",
    "amount",
    "billed_seconds",
    "cdr_time",
    "digits",
    "new_api_id",
    "new_uuid",
    "resource_uri",
    "session_time",
]

#: Plivo writes CDR times in India Standard Time.
IST = timezone(timedelta(hours=5, minutes=30))

#: Per-minute rates the emulator bills (strings, 5 decimals, as Plivo sends them).
CALL_RATE = "0.00850"
STREAM_RATE = "0.00300"


def new_uuid() -> str:
    """A random UUID string (call, request, stream and recording ids)."""
    return str(uuid.uuid4())


def new_api_id() -> str:
    """A time-based UUID like Plivo's ``api_id`` values, with a random node (no MAC leak)."""
    return str(uuid.uuid1(node=secrets.randbits(48) | 0x010000000000))


def cdr_time(ts: float | None) -> str | None:
    """``2017-05-22 17:49:40+05:30``, or None for a missing time."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, IST).isoformat(sep=" ", timespec="seconds")


def add_time(ts: float) -> str:
    """``2014-08-05 16:15:15.852059+05:30`` (recording ``add_time``)."""
    return datetime.fromtimestamp(ts, IST).isoformat(sep=" ", timespec="microseconds")


def session_time(ts: float) -> str:
    """``2017-05-22 13:17:49.050872`` (UTC, as live calls' ``session_start``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def amount(seconds: int, rate: str) -> str:
    """Cost of ``seconds`` billed per started minute at ``rate`` per minute, 5 decimals."""
    return f"{math.ceil(seconds / 60) * float(rate):.5f}"


def billed_seconds(seconds: int) -> int:
    """Seconds rounded up to whole minutes, as Plivo bills them."""
    return math.ceil(seconds / 60) * 60


def digits(number: str) -> str:
    """A phone number without its leading ``+``, for comparisons."""
    return number.lstrip("+")


def resource_uri(auth_id: str, *parts: str) -> str:
    """``/v1/Account/{auth_id}/part/.../``: a ``resource_uri`` as Plivo writes it."""
    return "/v1/Account/" + "/".join([auth_id, *parts]) + "/"
