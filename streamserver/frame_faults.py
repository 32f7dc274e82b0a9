"""A stream's bad input: what is skipped, counted and logged, and what closes the stream.

A bad frame (not JSON, bad base64, wrong types, odd-length L16, unknown track, a jumping
timeline) is counted (``frames_invalid_total{kind}``), logged once per kind per stream
(DEBUG after that) and skipped; more than ``max_invalid_frames`` closes with 1007. A text
frame that is not UTF-8 closes with 1007 at once (RFC 6455 §8.1), a binary frame on a
dialect without binary audio with 1003, a protocol violation (an event before ``start``,
an unsafe id) with 1008. None of this is on the path of a good frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from .logs import clean
from .metrics import Metrics
from .protocol.events import DTMF_DIGITS, Dtmf, Media
from .protocol.plivo import ProtocolError
from .protocol.websocket import CloseCode
from .session_config import SessionLimits

__all__ = ["FrameFaults", "is_utf8"]


def is_utf8(data: bytes) -> bool:
    """True if ``data`` is valid UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_DTMF_UPPER = frozenset(DTMF_DIGITS)
_DTMF_LOWER = frozenset(DTMF_DIGITS[12:].lower())


class FrameFaults:
    """One stream's invalid frames; ``close(code, reason)`` is the session's."""

    __slots__ = ("close", "count", "limits", "logged", "logger", "metrics", "rate")

    def __init__(
        self,
        metrics: Metrics,
        limits: SessionLimits,
        close: Callable[[int, str], None],
        logger: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.metrics = metrics
        self.limits = limits
        self.rate = 8000  # the stream's sample rate (set at start)
        self.close = close
        self.logger = logger
        self.count = 0  # invalid frames skipped so far
        #: the kinds logged at WARNING already (once per stream each)
        self.logged: set[str] = set()

    def first(self, kind: str) -> bool:
        """True the first time ``kind`` is seen on this stream (then log it loud)."""
        if kind in self.logged:
            return False
        self.logged.add(kind)
        return True

    def dtmf(self, event: Dtmf) -> Dtmf | None:
        """The event with its digit checked against the alphabet (``a-d`` as ``A-D``), or
        None: an invalid frame, counted, never an event (the digit is the network's)."""
        digit = event.digit
        if digit in _DTMF_UPPER:
            return event
        if digit in _DTMF_LOWER:
            return msgspec.structs.replace(event, digit=digit.upper())
        self.invalid("dtmf", f"dtmf digit {clean(digit, 16)!r} is not 0-9*#A-D")
        return None

    def invalid(self, kind: str, reason: str) -> None:
        """Skip an invalid frame: count, log, close after too many."""
        self.metrics.frames_invalid[kind] += 1
        self.count += 1
        if self.first(kind):
            self.logger.warning("invalid frame skipped (%s): %s", kind, reason)
        else:
            self.logger.debug("invalid frame skipped (%s): %s", kind, reason)
        if self.count > self.limits.max_invalid_frames:
            self.close(CloseCode.INVALID_DATA, f"too many invalid frames (last: {kind})")

    def violation(self, reason: str) -> None:
        """A protocol violation: close with 1008."""
        self.metrics.frames_invalid["policy"] += 1
        self.logger.warning("closing stream: %s", reason)
        self.close(CloseCode.POLICY_VIOLATION, reason)

    def undecodable(self, exc: ProtocolError, data: bytes) -> None:
        """A text frame the dialect could not decode: 1007 if not UTF-8, else skipped."""
        if not is_utf8(data):  # a text frame must be UTF-8 (RFC 6455 §8.1): 1007
            self.metrics.frames_invalid["utf8"] += 1
            self.logger.warning("closing stream: text frame is not valid UTF-8")
            self.close(CloseCode.INVALID_DATA, "text frame is not valid UTF-8")
            return
        self.invalid(exc.kind, exc.reason)

    def bad_binary(self, exc: ProtocolError) -> None:
        """A binary frame the dialect refused: 1003 if it has no binary audio, else skipped."""
        if exc.kind != "binary":
            self.invalid(exc.kind, exc.reason)
            return
        self.metrics.frames_invalid["binary"] += 1
        self.logger.warning("binary frame received; %s", exc.reason)
        self.close(CloseCode.UNSUPPORTED_DATA, "binary frames are not supported")

    def bad_media(self, media: Media, announced: bool) -> None:
        """Media on a track the start did not announce, or odd-length L16."""
        if not announced:
            self.invalid(
                "track", f"media for track {clean(media.track, 32)!r} not announced in start"
            )
        else:
            self.invalid("audio", f"L16 payload of odd length {len(media.payload)}")

    def timeline(self, track: str, kind: str, samples: int) -> None:
        """The ordering's anomaly callback (rare): a lone jumping frame is invalid input; a
        capped gap or a resync is logged once per stream (a capped gap may close: 1007)."""
        if kind == "jump":
            self.invalid("jump", f"media on {track} jumps far from its timeline; dropped")
            return
        if self.first(kind):
            self.logger.warning(
                "%s on %s: the timeline moved by %.1fs (gaps are cut to max_gap_s=%.1fs)",
                "gap capped" if kind == "gap_capped" else "timeline resynced",
                track,
                samples / self.rate,
                self.limits.max_gap_s,
            )
        if kind == "gap_capped" and self.limits.close_on_capped_gap:
            self.close(CloseCode.INVALID_DATA, "media timeline jumped beyond max_gap_s")
