"""Events out: call events to JetStream, never making the caller wait."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.js.api import Header

from .connection import BusConnection
from .jetstream import ensure_stream
from .subjects import event_subject

__all__ = ["EventPublisher"]

log = logging.getLogger("streamserver.bus")


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
