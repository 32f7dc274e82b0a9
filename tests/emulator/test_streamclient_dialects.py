"""The stream client in every dialect, against a real WebSocket server on loopback that
speaks the server side of the pure protocol modules (:mod:`streamserver.protocol.detect`).

The scripted server detects the dialect from the first messages, decodes every frame with
the dialect's own ``decode``/``decode_binary``, echoes the audio back with ``encode_play``
and sends checkpoints and clears; the test checks the audio sample by sample and how the
client answered, the way that provider does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from streamserver.audio import AudioFormat
from streamserver.emulator.streamclient import PlivoStreamClient, StreamClientOptions
from streamserver.protocol import ClearedAudio, Dtmf, Media, PlayedStream, Start, Stop, detect
from streamserver.protocol.dialect import Dialect
from streamserver.protocol.neutral import Connected

TIMEOUT = 10.0


def noise(n: int, seed: int = 1, amplitude: int = 8000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-amplitude, amplitude, n).astype(np.int16)


@dataclass
class Seen:
    dialect: Dialect | None = None
    start: Start | None = None
    media: list[Media] = field(default_factory=list)
    binary: int = 0
    dtmf: list[str] = field(default_factory=list)
    played: list[str] = field(default_factory=list)
    cleared: int = 0
    stopped: bool = False


@asynccontextmanager
async def provider_server(
    *, echo: bool = False, clear_after: int | None = None, close_on_played: str | None = None
) -> AsyncIterator[tuple[str, Seen]]:
    """A server that decodes every frame in the detected dialect; with ``echo`` it sends
    each frame's audio back, then a checkpoint per 5 frames; with ``clear_after`` it queues
    a long prompt and two checkpoints after that many frames, then clears; with
    ``close_on_played`` it closes the socket once the client has answered that checkpoint."""
    seen = Seen()

    async def handler(ws: ServerConnection) -> None:
        d: Dialect | None = None
        frames = 0
        async for message in ws:
            if isinstance(message, bytes):
                d = d or detect.detect_binary()
                event: Any = d.decode_binary(message)
                seen.binary += 1
            else:
                if d is None:
                    d = detect.detect(message)
                    if d is None:
                        continue  # a bare connected: Telnyx or Exotel, decide on start
                event = d.decode(message)
            seen.dialect = d
            sid = seen.start.stream_id if seen.start else ""
            match event:
                case Connected():
                    pass
                case Start():
                    seen.start = event
                case Media():
                    seen.media.append(event)
                    frames += 1
                    if echo:
                        fmt = seen.start
                        assert fmt is not None
                        out = d.encode_play(event.payload, fmt.encoding, fmt.sample_rate, sid)
                        await ws.send(out, text=not d.binary_audio)
                        if frames % 5 == 0:
                            await ws.send(d.encode_checkpoint(sid, f"c{frames}"), text=True)
                    if frames == clear_after:
                        fmt = seen.start
                        assert fmt is not None
                        prompt = bytes(fmt.sample_rate * 2)  # 1 s (μ-law) or 0.5 s (L16)
                        out = d.encode_play(prompt, fmt.encoding, fmt.sample_rate, sid)
                        await ws.send(out, text=not d.binary_audio)
                        await ws.send(d.encode_checkpoint(sid, "p1"), text=True)
                        await ws.send(d.encode_checkpoint(sid, "p2"), text=True)
                        await asyncio.sleep(0.05)
                        await ws.send(d.encode_clear(sid), text=True)
                case Dtmf(digit=digit):
                    seen.dtmf.append(digit)
                case PlayedStream(name=name):
                    seen.played.append(name)
                    if name == close_on_played:
                        await ws.close()
                case ClearedAudio():
                    seen.cleared += 1
                case Stop():
                    seen.stopped = True

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/stream", seen


CASES = [
    ("plivo", "audio/x-mulaw;rate=8000"),
    ("twilio", "audio/x-mulaw;rate=8000"),
    ("telnyx", "audio/x-mulaw;rate=8000"),
    ("telnyx", "audio/x-alaw;rate=8000"),
    ("telnyx", "audio/x-l16;rate=16000"),
    ("exotel", "audio/x-l16;rate=8000"),
    ("exotel", "audio/x-l16;rate=24000"),
    ("vonage", "audio/x-l16;rate=16000"),
    ("vonage", "audio/x-l16;rate=8000"),
]


@pytest.mark.parametrize(("dialect", "content_type"), CASES)
async def test_every_dialect_streams_sample_exact_with_dtmf_and_stop(
    dialect: str, content_type: str
) -> None:
    rate = AudioFormat.from_content_type(content_type).sample_rate
    voice = noise(rate // 2, seed=7)  # 0.5 s at the stream's rate
    async with provider_server() as (url, seen):
        client = PlivoStreamClient(
            StreamClientOptions(
                url=url,
                inbound=voice,
                source_rate=rate,
                content_type=content_type,
                dialect=dialect,
                dtmf=[(0.1, "5")],
                speed=None,
                call_id="CA0123456789abcdef0123456789abcdef",
                stream_id="MZ0123456789abcdef0123456789abcdef",
            )
        )
        report = await asyncio.wait_for(client.run(), TIMEOUT)
        await asyncio.sleep(0.05)
    assert report.ok, report.errors
    assert seen.dialect is not None and seen.dialect.name == dialect
    start = seen.start
    assert start is not None
    assert start.sample_rate == rate
    assert start.call_id == "CA0123456789abcdef0123456789abcdef"
    if dialect != "vonage":  # Vonage carries the ids as headers the server may read
        assert start.stream_id == "MZ0123456789abcdef0123456789abcdef"
    wire = AudioFormat(start.encoding, start.sample_rate)
    got = np.concatenate([wire.decode(m.payload) for m in seen.media])
    expected = wire.decode(wire.encode(voice))
    assert np.array_equal(got[: len(expected)], expected)
    assert not got[len(expected) :].any()
    assert seen.dtmf == ["5"]
    assert seen.binary == (len(seen.media) if dialect == "vonage" else 0)
    assert seen.stopped is (dialect != "vonage")  # Vonage just closes


@pytest.mark.parametrize("dialect", ["plivo", "twilio", "telnyx", "exotel", "vonage"])
async def test_every_dialect_hears_the_echo_and_answers_checkpoints(dialect: str) -> None:
    fmt = AudioFormat(*detect.PROVIDER_FORMATS[dialect][0])
    voice = noise(fmt.sample_rate // 2, seed=3)
    n = -(-len(voice) // (fmt.sample_rate // 50))  # 20 ms frames
    last = f"c{n - n % 5}"
    # The server closes once the last checkpoint is answered; the long tail only bounds a
    # hang, so a loaded machine cannot cut the echo short.
    async with provider_server(echo=True, close_on_played=last) as (url, seen):
        client = PlivoStreamClient(
            StreamClientOptions(
                url=url,
                inbound=voice,
                source_rate=fmt.sample_rate,
                dialect=dialect,
                bidirectional=True,
                speed=1.0,
                tail_s=TIMEOUT / 2,
            )
        )
        report = await asyncio.wait_for(client.run(), TIMEOUT)
        await asyncio.sleep(0.05)
    assert report.ok, report.errors
    assert len(seen.media) == n
    assert report.echo_rtt is not None and report.echo_rtt.count == n
    assert seen.played == [f"c{k}" for k in range(5, n + 1, 5)]
    assert [name for name, _ in report.checkpoints] == seen.played
    # What the caller heard, segment by segment: the echo, sample-exact and in order. A
    # late tick on a loaded machine may split it with silence; it may not change a sample.
    expected = fmt.decode(fmt.encode(voice))
    rate = fmt.sample_rate
    heard = np.concatenate(
        [report.heard[round(b * rate) : round(e * rate)] for b, e in report.played_segments]
    )
    assert np.array_equal(heard[: len(expected)], expected)
    assert not heard[len(expected) :].any()


@pytest.mark.parametrize(
    ("dialect", "echoed", "cleared"),
    [("twilio", ["p1", "p2"], 0), ("telnyx", [], 0), ("vonage", [], 1), ("plivo", [], 1)],
)
async def test_clear_answered_the_providers_way(
    dialect: str, echoed: list[str], cleared: int
) -> None:
    """Twilio echoes the marks pending at a clear; Vonage and Plivo answer the clear."""
    fmt = AudioFormat(*detect.PROVIDER_FORMATS[dialect][0])
    async with provider_server(clear_after=3) as (url, seen):
        client = PlivoStreamClient(
            StreamClientOptions(
                url=url,
                inbound=noise(fmt.sample_rate // 2),
                source_rate=fmt.sample_rate,
                dialect=dialect,
                bidirectional=True,
                speed=1.0,
                tail_s=0.2,
            )
        )
        report = await asyncio.wait_for(client.run(), TIMEOUT)
        await asyncio.sleep(0.05)
    assert report.ok, report.errors
    assert seen.played == echoed
    assert report.marks_after_clear == echoed
    assert report.checkpoints == []  # none of them was played
    assert seen.cleared == cleared
    assert len(report.cleared) == 1


def test_content_type_follows_the_dialect() -> None:
    def options(dialect: str, content_type: str | None, **kw: Any) -> StreamClientOptions:
        return StreamClientOptions(
            url="ws://127.0.0.1:1/s",
            inbound=noise(800),
            dialect=dialect,
            content_type=content_type,
            **kw,
        )

    with pytest.raises(ValueError, match="twilio streams have no audio/x-l16;rate=16000"):
        PlivoStreamClient(options("twilio", "audio/x-l16;rate=16000"))
    with pytest.raises(ValueError, match="vonage streams have no audio/x-mulaw"):
        PlivoStreamClient(options("vonage", "audio/x-mulaw;rate=8000"))
    with pytest.raises(ValueError, match="plivo streams have no audio/x-alaw"):
        PlivoStreamClient(options("plivo", "audio/x-alaw;rate=8000"))
    with pytest.raises(ValueError, match="unknown dialect"):
        PlivoStreamClient(options("signalwire", None))
    with pytest.raises(ValueError, match="caller only"):
        PlivoStreamClient(options("exotel", None, tracks="both"))
    # Telnyx L16 is big-endian on the wire; Vonage defaults to 16 kHz.
    assert PlivoStreamClient(options("telnyx", "audio/x-l16;rate=8000")).report.content_type == (
        "audio/x-l16-be;rate=8000"
    )
    assert PlivoStreamClient(options("vonage", None)).report.sample_rate == 16000
