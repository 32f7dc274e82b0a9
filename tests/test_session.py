"""A :class:`Session` driven with Plivo frames and a fake outlet: no sockets, no server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import plivo_frames as pf
import pytest
from session_support import (
    CID,
    SID,
    FakeOutlet,
    T,
    cleared_audio,
    feed,
    finish,
    make_session,
    media_frames,
    played_stream,
    settle,
    spec,
)

from streamserver import audio
from streamserver.handler import (
    AudioChunk,
    BusEvent,
    Gap,
    Handler,
    NotBidirectionalError,
    StopReason,
)
from streamserver.metrics import Metrics
from streamserver.protocol.events import ClearedAudio, Dtmf, PlayedStream, Unknown
from streamserver.protocol.websocket import CloseCode
from streamserver.session import Session, SessionLimits, safe_id
from streamserver.session_state import (
    TRANSITIONS,
    SessionState,
    SessionStateError,
    Trigger,
    next_state,
)

F = 160


def payload(i: int, n: int = F) -> bytes:
    return bytes([i % 256]) * n


PAYLOADS = [payload(i) for i in range(1, 21)]


class Log(Handler):
    """Keeps every hook call in ``log`` (through the queue: audio may be coalesced)."""

    def __init__(self, ctx: Any, options: Any = None) -> None:
        super().__init__(ctx, options)
        self.log: list[tuple[Any, ...]] = []

    async def on_start(self) -> None:
        self.log.append(("start",))

    async def on_audio(self, chunk: AudioChunk) -> None:
        self.log.append(("audio", chunk.track, chunk.position, chunk.num_samples, chunk.payload))

    async def on_dtmf(self, dtmf: Dtmf) -> None:
        self.log.append(("dtmf", dtmf.digit))

    async def on_event(self, event: Any) -> None:
        self.log.append(("event", event))

    async def on_stop(self, reason: StopReason) -> None:
        self.log.append(("stop", reason))

    def events(self, kind: type) -> list[Any]:
        return [e[1] for e in self.log if e[0] == "event" and type(e[1]) is kind]

    def timeline(self, track: str = "inbound") -> tuple[bytes, list[tuple[int, int]]]:
        """The audio bytes as placed by position (gaps as 0xFF bytes), and the gaps."""
        out = bytearray()
        gaps = []
        for e in self.log:
            if e[0] == "audio" and e[1] == track:
                assert e[2] == len(out), f"audio at {e[2]}, expected {len(out)}"
                out += e[4]
            elif e[0] == "event" and type(e[1]) is Gap and e[1].track == track:
                assert e[1].position == len(out)
                gaps.append((e[1].position, e[1].samples))
                out += b"\xff" * e[1].samples
        return bytes(out), gaps


class Inline(Handler):
    """Takes audio on the receive path (``on_audio_nowait``): one call per delivery."""

    def __init__(self, ctx: Any, options: Any = None) -> None:
        super().__init__(ctx, options)
        self.chunks: list[tuple[str, int, int, bytes | None]] = []
        self.woken = 0
        self.stopped: StopReason | None = None

    def on_audio_nowait(self, chunk: AudioChunk) -> None:
        self.chunks.append((chunk.track, chunk.position, chunk.num_samples, chunk.payload))
        if len(self.chunks) == 2:
            self.wakeup()
            self.wakeup()  # idempotent until it runs

    async def on_wakeup(self) -> None:
        self.woken += 1

    async def on_stop(self, reason: StopReason) -> None:
        self.stopped = reason


class CrashOnAudio(Log):
    async def on_audio(self, chunk: AudioChunk) -> None:
        await super().on_audio(chunk)
        raise RuntimeError("boom")


class CrashInline(Inline):
    def on_audio_nowait(self, chunk: AudioChunk) -> None:
        super().on_audio_nowait(chunk)
        raise ValueError("inline boom")


class CannotStart(Handler):
    def __init__(self, ctx: Any, options: Any = None) -> None:
        raise RuntimeError("no")


def handler(session: Session, i: int = 0) -> Any:
    return session.runners[i].handler


# -- the state table ----------------------------------------------------------------------


def test_transition_table() -> None:
    assert next_state(SessionState.AWAIT_START, Trigger.START) is SessionState.STREAMING
    assert next_state(SessionState.AWAIT_START, Trigger.END) is SessionState.ENDED
    assert next_state(SessionState.STREAMING, Trigger.END) is SessionState.ENDED
    for state, trigger in [
        (SessionState.STREAMING, Trigger.START),
        (SessionState.ENDED, Trigger.START),
        (SessionState.ENDED, Trigger.END),
    ]:
        with pytest.raises(SessionStateError) as info:
            next_state(state, trigger)
        assert (info.value.state, info.value.trigger) == (state, trigger)
    assert set(TRANSITIONS) == set(SessionState)


async def test_states_and_the_flags_derived_from_them() -> None:
    s, out = make_session(spec(Log))
    assert (s.state, s.started, s.ended) == (SessionState.AWAIT_START, False, False)
    feed(s, pf.start())
    assert (s.state, s.started, s.ended) == (SessionState.STREAMING, True, False)
    assert (s.stream_id, s.call_id) == (SID, CID)
    feed(s, pf.stop())
    assert (s.state, s.started, s.ended) == (SessionState.ENDED, True, True)
    assert out.closes == [(CloseCode.NORMAL, "stream stopped")]
    await s.wait_handlers(T)
    assert handler(s).log == [("start",), ("stop", StopReason.STOP_EVENT)]


# -- start first ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first", [pf.media(payload(1), 1), pf.dtmf("5"), pf.stop(), '{"event":"playedStream"}']
)
async def test_anything_but_start_first_closes_1008(first: str) -> None:
    m = Metrics()
    s, out = make_session(spec(Log), metrics=m)
    feed(s, first, pf.start())  # the start after it comes too late
    assert out.close_code == CloseCode.POLICY_VIOLATION
    assert "before start" in out.closes[0][1]
    assert s.ended and not s.started and s.state is SessionState.ENDED
    assert s.runners == [] and m.frames_invalid["policy"] == 1
    assert s not in m.live


async def test_unknown_events_before_start_are_ignored() -> None:
    s, out = make_session(spec(Log))
    feed(s, '{"event":"ringing","x":1}', pf.start(), '{"event":"ringing","x":2}')
    assert out.closes == [] and s.started
    await finish(s)
    unknown = handler(s).events(Unknown)
    assert [u.raw["x"] for u in unknown] == [2]  # handlers exist only after start
    assert s.unknown_events == 2


@pytest.mark.parametrize(
    ("start", "why"),
    [
        (pf.start(stream_id="../../etc"), "invalid streamId"),
        (pf.start(call_id="a b"), "invalid callId"),
        (pf.start(account_id="x/y"), "invalid accountId"),
    ],
)
async def test_unsafe_ids_close_1008(start: str, why: str) -> None:
    s, out = make_session(spec(Log))
    feed(s, start)
    assert out.close_code == CloseCode.POLICY_VIOLATION and why in out.closes[0][1]
    assert not s.started and s.runners == []


async def test_a_second_start_is_counted_and_ignored() -> None:
    m = Metrics()
    s, out = make_session(spec(Log), metrics=m)
    feed(s, pf.start(), pf.start(stream_id="other"))
    assert s.stream_id == SID and out.closes == []
    assert m.frames_invalid["duplicate_start"] == 1 and s.invalid_frames == 1
    await finish(s)


async def test_start_builds_the_context() -> None:
    s, _ = make_session(spec(Log))
    feed(s, pf.start(encoding="audio/x-l16", rate=16000, tracks=("inbound", "outbound")))
    ctx = handler(s).ctx
    assert (ctx.call_id, ctx.stream_id, ctx.account_id) == (CID, SID, "MAXXXXXXXXXXXXXXXXXX")
    assert ctx.format.content_type == "audio/x-l16;rate=16000" and ctx.sample_rate == 16000
    assert ctx.tracks == ("inbound", "outbound")
    assert (ctx.path, ctx.query, ctx.route, ctx.bidirectional) == (
        "/stream",
        {"a": "1"},
        "/stream",
        True,
    )
    assert ctx.stats()["state"] == "streaming"
    await finish(s)


# -- ordering, gaps, duplicates -------------------------------------------------------------


async def test_in_order_audio_reaches_inline_and_queued_handlers() -> None:
    s, _ = make_session(spec(Inline), spec(Log))
    feed(s, pf.start(), *media_frames(PAYLOADS[:5]))
    inline, queued = handler(s, 0), handler(s, 1)
    # Inline: one call per frame, synchronously, at exact positions.
    assert inline.chunks == [("inbound", i * F, F, PAYLOADS[i]) for i in range(5)]
    await finish(s)
    got, gaps = queued.timeline()
    assert got == b"".join(PAYLOADS[:5]) and gaps == []
    assert s.media_frames == 5 and s.audio_bytes == 5 * F


async def test_reordered_chunks_are_put_back_in_order() -> None:
    m = Metrics()
    s, _ = make_session(spec(Inline), spec(Log), metrics=m)
    feed(s, pf.start(), *media_frames(PAYLOADS, [1, 3, 2, 5, 6, 4, 7]))
    assert [c[1] for c in handler(s).chunks] == [i * F for i in range(7)]
    assert b"".join(c[3] or b"" for c in handler(s).chunks) == b"".join(PAYLOADS[:7])
    await finish(s)
    assert handler(s, 1).timeline() == (b"".join(PAYLOADS[:7]), [])
    assert m.reordered == 3 and s.summary()["gaps"] == 0


async def test_lost_chunks_become_gaps_of_exact_length() -> None:
    m = Metrics()
    s, _ = make_session(spec(Log), limits=SessionLimits(reorder_window=2), metrics=m)
    # 3 and 4 lost: once 3 frames wait, the window (2) overflows.
    feed(s, pf.start(), *media_frames(PAYLOADS, [1, 2, 5, 6, 7, 8]))
    await settle(s)
    got, gaps = handler(s).timeline()
    assert gaps == [(2 * F, 2 * F)]
    assert got == b"".join(PAYLOADS[:2]) + b"\xff" * (2 * F) + b"".join(PAYLOADS[4:8])
    summary = s.summary()
    assert (summary["gaps"], summary["gap_samples"]) == (1, 2 * F)
    assert (m.gaps, m.gap_samples) == (1, 2 * F)
    await finish(s)


async def test_the_end_flushes_the_reorder_window_as_gaps() -> None:
    s, _ = make_session(spec(Log))
    feed(s, pf.start(), *media_frames(PAYLOADS, [1, 3, 5]))  # 2 and 4 never come
    await settle(s)
    assert handler(s).timeline() == (PAYLOADS[0], [])
    await finish(s)
    got, gaps = handler(s).timeline()
    assert gaps == [(F, F), (3 * F, F)]
    assert got == PAYLOADS[0] + b"\xff" * F + PAYLOADS[2] + b"\xff" * F + PAYLOADS[4]
    assert handler(s).log[-1] == ("stop", StopReason.CLOSED)


async def test_duplicates_are_dropped_and_counted() -> None:
    m = Metrics()
    s, _ = make_session(spec(Inline), metrics=m)
    feed(s, pf.start(), *media_frames(PAYLOADS, [1, 2, 2, 1, 4, 4, 3]))
    assert [c[3] for c in handler(s).chunks] == PAYLOADS[:4]
    assert s.summary()["duplicates"] == 3 and m.duplicates == 3
    await finish(s)


async def test_tracks_are_ordered_separately_and_l16_counts_two_bytes() -> None:
    s, _ = make_session(spec(Inline))
    pcm = [bytes(2 * F)] * 3
    feed(
        s,
        pf.start(encoding="audio/x-l16", rate=8000, tracks=("inbound", "outbound")),
        *media_frames(pcm, [1, 2], track="outbound"),
        *media_frames(pcm, [1, 2, 3]),
        *media_frames(pcm, [3], track="outbound"),
    )
    positions = [(c[0], c[1], c[2]) for c in handler(s).chunks]
    assert positions == [
        ("outbound", 0, F),
        ("outbound", F, F),
        ("inbound", 0, F),
        ("inbound", F, F),
        ("inbound", 2 * F, F),
        ("outbound", 2 * F, F),
    ]
    await finish(s)


async def test_timestamps_place_audio_without_chunk_numbers() -> None:
    s, _ = make_session(spec(Log))
    frames = [pf.media(PAYLOADS[i], None, timestamp=t) for i, t in enumerate((500, 520, 560))]
    feed(s, pf.start(), *frames)
    await finish(s)
    assert handler(s).timeline()[1] == [(2 * F, F)]


async def test_a_timestamp_reset_on_a_chunkless_stream_loses_no_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Issue 16: a sender whose clock restarts (timestamps from 0 again, no chunk numbers)
    # must not have the rest of its stream dropped as duplicates.
    m = Metrics()
    s, _ = make_session(spec(Log), metrics=m)
    stamps = [60000 + 20 * i for i in range(10)] + [20 * i for i in range(10)]
    frames = [pf.media(PAYLOADS[i], None, timestamp=t) for i, t in enumerate(stamps)]
    with caplog.at_level(logging.WARNING, logger="streamserver.session"):
        feed(s, pf.start(), *frames)
        await finish(s)
    audio, gaps = handler(s).timeline()
    assert audio == b"".join(PAYLOADS[:20]) and gaps == []  # every frame, contiguous
    assert s.order_stats.duplicates == 0 and m.duplicates == 0
    assert m.resyncs == 1 and s.order_stats.resyncs == 1
    assert "streamserver_timeline_resyncs_total 1" in m.render()
    resyncs = [r for r in caplog.records if "timeline resynced" in r.getMessage()]
    assert len(resyncs) == 1


async def test_bad_media_is_skipped_and_counted() -> None:
    m = Metrics()
    s, out = make_session(spec(Inline), metrics=m)
    feed(
        s,
        pf.start(encoding="audio/x-l16"),
        pf.media(b"\0" * 321, 1),  # odd length L16
        pf.media(b"\0" * 320, 1, track="outbound"),  # not announced
        "not json",
        pf.media(b"\0" * 320, 1),
    )
    assert (m.frames_invalid["audio"], m.frames_invalid["track"], m.frames_invalid["json"]) == (
        1,
        1,
        1,
    )
    assert len(handler(s).chunks) == 1 and out.closes == [] and s.invalid_frames == 3
    await finish(s)


async def test_too_many_invalid_frames_close_1007() -> None:
    s, out = make_session(limits=SessionLimits(max_invalid_frames=3))
    feed(s, pf.start(), *["nope"] * 4)
    assert out.close_code == CloseCode.INVALID_DATA and s.stop_reason is StopReason.ERROR


async def test_binary_frames_close_1003() -> None:
    s, out = make_session()
    feed(s, pf.start())
    s.feed_binary(b"\x00\x01")
    assert out.close_code == CloseCode.UNSUPPORTED_DATA and s.ended


# -- fan-out ----------------------------------------------------------------------------------


async def test_events_fan_out_to_every_handler_in_order_with_audio() -> None:
    s, _ = make_session(spec(Log, "a"), spec(Log, "b"))
    feed(s, pf.start(), pf.media(PAYLOADS[0], 1), pf.dtmf("7"), pf.media(PAYLOADS[1], 2))
    feed(s, '{"event":"whatever"}')
    await finish(s)
    for i in (0, 1):
        kinds = [e[0] if e[0] != "event" else type(e[1]).__name__ for e in handler(s, i).log]
        assert kinds == ["start", "audio", "dtmf", "audio", "Unknown", "stop"]


async def test_publish_reaches_every_handler_but_its_source() -> None:
    s, _ = make_session(spec(Log, "a"), spec(Log, "b"), spec(Log, "c"))
    feed(s, pf.start())
    handler(s, 0).publish("note", {"x": 1})
    s.publish(BusEvent("plivo.callback", {}, "control"))
    await finish(s)
    got = [[(e.topic, e.source) for e in handler(s, i).events(BusEvent)] for i in range(3)]
    assert got[0] == [("plivo.callback", "control")]
    assert got[1] == got[2] == [("note", "a"), ("plivo.callback", "control")]


async def test_a_failing_handler_is_switched_off_and_the_others_go_on() -> None:
    m = Metrics()
    s, _ = make_session(spec(CrashOnAudio, "crash"), spec(Log, "ok"), metrics=m)
    feed(s, pf.start(), pf.media(PAYLOADS[0], 1))
    await settle(s)
    crash, ok = handler(s, 0), handler(s, 1)
    assert s.runners[0].failed and m.handler_errors["crash"] == 1
    feed(s, *media_frames(PAYLOADS, [2, 3]), pf.dtmf("1"))
    await finish(s)
    # The failed handler got nothing after its failure, but still its on_stop.
    assert [e[0] for e in crash.log] == ["start", "audio", "stop"]
    assert ok.timeline()[0] == b"".join(PAYLOADS[:3])
    (err,) = ok.events(BusEvent)
    assert err.topic == "handler.error" and err.source == "session"
    assert err.data["handler"] == "crash" and err.data["hook"] == "on_audio"
    assert "boom" in err.data["error"]
    assert s.summary()["failed_handlers"] == ["crash"]


async def test_a_failing_inline_handler_leaves_the_receive_path() -> None:
    m = Metrics()
    s, _ = make_session(spec(CrashInline, "crash"), spec(Inline, "ok"), metrics=m)
    feed(s, pf.start(), *media_frames(PAYLOADS[:4]))
    crash, ok = handler(s, 0), handler(s, 1)
    assert len(crash.chunks) == 1 and len(ok.chunks) == 4  # the frame it failed on goes on
    assert m.handler_errors["crash"] == 1
    await finish(s)
    assert crash.stopped is StopReason.CLOSED and ok.stopped is StopReason.CLOSED


async def test_a_handler_that_cannot_be_created_is_left_out() -> None:
    m = Metrics()
    s, _ = make_session(spec(CannotStart, "bad"), spec(Log, "ok"), metrics=m)
    feed(s, pf.start())
    assert [r.spec.name for r in s.runners] == ["ok"] and m.handler_errors["bad"] == 1
    await finish(s)


async def test_wakeup_runs_on_wakeup_once() -> None:
    s, _ = make_session(spec(Inline))
    feed(s, pf.start(), *media_frames(PAYLOADS[:3]))
    await settle(s)
    assert handler(s).woken == 1
    await finish(s)


async def test_handlers_stop_in_route_order_after_the_one_before() -> None:
    order: list[str] = []

    class Last(Handler):
        async def on_stop(self, reason: StopReason) -> None:
            order.append(self.name)
            self.publish("bye", self.name)

    class Listen(Last):
        async def on_event(self, event: Any) -> None:
            order.append(f"{self.name} got {event.data}")

    s, _ = make_session(spec(Last, "a"), spec(Listen, "b"))
    feed(s, pf.start())
    await finish(s)
    assert order == ["a", "b got a", "b"]


# -- playback and checkpoints -----------------------------------------------------------------


async def test_play_encoded_splits_into_20ms_frames_and_play_resamples() -> None:
    s, out = make_session(spec(Log))
    feed(s, pf.start())
    ctx = handler(s).ctx
    ctx.play_encoded_nowait(payload(9, 400))
    assert [len(m) for m in [out.played()]] == [400]
    frames = out.events("playAudio")
    assert [m["media"]["contentType"] for m in frames] == ["audio/x-mulaw"] * 3
    assert [m["media"]["sampleRate"] for m in frames] == [8000] * 3
    assert not any(out.urgent)  # audio may be coalesced by the transport
    out.sent.clear()
    await ctx.play(np.zeros(1600, dtype=np.int16), 16000)  # 100 ms at 16 kHz
    assert out.played() == audio.ulaw_encode(np.zeros(800, dtype=np.int16))
    assert s.summary()["frames"] == 1
    await finish(s)
    ctx.play_encoded_nowait(payload(1))
    assert len(out.sent) == 5  # nothing is sent after the end


async def test_checkpoint_resolves_true_when_played() -> None:
    s, out = make_session(spec(Log))
    feed(s, pf.start())
    ctx = handler(s).ctx
    ctx.play_encoded_nowait(PAYLOADS[0])
    first, second = ctx.checkpoint("p"), ctx.checkpoint("p")
    assert [m["event"] for m in out.sent] == ["playAudio", "checkpoint", "checkpoint"]
    assert out.urgent == [False, True, True]
    assert out.sent[1] == {"event": "checkpoint", "streamId": SID, "name": "p"}
    feed(s, played_stream("p"))
    assert await asyncio.wait_for(first, T) is True and not second.done()
    feed(s, played_stream("p"))
    assert await asyncio.wait_for(second, T) is True
    await finish(s)
    assert len(handler(s).events(PlayedStream)) == 2


async def test_clear_resolves_earlier_checkpoints_false() -> None:
    s, out = make_session(spec(Log))
    feed(s, pf.start())
    ctx = handler(s).ctx
    before = ctx.checkpoint("a")
    ctx.clear()
    after = ctx.checkpoint("b")
    assert out.sent[1] == {"event": "clearAudio", "streamId": SID}
    feed(s, cleared_audio())
    assert await asyncio.wait_for(before, T) is False
    assert not after.done()  # sent after the clear: it may still play
    await finish(s)
    assert await asyncio.wait_for(after, T) is False  # the end resolves it
    assert ctx.checkpoint("late").result() is False
    assert len(handler(s).events(ClearedAudio)) == 1


async def test_send_dtmf() -> None:
    s, out = make_session(spec(Log))
    feed(s, pf.start())
    handler(s).ctx.send_dtmf("12#")
    assert out.sent == [{"event": "sendDTMF", "dtmf": "12#"}]
    await finish(s)


async def test_playback_needs_a_bidirectional_route() -> None:
    s, out = make_session(spec(Log), bidirectional=False)
    feed(s, pf.start())
    ctx = handler(s).ctx
    with pytest.raises(NotBidirectionalError):
        ctx.play_encoded_nowait(PAYLOADS[0])
    with pytest.raises(NotBidirectionalError):
        ctx.checkpoint("x")
    with pytest.raises(NotBidirectionalError):
        ctx.clear()
    with pytest.raises(NotBidirectionalError):
        await ctx.play(np.zeros(10, dtype=np.int16))
    assert out.sent == []
    await finish(s)


async def test_a_socket_that_stays_unwritable_ends_the_stream_1001() -> None:
    s, out = make_session(spec(Log), limits=SessionLimits(send_timeout_s=0.05))
    feed(s, pf.start())
    out.paused = True
    await handler(s).ctx.play_encoded(PAYLOADS[0])
    assert out.closes == [(CloseCode.GOING_AWAY, "send timeout")]
    assert s.ended and s.stop_reason is StopReason.DRAIN
    await s.wait_handlers(T)


async def test_play_encoded_waits_while_the_socket_is_full() -> None:
    s, out = make_session(spec(Log))
    feed(s, pf.start())
    out.paused = True
    task = asyncio.create_task(handler(s).ctx.play_encoded(PAYLOADS[0]))
    await asyncio.sleep(0)
    assert not task.done() and len(out.sent) == 1
    out.writable.set()
    await asyncio.wait_for(task, T)
    assert out.closes == []
    await finish(s)


# -- time and the end -------------------------------------------------------------------------


async def test_start_timeout_via_tick() -> None:
    s, out = make_session(spec(Log), limits=SessionLimits(start_timeout_s=2.0))
    t0 = s.connected_at
    assert s.tick(t0 + 1.9) is False and out.closes == []
    assert s.tick(t0 + 2.1) is False
    assert out.closes == [(CloseCode.POLICY_VIOLATION, "start timeout: no start event")]
    assert s.stop_reason is StopReason.TIMEOUT and s.ended


async def test_idle_timeout_via_tick_and_flowing_streams() -> None:
    s, out = make_session(spec(Log), limits=SessionLimits(idle_timeout_s=3.0))
    t0 = s.connected_at
    feed(s, pf.start(), pf.media(PAYLOADS[0], 1))
    assert s.tick(t0 + 1.0) is True  # frames since the last tick
    assert s.last_rx == t0 + 1.0 and s.idle_mark_frames == s.frames == 2
    assert s.tick(t0 + 3.9) is False and out.closes == []
    feed(s, pf.media(PAYLOADS[1], 2))
    assert s.tick(t0 + 4.0) is True
    assert s.tick(t0 + 7.1) is False
    assert out.closes == [(CloseCode.POLICY_VIOLATION, "idle timeout")]
    await s.wait_handlers(T)
    assert handler(s).log[-1] == ("stop", StopReason.TIMEOUT)
    assert s.tick(t0 + 100) is False and len(out.closes) == 1


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (CloseCode.GOING_AWAY, StopReason.DRAIN),
        (CloseCode.INTERNAL_ERROR, StopReason.ERROR),
        (CloseCode.POLICY_VIOLATION, StopReason.ERROR),
    ],
)
async def test_close_ends_the_stream_with_its_reason(code: int, reason: StopReason) -> None:
    s, out = make_session(spec(Log))
    feed(s, pf.start())
    s.close(code, "bye")
    assert out.closes == [(code, "bye")] and s.stop_reason is reason
    await s.wait_handlers(T)
    assert handler(s).log[-1] == ("stop", reason)


async def test_end_is_final_and_idempotent() -> None:
    m = Metrics()
    s, _ = make_session(spec(Inline), metrics=m)
    feed(s, pf.start(), pf.media(PAYLOADS[0], 1))
    assert s in m.live
    s.end(StopReason.CLOSED)
    s.end(StopReason.ERROR)
    assert s.stop_reason is StopReason.CLOSED and s not in m.live
    assert m.stop_reasons == {"closed": 1} and m.media_frames == 1
    feed(s, pf.media(PAYLOADS[1], 2), pf.start())  # ignored, not counted
    assert s.frames == 2 and len(handler(s).chunks) == 1
    await s.wait_handlers(T)
    assert handler(s).stopped is StopReason.CLOSED


async def test_summary() -> None:
    s, _ = make_session(spec(Log, "a"))
    assert s.summary()["state"] == "await_start" and s.summary()["format"] is None
    feed(s, pf.start(), *media_frames(PAYLOADS, [1, 1, 3]))
    got = s.summary()
    assert {k: got[k] for k in ("call_id", "stream_id", "route", "handlers", "format")} == {
        "call_id": CID,
        "stream_id": SID,
        "route": "/stream",
        "handlers": ["a"],
        "format": "audio/x-mulaw;rate=8000",
    }
    assert (got["frames"], got["media_frames"], got["duplicates"]) == (4, 3, 1)
    await finish(s)


def test_the_fake_outlet_is_an_outlet() -> None:
    from streamserver.session import Outlet

    outlet: Outlet = FakeOutlet()
    assert outlet.write_paused() is False


async def test_jumps_are_invalid_input_or_capped_and_may_end_the_stream() -> None:
    # Issue 16, defect 1: a lone far-off chunk is an invalid frame; a confirmed jump is a
    # capped gap, logged once, and closes with 1007 when close_on_capped_gap is set.
    payload = b"\xff" * 160
    s, outlet = make_session(limits=SessionLimits(max_gap_s=1.0))
    feed(s, pf.start(), pf.media(payload, 1), pf.media(payload, 10**9), pf.media(payload, 2))
    await finish(s)
    assert s.metrics.frames_invalid["jump"] == 1 and s.metrics.gaps_capped == 0
    s, outlet = make_session(limits=SessionLimits(max_gap_s=1.0, close_on_capped_gap=True))
    feed(
        s, pf.start(), pf.media(payload, 1), pf.media(payload, 10**6), pf.media(payload, 10**6 + 1)
    )
    assert s.metrics.gaps_capped == 1 and s.metrics.gap_samples == 8000
    assert outlet.close_code == 1007
    await finish(s)


async def test_a_dtmf_flood_writes_a_few_lines_and_a_summary(caplog: Any) -> None:
    # Issue 16, defect 4: a DTMF flood wrote one INFO line per digit.
    s, _ = make_session()
    with caplog.at_level(logging.INFO, "streamserver.session"):
        feed(s, pf.start(), *[pf.dtmf("5") for _ in range(5000)])
        await finish(s)
    dtmf_lines = [r.getMessage() for r in caplog.records if "dtmf" in r.getMessage()]
    assert len(dtmf_lines) == 6
    assert dtmf_lines[-1].startswith("4995 more dtmf line(s) suppressed")
    assert s.metrics.dtmf_received == 5000
    assert s.metrics.log_suppressed == {"dtmf": 4995}


async def test_a_text_frame_that_is_not_utf8_closes_with_1007() -> None:
    s, outlet = make_session()
    feed(s, pf.start(), b'{"event": "media", "x": "\xff\xfe"}')
    assert outlet.close_code == 1007 and s.metrics.frames_invalid["utf8"] == 1
    await finish(s)


@pytest.mark.parametrize(
    "value",
    [
        "v3:AbC9xYz_dEf-12GhI_jKl3mN-oPq",  # Telnyx call_control_id
        "MZ18ad3ab5a668481ce02b83e7395059f0",  # Twilio
        "b77e037d-4119-44b5-902d-25826b654539",  # Plivo
        "a" * 256,
    ],
)
def test_real_provider_ids_are_safe(value: str) -> None:
    assert safe_id(value)


@pytest.mark.parametrize(
    "value",
    ["", ".hidden", "a/b", "a\\b", "a..b", "..", "a\x00b", "_lead", "a b", "a" * 257, "é"],
)
def test_unsafe_ids_are_refused(value: str) -> None:
    assert not safe_id(value)
