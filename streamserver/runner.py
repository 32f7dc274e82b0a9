"""Handlers at work: each one's input and task (:class:`HandlerRunner`).

The session pushes audio and events without waiting; the runner's task hands them to the
handler's hooks one at a time, in order. When the handler lags, contiguous audio of one
track is joined into bigger chunks (natural batching); past ``max_samples`` queued, the
oldest audio is dropped and counted. Events (gaps, DTMF, unknown and bus events,
playedStream...) are bounded too: past ``max_events`` queued, a new one is dropped and
counted per kind (contiguous gaps of a track are merged first), so a peer flooding events
behind a slow handler costs a bounded amount of memory. An exception in a hook is
logged with the stream's ids, counted, and switches the handler off for the stream; its
``on_stop`` still runs.

A runner talks to its owner only through :class:`RunnerOwner`;
:class:`~streamserver.stream_handlers.StreamHandlers` is that owner for a session.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import Any, Protocol

import numpy as np

from .handler import (
    AudioChunk,
    Gap,
    Handler,
    HandlerFailure,
    HandlerSpec,
    StopReason,
)
from .metrics import Metrics
from .protocol.events import Dtmf

__all__ = ["MAX_EVENTS", "HandlerRunner", "RunnerOwner"]

#: Events queued per handler before new ones are dropped (the default of [session]).
MAX_EVENTS = 1000


class RunnerOwner(Protocol):
    """What a :class:`HandlerRunner` needs of the stream it serves."""

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the stream ended (read when ``on_stop`` runs; None: not ended)."""

    def handler_failed(self, runner: HandlerRunner, hook: str, error: str) -> None:
        """``runner``'s handler raised in ``hook`` and is now switched off."""

    def handler_stopped(self, runner: HandlerRunner) -> None:
        """``runner``'s ``on_stop`` has finished (its task is about to end)."""


_STOP = object()
_WAKEUP = object()


def _exc_text() -> str:
    exc = sys.exc_info()[1]
    return f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"


class HandlerRunner:
    """One handler's bounded, ordered, coalescing input and the task that drains it.

    ``sink`` is where the session sends delivered audio: the handler's synchronous
    ``on_audio_nowait`` when it overrides it (inline, no queue), else :meth:`push_audio`.
    """

    __slots__ = (
        "_metrics",
        "_owner",
        "_task_name",
        "_waiter",
        "_wakeup_pending",
        "close_reason",
        "dropped_events",
        "dropped_samples",
        "failed",
        "handler",
        "max_events",
        "max_samples",
        "nowait",
        "queue",
        "queued_events",
        "queued_samples",
        "sink",
        "spec",
        "task",
    )

    def __init__(
        self,
        owner: RunnerOwner,
        spec: HandlerSpec,
        handler: Handler,
        max_samples: int,
        *,
        metrics: Metrics,
        task_name: str = "",
        max_events: int = MAX_EVENTS,
    ) -> None:
        self._owner = owner
        self._metrics = metrics
        self._task_name = task_name or f"handler:{spec.name}"
        self.spec = spec
        self.handler = handler
        self.max_samples = max_samples
        self.queue: deque[Any] = deque()
        self.queued_samples = 0
        self.dropped_samples = 0
        self.max_events = max_events
        self.queued_events = 0  # queued items that are not audio
        self.dropped_events = 0
        self.failed = False
        #: set when the handler failed: what a peer may be told (HandlerFailure.close_reason)
        self.close_reason = ""
        self._waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self._wakeup_pending = False
        #: the handler's synchronous audio hook, when it overrides ``on_audio_nowait``
        self.nowait = (
            handler.on_audio_nowait
            if type(handler).on_audio_nowait is not Handler.on_audio_nowait
            else None
        )
        self.sink = self.nowait or self.push_audio

    # -- the session's side ----------------------------------------------------------------

    def start(self) -> None:
        """Start the task (``on_start``, then the input, then ``on_stop``)."""
        self.task = asyncio.get_running_loop().create_task(self._run(), name=self._task_name)

    def push_audio(self, chunk: AudioChunk) -> None:
        """Queue audio for ``on_audio``; past the bound the oldest audio is dropped."""
        if self.failed:
            return
        self.queue.append(chunk)
        self.queued_samples += chunk.num_samples
        if self.queued_samples > self.max_samples:
            self._drop_oldest_audio()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(self, item: Any) -> None:
        """Queue an event (gap, DTMF, bus event...) for the handler, in order with audio;
        past ``max_events`` queued it is dropped and counted."""
        if self.failed:
            return
        if self.queued_events >= self.max_events:
            q = self.queue
            last = q[-1] if q else None
            if (
                type(item) is Gap
                and type(last) is Gap
                and last.track == item.track
                and last.position + last.samples == item.position
            ):  # one longer gap
                q[-1] = Gap(item.track, last.position, last.samples + item.samples)
                return
            self._drop_event(item)
            return
        self.queued_events += 1
        self._append(item)

    def _drop_event(self, item: Any) -> None:
        kind = type(item).__name__.lower()
        key = (self.spec.name, kind)
        dropped = self._metrics.handler_dropped_events
        first = key not in dropped
        dropped[key] += 1
        self.dropped_events += 1
        if first:  # once per kind; the total is in the line at the end
            self.handler.ctx.logger.warning(
                "handler %s is behind: its queue holds %d events; dropping new %s events",
                self.spec.name,
                self.max_events,
                kind,
            )

    def stop(self) -> None:
        """Queue the end: ``on_stop`` runs after everything queued before it."""
        self._append(_STOP)

    def request_wakeup(self) -> None:
        """Queue one ``on_wakeup`` (idempotent until it runs)."""
        if not self._wakeup_pending and not self.failed:
            self._wakeup_pending = True
            self._append(_WAKEUP)

    def fail(self, hook: str) -> None:
        """Switch the handler off after it raised in ``hook``; call from the ``except``
        block (the traceback is logged)."""
        spec = self.spec
        exc = sys.exc_info()[1]
        if isinstance(exc, HandlerFailure):  # expected and explained: one line, no traceback
            self.handler.ctx.logger.error(
                "handler %s failed in %s: %s; disabled for this stream", spec.name, hook, exc
            )
        else:
            self.handler.ctx.logger.exception(
                "handler %s failed in %s; disabled for this stream", spec.name, hook
            )
        self._metrics.handler_errors[spec.name] += 1
        self.failed = True
        reason = exc.close_reason if isinstance(exc, HandlerFailure) else ""
        self.close_reason = (reason or f"handler {spec.name} failed")[:123]
        # Keep only the stop marker: the handler gets nothing else.
        stop_pending = any(item is _STOP for item in self.queue)
        self.queue.clear()
        self.queued_samples = 0
        self.queued_events = 0
        if stop_pending:
            self.queue.append(_STOP)
        self._owner.handler_failed(self, hook, _exc_text())

    # -- the task's side -------------------------------------------------------------------

    def _append(self, item: Any) -> None:
        self.queue.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _drop_oldest_audio(self) -> None:
        # Drop from the oldest end until under the bound; control events stay.
        kept: deque[Any] = deque()
        q = self.queue
        while self.queued_samples > self.max_samples and q:
            item = q.popleft()
            if type(item) is AudioChunk:
                n = item.num_samples
                self.queued_samples -= n
                self.dropped_samples += n
                self._metrics.handler_dropped_samples[self.spec.name] += n
            else:
                kept.append(item)
        if kept:
            kept.extend(q)
            self.queue = kept

    async def _wait(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = fut
        try:
            await fut
        finally:
            self._waiter = None

    def _take(self) -> Any:
        item = self.queue.popleft()
        if type(item) is not AudioChunk:
            if item is not _STOP and item is not _WAKEUP:
                self.queued_events -= 1
            return item
        self.queued_samples -= item.num_samples
        q = self.queue
        if not q or type(q[0]) is not AudioChunk:
            return item
        # Coalesce contiguous audio of the same track: a lagging handler catches up in
        # fewer, bigger calls (natural batching).
        parts = [item]
        end = item.end
        while q and type(q[0]) is AudioChunk and q[0].track == item.track and q[0].position == end:
            nxt = q.popleft()
            self.queued_samples -= nxt.num_samples
            parts.append(nxt)
            end = nxt.end
        if len(parts) == 1:
            return item
        total = sum(p.num_samples for p in parts)
        enc = item.encoding
        payloads = [p.payload for p in parts if p.payload is not None and p.encoding == enc]
        if len(payloads) == len(parts):
            return AudioChunk(
                item.track, item.position, item.sample_rate, total, b"".join(payloads), enc
            )
        return AudioChunk.from_pcm(
            item.track,
            np.concatenate([p.samples for p in parts]),
            item.position,
            item.sample_rate,
        )

    async def _run(self) -> None:
        handler = self.handler
        try:
            await self._call(handler.on_start())
            while True:
                if not self.queue:
                    await self._wait()
                    continue
                item = self._take()
                if item is _STOP:
                    break
                if self.failed:
                    continue
                if item is _WAKEUP:
                    self._wakeup_pending = False
                    await self._call(handler.on_wakeup())
                    continue
                kind = type(item)
                if kind is AudioChunk:
                    await self._call(handler.on_audio(item))
                elif kind is Dtmf:
                    await self._call(handler.on_dtmf(item))
                else:
                    await self._call(handler.on_event(item))
        finally:
            if self.dropped_events:
                handler.ctx.logger.warning(
                    "handler %s dropped %d events behind a full queue",
                    self.spec.name,
                    self.dropped_events,
                )
            try:
                await handler.on_stop(self._owner.stop_reason or StopReason.CLOSED)
            except Exception:
                self.fail("on_stop")
            finally:
                self._owner.handler_stopped(self)

    async def _call(self, coro: Any) -> None:
        if self.failed:
            coro.close()
            return
        try:
            await coro
        except Exception:
            self.fail(coro.__qualname__.rsplit(".", 1)[-1])
