"""One handler's input and task: order, coalescing, the bound, failures, the stop."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from streamserver.audio import ENCODING_MULAW, AudioFormat
from streamserver.handler import AudioChunk, Gap, Handler, HandlerSpec, StopReason, StreamContext
from streamserver.metrics import Metrics
from streamserver.protocol.events import Dtmf
from streamserver.runner import HandlerRunner

T = 10.0


class Owner:
    """A RunnerOwner that keeps what the runner tells it."""

    def __init__(self) -> None:
        self.stop_reason: StopReason | None = None
        self.failed: list[tuple[str, str]] = []
        self.stopped: list[HandlerRunner] = []

    def handler_failed(self, runner: HandlerRunner, hook: str, error: str) -> None:
        self.failed.append((hook, error))

    def handler_stopped(self, runner: HandlerRunner) -> None:
        self.stopped.append(runner)


class Log(Handler):
    def __init__(self, ctx: Any, options: Any = None) -> None:
        super().__init__(ctx, options)
        self.log: list[Any] = []

    async def on_audio(self, chunk: AudioChunk) -> None:
        self.log.append(chunk)

    async def on_dtmf(self, dtmf: Dtmf) -> None:
        self.log.append(dtmf)

    async def on_event(self, event: Any) -> None:
        self.log.append(event)
        if event == "raise":
            raise KeyError("bad event")

    async def on_wakeup(self) -> None:
        self.log.append("woken")

    async def on_stop(self, reason: StopReason) -> None:
        self.log.append(("stop", reason))


def context() -> StreamContext:
    return StreamContext(
        None,  # type: ignore[arg-type]  # the runner never plays
        call_id="c",
        stream_id="s",
        account_id="",
        format=AudioFormat(ENCODING_MULAW, 8000),
        tracks=("inbound", "outbound"),
        extra_headers={},
        path="/",
        query={},
        route="/",
        bidirectional=False,
        logger=logging.LoggerAdapter(logging.getLogger("test"), {}),
    )


def runner(max_samples: int = 8000) -> tuple[HandlerRunner, Log, Owner, Metrics]:
    owner, metrics = Owner(), Metrics()
    h = Log(context())
    r = HandlerRunner(owner, HandlerSpec("log", Log), h, max_samples, metrics=metrics)
    return r, h, owner, metrics


def mulaw(track: str, pos: int, n: int = 160, byte: int = 1) -> AudioChunk:
    return AudioChunk(track, pos, 8000, n, bytes([byte]) * n, ENCODING_MULAW)


async def run_to_end(r: HandlerRunner, owner: Owner, reason: StopReason) -> None:
    owner.stop_reason = reason
    r.stop()
    assert r.task is not None
    await r.task


async def test_a_lagging_handler_gets_contiguous_audio_coalesced() -> None:
    r, h, owner, _ = runner()
    for i in range(3):
        r.push_audio(mulaw("inbound", i * 160, byte=i))
    r.push_audio(mulaw("outbound", 0))  # another track: not joined
    r.push_audio(mulaw("outbound", 320))  # not contiguous: not joined
    r.push(Gap("inbound", 480, 160))
    r.push_audio(mulaw("inbound", 640))  # after an event: not joined across it
    r.start()
    await run_to_end(r, owner, StopReason.STOP_EVENT)
    chunks = [c for c in h.log if type(c) is AudioChunk]
    assert [(c.track, c.position, c.num_samples) for c in chunks] == [
        ("inbound", 0, 480),
        ("outbound", 0, 160),
        ("outbound", 320, 160),
        ("inbound", 640, 160),
    ]
    assert chunks[0].payload == b"\0" * 160 + b"\1" * 160 + b"\2" * 160
    assert h.log[-1] == ("stop", StopReason.STOP_EVENT) and owner.stopped == [r]
    assert r.queued_samples == 0


async def test_decoded_audio_is_coalesced_as_samples() -> None:
    r, h, owner, _ = runner()
    r.push_audio(AudioChunk.from_pcm("inbound", np.arange(10, dtype=np.int16), 0, 8000))
    r.push_audio(mulaw("inbound", 10, n=5, byte=0xFF))  # μ-law 0xFF is 0
    r.start()
    await run_to_end(r, owner, StopReason.CLOSED)
    (chunk,) = [c for c in h.log if type(c) is AudioChunk]
    assert chunk.payload is None
    assert list(chunk.samples) == [*range(10), 0, 0, 0, 0, 0]


async def test_past_the_bound_the_oldest_audio_is_dropped_and_events_are_kept() -> None:
    r, h, owner, metrics = runner(max_samples=400)
    r.push_audio(mulaw("inbound", 0))
    r.push(Dtmf("1", "inbound", None))
    r.push_audio(mulaw("inbound", 160))
    r.push_audio(mulaw("inbound", 320))  # 480 > 400: the oldest chunk goes
    assert r.dropped_samples == 160 and metrics.handler_dropped_samples["log"] == 160
    r.start()
    await run_to_end(r, owner, StopReason.CLOSED)
    assert [type(x).__name__ for x in h.log[:2]] == ["Dtmf", "AudioChunk"]
    assert h.log[1].position == 160 and h.log[1].num_samples == 320


async def test_a_failing_hook_switches_the_handler_off_but_on_stop_runs() -> None:
    r, h, owner, metrics = runner()
    r.push("raise")
    r.push_audio(mulaw("inbound", 0))
    r.start()
    await run_to_end(r, owner, StopReason.ERROR)
    assert r.failed and metrics.handler_errors["log"] == 1
    assert owner.failed == [("on_event", "KeyError: 'bad event'")]
    assert h.log == ["raise", ("stop", StopReason.ERROR)]
    r.push_audio(mulaw("inbound", 160))
    r.push("more")
    r.request_wakeup()
    assert not r.queue  # nothing is taken any more


async def test_wakeup_is_queued_once_until_it_runs() -> None:
    r, h, owner, _ = runner()
    r.request_wakeup()
    r.request_wakeup()
    r.start()
    await run_to_end(r, owner, StopReason.CLOSED)
    assert h.log == ["woken", ("stop", StopReason.CLOSED)]


async def test_on_stop_gets_closed_when_no_reason_was_given() -> None:
    r, h, owner, _ = runner()
    r.start()
    await run_to_end(r, owner, None)  # type: ignore[arg-type]
    assert h.log == [("stop", StopReason.CLOSED)]


async def test_every_event_kind_is_bounded_and_drops_are_counted_by_kind() -> None:
    # Issue 16, defect 4: millions of unknown events behind a slow handler grew without
    # bound; now the queue holds max_events and the rest are counted.
    from streamserver.protocol.events import Unknown

    owner, metrics = Owner(), Metrics()
    h = Log(context())
    r = HandlerRunner(owner, HandlerSpec("log", Log), h, 8000, metrics=metrics, max_events=10)
    for i in range(1000):
        r.push(Unknown("weird", {}) if i % 2 else Dtmf("1", "inbound", None))
    r.push_audio(mulaw("inbound", 0))  # audio has its own bound: still queued
    assert len(r.queue) == 11 and r.queued_events == 10
    assert metrics.handler_dropped_events[("log", "unknown")] == 495
    assert metrics.handler_dropped_events[("log", "dtmf")] == 495
    r.push(Gap("inbound", 160, 160))  # contiguous gaps merge into the last one...
    assert metrics.handler_dropped_events[("log", "gap")] == 1  # ...which is audio here
    assert 'handler_dropped_events_total{handler="log",kind="unknown"} 495' in metrics.render()
    r.start()
    await run_to_end(r, owner, StopReason.CLOSED)
    assert r.queued_events == 0 and len(h.log) == 12  # 10 events, the audio, the stop


async def test_contiguous_gaps_merge_when_the_queue_is_full() -> None:
    owner, metrics = Owner(), Metrics()
    h = Log(context())
    r = HandlerRunner(owner, HandlerSpec("log", Log), h, 8000, metrics=metrics, max_events=2)
    for i in range(100):
        r.push(Gap("inbound", i * 160, 160))
    assert list(r.queue)[-1] == Gap("inbound", 160, 99 * 160)
    assert not metrics.handler_dropped_events


def test_log_budget_writes_a_summary_instead_of_a_flood(caplog: Any) -> None:
    from streamserver.logs import LogBudget

    now = [0.0]
    counter: dict[str, int] = {}
    budget = LogBudget(3, 10.0, counter=counter, clock=lambda: now[0])
    log = logging.getLogger("test.budget")
    with caplog.at_level(logging.INFO, "test.budget"):
        for i in range(1000):
            budget.log(log, logging.INFO, "dtmf", "dtmf %d", i)
        now[0] = 11.0
        budget.log(log, logging.INFO, "dtmf", "dtmf late")
        budget.flush(log)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "dtmf 0",
        "dtmf 1",
        "dtmf 2",
        "997 more dtmf line(s) suppressed in 11s",
        "dtmf late",
    ]
    assert counter == {"dtmf": 997}
