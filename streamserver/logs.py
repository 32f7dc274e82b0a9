"""Logging set-up: readable text lines or one JSON object per line.

Per-stream loggers carry ``call_id`` and ``stream_id``; both formats show them when set.

Strings from the network (a DTMF digit, a track name, a callback's ``CallUUID``) go through
:func:`clean` where they are logged: control characters are escaped, so a newline cannot
start a forged line, and the length is bounded. The text formatter escapes what is left in
the message as a second line of defence (JSON lines escape by construction).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LogBudget", "clean", "setup_logging"]

#: Characters that could end or rewrite a log line: C0 controls, DEL, C1 controls and the
#: Unicode line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def clean(value: object, limit: int = 120) -> str:
    """``value`` as a string that is safe in a text log line: control characters escaped
    (``\\n``, ``\\x1b``, ...), cut to ``limit`` characters with the number left off.

    For what the network sent (digits, track names, ids, callback fields); ``None`` is
    ``"-"``. Cheap when there is nothing to do: one regex search.
    """
    if value is None:
        return "-"
    text = value if isinstance(value, str) else str(value)
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    if _UNSAFE.search(text) is not None:
        text = _UNSAFE.sub(_escape, text)
    return f"{text}...(+{cut} chars)" if cut > 0 else text


class LogBudget:
    """A budget of log lines per kind, so a flood of events writes a summary, not a line each.

    The first ``burst`` lines of a kind in every ``interval_s`` are logged; the rest are
    counted (in ``counter[kind]`` too, when given) and reported as one "suppressed" line
    with the next line of that kind after the interval, or by :meth:`flush` (a stream's
    end). Kinds are chosen by the code, never by the network, so their number is bounded.
    """

    __slots__ = ("_burst", "_clock", "_counter", "_interval", "_kinds")

    def __init__(
        self,
        burst: int = 5,
        interval_s: float = 60.0,
        *,
        counter: dict[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = burst
        self._interval = interval_s
        self._counter = counter
        self._clock = clock
        self._kinds: dict[str, list[float]] = {}  # kind -> [window start, logged, suppressed]

    def log(self, logger: _Logger, level: int, kind: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``kind`` is over its budget; True when logged."""
        now = self._clock()
        st = self._kinds.get(kind)
        if st is None:
            st = self._kinds[kind] = [now, 0, 0]
        elif now - st[0] >= self._interval:
            self._report(logger, level, kind, st, now)
            st[0], st[1] = now, 0
        if st[1] < self._burst:
            st[1] += 1
            logger.log(level, msg, *args)
            return True
        st[2] += 1
        if self._counter is not None:
            self._counter[kind] = self._counter.get(kind, 0) + 1
        return False

    def flush(self, logger: _Logger, level: int = logging.INFO) -> None:
        """Report every kind's suppressed lines now."""
        now = self._clock()
        for kind, st in self._kinds.items():
            self._report(logger, level, kind, st, now)

    @staticmethod
    def _report(logger: _Logger, level: int, kind: str, st: list[float], now: float) -> None:
        if st[2]:
            logger.log(
                level, "%d more %s line(s) suppressed in %.0fs", int(st[2]), kind, now - st[0]
            )
            st[2] = 0


_Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

_STD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        ids = ""
        stream_id = getattr(record, "stream_id", None)
        if stream_id and stream_id != "-":
            ids = f" [{stream_id[:8]}]"
        msg = record.getMessage()
        if _UNSAFE.search(msg) is not None:
            msg = _UNSAFE.sub(_escape, msg)  # one record is one line, whatever slipped through
        line = f"{ts}.{int(record.msecs):03d} {record.levelname:<7} {record.name}{ids}: {msg}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STD and not key.startswith("_") and value not in (None, "-"):
                doc[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # websockets logs every connection at INFO; our own start/stop lines say more.
    logging.getLogger("websockets").setLevel(
        logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    )
