"""The echo handler, driven through a real Session with a fake outlet."""

from __future__ import annotations

import logging

import numpy as np
import plivo_frames as pf
import pytest
from session_support import SID, feed, finish, make_session, media_frames, tone

from streamserver import audio
from streamserver.handler import AudioChunk, HandlerSpec, load_handler
from streamserver.session import SessionLimits

F = 160


def echo(**options: str) -> HandlerSpec:
    return load_handler("echo", options)


def payloads(n: int = 10, frame: int = F) -> list[bytes]:
    enc = audio.ulaw_encode(tone(n * frame))
    return [enc[i : i + frame] for i in range(0, len(enc), frame)]


async def test_echo_sends_back_every_frame_it_gets() -> None:
    chunks = payloads()
    s, out = make_session(echo())
    feed(s, pf.start(), *media_frames(chunks))
    frames = out.events("playAudio")
    assert [f["streamId"] for f in frames] == [SID] * len(chunks)
    assert {f["media"]["contentType"] for f in frames} == {"audio/x-mulaw"}
    assert {f["media"]["sampleRate"] for f in frames} == {8000}
    assert out.played() == b"".join(chunks)
    assert not any(out.urgent)  # audio: the transport may coalesce it
    await finish(s)


async def test_echo_sends_audio_back_in_order() -> None:
    chunks = payloads()
    s, out = make_session(echo(), limits=SessionLimits(reorder_window=3))
    feed(s, pf.start(), *media_frames(chunks, [1, 3, 2, 4, 6, 5, 7, 7, 8, 9, 10]))
    assert out.played() == b"".join(chunks)
    await finish(s)


async def test_echo_plays_only_its_track() -> None:
    inbound, outbound = payloads(3), [bytes([0x55]) * F] * 3
    s, out = make_session(echo(track="outbound"))
    feed(
        s,
        pf.start(tracks=("inbound", "outbound")),
        *media_frames(inbound),
        *media_frames(outbound, track="outbound"),
    )
    assert out.played() == b"".join(outbound)
    await finish(s)


async def test_echo_l16() -> None:
    pcm = tone(3 * 320, 16000)
    chunks = [audio.l16_encode(pcm[i : i + 320]) for i in range(0, len(pcm), 320)]
    s, out = make_session(echo())
    feed(s, pf.start(encoding="audio/x-l16", rate=16000), *media_frames(chunks))
    assert {f["media"]["contentType"] for f in out.events("playAudio")} == {"audio/x-l16"}
    assert {f["media"]["sampleRate"] for f in out.events("playAudio")} == {16000}
    assert np.array_equal(audio.l16_decode(out.played()), pcm)
    await finish(s)


async def test_echo_encodes_decoded_audio() -> None:
    s, out = make_session(echo())
    feed(s, pf.start())
    pcm = tone(F)
    s.runners[0].handler.on_audio_nowait(AudioChunk.from_pcm("inbound", pcm, 0, 8000))
    assert out.played() == audio.ulaw_encode(pcm)
    await finish(s)


async def test_echo_on_a_listen_only_route_sends_nothing(caplog: pytest.LogCaptureFixture) -> None:
    s, out = make_session(echo(), bidirectional=False)
    with caplog.at_level(logging.WARNING):
        feed(s, pf.start(), *media_frames(payloads(3)))
        await finish(s)
    assert out.sent == [] and out.closes == []
    assert "echo needs a bidirectional route" in caplog.text
    assert not s.runners[0].failed
