"""Events out and commands in over NATS: the server's side and a client for other services.

Subjects (``prefix`` defaults to ``streamserver``)::

    {prefix}.events.{call_id}.{kind}    JSON events, captured by the JetStream stream
                                        STREAMSERVER_EVENTS ({prefix}.events.>)
    {prefix}.cmd.{call_id}              request/reply, answered by the process holding the call

Server side: :class:`Bus` owns one NATS connection (:class:`BusConnection`) shared by an
:class:`EventPublisher` and a :class:`CommandServer`. Nothing here ever makes the media loop
wait: :meth:`EventPublisher.publish` is a plain function that appends to a bounded backlog;
a background task sends it to JetStream and waits for the acks, so an event is dropped only
when the backlog is full (counted, and logged once per outage). While NATS is unreachable —
at start or later — the connection keeps retrying and the backlog keeps the events in order
until it returns. Each event carries a ``Nats-Msg-Id``, so a publish retried after a lost
ack is stored once.

Client side: :class:`BusClient` reads events through an ordered JetStream consumer (a
consumer that starts late still sees what the stream holds, in order) and sends commands.

This module imports nats-py; nothing else in the package imports it unless ``[bus] url`` is
set, so the default server runs without a NATS anywhere.

Exceptions::

    BusError
    ├── CallNotFoundError     no process holds the call (NATS's no-responders answer)
    ├── CommandError          the process holding the call refused the command
    └── BusUnavailableError   NATS cannot be reached or did not answer in time
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import itertools
import logging
import os
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

import msgspec
import nats
import nats.errors
import nats.js.errors
import numpy as np
import soundfile as sf
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    Header,
    StorageType,
    StreamConfig,
)

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_STREAM",
    "Bus",
    "BusClient",
    "BusConnection",
    "BusError",
    "BusSettings",
    "BusUnavailableError",
    "CallEvent",
    "CallNotFoundError",
    "CommandError",
    "CommandServer",
    "CommandTarget",
    "EventPublisher",
    "cmd_subject",
    "decode_wav",
    "encode_wav",
    "event_subject",
    "subject_token",
]

log = logging.getLogger("streamserver.bus")

DEFAULT_PREFIX = "streamserver"
DEFAULT_STREAM = "STREAMSERVER_EVENTS"
ACTIONS = ("play", "checkpoint", "clear", "send_dtmf", "stop")


class BusError(Exception):
    """Root of this module's errors."""


class CallNotFoundError(BusError):
    """No process on the bus holds a stream of ``call_id`` (NATS answered no-responders)."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"no live stream of call {call_id!r} on the bus")
        self.call_id = call_id


class CommandError(BusError):
    """The process holding the call answered ``{"ok": false, "error": ...}``."""

    def __init__(self, call_id: str, action: str, error: str) -> None:
        super().__init__(f"{action} on call {call_id!r} failed: {error}")
        self.call_id = call_id
        self.action = action
        self.error = error


class BusUnavailableError(BusError):
    """NATS could not be reached, or did not answer within the timeout."""


# -- settings and subjects --------------------------------------------------------------------


class BusSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[bus]`` table. ``url`` empty means no bus at all (the default).

    Identity: ``host`` (default the machine's host name) and ``worker`` (default the process
    id) go into every event. Limits: ``backlog`` events wait in memory while NATS is slow or
    down (beyond that new events are dropped and counted); ``window`` events are in flight
    to JetStream at once. Times are in seconds.
    """

    url: str = ""
    prefix: str = DEFAULT_PREFIX
    stream: str = DEFAULT_STREAM
    host: str = msgspec.field(default_factory=socket.gethostname)
    worker: str = msgspec.field(default_factory=lambda: str(os.getpid()))
    # Limits
    backlog: int = 10_000
    window: int = 256
    #: JetStream keeps events this long (0 = forever) and at most this many bytes (-1 = no cap).
    max_age_s: float = 86_400.0
    max_bytes: int = -1
    # Timeouts
    connect_timeout_s: float = 2.0
    reconnect_wait_s: float = 1.0
    ack_timeout_s: float = 5.0
    #: How long a checkpoint command may wait for the audio before it to play.
    checkpoint_timeout_s: float = 300.0

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> BusSettings:
        """Build from a raw ``[bus]`` table; ``ValueError`` names the key that is wrong."""
        try:
            return msgspec.convert(dict(table), cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ValueError(f"[bus] {exc}".replace("`$.", "`bus.")) from None

    def __post_init__(self) -> None:
        if self.url and not re.match(r"(nats|tls|ws|wss)://", self.url):
            raise ValueError(f"url {self.url!r} must start with nats://, tls://, ws:// or wss://")
        if not all(_TOKEN.fullmatch(t) for t in self.prefix.split(".")):
            raise ValueError(f"prefix {self.prefix!r} must be subject tokens ([A-Za-z0-9_-.])")
        if not _TOKEN.fullmatch(self.stream):
            raise ValueError(f"stream {self.stream!r} is not a valid JetStream stream name")
        if self.backlog < 1 or self.window < 1:
            raise ValueError("backlog and window must be at least 1")
        if min(self.connect_timeout_s, self.reconnect_wait_s, self.ack_timeout_s) <= 0:
            raise ValueError("connect_timeout_s, reconnect_wait_s and ack_timeout_s must be > 0")


_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def subject_token(value: str) -> str:
    """``value`` as one NATS subject token: characters other than ``A-Za-z0-9_-`` (dots,
    wildcards, spaces) become ``_``. The event body keeps the exact id."""
    return _NOT_TOKEN.sub("_", value) or "_"


def event_subject(prefix: str, call_id: str, kind: str) -> str:
    """``{prefix}.events.{call_id}.{kind}``; ``kind`` may be dotted (``stream.started``)."""
    kind_tokens = ".".join(subject_token(t) for t in kind.split("."))
    return f"{prefix}.events.{subject_token(call_id)}.{kind_tokens}"


def cmd_subject(prefix: str, call_id: str) -> str:
    """``{prefix}.cmd.{call_id}``."""
    return f"{prefix}.cmd.{subject_token(call_id)}"


# -- audio in commands ------------------------------------------------------------------------


def encode_wav(pcm: np.ndarray, rate: int) -> bytes:
    """Mono 16-bit WAV bytes of ``pcm`` (int16, or float in -1..1)."""
    buf = io.BytesIO()
    data = np.asarray(pcm)
    if data.ndim != 1:
        raise ValueError(f"pcm must be mono (one dimension), got shape {data.shape}")
    sf.write(buf, data, int(rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()


def decode_wav(wav: bytes) -> tuple[np.ndarray, int]:
    """Samples (int16, mono: channels are averaged) and rate of a WAV file's bytes."""
    try:
        data, rate = sf.read(io.BytesIO(wav), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise ValueError(f"not a readable WAV file: {exc}") from None
    if data.shape[1] > 1:
        data = data.mean(axis=1).astype(np.int16)
    else:
        data = data[:, 0]
    return np.ascontiguousarray(data), int(rate)


# -- the connection ---------------------------------------------------------------------------


class BusConnection:
    """One NATS connection that never gives up: :meth:`start` returns at once and connects
    in the background, retrying every ``reconnect_wait_s`` for as long as it takes, and
    nats-py reconnects (and restores subscriptions) after a loss.

    Owners register :meth:`on_connect` hooks, run after the first connect and every
    reconnect (the event stream is re-ensured there, pending subscriptions made).
    """

    def __init__(self, settings: BusSettings) -> None:
        if not settings.url:
            raise ValueError("bus.url is empty: no NATS server to connect to")
        self.settings = settings
        self.nc = NatsClient()
        self.js: JetStreamContext = self.nc.jetstream(timeout=settings.ack_timeout_s)
        self._connected = asyncio.Event()
        self._hooks: list[Callable[[], Awaitable[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._error_logged = False
        self.connects = 0

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self.nc.is_connected

    def on_connect(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` after every (re)connect; also now, if already connected."""
        self._hooks.append(hook)
        if self.connected:
            self._run_hooks()

    async def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._connect(), name="bus-connect")

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Wait until connected; False after ``timeout_s``."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _connect(self) -> None:
        s = self.settings
        try:
            await self._connect_once()
        except Exception:
            # A task boundary: nats-py retries unreachable servers itself (forever), so
            # what ends up here is a configuration problem.
            log.exception("bus: cannot connect to NATS at %s; no events are sent", _safe_url(s.url))

    async def _connect_once(self) -> None:
        s = self.settings
        await self.nc.connect(
            s.url,
            name=f"streamserver {s.host}/{s.worker}",
            connect_timeout=s.connect_timeout_s,  # type: ignore[arg-type]  # float works
            reconnect_time_wait=s.reconnect_wait_s,  # type: ignore[arg-type]
            max_reconnect_attempts=-1,  # also retries the first connect, forever
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self.connects += 1
        log.info("connected to NATS at %s", _safe_url(s.url))
        self._error_logged = False
        self._connected.set()
        self._run_hooks()

    def _run_hooks(self) -> None:
        async def run() -> None:
            for hook in list(self._hooks):
                try:
                    await hook()
                except Exception:
                    # A task boundary: a failing hook (NATS dropped again...) runs again at
                    # the next reconnect; the others still run.
                    log.warning("bus: on-connect step failed; retried on reconnect", exc_info=True)

        task = asyncio.create_task(run(), name="bus-on-connect")
        self._hook_tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._hook_tasks.discard)

    async def _on_error(self, exc: Exception) -> None:
        if not self._error_logged and not self._closed:
            self._error_logged = True
            log.warning(
                "NATS at %s: %s; retrying every %.1f s (events wait in a backlog meanwhile)",
                _safe_url(self.settings.url),
                exc or type(exc).__name__,
                self.settings.reconnect_wait_s,
            )

    async def _on_disconnected(self) -> None:
        self._connected.clear()
        if not self._closed:
            log.warning("lost the NATS connection to %s", _safe_url(self.settings.url))

    async def _on_reconnected(self) -> None:
        self.connects += 1
        self._error_logged = False
        log.info("reconnected to NATS at %s", _safe_url(self.settings.url))
        self._connected.set()
        self._run_hooks()

    async def aclose(self) -> None:
        """Close the connection (and stop connecting)."""
        self._closed = True
        self._connected.clear()
        for task in (self._task, *self._hook_tasks):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        with contextlib.suppress(Exception):
            await self.nc.close()


def _safe_url(url: str) -> str:
    # Never log credentials in nats://user:pass@host.
    return re.sub(r"//[^@/]*@", "//***@", url)


async def ensure_stream(js: JetStreamContext, settings: BusSettings) -> None:
    """Create the JetStream stream capturing ``{prefix}.events.>`` if missing; add the
    subject to an existing stream of that name that lacks it."""
    subject = f"{settings.prefix}.events.>"
    try:
        info = await js.stream_info(settings.stream)
    except nats.js.errors.NotFoundError:
        await _add_stream(js, settings, subject)
        return
    subjects = list(info.config.subjects or [])
    if subject not in subjects:
        info.config.subjects = [*subjects, subject]
        await js.update_stream(info.config)
        log.info("added %s to JetStream stream %s", subject, settings.stream)


async def _add_stream(js: JetStreamContext, settings: BusSettings, subject: str) -> None:
    try:
        await js.add_stream(
            StreamConfig(
                name=settings.stream,
                description="streamserver call events",
                subjects=[subject],
                storage=StorageType.FILE,
                discard=DiscardPolicy.OLD,
                max_age=settings.max_age_s or None,
                max_bytes=settings.max_bytes,
                # Publishes retried after a lost ack are stored once (Nats-Msg-Id).
                duplicate_window=120.0,
            )
        )
    except nats.js.errors.BadRequestError:
        # Another process created it a moment ago (with other settings): it exists, which
        # is all we need; a stream that truly cannot be made fails again here.
        await js.stream_info(settings.stream)
        return
    log.info("created JetStream stream %s for %s", settings.stream, subject)


# -- events out -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    subject: str
    payload: bytes
    msg_id: str


def _enc_hook(obj: Any) -> Any:
    # numpy scalars and the like; anything else as text rather than failing the caller.
    item = getattr(obj, "item", None)
    return item() if callable(item) else str(obj)


class EventPublisher:
    """Publishes call events to JetStream without ever making the caller wait.

    :meth:`publish` encodes the event and appends it to a bounded in-memory backlog; a
    background task sends the backlog in order, up to ``window`` publishes in flight, and
    removes an event only when JetStream acknowledged it. While NATS is down the backlog
    holds up to ``backlog`` events; further ones are dropped, counted in ``dropped`` and
    logged once per outage.
    """

    def __init__(self, conn: BusConnection) -> None:
        self.conn = conn
        self.settings = s = conn.settings
        self._backlog: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._stream_ready = False
        self._task: asyncio.Task[None] | None = None
        self._boot = secrets.token_hex(6)
        self._seq = itertools.count(1)
        self._encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
        self._base = {"host": s.host, "worker": s.worker}
        self._drop_logged = False
        self._closing = False
        # Counters
        self.published = 0
        self.dropped = 0
        self.failed = 0
        conn.on_connect(self._on_connect)

    @property
    def backlog(self) -> int:
        """Events waiting to be acknowledged."""
        return len(self._backlog)

    def stats(self) -> dict[str, int]:
        """Counters for metrics: published, dropped (backlog full), failed (refused by the
        server), backlog (waiting now)."""
        return {
            "published": self.published,
            "dropped": self.dropped,
            "failed": self.failed,
            "backlog": len(self._backlog),
        }

    def publish(
        self,
        call_id: str,
        kind: str,
        data: Mapping[str, Any] | None = None,
        *,
        stream_id: str = "",
        provider: str = "",
    ) -> bool:
        """Queue event ``kind`` of ``call_id``; never blocks, never raises for NATS' sake.

        The JSON body is ``{"id", "kind", "call_id", "stream_id", "provider", "host",
        "worker", "time", "data"}``. Returns False when the event was dropped because the
        backlog is full (or the publisher is closed).
        """
        if self._closing or len(self._backlog) >= self.settings.backlog:
            self._drop()
            return False
        msg_id = f"{self._boot}-{next(self._seq)}"
        body = {
            "id": msg_id,
            "kind": kind,
            "call_id": call_id,
            "stream_id": stream_id,
            "provider": provider,
            **self._base,
            "time": time.time(),
            "data": data if data is not None else {},
        }
        payload = self._encoder.encode(body)
        self._backlog.append(
            _Pending(event_subject(self.settings.prefix, call_id, kind), payload, msg_id)
        )
        if not self._wakeup.is_set():
            self._wakeup.set()
        return True

    def _drop(self) -> None:
        self.dropped += 1
        if not self._drop_logged:
            self._drop_logged = True
            log.error(
                "bus: event backlog full (%d events, NATS %s): dropping new events until it "
                "drains; see the dropped counter",
                self.settings.backlog,
                "connected" if self.conn.connected else "unreachable",
            )

    async def start(self) -> None:
        """Start the background sender (the connection is started by its owner)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bus-events")

    async def _on_connect(self) -> None:
        # A fresh server may have lost the stream: check it again after every reconnect.
        self._stream_ready = False
        self._wakeup.set()

    async def wait_sent(self, timeout_s: float | None = None) -> bool:
        """Wait until the backlog is empty; False after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._backlog:
            if deadline is not None and time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def _run(self) -> None:
        while True:
            if not self._backlog:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            wait_s = self.settings.reconnect_wait_s
            if not self.conn.connected:
                await self.conn.wait_connected(wait_s)
                continue
            if not self._stream_ready:
                try:
                    await ensure_stream(self.conn.js, self.settings)
                except (nats.errors.Error, OSError, TimeoutError) as exc:
                    log.warning("bus: JetStream stream %s: %s", self.settings.stream, exc)
                    await asyncio.sleep(wait_s)
                    continue
                self._stream_ready = True
            try:
                await self._send_window()
            except nats.js.errors.NoStreamResponseError:
                # The stream vanished (deleted, or a server with a fresh store), or
                # JetStream is still starting: check it again shortly.
                self._stream_ready = False
                await asyncio.sleep(min(0.1, self.settings.reconnect_wait_s))
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                # Connection trouble: keep everything, retry once it is back.
                log.debug("bus: publish interrupted (%s); retrying", exc)
                await asyncio.sleep(min(0.1, self.settings.reconnect_wait_s))

    async def _send_window(self) -> None:
        batch = list(itertools.islice(self._backlog, self.settings.window))
        js = self.conn.js
        futures: list[asyncio.Future[Any]] = []
        try:
            for item in batch:
                futures.append(
                    await js.publish_async(
                        item.subject, item.payload, headers={Header.MSG_ID.value: item.msg_id}
                    )
                )
            deadline = time.monotonic() + self.settings.ack_timeout_s
            for item, fut in zip(batch, futures, strict=False):
                try:
                    await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))
                except nats.js.errors.NoStreamResponseError:
                    raise
                except nats.js.errors.APIError as exc:
                    # Refused for good (too large, ...): retrying would block the rest.
                    self.failed += 1
                    log.error("bus: JetStream refused %s: %s", item.subject, exc)
                else:
                    self.published += 1
                self._backlog.popleft()  # == item: only this task removes, in order
                if self._drop_logged and len(self._backlog) < self.settings.backlog // 2:
                    self._drop_logged = False
                    log.warning("bus: event backlog draining; %d dropped so far", self.dropped)
        finally:
            for fut in futures:
                if not fut.done():
                    fut.cancel()

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Send what is waiting (up to ``timeout_s``), then stop; what is left is counted
        as dropped."""
        self._closing = True
        if self._backlog and self.conn.connected:
            await self.wait_sent(timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._backlog:
            log.warning("bus: %d events not sent at shutdown", len(self._backlog))
            self.dropped += len(self._backlog)
            self._backlog.clear()


# -- commands in ------------------------------------------------------------------------------


class CommandTarget(Protocol):
    """What a command acts on: one live, bidirectional stream (the session implements it).

    ``play`` may wait while the socket's write buffer is full; ``checkpoint`` queues the
    mark at once and returns an awaitable that resolves to True when the audio before it
    played (False when it was cleared or the stream ended); the others act at once.
    """

    async def play(self, pcm: np.ndarray, rate: int) -> None: ...

    def checkpoint(self, name: str) -> Awaitable[bool]: ...

    def clear(self) -> None: ...

    def send_dtmf(self, digits: str) -> None: ...

    async def stop(self) -> None: ...


class CommandServer:
    """Answers ``{prefix}.cmd.{call_id}`` for the calls this process holds.

    :meth:`add` when a stream starts (subscribes; deferred while NATS is unreachable),
    :meth:`remove` when it stops (unsubscribes, so a request for the call gets NATS's
    no-responders answer). Commands of one call run in the order they arrive; a checkpoint's
    reply waits for its audio without holding up the commands after it (a ``clear``).

    Requests are JSON ``{"action": "play", "audio_b64": <WAV bytes, base64>}``,
    ``{"action": "checkpoint", "name": ...}``, ``{"action": "clear"}``,
    ``{"action": "send_dtmf", "digits": ...}``, ``{"action": "stop"}``; replies
    ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.
    """

    def __init__(self, conn: BusConnection) -> None:
        self.conn = conn
        self.settings = conn.settings
        self._targets: dict[str, CommandTarget] = {}
        self._subs: dict[str, Subscription] = {}
        self._waiting: set[asyncio.Task[None]] = set()
        self.handled = 0
        self.refused = 0
        conn.on_connect(self._subscribe_all)

    @property
    def calls(self) -> list[str]:
        """The calls this server answers for."""
        return list(self._targets)

    async def add(self, call_id: str, target: CommandTarget) -> None:
        """Answer commands for ``call_id`` from now on (replaces an earlier target)."""
        self._targets[call_id] = target
        if self.conn.connected and call_id not in self._subs:
            with contextlib.suppress(nats.errors.Error, OSError):
                await self._subscribe(call_id)

    async def remove(self, call_id: str, target: CommandTarget | None = None) -> None:
        """Stop answering for ``call_id`` (only if ``target`` is still its target).

        Does not wait for the server: a command racing the end of the call may time out
        instead of getting no-responders."""
        if target is not None and self._targets.get(call_id) is not target:
            return
        self._targets.pop(call_id, None)
        sub = self._subs.pop(call_id, None)
        if sub is not None:
            with contextlib.suppress(nats.errors.Error, OSError):
                await sub.unsubscribe()

    async def _subscribe(self, call_id: str) -> None:
        async def handle(msg: Msg) -> None:
            await self._handle(call_id, msg)

        sub = await self.conn.nc.subscribe(cmd_subject(self.settings.prefix, call_id), cb=handle)
        if call_id in self._targets and call_id not in self._subs:
            self._subs[call_id] = sub
        else:  # removed (or added twice) while subscribing
            await sub.unsubscribe()

    async def _subscribe_all(self) -> None:
        for call_id in list(self._targets):
            # Each await may see calls come and go: check again for every call.
            if call_id in self._targets and call_id not in self._subs:
                await self._subscribe(call_id)

    async def _handle(self, call_id: str, msg: Msg) -> None:
        # The subscription's task boundary: every failure becomes an {"ok": false} reply.
        target = self._targets.get(call_id)
        if not msg.reply or target is None:
            return
        action = "?"
        try:
            req = msgspec.json.decode(msg.data)
            if not isinstance(req, dict):
                raise ValueError("a command is a JSON object")
            action = str(req.get("action", ""))
            reply = await self._dispatch(call_id, target, action, req, msg)
        except Exception as exc:
            self.refused += 1
            reply = {"ok": False, "error": str(exc) or type(exc).__name__}
            log.info("bus: %s on call %s refused: %s", action, call_id, reply["error"])
        if reply is not None:
            await self._respond(msg, call_id, action, reply)

    async def _dispatch(
        self, call_id: str, target: CommandTarget, action: str, req: dict[str, Any], msg: Msg
    ) -> dict[str, Any] | None:
        if action == "play":
            b64 = req.get("audio_b64")
            if not isinstance(b64, str) or not b64:
                raise ValueError("play needs audio_b64 (a WAV file, base64)")
            try:
                wav = base64.b64decode(b64, validate=True)
            except ValueError:
                raise ValueError("audio_b64 is not valid base64") from None
            pcm, rate = decode_wav(wav)
            await target.play(pcm, rate)
            return {"ok": True, "samples": len(pcm), "rate": rate}
        if action == "checkpoint":
            name = req.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError("checkpoint needs a name")
            waiter = target.checkpoint(name)
            task = asyncio.create_task(self._reply_checkpoint(call_id, name, waiter, msg))
            self._waiting.add(task)
            task.add_done_callback(self._waiting.discard)
            return None
        if action == "clear":
            target.clear()
            return {"ok": True}
        if action == "send_dtmf":
            digits = req.get("digits")
            if not isinstance(digits, str) or not digits:
                raise ValueError("send_dtmf needs digits")
            target.send_dtmf(digits)
            return {"ok": True}
        if action == "stop":
            await target.stop()
            return {"ok": True}
        raise ValueError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")

    async def _reply_checkpoint(
        self, call_id: str, name: str, waiter: Awaitable[bool], msg: Msg
    ) -> None:
        try:
            played = await asyncio.wait_for(waiter, self.settings.checkpoint_timeout_s)
            reply: dict[str, Any] = {"ok": True, "name": name, "played": bool(played)}
        except Exception as exc:
            self.refused += 1
            reply = {"ok": False, "error": str(exc) or type(exc).__name__}
        await self._respond(msg, call_id, "checkpoint", reply)

    async def _respond(self, msg: Msg, call_id: str, action: str, reply: dict[str, Any]) -> None:
        if reply.get("ok"):
            self.handled += 1
        reply.update(
            call_id=call_id, action=action, host=self.settings.host, worker=self.settings.worker
        )
        with contextlib.suppress(nats.errors.Error, OSError):
            await msg.respond(msgspec.json.encode(reply))

    async def aclose(self) -> None:
        """Unsubscribe from every call and cancel waiting checkpoint replies."""
        for task in list(self._waiting):
            task.cancel()
        for call_id in list(self._targets):
            await self.remove(call_id)


class Bus:
    """The server's bus: one connection, its :class:`EventPublisher` (``events``) and its
    :class:`CommandServer` (``commands``). :meth:`start` never waits for NATS."""

    def __init__(self, settings: BusSettings) -> None:
        self.settings = settings
        self.connection = BusConnection(settings)
        self.events = EventPublisher(self.connection)
        self.commands = CommandServer(self.connection)

    async def start(self) -> None:
        await self.events.start()
        await self.connection.start()

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Stop answering commands, send the waiting events (up to ``timeout_s``), close."""
        await self.commands.aclose()
        await self.events.aclose(timeout_s)
        await self.connection.aclose()


# -- the client -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallEvent:
    """One event read from the bus. ``seq`` is its JetStream stream sequence."""

    kind: str
    call_id: str
    stream_id: str
    provider: str
    host: str
    worker: str
    time: float
    data: dict[str, Any]
    id: str
    seq: int
    subject: str

    @classmethod
    def from_msg(cls, msg: Msg) -> CallEvent:
        body = msgspec.json.decode(msg.data)
        if not isinstance(body, dict):
            raise ValueError("an event is a JSON object")
        try:
            seq = msg.metadata.sequence.stream
        except nats.errors.NotJSMessageError:
            seq = 0
        data = body.get("data")
        return cls(
            kind=str(body.get("kind", "")),
            call_id=str(body.get("call_id", "")),
            stream_id=str(body.get("stream_id", "")),
            provider=str(body.get("provider", "")),
            host=str(body.get("host", "")),
            worker=str(body.get("worker", "")),
            time=float(body.get("time", 0.0)),
            data=data if isinstance(data, dict) else {"value": data},
            id=str(body.get("id", "")),
            seq=seq,
            subject=msg.subject,
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class BusClient:
    """For other services: read call events and command the process holding a call.

    ::

        async with BusClient("nats://127.0.0.1:4222") as bus:
            async for ev in bus.events():              # every call, oldest kept first
                if ev.kind == "stream.started":
                    await bus.play(ev.call_id, pcm, 8000)
    """

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        prefix: str = DEFAULT_PREFIX,
        stream: str = DEFAULT_STREAM,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
    ) -> None:
        self.settings = BusSettings(
            url=url,
            prefix=prefix,
            stream=stream,
            ack_timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
        )
        self.timeout_s = timeout_s
        self.nc = NatsClient()

    async def connect(self) -> BusClient:
        """Connect once; :class:`BusUnavailableError` if NATS cannot be reached."""
        try:
            await self.nc.connect(
                self.settings.url,
                name="streamserver bus client",
                connect_timeout=self.settings.connect_timeout_s,  # type: ignore[arg-type]
                allow_reconnect=False,
                error_cb=_quiet,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise BusUnavailableError(
                f"cannot reach NATS at {_safe_url(self.settings.url)}: {exc or type(exc).__name__}"
            ) from exc
        return self

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.nc.close()

    async def __aenter__(self) -> BusClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def events(
        self, call_id: str | None = None, *, new_only: bool = False, from_seq: int | None = None
    ) -> AsyncIterator[CallEvent]:
        """Events in stream order (so in order per call): every event the stream holds,
        then new ones as they come. ``new_only`` skips what is stored, ``from_seq`` starts at
        that stream sequence (resume after the last :attr:`CallEvent.seq` seen), ``call_id``
        filters. Raises :class:`BusUnavailableError` if the connection is lost.
        """
        js = self.nc.jetstream(timeout=self.timeout_s)
        try:
            await ensure_stream(js, self.settings)
        except (nats.errors.Error, OSError) as exc:
            raise BusUnavailableError(f"JetStream unavailable: {exc}") from exc
        token = subject_token(call_id) if call_id is not None else "*"
        subject = f"{self.settings.prefix}.events.{token}.>"
        if from_seq is not None:
            policy, config = DeliverPolicy.BY_START_SEQUENCE, ConsumerConfig(opt_start_seq=from_seq)
        else:
            policy, config = (DeliverPolicy.NEW if new_only else DeliverPolicy.ALL), None
        sub = await js.subscribe(
            subject,
            stream=self.settings.stream,
            ordered_consumer=True,
            deliver_policy=policy,
            config=config,
        )
        try:
            async for msg in sub.messages:
                try:
                    ev = CallEvent.from_msg(msg)
                except (msgspec.DecodeError, ValueError, TypeError):
                    log.warning("bus: skipping a malformed event on %s", msg.subject)
                    continue
                if call_id is None or ev.call_id == call_id:
                    yield ev
            # The subscription ends only when the connection does.
            raise BusUnavailableError(f"lost the connection to {_safe_url(self.settings.url)}")
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def command(
        self, call_id: str, action: str, *, timeout_s: float | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Send one command; its reply on success. Raises :class:`CallNotFoundError`,
        :class:`CommandError` or :class:`BusUnavailableError`."""
        payload = msgspec.json.encode({"action": action, **fields})
        try:
            msg = await self.nc.request(
                cmd_subject(self.settings.prefix, call_id),
                payload,
                timeout=timeout_s or self.timeout_s,
            )
        except nats.errors.NoRespondersError:
            raise CallNotFoundError(call_id) from None
        except nats.errors.TimeoutError:
            raise BusUnavailableError(
                f"{action} on call {call_id!r}: no answer within {timeout_s or self.timeout_s} s"
            ) from None
        except nats.errors.MaxPayloadError:
            raise CommandError(
                call_id, action, f"command larger than NATS max_payload ({self.nc.max_payload} B)"
            ) from None
        except (nats.errors.Error, OSError) as exc:
            raise BusUnavailableError(f"{action} on call {call_id!r}: {exc}") from exc
        reply = msgspec.json.decode(msg.data)
        if not isinstance(reply, dict):
            raise CommandError(call_id, action, f"unexpected reply {reply!r}")
        if not reply.get("ok"):
            raise CommandError(call_id, action, str(reply.get("error", "refused")))
        return reply

    async def play_wav(self, call_id: str, wav: bytes) -> dict[str, Any]:
        """Play a WAV file's bytes into the call."""
        return await self.command(call_id, "play", audio_b64=base64.b64encode(wav).decode())

    async def play(self, call_id: str, pcm: np.ndarray, rate: int) -> dict[str, Any]:
        """Play ``pcm`` (mono int16, or float in -1..1) at ``rate`` Hz into the call."""
        return await self.play_wav(call_id, encode_wav(pcm, rate))

    async def checkpoint(self, call_id: str, name: str, *, timeout_s: float = 300.0) -> bool:
        """Mark the audio queued so far; True once it played, False if cleared first."""
        reply = await self.command(call_id, "checkpoint", name=name, timeout_s=timeout_s)
        return bool(reply.get("played"))

    async def clear(self, call_id: str) -> None:
        """Drop the call's queued, unplayed audio (barge-in)."""
        await self.command(call_id, "clear")

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        """Play DTMF tones into the call."""
        await self.command(call_id, "send_dtmf", digits=digits)

    async def stop(self, call_id: str) -> None:
        """End the call's stream."""
        await self.command(call_id, "stop")


async def _quiet(exc: Exception) -> None:
    # The client reports connection errors by raising; nats-py's default prints them.
    return None
