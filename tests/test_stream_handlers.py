"""A route's required handlers: the first to fail closes the stream with 1011 and its
reason; a stop event's close waits for every on_stop (bounded) so it can still say so; the
other handlers fail alone, as before. Driven through a real Session with a fake outlet."""

from __future__ import annotations

import asyncio
from pathlib import Path

import plivo_frames as pf
import pytest
from session_support import T, feed, make_session, media_frames, mulaw_chunks, spec, tone

from streamserver.handler import AudioChunk, Handler, HandlerFailure, StopReason
from streamserver.metrics import Metrics
from streamserver.protocol.websocket import CloseCode
from streamserver.settings import ConfigError, load_settings
from streamserver.stream_handlers import StreamHandlers

AUDIO = media_frames(mulaw_chunks(tone(1600)))


class Failing(Handler):
    """Fails on its first audio: with a close reason, or as a plain bug."""

    explained = True

    def on_audio_nowait(self, chunk: AudioChunk) -> None:
        if self.explained:
            raise HandlerFailure("the disk is full (details)", close_reason="storage full")
        raise ZeroDivisionError("a bug")


class Bug(Failing):
    explained = False


class SlowStop(Handler):
    """Its on_stop waits for ``release`` (a recording's last flush)."""

    release: asyncio.Event

    async def on_stop(self, reason: StopReason) -> None:
        await type(self).release.wait()
        if getattr(type(self), "fail", False):
            raise HandlerFailure("last flush failed", close_reason="storage full")


async def test_a_required_handler_that_fails_closes_the_stream_with_its_reason() -> None:
    m = Metrics()
    s, out = make_session(spec(Failing, "rec"), metrics=m, required=frozenset({"rec"}))
    feed(s, pf.start(), *AUDIO)
    assert out.closes == [(CloseCode.INTERNAL_ERROR, "storage full")]
    assert s.ended and s.stop_reason is StopReason.ERROR
    await s.wait_handlers(T)
    assert m.required_handler_closes == {"rec": 1} and m.handler_errors["rec"] == 1


async def test_a_bug_in_a_required_handler_closes_with_a_generic_reason() -> None:
    s, out = make_session(spec(Bug, "rec"), required=frozenset({"rec"}))
    feed(s, pf.start(), *AUDIO)
    assert out.closes == [(CloseCode.INTERNAL_ERROR, "handler rec failed")]  # no details
    await s.wait_handlers(T)


async def test_a_handler_the_route_does_not_require_fails_alone() -> None:
    m = Metrics()
    s, out = make_session(spec(Failing, "rec"), metrics=m)
    feed(s, pf.start(), *AUDIO, pf.stop())
    await s.wait_handlers(T)
    assert out.closes == [(CloseCode.NORMAL, "stream stopped")]
    assert m.required_handler_closes == {} and m.handler_errors["rec"] == 1


@pytest.mark.parametrize("fail", [False, True])
async def test_after_a_stop_the_close_waits_for_required_handlers(fail: bool) -> None:
    class Slow(SlowStop):
        release = asyncio.Event()

    Slow.fail = fail  # type: ignore[attr-defined]
    m = Metrics()
    s, out = make_session(spec(Slow, "rec"), metrics=m, required=frozenset({"rec"}))
    feed(s, pf.start(), *AUDIO, pf.stop())
    for _ in range(20):
        await asyncio.sleep(0)
    assert out.closes == []  # on_stop has not finished
    Slow.release.set()
    await s.wait_handlers(T)
    if fail:
        assert out.closes == [(CloseCode.INTERNAL_ERROR, "storage full")]
        assert m.required_handler_closes == {"rec": 1}
    else:
        assert out.closes == [(CloseCode.NORMAL, "stream stopped")]
        assert m.required_handler_closes == {}


async def test_the_wait_after_a_stop_is_bounded() -> None:
    handlers = StreamHandlers(Metrics(), frozenset({"rec"}))
    closes: list[tuple[int, str]] = []
    done = asyncio.Event()

    def close(code: int, reason: str) -> None:
        closes.append((code, reason))
        done.set()

    handlers.close_after_stop(close, timeout_s=0.01)  # no handler ever reports stopped
    await asyncio.wait_for(done.wait(), T)
    assert closes == [(CloseCode.NORMAL, "stream stopped")]


def test_required_handlers_must_be_handlers_of_the_route(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[routes."/s"]\nhandlers = ["echo"]\nrequired_handlers = ["recorder"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert str(info.value).startswith("routes.\"/s\".required_handlers: 'recorder'")
    cfg.write_text('[routes."/s"]\nhandlers = ["recorder"]\nrequired_handlers = ["recorder"]\n')
    assert load_settings(cfg, environ={}).routes["/s"].required_handlers == ["recorder"]
