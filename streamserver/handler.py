"""The plugin API: :class:`Handler`, :class:`StreamContext`, and loading handlers by name.

A handler is one object per stream. The session feeds it through its own bounded, ordered,
coalescing input and runs its hooks on its own task, so a slow or failing handler never
stalls the socket or the other handlers of the stream::

    class Loudness(Handler):
        async def on_audio(self, chunk: AudioChunk) -> None:
            rms = float(np.sqrt(np.mean(chunk.samples.astype(np.float32) ** 2)))
            self.ctx.logger.debug("rms %.0f at sample %d", rms, chunk.position)

Hooks: ``on_start``, ``on_audio``, ``on_dtmf``, ``on_event`` (gaps, playedStream,
clearedAudio, unknown events...), ``on_stop`` (always called, once, with a
:class:`StopReason`). Handlers are loaded by entry-point name (group
``streamserver.handlers``) or as ``module:Class``; per-handler options come from config
and are validated against the handler's ``Options`` struct at start-up.

A :class:`StreamContext` reaches its stream only through the small :class:`StreamControl`
protocol (the session implements it), so this module knows nothing of sessions, runners or
sockets.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, Protocol, get_args, get_origin, get_type_hints

import msgspec
import numpy as np

from .audio import AudioFormat
from .handler_values import AudioChunk, BusEvent, Gap, PlaybackEvent, StopReason
from .protocol.events import Dtmf, Event

__all__ = [
    "ENTRY_POINT_GROUP",
    "AudioChunk",
    "BusEvent",
    "Gap",
    "Handler",
    "HandlerFailure",
    "HandlerLoadError",
    "HandlerSpec",
    "NotBidirectionalError",
    "PlaybackEvent",
    "StopReason",
    "StreamContext",
    "StreamControl",
    "installed_handlers",
    "load_handler",
]

ENTRY_POINT_GROUP = "streamserver.handlers"


class HandlerLoadError(Exception):
    """A handler name or its options could not be resolved (a configuration error)."""


class HandlerFailure(Exception):
    """An expected failure a handler explains in its message (disk full, a service down):
    the runner logs it as one line, without a traceback, and switches the handler off for
    that stream like any other exception.

    ``close_reason`` is what the peer is told (a few words, at most 123 bytes, nothing
    private) when the handler is one the route cannot do without (``required_handlers``):
    such a failure closes the stream with 1011 and this reason.
    """

    def __init__(self, message: str, *, close_reason: str = "") -> None:
        super().__init__(message)
        self.close_reason = close_reason


class NotBidirectionalError(RuntimeError):
    """Playback was requested on a stream whose route is not bidirectional."""


class StreamControl(Protocol):
    """What a :class:`StreamContext` needs of its stream; the session implements it.

    Playback methods are only called for bidirectional streams (the context checks).
    """

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        """Resample ``pcm`` from ``rate`` to the stream's format and send it."""

    async def play_encoded(self, payload: bytes) -> None:
        """Send encoded audio; wait while the socket's write buffer is full."""

    def play_encoded_nowait(self, payload: bytes) -> None:
        """Send encoded audio without waiting."""

    def checkpoint(self, name: str) -> asyncio.Future[bool]:
        """Send a checkpoint; the future tells whether the audio before it was played."""

    def clear(self) -> None:
        """Drop the provider's queued playback."""

    def send_dtmf(self, digits: str) -> None:
        """Play DTMF tones into the call."""

    def play_refused(self, what: str) -> None:
        """A handler called ``what`` (``play``, ``checkpoint``, ...) on a one-way stream
        (the stream doctor reports it, once)."""

    def publish(self, event: BusEvent) -> None:
        """Deliver ``event`` to every handler of the stream except its source."""

    def count(self, handler: str, event: str, n: int) -> None:
        """Add ``n`` to the handler-defined counter ``(handler, event)``."""

    def wakeup(self, handler: Handler) -> None:
        """Run ``handler.on_wakeup`` soon on the handler's task."""

    def summary(self) -> dict[str, Any]:
        """Live counters of the stream."""


class StreamContext:
    """What a handler may see and do for its stream.

    Ids (``call_id``, ``stream_id``, ``account_id``), the media ``format`` and ``tracks``, the
    parsed ``extra_headers``, the connect URL's ``path`` and ``query``, a per-stream
    ``logger``, and for bidirectional streams :meth:`play`, :meth:`checkpoint`,
    :meth:`clear` and :meth:`send_dtmf`.
    """

    #: Like :meth:`play_encoded`, without waiting for a full write buffer (for
    #: ``on_audio_nowait``); a socket that stays unwritable for ``send_timeout_s`` is closed.
    #: On a bidirectional stream this is the stream's own method (the per-frame path of an
    #: echo or a bot, with no check in between); otherwise it raises
    #: :class:`NotBidirectionalError`.
    play_encoded_nowait: Callable[[bytes], None]

    def __init__(
        self,
        control: StreamControl,
        *,
        call_id: str,
        stream_id: str,
        account_id: str,
        format: AudioFormat,
        tracks: tuple[str, ...],
        extra_headers: Mapping[str, str],
        path: str,
        query: Mapping[str, str],
        route: str,
        bidirectional: bool,
        logger: logging.LoggerAdapter[logging.Logger],
        provider: str = "plivo",
        resumed: Mapping[str, int] | None = None,
        connection: int = 1,
    ) -> None:
        self._control = control
        #: the provider dialect of the stream: plivo, twilio, telnyx, exotel or vonage
        self.provider = provider
        self.call_id = call_id
        self.stream_id = stream_id
        self.account_id = account_id
        self.format = format
        self.tracks = tracks
        self.extra_headers = dict(extra_headers)
        self.path = path
        self.query = dict(query)
        self.route = route
        self.bidirectional = bidirectional
        self.logger = logger
        #: Where each track of an earlier connection of this stream left off (sample
        #: positions); empty for a new stream. A resumed stream's audio continues from
        #: there (see :mod:`streamserver.resume`).
        self.resumed: dict[str, int] = dict(resumed or {})
        #: Which connection of the stream this is: 1, then 2 after the first reconnect.
        self.connection = connection
        self.play_encoded_nowait = (
            control.play_encoded_nowait if bidirectional else self._play_encoded_refused
        )

    @property
    def sample_rate(self) -> int:
        return self.format.sample_rate

    def stats(self) -> dict[str, Any]:
        """Live counters of the stream: frames, gaps, duplicates, handler drops..."""
        return self._control.summary()

    def _require_bidirectional(self, what: str = "play") -> None:
        if not self.bidirectional:
            self._control.play_refused(what)
            raise NotBidirectionalError(
                f"this {self.provider} stream on route {self.route!r} is not bidirectional; "
                "set bidirectional = true for the route and open the stream two-way "
                '(Plivo: <Stream bidirectional="true">, Twilio: <Connect><Stream>; see '
                "docs/providers.md)"
            )

    async def play(self, pcm: np.ndarray, rate: int | None = None) -> None:
        """Queue ``pcm`` (int16, or float in -1..1) for the caller, at ``rate`` Hz.

        The audio is resampled to the stream's rate, encoded in its format and sent as
        ``playAudio`` frames of 20 ms. Waits only if the socket's write buffer is full.
        """
        self._require_bidirectional()
        await self._control.play(pcm, rate or self.format.sample_rate)

    async def play_encoded(self, payload: bytes) -> None:
        """Send audio already encoded in the stream's format (e.g. forwarded bytes)."""
        self._require_bidirectional("play_encoded")
        await self._control.play_encoded(payload)

    def _play_encoded_refused(self, payload: bytes) -> None:
        self._require_bidirectional("play_encoded_nowait")

    def checkpoint(self, name: str) -> asyncio.Future[bool]:
        """Send a checkpoint after the audio queued so far.

        The future resolves to True when the provider reports it played (``playedStream``),
        and to False when the audio before it was cleared or the stream ended first.
        """
        self._require_bidirectional("checkpoint")
        return self._control.checkpoint(name)

    def clear(self) -> None:
        """Drop all queued, unplayed audio on the provider side (barge-in)."""
        self._require_bidirectional("clear")
        self._control.clear()

    def send_dtmf(self, digits: str) -> None:
        """Play DTMF tones into the call.

        Raises :class:`~streamserver.protocol.neutral.NotSupported` (a ``ValueError``) on
        providers whose streams cannot send DTMF (all but Plivo).
        """
        self._require_bidirectional("send_dtmf")
        self._control.send_dtmf(digits)

    def count(self, handler: str, event: str, n: int = 1) -> None:
        """Add ``n`` to the server-wide counter ``streamserver_handler_events_total{handler,
        event}`` (e.g. webhooks delivered, utterances dropped). Use few distinct names."""
        self._control.count(handler, event, n)

    def publish(self, topic: str, data: Any = None, *, source: str = "user") -> None:
        """Publish on the stream's event bus: every handler of this stream except the
        source receives a :class:`BusEvent` in ``on_event``, in order with its audio."""
        self._control.publish(BusEvent(topic, data, source))

    def wakeup(self, handler: Handler) -> None:
        """Ask for ``handler.on_wakeup()`` to run soon on its task (see :meth:`Handler.wakeup`)."""
        self._control.wakeup(handler)

    def __repr__(self) -> str:
        return f"<StreamContext call={self.call_id} stream={self.stream_id} route={self.route}>"


class Handler:
    """Base class for stream handlers. Override the hooks you need; all are optional.

    One instance serves one stream. ``Options`` may be set to a ``msgspec.Struct`` subclass
    describing the handler's config table; it is validated when the server starts, and the
    instance receives the parsed value as ``self.options``.
    """

    #: Options struct type; ``None`` means the handler takes no options.
    Options: ClassVar[type[msgspec.Struct] | None] = None
    #: Max audio (seconds) waiting in this handler's input before the oldest is dropped.
    max_queue_s: ClassVar[float] = 10.0

    def __init__(self, ctx: StreamContext, options: Any = None) -> None:
        self.ctx = ctx
        self.options = options

    #: Set by the session: this handler's name in the route (entry point or module:Class).
    name: str = ""

    @classmethod
    def preflight(cls, options: Any) -> None:
        """Check at start-up, once per configured handler, what it needs (a writable
        directory, ...); raise an exception with a clear message and the server refuses to
        start (exit code 2). Runs before the event loop serves: blocking I/O is fine."""

    @classmethod
    def taps_playback(cls, options: Any) -> bool:
        """Whether this handler (with these options) wants a :class:`PlaybackEvent` for
        everything the server plays back (asked once per stream; when no handler of a
        route asks, playback costs nothing more)."""
        return False

    @classmethod
    def unready(cls, options: Any) -> str | None:
        """Why new streams would fail now (e.g. "record_dir ...: disk full"), else None.
        Asked on every ``GET /readyz`` (503 with the reason): answer from memory, never
        block."""
        return None

    def count(self, event: str, n: int = 1) -> None:
        """Count ``event`` in ``streamserver_handler_events_total`` under this handler."""
        self.ctx.count(self.name or type(self).__name__, event, n)

    def publish(self, topic: str, data: Any = None) -> None:
        """Publish on the stream's event bus to the other handlers of this stream."""
        self.ctx.publish(topic, data, source=self.name or type(self).__name__)

    async def on_start(self) -> None:
        """The stream started; ``self.ctx`` is complete."""

    async def on_audio(self, chunk: AudioChunk) -> None:
        """Audio of one track, in order. Chunks may be coalesced when the handler lags."""

    def on_audio_nowait(self, chunk: AudioChunk) -> None:
        """Optional synchronous fast path for audio.

        A handler that overrides this gets every chunk here, inline on the receive path,
        *instead of* ``on_audio``: no queue and no task switch, which matters with thousands
        of streams. It must return quickly and never block — buffer the samples, forward the
        bytes (``ctx.play_encoded_nowait``) — and leave slow work to :meth:`on_wakeup`,
        requested with :meth:`wakeup`. An exception switches the handler off for the stream,
        as in any hook. Other events still arrive through the queue.
        """

    def wakeup(self) -> None:
        """Ask for :meth:`on_wakeup` to run soon on this handler's task (idempotent until it
        runs). Meant for ``on_audio_nowait`` handing slow work (disk, network) to the task."""
        self.ctx.wakeup(self)

    async def on_wakeup(self) -> None:
        """Runs on the handler's task after :meth:`wakeup`."""

    def on_playback_nowait(self, event: PlaybackEvent) -> None:
        """Optional synchronous fast path for playback events (handlers that tap
        playback): inline, in order with ``on_audio_nowait`` audio, instead of
        ``on_event``. Same rules as ``on_audio_nowait``: return quickly, never block."""

    async def on_dtmf(self, dtmf: Dtmf) -> None:
        """A DTMF digit from the caller."""

    async def on_event(self, event: Gap | BusEvent | PlaybackEvent | Event) -> None:
        """Anything else: :class:`Gap`, :class:`BusEvent`, ``PlayedStream``,
        ``ClearedAudio``, ``Unknown``, :class:`PlaybackEvent` (if it taps playback)..."""

    async def on_stop(self, reason: StopReason) -> None:
        """The stream ended. Always called exactly once, also after errors."""


@dataclass(frozen=True)
class HandlerSpec:
    """A resolved handler: its name, class and validated options."""

    name: str
    cls: type[Handler]
    options: Any = None
    raw_options: Mapping[str, Any] = field(default_factory=dict)

    def create(self, ctx: StreamContext) -> Handler:
        handler = self.cls(ctx, self.options)
        handler.name = self.name
        return handler


def installed_handlers() -> list[str]:
    """The names of the handlers installed under the ``streamserver.handlers`` entry points."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def _resolve(name: str) -> type[Handler]:
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise HandlerLoadError(f"cannot import module {module_name!r}: {exc}") from exc
        obj: Any = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise HandlerLoadError(f"module {module_name!r} has no {attr!r}") from None
    else:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            known = sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
            raise HandlerLoadError(
                f"unknown handler {name!r}; installed handlers: {', '.join(known) or 'none'} "
                "(or use 'package.module:ClassName')"
            )
        try:
            obj = found[0].load()
        except Exception as exc:
            raise HandlerLoadError(f"handler {name!r} failed to load: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, Handler)):
        raise HandlerLoadError(f"{name!r} is not a streamserver.handler.Handler subclass")
    return obj


def _valid_values(options: type, exc: msgspec.ValidationError) -> str:
    """``" (valid: 'wav', 'flac')"`` when ``exc`` is an invalid enum value of a field."""
    match = re.match(r"Invalid enum value .* - at `\$\.([\w.]+)`$", str(exc))
    if match is None:
        return ""
    typ: Any = options
    for part in match.group(1).split("."):
        try:
            typ = get_type_hints(typ).get(part)
        except TypeError:
            return ""
    if isinstance(typ, type) and issubclass(typ, enum.Enum):
        values = [m.value for m in typ]
    elif get_origin(typ) is Literal:
        values = list(get_args(typ))
    else:
        return ""
    return f" (valid: {', '.join(repr(v) for v in values)})"


def load_handler(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    defaults: Callable[[type[Handler]], Mapping[str, Any]] | None = None,
) -> HandlerSpec:
    """Resolve ``name`` (entry point or ``module:Class``) and validate its options.

    Raises :class:`HandlerLoadError` naming the handler and the bad key.
    """
    cls = _resolve(name)
    raw = dict(defaults(cls) if defaults else {})
    raw.update(options or {})
    parsed: Any = None
    if cls.Options is not None:
        try:
            parsed = msgspec.convert(raw, cls.Options, strict=False)
        except msgspec.ValidationError as exc:
            msg = str(exc).replace("`$.", f"`handler.{name}.") + _valid_values(cls.Options, exc)
            raise HandlerLoadError(f"handler {name!r} options: {msg}") from None
    elif raw:
        raise HandlerLoadError(f"handler {name!r} takes no options, got {sorted(raw)}")
    return HandlerSpec(name, cls, parsed, raw)
