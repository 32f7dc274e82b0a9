"""Argument checks shared by the REST builders and the XML builder.

Each check raises :class:`ValueError` whose message starts with the parameter's name, so a
bad value is reported before anything goes on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

STREAM_CONTENT_TYPES = (
    "audio/x-l16;rate=8000",
    "audio/x-l16;rate=16000",
    "audio/x-mulaw;rate=8000",
)
AUDIO_TRACKS = ("inbound", "outbound", "both")
METHODS = ("GET", "POST")
EXTRA_HEADERS_MAX_BYTES = 512

_ALNUM = re.compile(r"[A-Za-z0-9]+")
# Characters XML 1.0 cannot carry at all (§2.2), even escaped.
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def choice(name: str, value: str, choices: Collection[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def method(name: str, value: str) -> str:
    """An HTTP method for a callback: GET or POST (case-insensitive), upper-cased."""
    if not isinstance(value, str) or value.upper() not in METHODS:
        raise ValueError(f"{name} must be 'GET' or 'POST', got {value!r}")
    return value.upper()


def integer(name: str, value: int, lo: int | None = None, hi: int | None = None) -> int:
    """An ``int`` (not a bool) within ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "" if lo is None else f">= {lo}"
        hi_s = "" if hi is None else f"<= {hi}"
        rng = " and ".join(s for s in (lo_s, hi_s) if s)
        raise ValueError(f"{name} must be {rng}, got {value}")
    return value


def boolean(name: str, value: bool) -> bool:
    """A real ``bool``: ``"false"`` or ``0`` are refused rather than guessed at."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def text(name: str, value: str, max_len: int | None = None) -> str:
    """A non-empty string that XML 1.0 can carry, at most ``max_len`` characters."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if _XML_INVALID.search(value):
        raise ValueError(f"{name} contains a control character that XML cannot carry")
    if max_len is not None and len(value) > max_len:
        raise ValueError(f"{name} must be at most {max_len} characters, got {len(value)}")
    return value


def url(name: str, value: str, schemes: Sequence[str] = ("http", "https")) -> str:
    """An absolute URL with one of ``schemes`` and a host."""
    text(name, value)
    parts = urlsplit(value)
    if parts.scheme.lower() not in schemes or not parts.netloc or any(c.isspace() for c in value):
        want = " or ".join(f"{s}://" for s in schemes)
        raise ValueError(f"{name} must be an absolute {want} URL, got {value!r}")
    return value


def ws_url(name: str, value: str) -> str:
    """A WebSocket URL (``ws://`` or ``wss://``)."""
    return url(name, value, ("ws", "wss"))


def keys(name: str, value: str, allowed: str, *, single: bool = False) -> str:
    """DTMF keys: characters from ``allowed`` (one only if ``single``), or ``"none"``."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string of keys, got {value!r}")
    if value == "none":
        return value
    if not value or any(c not in allowed for c in value) or (single and len(value) != 1):
        what = "one of" if single else "keys from"
        raise ValueError(f"{name} must be {what} {allowed!r} or 'none', got {value!r}")
    return value


def segment(name: str, value: str | int) -> str:
    """An id that goes into a URL path: non-empty, and never a path of its own.

    An empty id would turn ``Call/{uuid}/`` into ``Call//`` — or, after normalisation, into
    the collection itself; a ``/`` or ``..`` would address another resource.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{name} must be a string, got {value!r}")
    s = str(value)
    if not s or s.strip() != s or s in (".", "..") or "/" in s or "\\" in s:
        raise ValueError(f"{name} must be a non-empty id without '/', got {value!r}")
    if _XML_INVALID.search(s) or any(ord(c) < 0x20 for c in s):
        raise ValueError(f"{name} contains a control character")
    return s


def extra_headers(name: str, value: Mapping[str, str] | str) -> str:
    """Render ``extraHeaders`` as ``k=v,k2=v2``: [A-Za-z0-9] only, at most 512 bytes."""
    if isinstance(value, str):
        pairs: list[tuple[str, str]] = []
        for item in value.split(","):
            k, sep, v = item.partition("=")
            if not sep:
                raise ValueError(f"{name} must be 'key=value' pairs separated by ',', got {item!r}")
            pairs.append((k, v))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise ValueError(f"{name} must be a dict or a 'k=v,k2=v2' string, got {value!r}")
    if not pairs:
        raise ValueError(f"{name} must not be empty")
    for k, v in pairs:
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError(f"{name} keys and values must be strings, got {k!r}={v!r}")
        if not _ALNUM.fullmatch(k) or not _ALNUM.fullmatch(v):
            raise ValueError(f"{name} keys and values must be [A-Za-z0-9]+, got {k!r}={v!r}")
    rendered = ",".join(f"{k}={v}" for k, v in pairs)
    if len(rendered.encode()) > EXTRA_HEADERS_MAX_BYTES:
        raise ValueError(
            f"{name} must be at most {EXTRA_HEADERS_MAX_BYTES} bytes, got {len(rendered)}"
        )
    return rendered


def stream_options(
    *,
    bidirectional: bool | None,
    audio_track: str | None,
    content_type: str | None,
    names: tuple[str, str, str],
) -> None:
    """The cross-field rules of a stream: a bidirectional stream only carries ``inbound``."""
    n_bidi, n_track, n_ctype = names
    if bidirectional is not None:
        boolean(n_bidi, bidirectional)
    if audio_track is not None:
        choice(n_track, audio_track, AUDIO_TRACKS)
    if bidirectional and audio_track not in (None, "inbound"):
        raise ValueError(f"{n_track} must be 'inbound' when {n_bidi} is true, got {audio_track!r}")
    if content_type is not None:
        choice(n_ctype, content_type, STREAM_CONTENT_TYPES)


def filter_time(name: str, value: str | datetime) -> str:
    """A time filter as Plivo wants it: UTC ``YYYY-MM-DD HH:MM:SS[.ffffff]``.

    A ``datetime`` must be timezone-aware: a naive one is ambiguous and would silently
    shift a filter by the local UTC offset.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")
        utc = value.astimezone(UTC)
        fmt = "%Y-%m-%d %H:%M:%S.%f" if utc.microsecond else "%Y-%m-%d %H:%M:%S"
        return utc.strftime(fmt)
    return text(name, value)
