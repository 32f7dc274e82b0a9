"""The handlers of one stream (:class:`StreamHandlers`): the set of runners a session
fans out to, the owner every :class:`~streamserver.runner.HandlerRunner` reports to.

It fans events out, keeps the list of audio sinks, reports a failed handler to the others,
stops the handlers one after the other at the end, and enforces the route's
``required_handlers``: the first of them to fail ends the stream with 1011 and the
failure's reason; after a stop event on such a route the close waits (bounded) for every
``on_stop``, so it can still tell the peer that the last of the work failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .handler import (
    AudioChunk,
    BusEvent,
    Handler,
    HandlerSpec,
    PlaybackEvent,
    StopReason,
    StreamContext,
)
from .metrics import Metrics
from .protocol.websocket import CloseCode
from .runner import MAX_EVENTS, HandlerRunner

__all__ = ["STOP_CLOSE_WAIT_S", "StreamHandlers"]

#: After a stop event, how long the close waits for required handlers to finish.
STOP_CLOSE_WAIT_S = 10.0

#: ``close(code, reason)``: how the stream's socket is closed.
CloseFn = Callable[[int, str], None]


class StreamHandlers:
    """The handlers of one stream, in route order: fan-out, audio sinks, failures, stop.

    :attr:`sinks` is where delivered audio goes (each live handler's ``on_audio_nowait``
    or queue). A change replaces the list rather than editing it, so a delivery that is
    iterating over it when a handler fails still reaches every other handler.

    ``required`` names the handlers the stream cannot do without: the first of them to
    fail sets :attr:`required_failure` (its close reason) and calls ``on_required_failure``
    with its name and that reason, which returns True when it closed the stream for it
    (counted in ``required_handler_closes``).
    """

    __slots__ = (
        "_metrics",
        "_pending_close",
        "on_required_failure",
        "required",
        "required_failure",
        "runners",
        "sinks",
        "stop_reason",
        "stopped",
        "taps",
    )

    def __init__(
        self,
        metrics: Metrics,
        required: frozenset[str] = frozenset(),
        on_required_failure: Callable[[str, str], bool] | None = None,
    ) -> None:
        self._metrics = metrics
        self.runners: list[HandlerRunner] = []
        self.sinks: list[Callable[[AudioChunk], None]] = []
        #: the runners whose handlers tap playback (``Handler.taps_playback``)
        self.taps: list[HandlerRunner] = []
        self.stop_reason: StopReason | None = None
        self.required = required
        self.on_required_failure = on_required_failure
        self.required_failure: str | None = None
        #: every handler's on_stop has finished
        self.stopped = False
        #: close_when_stopped's close and its time bound
        self._pending_close: tuple[CloseFn, asyncio.TimerHandle] | None = None

    def create(
        self,
        specs: Iterable[HandlerSpec],
        ctx: StreamContext,
        *,
        queue_s: float,
        max_events: int = MAX_EVENTS,
    ) -> None:
        """Create and start the handlers of the stream of ``ctx``, in order; one whose
        constructor raises is logged, counted and left out. ``queue_s`` bounds each input's
        audio (or the handler's own ``max_queue_s``, when smaller), ``max_events`` its
        events."""
        rate = ctx.sample_rate
        for spec in specs:
            try:
                handler = spec.create(ctx)
            except Exception:
                ctx.logger.exception("handler %s could not be created; skipped", spec.name)
                self._metrics.handler_errors[spec.name] += 1
                continue
            max_s = min(handler.max_queue_s, queue_s)
            max_samples = max(int(max_s * rate), rate // 50)
            name = f"handler:{spec.name}:{ctx.stream_id}"
            self.add(spec, handler, max_samples, name, max_events=max_events)

    def add(
        self,
        spec: HandlerSpec,
        handler: Handler,
        max_samples: int,
        task_name: str,
        *,
        max_events: int = MAX_EVENTS,
    ) -> HandlerRunner:
        """Give ``handler`` a runner and start its task."""
        runner = HandlerRunner(
            self,
            spec,
            handler,
            max_samples,
            metrics=self._metrics,
            task_name=task_name,
            max_events=max_events,
        )
        self.runners.append(runner)
        if spec.cls.taps_playback(spec.options):
            self.taps.append(runner)
        runner.start()
        self._update_sinks()
        return runner

    def push(self, item: Any) -> None:
        """Queue an event (gap, DTMF, playedStream...) for every handler."""
        for r in self.runners:
            r.push(item)

    def push_tapped(self, event: PlaybackEvent) -> None:
        """A playback event for the handlers that tap playback: inline to the ones that
        override ``on_playback_nowait`` (in order with their inline audio), queued for
        ``on_event`` to the others. One that raises is switched off like any hook."""
        for r in self.taps:
            if r.failed:
                continue
            if type(r.handler).on_playback_nowait is Handler.on_playback_nowait:
                r.push(event)
                continue
            try:
                r.handler.on_playback_nowait(event)
            except Exception:
                r.fail("on_playback_nowait")

    def publish(self, event: BusEvent) -> None:
        """Deliver a bus event to every handler except its source."""
        for r in self.runners:
            if r.spec.name != event.source:
                r.push(event)

    def wakeup(self, handler: Handler) -> None:
        """Queue ``handler.on_wakeup`` on its runner."""
        for r in self.runners:
            if r.handler is handler:
                r.request_wakeup()
                return

    def sink_failed(self, sink: Callable[[AudioChunk], None]) -> bool:
        """``sink`` raised (call from the ``except`` block): if it is a handler's
        ``on_audio_nowait``, switch that handler off and return True."""
        for r in self.runners:
            if r.nowait is not None and sink == r.nowait:
                r.fail("on_audio_nowait")
                return True
        return False

    def stop(self, reason: StopReason) -> None:
        """The stream ended: stop the handlers in route order, each after the one before
        it finished ``on_stop`` (so what it publishes there still reaches the next)."""
        self.stop_reason = reason
        if self.runners:
            self.runners[0].stop()
        else:
            self._all_stopped()

    def close_after_stop(self, close: CloseFn, timeout_s: float = STOP_CLOSE_WAIT_S) -> None:
        """After a stop event: ``close(1000, ...)`` at once, or with required handlers once
        every handler's ``on_stop`` has finished, with 1011 and the reason when a required
        one failed; after ``timeout_s`` at the latest (1000: no failure known)."""
        if not self.required:
            close(CloseCode.NORMAL, "stream stopped")
            return
        handle = asyncio.get_running_loop().call_later(timeout_s, self._close_now)
        self._pending_close = (close, handle)
        if self.stopped:
            self._close_now()

    def _close_now(self) -> None:
        pending, self._pending_close = self._pending_close, None
        if pending is None:
            return
        close, handle = pending
        handle.cancel()
        if self.required_failure is not None:
            close(CloseCode.INTERNAL_ERROR, self.required_failure)
        else:
            close(CloseCode.NORMAL, "stream stopped")

    def _all_stopped(self) -> None:
        self.stopped = True
        self._close_now()

    async def wait(self, timeout_s: float, logger: logging.LoggerAdapter[logging.Logger]) -> None:
        """Wait for every handler's task to end; cancel those still running after
        ``timeout_s``."""
        tasks = [r.task for r in self.runners if r.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for t in pending:
            logger.warning(
                "handler task %s did not stop in %.1fs; cancelled", t.get_name(), timeout_s
            )
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    @property
    def dropped_samples(self) -> int:
        """Audio dropped by all handler inputs of the stream (samples)."""
        return sum(r.dropped_samples for r in self.runners)

    def _update_sinks(self) -> None:
        self.sinks = [r.sink for r in self.runners if not r.failed]

    # RunnerOwner

    def handler_failed(self, runner: HandlerRunner, hook: str, error: str) -> None:
        data = {"handler": runner.spec.name, "hook": hook, "error": error}
        self.publish(BusEvent("handler.error", data, "session"))
        self._update_sinks()
        name = runner.spec.name
        if name in self.required and self.required_failure is None:
            self.required_failure = reason = runner.close_reason
            if self._pending_close is not None or (
                self.on_required_failure is not None and self.on_required_failure(name, reason)
            ):
                self._metrics.required_handler_closes[name] += 1

    def handler_stopped(self, runner: HandlerRunner) -> None:
        i = self.runners.index(runner) + 1
        if i < len(self.runners):
            self.runners[i].stop()
        else:
            self._all_stopped()
