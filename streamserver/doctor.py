"""The stream doctor: the misconfigurations users lose days to, said out loud.

Each finding is one WARNING line (once per stream per kind), a count in
``streamserver_doctor_total{kind}`` and a bus event ``doctor.<kind>`` delivered to the
stream's handlers (``BusEvent.data`` is a dict with ``message`` and the details). The kinds:

- ``one_way_play``: a handler plays audio (or sends a checkpoint, clear or DTMF) on a stream
  that cannot carry audio back: the caller hears silence. The message says how to open the
  stream bidirectional for that provider (:data:`BIDIRECTIONAL_FIX`).
- ``duplicate_stream``: a second socket started with a stream id that is live already, or
  a call id that is live already on the same route (a repeated ``<Stream>``, a retry).
- ``format_mismatch``: the start event's media format is not the route's ``expect_format``.
- ``silence``: no inbound audio for ``[session] doctor_silence_s`` while the socket stays
  open (checked in the session's ``tick``, never per frame).

Pure per-stream logic: no sockets, no asyncio.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .audio import AudioFormat
from .handler import BusEvent
from .metrics import Metrics
from .protocol.events import Start
from .protocol.neutral import EXOTEL, PLIVO, TELNYX, TWILIO, VONAGE

__all__ = [
    "BIDIRECTIONAL_FIX",
    "DUPLICATE_STREAM",
    "FORMAT_MISMATCH",
    "KINDS",
    "ONE_WAY_PLAY",
    "SILENCE",
    "Doctor",
    "provider_bidirectional",
]

ONE_WAY_PLAY = "one_way_play"
DUPLICATE_STREAM = "duplicate_stream"
FORMAT_MISMATCH = "format_mismatch"
SILENCE = "silence"
KINDS = (ONE_WAY_PLAY, DUPLICATE_STREAM, FORMAT_MISMATCH, SILENCE)

#: How to open a stream that can carry audio back, per provider.
BIDIRECTIONAL_FIX = {
    PLIVO: 'use <Stream bidirectional="true"> (one track: inbound) and keep the route '
    "bidirectional = true",
    TWILIO: "use <Connect><Stream> (bidirectional), not <Start><Stream> (listen-only), and "
    "keep the route bidirectional = true",
    TELNYX: 'start the stream with stream_bidirectional_mode="rtp" (and a '
    "stream_bidirectional_codec) and keep the route bidirectional = true",
    EXOTEL: "use the Voicebot applet (bidirectional), not the Stream applet (listen-only), "
    "and keep the route bidirectional = true",
    VONAGE: "Vonage websockets are always bidirectional: set the route bidirectional = true",
}


def provider_bidirectional(provider: str, start: Start) -> bool | None:
    """Whether the provider itself says the stream can carry audio back (None: it does not
    say; the route decides).

    Vonage websockets are always two-way. Twilio's bidirectional streams
    (``<Connect><Stream>``) carry the inbound track alone: a start announcing the outbound
    track is a listen-only ``<Start><Stream>``.
    """
    if provider == VONAGE:
        return True
    if provider == TWILIO and "outbound" in start.tracks:
        return False
    return None


class Doctor:
    """One stream's findings: :meth:`report` logs, counts and publishes each kind once.

    ``publish`` delivers a bus event to the stream's handlers (the session's ``publish``).
    The session's hooks: :meth:`examine` at start, :meth:`watch` in its ``tick``,
    :meth:`release` at its end (and :meth:`one_way_play` from its handlers' contexts).
    """

    __slots__ = (
        "_publish",
        "live_keys",
        "logger",
        "media_at",
        "media_mark",
        "metrics",
        "provider",
        "seen",
    )

    def __init__(
        self,
        metrics: Metrics,
        publish: Callable[[BusEvent], None],
        logger: logging.LoggerAdapter[logging.Logger],
        provider: str = PLIVO,
        *,
        now: float = 0.0,
    ) -> None:
        self.metrics = metrics
        self._publish = publish
        self.logger = logger
        self.provider = provider
        self.seen: set[str] = set()
        #: the stream's keys in ``Metrics.live_ids`` (set by :meth:`examine`)
        self.live_keys: tuple[str, ...] = ()
        self.media_mark = 0  # media frames at the last watch that saw some
        self.media_at = now  # time.monotonic() of that watch

    def examine(
        self,
        fmt: AudioFormat,
        expected: AudioFormat | None,
        route: str,
        ids: tuple[str, str],
        logger: logging.LoggerAdapter[logging.Logger],
        provider: str,
        took_over: bool = False,
    ) -> None:
        """The checks at start: the route's format, ids already live (then counted live;
        ``took_over``: this stream just replaced a live session of the same ids)."""
        self.logger = logger
        self.provider = provider
        if expected is not None and expected != fmt:
            self.format_mismatch(fmt.content_type, expected.content_type, route)
        sid, cid = ids
        if took_over:
            self.duplicate("stream id", sid, took_over=True)
        live = self.metrics.live_ids
        self.live_keys = keys = (f"s:{sid}", f"c:{route}:{cid}")
        for key, what, value in zip(keys, ("stream id", "call id"), (sid, cid), strict=True):
            if live[key]:
                self.duplicate(what, value)
            live[key] += 1

    def watch(self, now: float, media_frames: int, silence_s: float) -> None:
        """In the session's tick: a silence finding after ``silence_s`` without media."""
        if media_frames != self.media_mark:
            self.media_mark = media_frames
            self.media_at = now
        elif now - self.media_at > silence_s:
            self.silence(now - self.media_at)

    def release(self) -> None:
        """The stream ended: its ids are no longer live."""
        live = self.metrics.live_ids
        for key in self.live_keys:
            live[key] -= 1
            if live[key] <= 0:
                del live[key]
        self.live_keys = ()

    def report(self, kind: str, message: str, **details: Any) -> bool:
        """Report a finding; False (and nothing done) if this kind was reported already."""
        if kind in self.seen:
            return False
        self.seen.add(kind)
        self.metrics.doctor[kind] += 1
        self.logger.warning("stream doctor (%s): %s", kind, message)
        data = {"kind": kind, "provider": self.provider, "message": message, **details}
        self._publish(BusEvent(f"doctor.{kind}", data, "doctor"))
        return True

    def one_way_play(self, what: str, route: str) -> None:
        """A handler tried to ``what`` (play, checkpoint, ...) on a one-way stream."""
        fix = BIDIRECTIONAL_FIX.get(self.provider, "open the stream bidirectional")
        self.report(
            ONE_WAY_PLAY,
            f"a handler called {what} but this {self.provider} stream on route {route!r} is "
            f"one-way: the caller hears silence; {fix}",
            what=what,
            fix=fix,
        )

    def format_mismatch(self, got: str, expected: str, route: str) -> None:
        """The stream's media format is not the route's ``expect_format``."""
        self.report(
            FORMAT_MISMATCH,
            f"media format {got} on route {route!r}, which expects {expected}: check the "
            f"{self.provider} stream's content type / codec settings",
            got=got,
            expected=expected,
        )

    def silence(self, seconds: float) -> None:
        """No inbound audio for ``seconds`` while the socket is open."""
        self.report(
            SILENCE,
            f"no inbound audio for {seconds:.1f}s while the socket stays open (muted or "
            "held call, a track that is not sent, or a provider-side stall)",
            seconds=seconds,
        )

    def duplicate(self, what: str, value: str, *, took_over: bool = False) -> None:
        """Another live stream holds the same id (``took_over``: this one replaced it)."""
        then = "; the newer socket took the stream over" if took_over else ""
        self.report(
            DUPLICATE_STREAM,
            f"a second socket arrived for {what} {value}, which is already live (a repeated "
            f"<Stream>, a provider retry, or two streams where one was meant){then}",
            id_kind=what,
            id=value,
            took_over=took_over,
        )
