"""``X-Streamserver-Signature``: HMAC-SHA256 over ``"{t}." + body`` (pure)."""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SIGNATURE_HEADER", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Streamserver-Signature"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Streamserver-Signature`` value for ``body``: ``t=<unix>,v1=<hex>``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """Check a ``X-Streamserver-Signature`` header against the raw request ``body``.

    True when one ``v1`` value matches and ``t`` is within ``tolerance_s`` of ``now``.
    """
    try:
        parts = [p.split("=", 1) for p in header.split(",")]
        t = int(next(v for k, v in parts if k.strip() == "t"))
        macs = [v.strip() for k, v in parts if k.strip() == "v1"]
    except (ValueError, StopIteration):
        return False
    current = time.time() if now is None else now
    if abs(current - t) > tolerance_s:
        return False
    want = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(want, m) for m in macs)
