"""The webhook as a durable JetStream consumer, outside the media workers.

``[handler.webhook] mode = "jetstream"`` makes the in-process handler send nothing; the
workers' call events already go to the ``STREAMSERVER_EVENTS`` stream (``[bus]``), and
``streamserver webhook relay`` runs a :class:`WebhookRelay` that reads them through a
durable pull consumer (``durable``, default ``streamserver-webhook``) and POSTs each one::

    {"id": "evt_<event id>", "event": "dtmf", "created_at": 1764230000.123, "seq": 412,
     "call_id": "...", "stream_id": "...", "provider": "plivo", "host": "...",
     "worker": "0", "data": {...}}

``stream.started`` / ``stream.stopped`` go out as ``stream.start`` / ``stream.stop`` (the
inline handler's names); ``seq`` is the JetStream stream sequence (increasing per call and
overall); ``id`` is the event's and stays the same on every retry and redelivery.

Acknowledgement: a 2xx acks the message; a retryable answer (408, 429, 5xx, a transport
error) naks it with the backoff as JetStream's redelivery delay, so retries outlive the
relay: a relay killed mid-retry leaves the message to the next one. The attempt number is
JetStream's delivery count; after ``max_attempts`` (or at once, for any other answer) the
message is terminated and counted as failed. An event not in ``events`` is acked and
skipped. Up to ``concurrency`` deliveries run at once; with retries in between, events can
arrive out of order: sort by ``seq``, de-duplicate by ``id``. Relays that share ``durable``
share the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ..bus.connection import BusConnection
from ..bus.jetstream import ensure_stream
from ..bus.settings import BusSettings, safe_url
from .delivery import new_client, post_once, retry_delay
from .options import WebhookOptions

__all__ = ["BUS_TO_WEBHOOK", "WebhookRelay", "webhook_body"]

log = logging.getLogger("streamserver.webhook")

#: Bus kinds that the webhook names as the inline handler does.
BUS_TO_WEBHOOK = {"stream.started": "stream.start", "stream.stopped": "stream.stop"}


def webhook_body(event: dict[str, Any], seq: int) -> tuple[str, str, bytes]:
    """``(event name, delivery id, JSON body)`` of a bus event (its decoded JSON)."""
    kind = str(event.get("kind", ""))
    name = BUS_TO_WEBHOOK.get(kind, kind)
    delivery_id = f"evt_{event.get('id', seq)}"
    data = event.get("data")
    doc = {
        "id": delivery_id,
        "event": name,
        "created_at": round(float(event.get("time", 0.0)), 3),
        "seq": seq,
        "call_id": str(event.get("call_id", "")),
        "stream_id": str(event.get("stream_id", "")),
        "provider": str(event.get("provider", "")),
        "host": str(event.get("host", "")),
        "worker": str(event.get("worker", "")),
        "data": data if data is not None else {},
    }
    return name, delivery_id, msgspec.json.encode(doc)


class WebhookRelay:
    """Delivers the bus's call events to ``options.url`` from a durable JetStream consumer.

    :meth:`run` until ``stop`` is set; NATS going away is waited out (the connection
    retries forever and the consumer resumes where it was). ``stats()`` has the counters.
    """

    def __init__(self, bus: BusSettings, options: WebhookOptions, *, secret: str = "") -> None:
        if not options.url:
            raise ValueError("handler.webhook.url is empty: nowhere to deliver")
        if not bus.url:
            raise ValueError("bus.url is empty: the relay reads the events from NATS")
        self.bus = bus
        self.options = options
        self.secret = secret
        self.events = frozenset(options.events)
        self.connection = BusConnection(bus)
        self.ready = asyncio.Event()  # the consumer exists and is being read
        # Counters
        self.delivered = 0
        self.failed = 0
        self.retried = 0
        self.skipped = 0

    def stats(self) -> dict[str, int]:
        """delivered, failed (refused, or out of attempts), retried, skipped (not in
        ``events``, or malformed)."""
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "retried": self.retried,
            "skipped": self.skipped,
        }

    def consumer_config(self) -> ConsumerConfig:
        """The durable consumer, as created when missing (an existing one is used as is)."""
        o = self.options
        return ConsumerConfig(
            durable_name=o.durable,
            description="streamserver webhook relay",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            # Longer than one POST may take: an unacked message is redelivered after it.
            ack_wait=o.timeout_s * 2 + 10,
            max_deliver=-1,  # the relay decides when to give up (max_attempts)
            max_ack_pending=max(64, o.concurrency * 4),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and deliver until ``stop`` is set."""
        await self.connection.start()
        client = new_client(self.options)
        try:
            while not stop.is_set():
                if not await self.connection.wait_connected(0.5):
                    continue
                try:
                    await self._consume(client, stop)
                except (nats.errors.Error, OSError, TimeoutError) as exc:
                    if stop.is_set():
                        break
                    log.warning("webhook relay: %s; retrying", exc or type(exc).__name__)
                    self.ready.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.bus.reconnect_wait_s)
        finally:
            await client.aclose()
            await self.connection.aclose()
            s = self.stats()
            log.info(
                "webhook relay: %d delivered, %d failed, %d retries, %d skipped",
                s["delivered"],
                s["failed"],
                s["retried"],
                s["skipped"],
            )

    async def _consume(self, client: Any, stop: asyncio.Event) -> None:
        js = self.connection.js
        await ensure_stream(js, self.bus)
        sub = await js.pull_subscribe(
            f"{self.bus.prefix}.events.>",
            durable=self.options.durable,
            stream=self.bus.stream,
            config=self.consumer_config(),
        )
        if not self.ready.is_set():
            log.info(
                "webhook relay: consuming %s at %s as %s -> %s",
                self.bus.stream,
                safe_url(self.bus.url),
                self.options.durable,
                self.options.url,
            )
        self.ready.set()
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(self.options.concurrency, timeout=1.0)
                except TimeoutError:
                    continue  # nothing new within a second
                # Calls in parallel, each call's events in order (a retried one may still
                # come after later ones: each carries its stream sequence).
                await asyncio.gather(
                    *(self._handle_in_order(client, batch) for batch in self._by_call(msgs))
                )
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def _by_call(self, msgs: list[Msg]) -> list[list[Msg]]:
        """The fetched messages grouped by call (``{prefix}.events.{call_id}.{kind}``),
        each group in stream order."""
        head = len(self.bus.prefix) + len(".events.")
        calls: dict[str, list[Msg]] = {}
        for msg in msgs:
            calls.setdefault(msg.subject[head:].split(".", 1)[0], []).append(msg)
        return list(calls.values())

    async def _handle_in_order(self, client: Any, msgs: list[Msg]) -> None:
        for msg in msgs:
            await self._handle(client, msg)

    async def _handle(self, client: Any, msg: Msg) -> None:
        # One message's boundary: whatever happens, it is acked, naked or terminated (or
        # left to ack_wait when NATS itself is gone).
        try:
            meta = msg.metadata
            event = msgspec.json.decode(msg.data)
            if not isinstance(event, dict):
                raise ValueError("an event is a JSON object")
            name, delivery_id, body = webhook_body(event, meta.sequence.stream)
        except (ValueError, TypeError, msgspec.DecodeError, nats.errors.NotJSMessageError):
            self.skipped += 1
            log.warning("webhook relay: skipping a malformed event on %s", msg.subject)
            await msg.term()
            return
        if name not in self.events:
            self.skipped += 1
            await msg.ack()
            return
        o = self.options
        attempt = meta.num_delivered
        if attempt > o.max_attempts:  # attempts cut short by relays that died
            self.failed += 1
            await msg.term()
            return
        result = await post_once(
            client, o, self.secret, event=name, delivery_id=delivery_id, body=body,
            attempt=attempt,
        )  # fmt: skip
        if result.outcome == "delivered":
            self.delivered += 1
            await msg.ack()
        elif result.outcome == "retry" and attempt < o.max_attempts:
            self.retried += 1
            delay = retry_delay(o, attempt, result.retry_after_s)
            log.debug("webhook relay: %s %s: %s; retry in %.2fs", name, delivery_id,
                      result.problem, delay)  # fmt: skip
            await msg.nak(delay=delay)
        else:
            self.failed += 1
            log.warning(
                "webhook relay: %s %s failed after %d attempt(s) (last: %s)",
                name,
                delivery_id,
                attempt,
                result.problem,
            )
            await msg.term()
