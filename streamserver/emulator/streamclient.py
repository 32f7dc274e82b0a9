"""The Plivo side of an Audio Stream: a paced WebSocket client that behaves like Plivo.

:class:`PlivoStreamClient` plays the part of Plivo's media server for one call. It opens the
WebSocket (signed like Plivo when an auth token is given), sends ``start``, then the caller's
audio as ``media`` frames on an absolute 20 ms clock, DTMF digits at their time, and at the
end an optional ``stop`` and a normal close (1000). On a bidirectional stream it also plays
back what the server sends, the way the caller would hear it: ``playAudio`` is queued and
played out in real time, ``checkpoint`` is answered with ``playedStream`` once everything
queued before it has played, ``clearAudio`` drops the unplayed queue and is answered with
``clearedAudio``.

Everything that happens ends up in a :class:`StreamReport`. A refused upgrade, a server that
closes early or sends garbage is recorded there, never raised; only invalid options raise
``ValueError``. The call emulator, ``streamserver replay``, the end-to-end tests and the load
tester all use this one client.

Clocks
------
``t0`` is the ``time.monotonic()`` reading just before ``start`` is sent. Media frame ``k``
is due at ``t0 + k * frame_ms / speed``, never sent before it; a late frame is sent at once
and its lateness recorded, so delays never accumulate into drift. With ``speed=None``
frames go out as fast as the socket accepts them and no lateness is recorded.

Playback always runs in real time on ticks ``t0 + j * frame_ms``, whatever ``speed`` is: a
phone's loudspeaker does not speed up because the caller's audio was sent faster. Audio that
arrives while nothing is playing starts at the next tick (as a media server's 20 ms mixer
would), so ``heard`` sample ``j * frame_samples`` is what sounded at ``t0 + j * frame_ms``.
All times in the report are seconds since ``t0`` on that real-time clock; at ``speed=1.0``
they line up with the caller's audio.

Ending
------
After the last frame the client keeps listening for ``tail_s`` (echoes, ``playedStream``);
if audio or checkpoints are still queued for playback then, it waits for them to finish, at
most ``drain_timeout_s`` more. Then it sends ``stop`` (if ``send_stop``) and closes with 1000.
``stop`` comes last because Plivo sends it when the call is over, after which it would play
nothing more. :meth:`PlivoStreamClient.aclose` skips the waiting: the caller hung up.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
import secrets
import string
import time
import uuid
from array import array
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .. import __version__
from ..audio import PCM, AudioFormat, Resampler, resample, silence_bytes, to_int16
from ..signature import sign_headers

__all__ = [
    "PlivoStreamClient",
    "StreamClientOptions",
    "StreamReport",
    "Summary",
    "random_account_id",
]

#: Close codes that mean the stream ended normally (1005: a close frame without a code).
OK_CLOSE_CODES = frozenset({1000, 1001, 1005})

_TRACKS = {"inbound": ("inbound",), "outbound": ("outbound",), "both": ("inbound", "outbound")}
_DTMF_DIGITS = frozenset("0123456789*#ABCD")
_USER_AGENT = f"streamserver-plivo-emulator/{__version__}"

# Limits
_MAX_ERRORS = 100  # a server spamming bad frames must not grow the report without bound
_MAX_MESSAGE_BYTES = 16 * 2**20  # servers may send a whole prompt in one playAudio
_ECHO_WINDOW_S = 10.0  # sent payloads remembered for echo matching
# In speed=None mode, yield to the loop every this many ticks so received frames are handled.
_YIELD_EVERY = 16


def random_account_id() -> str:
    """A Plivo-shaped auth ID: ``MA`` followed by 18 upper-case letters and digits."""
    alphabet = string.ascii_uppercase + string.digits
    return "MA" + "".join(secrets.choice(alphabet) for _ in range(18))


def _uuid() -> str:
    return str(uuid.uuid4())


@dataclass
class StreamClientOptions:
    """What to stream and how. Only ``url`` and ``inbound`` are required.

    ``inbound`` is the caller's audio (mono; int16, or float -1..1, or 2-D frames x channels
    which is mixed down) at ``source_rate``; it is resampled to the stream's rate when they
    differ. ``tracks`` is Plivo's ``audioTrack``; ``outbound`` feeds the outbound track when
    it is streamed (silence otherwise). ``dtmf`` holds ``(seconds from start, digit)`` pairs.
    ``speed`` is 1.0 for real time, 2.0 for twice as fast, None for as fast as possible.
    """

    url: str
    inbound: Any
    source_rate: int = 8000
    content_type: str = "audio/x-mulaw;rate=8000"
    tracks: str = "inbound"
    outbound: Any | None = None
    bidirectional: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)
    dtmf: list[tuple[float, str]] = field(default_factory=list)
    speed: float | None = 1.0
    send_stop: bool = True
    call_id: str = field(default_factory=_uuid)
    stream_id: str = field(default_factory=_uuid)
    account_id: str = field(default_factory=random_account_id)
    # Signing: X-Plivo-Signature-V3 (+ nonce, + Ma-V3 with main_account_token, or auth_token
    # itself for a main account) over the URL with an http(s) scheme, as Plivo's Node SDK.
    auth_token: str | None = None
    main_account_token: str | None = None
    frame_ms: int = 20
    #: Keep the played audio in ``StreamReport.heard``; a load tester may turn it off.
    record_heard: bool = True
    on_progress: Callable[[int, int], None] | None = None
    # Timeouts (seconds)
    connect_timeout_s: float = 10.0
    tail_s: float = 0.5
    drain_timeout_s: float = 30.0
    close_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Summary:
    """Distribution of a list of milliseconds: count, mean, p50/p90/p99, max."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary | None:
        """Summarise ``values``; None when there are none."""
        a = np.fromiter(values, dtype=np.float64)
        if a.size == 0:
            return None
        p50, p90, p99 = (float(v) for v in np.percentile(a, [50, 90, 99]))
        return cls(int(a.size), float(a.mean()), p50, p90, p99, float(a.max()))

    def __str__(self) -> str:
        return (
            f"p50 {self.p50:.1f} ms  p90 {self.p90:.1f} ms  "
            f"p99 {self.p99:.1f} ms  max {self.max:.1f} ms"
        )


@dataclass
class StreamReport:
    """Everything observed during one stream. Times are seconds since the stream start."""

    url: str
    stream_id: str
    call_id: str
    content_type: str
    sample_rate: int
    tracks: tuple[str, ...]
    bidirectional: bool
    #: The WebSocket upgrade succeeded.
    connected: bool = False
    #: HTTP status of a refused upgrade.
    http_status: int | None = None
    #: Media messages (one per track per frame).
    frames_sent: int = 0
    frames_total: int = 0
    #: Bytes of every text frame sent (JSON, base64 audio included).
    bytes_sent: int = 0
    messages_sent: int = 0
    dtmf_sent: int = 0
    stop_sent: bool = False
    #: Wall-clock time from ``start`` to the end of the close.
    duration_s: float = 0.0
    #: Length of the audio the stream carries (frames x frame_ms).
    audio_s: float = 0.0
    #: Per frame tick: how late it was sent against its absolute schedule (empty for max speed).
    lateness_ms: array[float] = field(default_factory=lambda: array("d"))
    #: What the caller heard, int16 at the stream's rate: played audio at its play time.
    heard: PCM = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    played_segments: list[tuple[float, float]] = field(default_factory=list)
    #: (name, time playedStream was sent)
    checkpoints: list[tuple[str, float]] = field(default_factory=list)
    #: Times a clearAudio was received.
    cleared: list[float] = field(default_factory=list)
    #: Every server message, decoded; ``playAudio`` carries ``payload_bytes`` instead of audio.
    received_events: list[dict[str, Any]] = field(default_factory=list)
    #: Send-to-receive time of playAudio payloads identical to a sent inbound frame.
    echo_rtt_ms: list[float] = field(default_factory=list)
    closed_by_server: bool = False
    close_code: int | None = None
    close_reason: str = ""
    errors: list[str] = field(default_factory=list)
    _error_counts: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """The stream connected and ended with a normal close code."""
        return self.connected and self.close_code in OK_CLOSE_CODES

    @property
    def lateness(self) -> Summary | None:
        """Summary of ``lateness_ms``."""
        return Summary.of(self.lateness_ms)

    @property
    def echo_rtt(self) -> Summary | None:
        """Summary of ``echo_rtt_ms``."""
        return Summary.of(self.echo_rtt_ms)

    def add_error(self, message: str) -> None:
        """Record a problem. A repeated message is counted, not repeated, and the list is
        bounded, so a server sending the same bad frame 50 times a second stays readable.
        """
        seen = self._error_counts.get(message)
        if seen is not None:
            index, count = seen
            self._error_counts[message] = (index, count + 1)
            self.errors[index] = f"{message} (x{count + 1})"
        elif len(self.errors) < _MAX_ERRORS:
            self._error_counts[message] = (len(self.errors), 1)
            self.errors.append(message)
        elif len(self.errors) == _MAX_ERRORS:
            self.errors.append("... further errors not recorded")


# --- Plivo -> server frames ---------------------------------------------------------------
# Shapes per reference/plivo-audio-streams.md; ``rename="camel"`` gives the wire names.


class _MediaFormat(msgspec.Struct, rename="camel"):
    encoding: str
    sample_rate: int


class _StartBody(msgspec.Struct, rename="camel"):
    call_id: str
    stream_id: str
    account_id: str
    tracks: list[str]
    media_format: _MediaFormat


class _Start(msgspec.Struct, tag_field="event", tag="start", rename="camel"):
    sequence_number: int
    start: _StartBody
    extra_headers: str = msgspec.field(name="extra_headers")


class _MediaBody(msgspec.Struct):
    track: str
    timestamp: str
    chunk: int
    payload: bytes  # msgspec writes bytes as base64


class _Media(msgspec.Struct, tag_field="event", tag="media", rename="camel"):
    sequence_number: int
    stream_id: str
    media: _MediaBody
    extra_headers: str = msgspec.field(name="extra_headers")


class _DtmfBody(msgspec.Struct):
    digit: str
    track: str
    timestamp: str


class _Dtmf(msgspec.Struct, tag_field="event", tag="dtmf", rename="camel"):
    sequence_number: int
    stream_id: str
    dtmf: _DtmfBody
    extra_headers: str = msgspec.field(name="extra_headers")


class _PlayedStream(msgspec.Struct, tag_field="event", tag="playedStream", rename="camel"):
    sequence_number: int
    stream_id: str
    name: str


class _ClearedAudio(msgspec.Struct, tag_field="event", tag="clearedAudio", rename="camel"):
    sequence_number: int
    stream_id: str


class _StopBody(msgspec.Struct, rename="camel"):
    call_id: str
    stream_id: str
    tracks: list[str]


class _Stop(msgspec.Struct, tag_field="event", tag="stop", rename="camel"):
    sequence_number: int
    stream_id: str
    stop: _StopBody


_encode = msgspec.json.encode
_decode_any = msgspec.json.decode


# --- helpers --------------------------------------------------------------------------------


#: The client's clock. Not ``loop.time()``: uvloop's is cached per iteration and whole
#: milliseconds, too coarse for lateness and echo round trips.
_now = time.monotonic


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Sleeper:
    """Sleeps until an absolute :func:`_now` deadline, never waking before it.

    Event-loop timers are not that precise: uvloop rounds delays to whole milliseconds and
    measures them from a clock cached once per loop iteration, so a timer may fire early.
    A frame sent early or a ``playedStream`` answered early would be wrong, so an early
    wake-up sleeps again for the remainder. :meth:`wake` cuts the sleep short.
    """

    __slots__ = ("_fut", "_woken")

    def __init__(self) -> None:
        self._fut: asyncio.Future[None] | None = None
        self._woken = False

    async def until(self, when: float) -> bool:
        """Sleep until ``when``; False if :meth:`wake` ended the sleep first."""
        loop = asyncio.get_running_loop()
        while (delay := when - _now()) > 0:
            fut = self._fut = loop.create_future()
            handle = loop.call_later(delay, _resolve, fut)
            try:
                await fut
            finally:
                handle.cancel()
                self._fut = None
            if self._woken:
                self._woken = False
                return False
        return True

    def wake(self) -> None:
        if self._fut is not None:
            self._woken = True
            _resolve(self._fut)


def _http_url(ws_url: str) -> str:
    """The URL Plivo signs for an upgrade: ``http(s)://host[:port]/path[?query]``."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


class _EchoTracker:
    """Matches received playAudio payloads to inbound frames sent in the last few seconds.

    Identical payloads (silence) are matched first-in first-out, the order an echo returns.
    """

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._by_payload: dict[bytes, deque[float]] = {}
        self._order: deque[tuple[float, bytes]] = deque()

    def sent(self, payload: bytes, t: float) -> None:
        self._by_payload.setdefault(payload, deque()).append(t)
        self._order.append((t, payload))
        cutoff = t - self._window_s
        order = self._order
        while order and order[0][0] < cutoff:
            old_t, old = order.popleft()
            times = self._by_payload.get(old)
            if times and times[0] <= old_t:  # not matched yet: forget it
                times.popleft()
                if not times:
                    del self._by_payload[old]

    def match(self, payload: bytes, t: float) -> float | None:
        times = self._by_payload.get(payload)
        if not times:
            return None
        sent_at = times.popleft()
        if not times:
            del self._by_payload[payload]
        return (t - sent_at) * 1000.0


class _Playback:
    """The caller's loudspeaker: plays queued audio on the real-time tick clock.

    The queue holds int16 arrays at the stream's rate and checkpoint names (str) in arrival
    order. At tick ``j`` the audio of tick ``j - 1`` has finished sounding, so checkpoints
    reached then are answered; a checkpoint reached in the middle of a tick waits for the
    end of that tick. Answering is never early, at most one tick late.
    """

    def __init__(
        self,
        *,
        t0: float,
        rate: int,
        frame_samples: int,
        frame_s: float,
        record_heard: bool,
        report: StreamReport,
        send_played: Callable[[str], Awaitable[None]],
    ) -> None:
        self._t0 = t0
        self._sleeper = _Sleeper()
        self._rate = rate
        self._fs = frame_samples
        self._frame_s = frame_s
        self._record = record_heard
        self._report = report
        self._send_played = send_played
        self._queue: deque[PCM | str] = deque()
        self._offset = 0  # samples of the queue's head array already played
        self.queued_samples = 0
        self._free_tick = 0  # first tick at which nothing is sounding any more
        self._finishing: list[str] = []  # checkpoints reached during the sounding tick
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._heard = np.zeros(0, dtype=np.int16)
        self.heard_end = 0  # samples

    @property
    def idle(self) -> bool:
        return not self._queue and not self._finishing

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def enqueue(self, item: PCM | str) -> None:
        if not isinstance(item, str):
            if item.shape[0] == 0:
                return
            self.queued_samples += item.shape[0]
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()

    def clear(self) -> None:
        """Drop unplayed audio and unanswered checkpoints (the sounding tick plays on)."""
        self._queue.clear()
        self._offset = 0
        self.queued_samples = 0
        self._finishing.clear()
        self._idle.set()
        self._wake.set()

    def heard(self, min_samples: int) -> PCM:
        n = max(min_samples, self.heard_end)
        if not self._record:
            return np.zeros(0, dtype=np.int16)
        if self._heard.shape[0] >= n:
            return self._heard[:n].copy()
        out = np.zeros(n, dtype=np.int16)
        out[: self._heard.shape[0]] = self._heard
        return out

    async def run(self) -> None:
        """Play until cancelled; returns quietly if the connection closes."""
        with contextlib.suppress(ConnectionClosed):
            await self._run()

    async def _run(self) -> None:
        while True:
            if self.idle:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            position = (_now() - self._t0) / self._frame_s  # in ticks
            if self._free_tick <= position:
                # Nothing is sounding: what was queued before the leading checkpoints played.
                await self._answer_finishing()
                await self._answer_leading_checkpoints()
                if not self._queue:
                    continue
                tick = max(self._free_tick, math.ceil(position))
            else:
                tick = self._free_tick
            await self._sleeper.until(self._t0 + tick * self._frame_s)
            await self._answer_finishing()
            await self._play_tick(tick)

    async def _answer(self, name: str) -> None:
        self._report.checkpoints.append((name, _now() - self._t0))
        await self._send_played(name)

    async def _answer_finishing(self) -> None:
        while self._finishing:
            await self._answer(self._finishing.pop(0))

    async def _answer_leading_checkpoints(self) -> None:
        while self._queue and isinstance(self._queue[0], str):
            name = self._queue.popleft()
            assert isinstance(name, str)
            await self._answer(name)

    async def _play_tick(self, tick: int) -> None:
        fs = self._fs
        start = tick * fs
        n = 0
        queue = self._queue
        while queue and n < fs:
            head = queue[0]
            if isinstance(head, str):
                queue.popleft()
                if n == 0:
                    await self._answer(head)  # may yield: the queue can change meanwhile
                else:
                    self._finishing.append(head)
                continue
            take = min(head.shape[0] - self._offset, fs - n)
            if self._record:
                self._write(start + n, head[self._offset : self._offset + take])
            n += take
            self._offset += take
            self.queued_samples -= take
            if self._offset >= head.shape[0]:
                queue.popleft()
                self._offset = 0
        if n:
            self._free_tick = tick + 1
            self.heard_end = max(self.heard_end, start + n)
            begin, end = start / self._rate, (start + n) / self._rate
            segments = self._report.played_segments
            if segments and abs(segments[-1][1] - begin) < 0.5 / self._rate:
                segments[-1] = (segments[-1][0], end)
            else:
                segments.append((begin, end))

    def _write(self, pos: int, pcm: PCM) -> None:
        end = pos + pcm.shape[0]
        if end > self._heard.shape[0]:
            grown = np.zeros(max(end, 2 * self._heard.shape[0], 30 * self._rate), dtype=np.int16)
            grown[: self._heard.shape[0]] = self._heard
            self._heard = grown
        self._heard[pos:end] = pcm


# --- the client -----------------------------------------------------------------------------


def _validate(o: StreamClientOptions) -> tuple[AudioFormat, PCM, PCM | None]:
    """Check the options; return the stream format and the audio at the stream's rate."""
    parts = urlsplit(o.url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"url must be ws:// or wss:// with a host, got {o.url!r}")
    fmt = AudioFormat.from_content_type(o.content_type)
    if o.tracks not in _TRACKS:
        raise ValueError(f"tracks must be inbound, outbound or both, got {o.tracks!r}")
    if o.bidirectional and o.tracks != "inbound":
        raise ValueError("a bidirectional stream must use tracks='inbound' (a Plivo rule)")
    if o.speed is not None and not (math.isfinite(o.speed) and o.speed > 0):
        raise ValueError(f"speed must be a positive number or None, got {o.speed!r}")
    if o.source_rate <= 0:
        raise ValueError(f"source_rate must be positive, got {o.source_rate}")
    if o.frame_ms <= 0 or (fmt.sample_rate * o.frame_ms) % 1000:
        raise ValueError(f"frame_ms={o.frame_ms} is not a whole number of samples")
    for name in ("connect_timeout_s", "tail_s", "drain_timeout_s", "close_timeout_s"):
        value = getattr(o, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    for key, value in o.extra_headers.items():
        if not key or any(c in key for c in ";=") or ";" in value:
            raise ValueError(f"extra header {key!r}={value!r} cannot be sent as k=v;k=v")
    for at, digit in o.dtmf:
        if digit not in _DTMF_DIGITS:
            raise ValueError(f"DTMF digit must be one of 0-9 * # A-D, got {digit!r}")
        if not (math.isfinite(at) and at >= 0):
            raise ValueError(f"DTMF time must be >= 0 seconds, got {at!r}")

    def prepare(samples: Any, what: str) -> PCM:
        try:
            pcm = to_int16(samples)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what} audio: {exc}") from exc
        pcm = resample(pcm, o.source_rate, fmt.sample_rate)
        return np.ascontiguousarray(pcm)

    inbound = prepare(o.inbound, "inbound")
    outbound = None if o.outbound is None else prepare(o.outbound, "outbound")
    return fmt, inbound, outbound


class PlivoStreamClient:
    """One Plivo Audio Stream, from the Plivo side. Use :meth:`run` once.

    Raises ``ValueError`` on invalid options; everything else goes into the report.
    """

    def __init__(self, options: StreamClientOptions) -> None:
        self._o = options
        self._fmt, self._inbound, self._outbound = _validate(options)
        fmt = self._fmt
        self._rate = fmt.sample_rate
        self._frame_ms = options.frame_ms
        self._frame_s = options.frame_ms / 1000.0
        self._fs = fmt.sample_rate * options.frame_ms // 1000
        self._tracks = _TRACKS[options.tracks]
        self._silence = silence_bytes(fmt.encoding, self._fs)
        self._extra = ";".join(f"{k}={v}" for k, v in options.extra_headers.items())

        # DTMF digit at t goes right before the first frame whose timestamp is >= t.
        self._dtmf = sorted(
            (math.ceil(round(at * 1000) / self._frame_ms), round(at * 1000), digit)
            for at, digit in options.dtmf
        )
        n_audio = max(
            self._inbound.shape[0] if "inbound" in self._tracks or self._outbound is None else 0,
            0 if self._outbound is None else self._outbound.shape[0],
        )
        n_ticks = -(-n_audio // self._fs)
        if self._dtmf:
            # The caller stays on the line (silence) until its last digit has been pressed.
            n_ticks = max(n_ticks, self._dtmf[-1][0] + 1)
        self._n_ticks = n_ticks

        self._report = StreamReport(
            url=options.url,
            stream_id=options.stream_id,
            call_id=options.call_id,
            content_type=fmt.content_type,
            sample_rate=fmt.sample_rate,
            tracks=self._tracks,
            bidirectional=options.bidirectional,
            frames_total=n_ticks * len(self._tracks),
            audio_s=n_ticks * self._frame_s,
        )
        self._seq = 0
        self._state = "new"
        self._abort = asyncio.Event()
        self._finished = asyncio.Event()
        self._sleeper = _Sleeper()
        self._ws: ClientConnection | None = None
        self._t0 = 0.0
        self._playback: _Playback | None = None
        self._echo = _EchoTracker(_ECHO_WINDOW_S) if options.bidirectional else None
        self._resamplers: dict[int, Resampler] = {}
        self._close_called = False

    @property
    def report(self) -> StreamReport:
        """The report, filled in as the stream runs."""
        return self._report

    async def aclose(self) -> None:
        """Stop early, like a caller hanging up: ``stop`` (if configured), close, return."""
        self._abort.set()
        self._sleeper.wake()
        if self._state == "running":
            await self._finished.wait()

    async def run(self) -> StreamReport:
        """Connect, send ``start``, stream on the absolute clock, end, and return the report."""
        if self._state != "new":
            raise RuntimeError("PlivoStreamClient.run() can only be called once")
        self._state = "running"
        try:
            if self._abort.is_set():
                self._report.add_error("closed before the stream started")
                return self._report
            ws = await self._connect()
            if ws is not None:
                self._report.connected = True
                await self._stream(ws)
            return self._report
        finally:
            self._state = "done"
            self._finished.set()

    # --- connection ---------------------------------------------------------------------

    async def _connect(self) -> ClientConnection | None:
        o, report = self._o, self._report
        headers: dict[str, str] = {}
        if o.auth_token:
            headers = sign_headers(
                _http_url(o.url),
                o.auth_token,
                method="GET",
                main_account_token=o.main_account_token,
            )
        try:
            return await connect(
                o.url,
                additional_headers=headers,
                compression=None,  # Plivo sends base64 audio uncompressed
                open_timeout=o.connect_timeout_s,
                close_timeout=o.close_timeout_s,
                ping_interval=None,  # measuring the server, not keeping NAT state alive
                max_size=_MAX_MESSAGE_BYTES,
                user_agent_header=_USER_AGENT,
                proxy=None,  # Plivo connects directly; never via the local HTTP(S)_PROXY
            )
        except InvalidStatus as exc:
            response = exc.response
            report.http_status = response.status_code
            status = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            body = response.body.decode("utf-8", "replace").strip()[:200] if response.body else ""
            report.close_reason = status
            detail = f": {body}" if body else ""
            report.add_error(f"the server refused the WebSocket upgrade: {status}{detail}")
        except TimeoutError:
            report.add_error(f"connecting to {o.url} timed out after {o.connect_timeout_s} s")
        except OSError as exc:
            report.add_error(f"cannot connect to {o.url}: {exc}")
        except InvalidHandshake as exc:
            report.add_error(f"WebSocket handshake with {o.url} failed: {exc}")
        return None

    async def _stream(self, ws: ClientConnection) -> None:
        o, report = self._o, self._report
        self._ws = ws
        self._t0 = _now()
        if o.bidirectional:
            self._playback = _Playback(
                t0=self._t0,
                rate=self._rate,
                frame_samples=self._fs,
                frame_s=self._frame_s,
                record_heard=o.record_heard,
                report=report,
                send_played=self._send_played,
            )
        receiver = asyncio.create_task(self._receive(ws))
        player = asyncio.create_task(self._playback.run()) if self._playback else None
        cancelled = False
        try:
            try:
                await self._send(self._start_frame())
                await self._send_media()
                await self._tail(receiver)
                if o.send_stop and not receiver.done():
                    await self._send(self._stop_frame())
                    report.stop_sent = True
            except ConnectionClosed:
                pass  # the server closed: recorded below from the connection's state
            self._close_called = True
            await ws.close(1000)
            await receiver
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            for task in (player, receiver):
                if task is not None and not task.done():
                    task.cancel()
            if cancelled:
                ws.transport.abort()  # no waiting for a close handshake on cancellation
            else:
                await asyncio.gather(
                    *(t for t in (player, receiver) if t is not None), return_exceptions=True
                )
            self._finish(ws)

    def _finish(self, ws: ClientConnection) -> None:
        report = self._report
        report.duration_s = _now() - self._t0
        report.close_code = ws.close_code
        report.close_reason = ws.close_reason or ""
        protocol = ws.protocol
        report.closed_by_server = bool(protocol.close_rcvd_then_sent) or (
            protocol.close_rcvd is None and not self._close_called
        )
        code = report.close_code
        what = f"code {code}" + (f" ({report.close_reason})" if report.close_reason else "")
        if report.closed_by_server and report.frames_sent < report.frames_total:
            report.add_error(
                f"the server closed the stream early, after {report.frames_sent} of "
                f"{report.frames_total} frames: {what}"
            )
        elif code not in OK_CLOSE_CODES:
            report.add_error(f"the stream ended abnormally: {what}")
        total = self._n_ticks * self._fs
        if self._playback is not None:
            report.heard = self._playback.heard(total)
        elif self._o.record_heard:
            report.heard = np.zeros(total, dtype=np.int16)

    async def _tail(self, receiver: asyncio.Task[None]) -> None:
        """Keep listening after the last frame; let queued playback finish (bounded)."""
        if self._abort.is_set() or receiver.done():
            return
        o = self._o
        aborted = asyncio.create_task(self._abort.wait())
        waiters: list[asyncio.Task[Any]] = [aborted]
        try:
            if o.tail_s > 0:
                await asyncio.wait([receiver, aborted], timeout=o.tail_s)
            playback = self._playback
            if playback is not None and not playback.idle and not aborted.done():
                idle = asyncio.create_task(playback.wait_idle())
                waiters.append(idle)
                await asyncio.wait(
                    [receiver, aborted, idle],
                    timeout=o.drain_timeout_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            for task in waiters:
                task.cancel()

    # --- sending ------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def _send(self, data: bytes) -> None:
        # Frames are built and handed to the socket without an await in between, so
        # sequenceNumber order is wire order even with the player and receiver sending too.
        assert self._ws is not None
        self._report.bytes_sent += len(data)
        self._report.messages_sent += 1
        await self._ws.send(data, text=True)

    def _start_frame(self) -> bytes:
        o = self._o
        body = _StartBody(
            o.call_id,
            o.stream_id,
            o.account_id,
            list(self._tracks),
            _MediaFormat(self._fmt.encoding, self._rate),
        )
        return _encode(_Start(self._next_seq(), body, self._extra))

    def _stop_frame(self) -> bytes:
        o = self._o
        body = _StopBody(o.call_id, o.stream_id, list(self._tracks))
        return _encode(_Stop(self._next_seq(), o.stream_id, body))

    async def _send_played(self, name: str) -> None:
        await self._send(_encode(_PlayedStream(self._next_seq(), self._o.stream_id, name)))

    def _payload(self, pcm: PCM | None, tick: int) -> bytes:
        if pcm is None:
            return self._silence
        fs = self._fs
        start = tick * fs
        frame = pcm[start : start + fs]
        n = frame.shape[0]
        if n < fs:
            if n == 0:
                return self._silence
            padded = np.zeros(fs, dtype=np.int16)
            padded[:n] = frame
            frame = padded
        return self._fmt.encode(frame)

    async def _send_media(self) -> None:
        o, report = self._o, self._report
        stream_id, extra = o.stream_id, self._extra
        # Without outbound audio the outbound track carries silence, as the options say.
        sources: dict[str, PCM | None] = {"inbound": self._inbound, "outbound": self._outbound}
        chunks = dict.fromkeys(self._tracks, 0)
        step = self._frame_s / o.speed if o.speed is not None else 0.0
        lateness = report.lateness_ms
        dtmf = self._dtmf
        next_dtmf = 0
        echo = self._echo
        for tick in range(self._n_ticks):
            if self._abort.is_set():
                return
            if o.speed is not None:
                due = self._t0 + tick * step
                if _now() < due:
                    await self._sleeper.until(due)
                    if self._abort.is_set():
                        return
                now = _now()
                lateness.append(max(0.0, (now - due) * 1000.0))
            elif tick and tick % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let received frames and playback run
            while next_dtmf < len(dtmf) and dtmf[next_dtmf][0] <= tick:
                _, at_ms, digit = dtmf[next_dtmf]
                next_dtmf += 1
                body = _DtmfBody(digit, "inbound", str(at_ms))
                await self._send(_encode(_Dtmf(self._next_seq(), stream_id, body, extra)))
                report.dtmf_sent += 1
            timestamp = str(tick * self._frame_ms)
            for track in self._tracks:
                payload = self._payload(sources[track], tick)
                chunks[track] += 1
                if echo is not None and track == "inbound":
                    echo.sent(payload, _now())
                media = _MediaBody(track, timestamp, chunks[track], payload)
                await self._send(_encode(_Media(self._next_seq(), stream_id, media, extra)))
                report.frames_sent += 1
            if o.on_progress is not None:
                o.on_progress(report.frames_sent, report.frames_total)

    # --- receiving ----------------------------------------------------------------------

    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                now = _now()
                if not isinstance(message, str):
                    self._report.add_error(
                        f"the server sent a binary frame ({len(message)} bytes); "
                        "Plivo expects JSON text frames"
                    )
                    continue
                try:
                    await self._on_message(message, now)
                except ConnectionClosed:
                    raise
                except Exception as exc:  # task boundary: one bad frame must not end the call
                    self._report.add_error(f"failed to handle a server frame: {exc!r}")
        except ConnectionClosed:
            pass
        finally:
            # A sender waiting for its next frame finds out now, not at its next send.
            self._sleeper.wake()

    async def _on_message(self, message: str, now: float) -> None:
        report = self._report
        try:
            msg = _decode_any(message)
        except msgspec.DecodeError as exc:
            report.add_error(f"the server sent invalid JSON ({exc}): {message[:80]!r}")
            return
        if not isinstance(msg, dict):
            report.add_error(f"the server sent a JSON {type(msg).__name__}, not an object")
            return
        report.received_events.append(msg)
        event = msg.get("event")
        if event in ("playAudio", "checkpoint", "clearAudio", "sendDTMF"):
            if not self._o.bidirectional:
                report.add_error(f"{event} on a stream that is not bidirectional; Plivo ignores it")
                if event == "playAudio" and isinstance(msg.get("media"), dict):
                    msg["media"].pop("payload", None)
                return
            self._check_stream_id(msg)
        if event == "playAudio":
            self._on_play_audio(msg, now)
        elif event == "checkpoint":
            name = msg.get("name")
            if not isinstance(name, str) or not name:
                report.add_error(f"checkpoint without a name: {message[:120]!r}")
                return
            assert self._playback is not None
            self._playback.enqueue(name)
        elif event == "clearAudio":
            assert self._playback is not None
            self._playback.clear()
            report.cleared.append(now - self._t0)
            await self._send(_encode(_ClearedAudio(self._next_seq(), self._o.stream_id)))
        elif event == "sendDTMF":
            digits = msg.get("dtmf")
            if not isinstance(digits, str) or not digits or not set(digits) <= _DTMF_DIGITS:
                report.add_error(f"sendDTMF with invalid digits {digits!r}")
        elif not isinstance(event, str):
            report.add_error(f"server frame without an 'event' string: {message[:120]!r}")
        # Other events are kept in received_events and otherwise ignored, as Plivo does.

    def _check_stream_id(self, msg: dict[str, Any]) -> None:
        sid = msg.get("streamId")
        if sid is not None and sid != self._o.stream_id:
            self._report.add_error(
                f"{msg.get('event')} for streamId {sid!r}, but this stream is {self._o.stream_id!r}"
            )

    def _on_play_audio(self, msg: dict[str, Any], now: float) -> None:
        report = self._report
        media = msg.get("media")
        if not isinstance(media, dict):
            report.add_error("playAudio without a media object")
            return
        payload = media.pop("payload", None)  # keep the recorded event small
        fmt = self._play_format(media)
        if fmt is None:
            return
        if not isinstance(payload, str):
            report.add_error("playAudio without a base64 payload string")
            return
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            report.add_error(f"playAudio payload is not valid base64: {exc}")
            return
        media["payload_bytes"] = len(raw)
        try:
            pcm = fmt.decode(raw)
        except ValueError as exc:
            report.add_error(f"playAudio payload rejected: {exc}")
            return
        if self._echo is not None:
            rtt = self._echo.match(raw, now)
            if rtt is not None:
                report.echo_rtt_ms.append(rtt)
        if fmt.sample_rate != self._rate:
            resampler = self._resamplers.get(fmt.sample_rate)
            if resampler is None:
                # "QQ": sample-by-sample output, so resampling adds no playback latency.
                resampler = Resampler(fmt.sample_rate, self._rate, quality="QQ")
                self._resamplers[fmt.sample_rate] = resampler
            pcm = resampler.process(pcm)
        assert self._playback is not None
        self._playback.enqueue(pcm)

    def _play_format(self, media: dict[str, Any]) -> AudioFormat | None:
        report = self._report
        content_type = media.get("contentType")
        rate = media.get("sampleRate")
        if isinstance(rate, str) and rate.isdigit():
            rate = int(rate)
        if not isinstance(content_type, str) or type(rate) is not int:
            report.add_error(
                f"playAudio needs media.contentType (string) and media.sampleRate (integer), "
                f"got {content_type!r} and {rate!r}"
            )
            return None
        encoding, _, params = content_type.partition(";")
        try:
            fmt = AudioFormat(encoding.strip().lower(), rate)
            if params and AudioFormat.from_content_type(content_type) != fmt:
                raise ValueError(f"contentType {content_type!r} contradicts sampleRate {rate}")
        except ValueError as exc:
            report.add_error(f"playAudio rejected: {exc}")
            return None
        return fmt
