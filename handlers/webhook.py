"""``webhook``: forwards a stream's events as signed JSON POSTs to your URL.

Events: ``stream.start``, ``stream.stop``, ``dtmf``, ``transcript`` (from a transcriber on
the same route), ``handler.error`` (a handler of the stream failed), and any other bus topic
you list in ``events`` (``player.finished``, ``speech.start``, your own...). Each POST body
is one JSON object::

    {"id": "evt_...", "event": "dtmf", "created_at": 1764230000.123, "seq": 2,
     "call_id": "...", "stream_id": "...", "account_id": "...", "route": "/stream",
     "data": {"digit": "5", "track": "inbound", "timestamp_ms": 1200}}

``seq`` counts the stream's events from 1: deliveries run concurrently and are retried, so
they can arrive out of order; sort by ``seq``, de-duplicate by ``id``.

Signature (when a secret is set): ``X-Streamserver-Signature: t=<unix seconds>,v1=<hex>``
where ``hex = HMAC-SHA256(secret, f"{t}." + body)``; see :func:`verify_signature`. The
timestamp lets the receiver refuse replays (default tolerance 5 minutes). Every retry is
signed afresh.

Delivery: one bounded queue and up to ``concurrency`` senders **per process** (per event loop
and configuration), shared by all streams, so a dead endpoint costs a bounded amount of
memory however many calls are up. A full queue drops the new event (counted). 2xx is
delivered; 408, 429, 5xx and transport errors are retried with exponential backoff
(``Retry-After`` honoured) up to ``max_attempts``; other answers fail at once. Counters
(delivered, failed, dropped, retried) are logged per stream at its end and available for
the process from :func:`stats`. At stream end the handler waits up to ``flush_timeout_s``
for that stream's events, so a graceful shutdown delivers them.

``mode = "jetstream"``: the handler sends nothing; ``streamserver webhook relay``
(:mod:`streamserver.webhooks.relay`) delivers the bus's events from a durable JetStream
consumer in its own process. The signature, the options and one delivery's retry policy
live in :mod:`streamserver.webhooks`, shared by both modes.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
import weakref
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import msgspec

from streamserver.handler import BusEvent, Handler, StopReason, StreamContext
from streamserver.protocol.events import Dtmf
from streamserver.webhooks import (
    DEFAULT_EVENTS,
    SIGNATURE_HEADER,
    WebhookOptions,
    new_client,
    post_once,
    retry_delay,
    sign,
    verify_signature,
)

__all__ = [
    "DEFAULT_EVENTS",
    "SIGNATURE_HEADER",
    "Webhook",
    "WebhookOptions",
    "drain",
    "sign",
    "stats",
    "verify_signature",
]


# --- delivery -------------------------------------------------------------------------------

_totals: Counter[str] = Counter()


def stats() -> dict[str, int]:
    """Process totals: delivered, failed, dropped, retried."""
    return dict(_totals)


class _Tracker:
    """One stream's view of its deliveries: counters and "all done"."""

    def __init__(self, metric: Callable[[str], None] | None = None) -> None:
        self.pending = 0
        self.counts: Counter[str] = Counter()
        self.idle = asyncio.Event()
        self.idle.set()
        self._metric = metric

    def count(self, key: str) -> None:
        self.counts[key] += 1
        _totals[key] += 1
        if self._metric is not None:
            self._metric(key)  # streamserver_handler_events_total{handler="webhook"}

    def started(self) -> None:
        self.pending += 1
        self.idle.clear()

    def finished(self, outcome: str) -> None:
        self.count(outcome)
        self.pending -= 1
        if self.pending == 0:
            self.idle.set()


class _Delivery:
    __slots__ = ("body", "event", "id", "log", "tracker")

    def __init__(self, event: str, id: str, body: bytes, tracker: _Tracker, log: Any) -> None:
        self.event = event
        self.id = id
        self.body = body
        self.tracker = tracker
        self.log = log


class _Dispatcher:
    """The process-wide queue and senders for one webhook configuration.

    Senders are started when events arrive and exit when the queue is empty; the last one
    closes the HTTP client, so nothing lingers between bursts.
    """

    def __init__(self, options: WebhookOptions, secret: str) -> None:
        self.o = options
        self.secret = secret
        self.queue: deque[_Delivery] = deque()
        self.workers = 0
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, d: _Delivery) -> bool:
        if len(self.queue) >= self.o.max_queue:
            d.tracker.count("dropped")
            return False
        d.tracker.started()
        self.queue.append(d)
        if self.workers < self.o.concurrency:
            self.workers += 1
            task = asyncio.get_running_loop().create_task(self._work())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    async def _work(self) -> None:
        try:
            while self.queue:
                d = self.queue.popleft()
                outcome = "failed"
                try:
                    outcome = await self._deliver(d)
                finally:
                    d.tracker.finished(outcome)
        finally:
            self.workers -= 1
            if self.workers == 0 and self._client is not None:
                client, self._client = self._client, None
                await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.o)
        return self._client

    async def _deliver(self, d: _Delivery) -> str:
        o = self.o
        for attempt in range(1, o.max_attempts + 1):
            result = await post_once(
                self._http(), o, self.secret, event=d.event, delivery_id=d.id, body=d.body,
                attempt=attempt,
            )  # fmt: skip
            if result.outcome == "delivered":
                return "delivered"
            if result.outcome == "failed":
                d.log.warning(
                    "webhook: %s %s refused with %s; not retried", d.event, d.id, result.problem
                )
                return "failed"
            if attempt == o.max_attempts:
                d.log.warning(
                    "webhook: %s %s failed after %d attempts (last: %s)",
                    d.event,
                    d.id,
                    attempt,
                    result.problem,
                )
                return "failed"
            delay = retry_delay(o, attempt, result.retry_after_s)
            d.tracker.count("retried")
            d.log.debug("webhook: %s %s: %s; retry in %.2fs", d.event, d.id, result.problem, delay)
            await asyncio.sleep(delay)
        return "failed"  # pragma: no cover - the loop always returns


_dispatchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bytes, _Dispatcher]] = (
    weakref.WeakKeyDictionary()
)


def _dispatcher(options: WebhookOptions, secret: str) -> _Dispatcher:
    per_loop = _dispatchers.setdefault(asyncio.get_running_loop(), {})
    key = msgspec.json.encode([options, secret])
    d = per_loop.get(key)
    if d is None:
        d = per_loop[key] = _Dispatcher(options, secret)
    return d


async def drain(timeout_s: float = 5.0) -> None:
    """Wait up to ``timeout_s`` for every queued event of this event loop to be sent, then
    cancel what is left (for a program's shutdown, and tests)."""
    dispatchers = list(_dispatchers.get(asyncio.get_running_loop(), {}).values())
    tasks = [t for d in dispatchers for t in d._tasks]
    if tasks:
        _, late = await asyncio.wait(tasks, timeout=timeout_s)
        for t in late:
            t.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)
    for d in dispatchers:
        while d.queue:
            d.queue.popleft().tracker.finished("dropped")


# --- the handler ------------------------------------------------------------------------------


class Webhook(Handler):
    """Sends the stream's events to ``url``; see the module docstring."""

    Options = WebhookOptions

    def __init__(
        self, ctx: StreamContext, options: Any = None, *, environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(ctx, options)
        self.opts: WebhookOptions = self.options
        self._secret = self.opts.secret_value(os.environ if environ is None else environ)
        self._events = frozenset(self.opts.events)
        self._seq = 0
        self._tracker = _Tracker(self.count)
        self._started_at = time.monotonic()
        self._dispatcher: _Dispatcher | None = None

    def send(self, event: str, data: Any) -> bool:
        """Queue one event for delivery; False if it was dropped (queue full)."""
        if event not in self._events or not self.opts.url or self.opts.mode != "inline":
            return False
        if self._dispatcher is None:
            self._dispatcher = _dispatcher(self.opts, self._secret)
        ctx = self.ctx
        self._seq += 1
        eid = f"evt_{uuid.uuid4().hex}"
        doc = {
            "id": eid,
            "event": event,
            "created_at": round(time.time(), 3),
            "seq": self._seq,
            "call_id": ctx.call_id,
            "stream_id": ctx.stream_id,
            "account_id": ctx.account_id,
            "route": ctx.route,
            "data": data,
        }
        try:
            body = msgspec.json.encode(doc)
        except (TypeError, msgspec.EncodeError):
            doc["data"] = repr(data)
            body = msgspec.json.encode(doc)
        ok = self._dispatcher.submit(_Delivery(event, eid, body, self._tracker, ctx.logger))
        if not ok:
            ctx.logger.warning(
                "webhook: queue of %d full; dropped %s %s", self.opts.max_queue, event, eid
            )
        return ok

    async def on_start(self) -> None:
        ctx = self.ctx
        if not self.opts.url:
            ctx.logger.warning("webhook: no url set in [handler.webhook]; nothing will be sent")
            return
        if self.opts.mode != "inline":
            return  # the relay delivers this stream's events from the bus
        self.send(
            "stream.start",
            {
                "format": {"encoding": ctx.format.encoding, "sample_rate": ctx.sample_rate},
                "tracks": list(ctx.tracks),
                "extra_headers": ctx.extra_headers,
                "path": ctx.path,
            },
        )

    async def on_dtmf(self, dtmf: Dtmf) -> None:
        self.send(
            "dtmf", {"digit": dtmf.digit, "track": dtmf.track, "timestamp_ms": dtmf.timestamp_ms}
        )

    async def on_event(self, event: Any) -> None:
        if type(event) is BusEvent and event.topic in self._events:
            if event.topic in ("stream.start", "stream.stop", "dtmf"):
                return  # ours; a handler publishing these names is not forwarded twice
            try:
                data = msgspec.to_builtins(event.data)
            except (TypeError, msgspec.EncodeError):
                data = repr(event.data)
            if isinstance(data, dict) and event.source != "session":
                data.setdefault("source", event.source)
            self.send(event.topic, data)

    async def on_stop(self, reason: StopReason) -> None:
        stats = self.ctx.stats()
        self.send(
            "stream.stop",
            {
                "reason": reason.value,
                "duration_s": round(time.monotonic() - self._started_at, 3),
                "stats": {
                    k: stats[k]
                    for k in ("frames", "media_frames", "gaps", "duplicates")
                    if k in stats
                },
            },
        )
        tracker = self._tracker
        if tracker.pending:
            try:
                await asyncio.wait_for(tracker.idle.wait(), self.opts.flush_timeout_s)
            except TimeoutError:
                pass
        c = tracker.counts
        self.ctx.logger.info(
            "webhook: %d delivered, %d failed, %d dropped, %d retries, %d pending",
            c["delivered"],
            c["failed"],
            c["dropped"],
            c["retried"],
            tracker.pending,
        )
