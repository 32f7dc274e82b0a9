"""The real server on a real socket: recording, echo, limits, bad input, health endpoints."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import plivo_frames as pf
import pytest
import soundfile as sf
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from streamserver import audio
from streamserver.handler import AudioChunk, Handler

SID = "b77e037d-4119-44b5-902d-25826b654539"
CID = "a1b2c3d4-0000-4000-8000-000000000001"
T = 10.0  # generous timeout unit


def tone(n: int, rate: int = 8000, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    x = 8000 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 500, n)
    return np.clip(x, -32768, 32767).astype(np.int16)


async def wait_for(pred: Any, timeout: float = T) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def stream_and_close(url: str, frames: list[str], *, close: bool = True) -> Any:
    async with connect(url, compression=None) as ws:
        for f in frames:
            await ws.send(f)
        if close:
            await ws.close()
        return ws


def mulaw_frames(pcm: np.ndarray, track: str = "inbound") -> tuple[list[str], np.ndarray]:
    enc = audio.ulaw_encode(pcm)
    frames = [
        pf.media(enc[i : i + 160], i // 160 + 1, track=track, timestamp=i // 8)
        for i in range(0, len(enc), 160)
    ]
    return frames, audio.ulaw_decode(enc)


async def wait_finished(server: Any) -> None:
    await wait_for(lambda: not server.sessions)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(str(path), dtype="int16")
    return data, rate


async def test_mulaw_stream_recorded_sample_exact(serve: Any, record_dir: Path) -> None:
    pcm = tone(8000 * 2 + 37)  # not a multiple of the frame size
    frames, expected = mulaw_frames(pcm)
    async with serve() as server:
        await stream_and_close(
            f"{server.url}/stream?x=1", [pf.start(extra_headers="a=1;b=two"), *frames]
        )
        await wait_finished(server)
    wav = record_dir / CID / f"{SID}.inbound.wav"
    data, rate = read_wav(wav)
    assert rate == 8000
    assert np.array_equal(data, expected)
    side = json.loads((record_dir / CID / f"{SID}.json").read_text())
    assert side["extra_headers"] == {"a": "1", "b": "two"}
    assert side["stop_reason"] == "closed"
    assert side["samples"]["inbound"] == len(expected)
    assert side["gaps"] == 0


async def test_l16_16k_both_tracks_with_gap_and_reorder(serve: Any, record_dir: Path) -> None:
    rate = 16000
    inbound = tone(rate, rate, 300.0, 1)
    outbound = tone(rate, rate, 700.0, 2)
    n = 320  # 20 ms at 16 kHz
    frames = [pf.start(encoding="audio/x-l16", rate=rate, tracks=("inbound", "outbound"))]
    chunks = list(range(1, len(inbound) // n + 1))
    in_order = [c for c in chunks if c != 10]  # chunk 10 of inbound is lost
    # swap 20 and 21 of inbound (small reordering), duplicate 30
    in_order[18], in_order[19] = in_order[19], in_order[18]
    in_order.insert(30, 30)
    for c in in_order:
        frames.append(pf.media(audio.l16_encode(inbound[(c - 1) * n : c * n]), c))
    for c in chunks:
        frames.append(
            pf.media(audio.l16_encode(outbound[(c - 1) * n : c * n]), c, track="outbound")
        )
    async with serve() as server:
        await stream_and_close(f"{server.url}/stream", frames)
        await wait_finished(server)
        text = server.metrics.render()
    got_in, r = read_wav(record_dir / CID / f"{SID}.inbound.wav")
    got_out, _ = read_wav(record_dir / CID / f"{SID}.outbound.wav")
    assert r == rate
    want_in = inbound.copy()
    want_in[9 * n : 10 * n] = 0  # the lost chunk is exact silence
    assert np.array_equal(got_in, want_in)
    assert np.array_equal(got_out, outbound)
    assert "streamserver_gaps_total 1" in text
    assert "streamserver_duplicates_total 1" in text


async def test_stereo_flac_and_keep_mulaw(serve: Any, record_dir: Path) -> None:
    pcm = tone(4000)
    frames, expected = mulaw_frames(pcm)
    out_frames, expected_out = mulaw_frames(tone(2400, seed=5), track="outbound")
    async with serve(handler={"recorder": {"layout": "stereo", "format": "flac"}}) as server:
        await stream_and_close(
            f"{server.url}/stream",
            [pf.start(tracks=("inbound", "outbound")), *frames, *out_frames],
        )
        await wait_finished(server)
    data, _ = read_wav(record_dir / CID / f"{SID}.flac")
    assert data.shape == (4000, 2)
    assert np.array_equal(data[:, 0], expected)
    assert np.array_equal(data[: len(expected_out), 1], expected_out)
    assert not data[len(expected_out) :, 1].any()


async def test_keep_mulaw_wav_is_lossless(serve: Any, record_dir: Path) -> None:
    pcm = tone(3200)
    frames, expected = mulaw_frames(pcm)
    async with serve(handler={"recorder": {"keep_mulaw": True}}) as server:
        await stream_and_close(f"{server.url}/stream", [pf.start(), *frames])
        await wait_finished(server)
    path = record_dir / CID / f"{SID}.inbound.wav"
    assert sf.info(str(path)).subtype == "ULAW"
    data, _ = read_wav(path)
    assert np.array_equal(data, expected)


async def test_echo_and_checkpoint(serve: Any) -> None:
    seen: dict[str, Any] = {}

    class Probe(Handler):
        async def on_start(self) -> None:
            await self.ctx.play(np.zeros(800, dtype=np.int16), 16000)  # resampled to 8k
            seen["played"] = await self.ctx.checkpoint("greeting")

    import sys

    sys.modules[__name__].Probe = Probe  # type: ignore[attr-defined]
    routes = {"/bot": {"handlers": ["echo", f"{__name__}:Probe"], "bidirectional": True}}
    pcm = tone(1600)
    frames, _ = mulaw_frames(pcm)
    async with serve(routes=routes) as server, connect(f"{server.url}/bot") as ws:
        await ws.send(pf.start())
        for f in frames:
            await ws.send(f)
        got: list[dict[str, Any]] = []

        def count(ev: str) -> int:
            return len([g for g in got if g["event"] == ev])

        while count("playAudio") < 10 + 3 or count("checkpoint") < 1:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), T)))
        cps = [g for g in got if g["event"] == "checkpoint"]
        assert cps == [{"event": "checkpoint", "streamId": SID, "name": "greeting"}]
        plays = [g for g in got if g["event"] == "playAudio"]
        payloads = [base64.b64decode(p["media"]["payload"]) for p in plays]
        silent = [p for p in payloads if set(p) == {0xFF}]
        # 50 ms of 16 kHz silence -> 400 samples at 8 kHz -> frames of 160 + 160 + 80
        assert [len(p) for p in silent] == [160, 160, 80]
        echoed = b"".join(p for p in payloads if set(p) != {0xFF})
        assert echoed == audio.ulaw_encode(pcm)
        assert all(p["media"]["contentType"] == "audio/x-mulaw" for p in plays)
        await ws.send(json.dumps({"event": "playedStream", "streamId": SID, "name": "greeting"}))
        await wait_for(lambda: "played" in seen)
        assert seen["played"] is True


async def test_clear_resolves_checkpoint_false(serve: Any) -> None:
    seen: dict[str, Any] = {}

    class Barge(Handler):
        async def on_start(self) -> None:
            await self.ctx.play(np.zeros(1600, dtype=np.int16))
            fut = self.ctx.checkpoint("c1")
            self.ctx.clear()
            seen["c1"] = await fut

    import sys

    sys.modules[__name__].Barge = Barge  # type: ignore[attr-defined]
    routes = {"/b": {"handlers": [f"{__name__}:Barge"]}}
    async with serve(routes=routes) as server, connect(f"{server.url}/b") as ws:
        await ws.send(pf.start())
        events: list[str] = []
        while "clearAudio" not in events:
            events.append(json.loads(await asyncio.wait_for(ws.recv(), T))["event"])
        await ws.send(json.dumps({"event": "clearedAudio", "streamId": SID}))
        await wait_for(lambda: "c1" in seen)
    assert seen["c1"] is False


async def test_dtmf_and_unknown_events_reach_handlers(serve: Any) -> None:
    got: list[Any] = []

    class Rec(Handler):
        async def on_dtmf(self, dtmf: Any) -> None:
            got.append(("dtmf", dtmf.digit))

        async def on_event(self, event: Any) -> None:
            got.append(("event", type(event).__name__))

        async def on_stop(self, reason: Any) -> None:
            got.append(("stop", str(reason)))

    import sys

    sys.modules[__name__].Rec = Rec  # type: ignore[attr-defined]
    async with serve(routes={"/s": {"handlers": [f"{__name__}:Rec"]}}) as server:
        await stream_and_close(
            f"{server.url}/s",
            [
                pf.start(),
                pf.dtmf("5"),
                json.dumps({"event": "muteStream", "streamId": SID}),
                pf.dtmf("#"),
                pf.stop(),
            ],
        )
        await wait_finished(server)
    assert got == [
        ("dtmf", "5"),
        ("event", "Unknown"),
        ("dtmf", "#"),
        ("stop", "stop"),
    ]


class Slow(Handler):
    max_queue_s = 0.2

    async def on_audio(self, chunk: AudioChunk) -> None:
        await asyncio.sleep(0.5)


class Crash(Handler):
    async def on_audio(self, chunk: AudioChunk) -> None:
        raise RuntimeError("boom")


async def test_slow_and_crashing_handlers_do_not_hurt_recorder(
    serve: Any, record_dir: Path
) -> None:
    pcm = tone(8000 * 2)
    frames, expected = mulaw_frames(pcm)
    routes = {"/stream": {"handlers": [f"{__name__}:Slow", f"{__name__}:Crash", "recorder"]}}
    async with serve(routes=routes, handler_stop_timeout_s=2.0) as server:
        async with connect(f"{server.url}/stream") as ws:
            await ws.send(pf.start())
            for f in frames:
                await ws.send(f)
            # The recorder has everything while the slow handler is still busy.
            await wait_for(
                lambda: any(
                    r.spec.name == "recorder" and not r.queue
                    for s in server.active_sessions()
                    for r in s.runners
                )
            )
            sess = next(iter(server.active_sessions()))
            assert not sess.ended
        await wait_finished(server)
        text = server.metrics.render()
    data, _ = read_wav(record_dir / CID / f"{SID}.inbound.wav")
    assert np.array_equal(data, expected)
    assert f'handler_errors_total{{handler="{__name__}:Crash"}} 1' in text
    assert f'handler_dropped_samples_total{{handler="{__name__}:Slow"}}' in text


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("not json", "json"),
        ("[1,2]", "json"),
        ('{"event":"media","streamId":"x","media":{"payload":"@@@"}}', "base64"),
        ('{"event":"media","media":{"payload":"AAAA","chunk":"abc"}}', "value"),
        ('{"event":"media","media":{"track":"inbound"}}', "schema"),
        ('{"event":"dtmf"}', "schema"),
    ],
)
async def test_bad_frames_are_skipped_and_counted(
    serve: Any, record_dir: Path, frame: str, kind: str
) -> None:
    pcm = tone(1600)
    frames, expected = mulaw_frames(pcm)
    async with serve() as server:
        await stream_and_close(f"{server.url}/stream", [pf.start(), frames[0], frame, *frames[1:]])
        await wait_finished(server)
        text = server.metrics.render()
    data, _ = read_wav(record_dir / CID / f"{SID}.inbound.wav")
    assert np.array_equal(data, expected)
    assert f'streamserver_frames_invalid_total{{kind="{kind}"}} 1' in text


async def test_odd_length_l16_skipped(serve: Any, record_dir: Path) -> None:
    async with serve() as server:
        await stream_and_close(
            f"{server.url}/stream",
            [
                pf.start(encoding="audio/x-l16"),
                pf.media(b"\x01\x00\x02", 1),
                pf.media(b"\x01\x00", 1),
            ],
        )
        await wait_finished(server)
        assert server.metrics.frames_invalid["audio"] == 1
    data, _ = read_wav(record_dir / CID / f"{SID}.inbound.wav")
    assert data.tolist() == [1]


async def close_code_of(url: str, frames: list[str | bytes]) -> int | None:
    async with connect(url, max_size=None) as ws:
        for f in frames:
            await ws.send(f)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), T)
        return ws.close_code


async def test_media_before_start_closes_1008(serve: Any) -> None:
    async with serve() as server:
        code = await close_code_of(f"{server.url}/stream", [pf.media(b"\xff" * 160, 1)])
    assert code == 1008


async def test_binary_frame_closes_1003(serve: Any) -> None:
    async with serve() as server:
        code = await close_code_of(f"{server.url}/stream", [pf.start(), b"\x00\x01"])
    assert code == 1003


async def test_oversize_message_closes_1009_and_next_stream_is_fine(
    serve: Any, record_dir: Path
) -> None:
    pcm = tone(800)
    frames, expected = mulaw_frames(pcm)
    async with serve(max_message_bytes=4096) as server:
        code = await close_code_of(
            f"{server.url}/stream", [pf.start(), pf.media(b"\xff" * 8000, 1)]
        )
        assert code == 1009
        await stream_and_close(f"{server.url}/stream", [pf.start(), *frames])
        await wait_finished(server)
    data, _ = read_wav(record_dir / CID / f"{SID}.inbound.wav")
    assert np.array_equal(data, expected)


async def test_bad_ids_rejected(serve: Any, record_dir: Path) -> None:
    async with serve() as server:
        code = await close_code_of(f"{server.url}/stream", [pf.start(stream_id="../../etc/passwd")])
    assert code == 1008
    assert not any(record_dir.rglob("*"))


async def test_start_timeout(serve: Any) -> None:
    async with serve(start_timeout_s=0.3) as server:
        code = await close_code_of(f"{server.url}/stream", [])
    assert code == 1008


async def test_too_many_invalid_frames_closes_1007(serve: Any) -> None:
    async with serve() as server:
        server.limits = type(server.limits)(max_invalid_frames=3)
        code = await close_code_of(f"{server.url}/stream", [pf.start()] + ["x"] * 5)
    assert code == 1007


async def test_http_endpoints_and_limits(serve: Any) -> None:
    async with serve(max_streams=1) as server:
        base = server.url.replace("ws://", "http://")
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{base}/healthz")).status_code == 200
            assert (await http.get(f"{base}/readyz")).status_code == 200
            r = await http.get(f"{base}/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert "streamserver_streams_active 0" in r.text
            r = await http.get(f"{base}/nope")
            assert r.status_code == 404 and "/stream" in r.text
            async with connect(f"{server.url}/stream") as ws:
                await ws.send(pf.start())
                with pytest.raises(InvalidStatus) as exc:
                    async with connect(f"{server.url}/stream"):
                        pass
                assert exc.value.response.status_code == 503
                r = await http.get(f"{base}/metrics")
                assert "streamserver_streams_active 1" in r.text
                assert 'connections_rejected_total{reason="max_streams"} 1' in r.text


async def test_drain_closes_streams_1001_and_finalizes(
    serve: Any, make_settings: Any, record_dir: Path
) -> None:
    from streamserver.net import StreamServer

    pcm = tone(1600)
    frames, expected = mulaw_frames(pcm)
    server = StreamServer(make_settings(drain_timeout_s=0.2))
    await server.start()
    ws = await connect(f"{server.url}/stream")
    await ws.send(pf.start())
    for f in frames:
        await ws.send(f)
    await wait_for(lambda: any(s.media_frames == len(frames) for s in server.active_sessions()))
    await server.shutdown()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), T)
    assert ws.close_code == 1001
    side = json.loads((record_dir / CID / f"{SID}.json").read_text())
    assert side["stop_reason"] == "drain"
    data, _ = read_wav(record_dir / CID / f"{SID}.inbound.wav")
    assert np.array_equal(data, expected)


async def test_tests_run_on_uvloop() -> None:
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")


class Publisher(Handler):
    async def on_dtmf(self, dtmf: Any) -> None:
        self.publish("digit", dtmf.digit)
        raise RuntimeError("after publishing")


class Subscriber(Handler):
    seen: ClassVar[list[Any]] = []

    async def on_event(self, event: Any) -> None:
        from streamserver.handler import BusEvent

        if type(event) is BusEvent:
            Subscriber.seen.append((event.topic, event.source, event.data))


async def test_event_bus_between_handlers(serve: Any) -> None:
    Subscriber.seen = []
    pub, sub = f"{__name__}:Publisher", f"{__name__}:Subscriber"
    async with serve(routes={"/s": {"handlers": [pub, sub]}}) as server:
        await stream_and_close(f"{server.url}/s", [pf.start(), pf.dtmf("7")])
        await wait_finished(server)
    assert Subscriber.seen[0] == ("digit", pub, "7")
    topic, source, data = Subscriber.seen[1]
    assert (topic, source, data["handler"], data["hook"]) == (
        "handler.error",
        "session",
        pub,
        "on_dtmf",
    )
    assert "after publishing" in data["error"]


async def test_fragmented_messages_and_ping(serve: Any, record_dir: Path) -> None:
    pcm = tone(1600)
    frames, expected = mulaw_frames(pcm)
    async with serve() as server, connect(f"{server.url}/stream") as ws:
        await ws.send(pf.start())
        for f in frames:
            # Send each message in three fragments.
            third = len(f) // 3
            await ws.send([f[:third], f[third : 2 * third], f[2 * third :]])
        pong = await ws.ping(b"hi")
        await asyncio.wait_for(pong, T)
        await ws.close()
    await wait_finished(server)
    data, _ = read_wav(record_dir / CID / f"{SID}.inbound.wav")
    assert np.array_equal(data, expected)


async def raw_upgrade(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


def ws_text(text: str) -> bytes:
    """One masked client text frame."""
    from websockets.frames import Frame, Opcode

    return Frame(Opcode.TEXT, text.encode()).serialize(mask=True, extensions=[])


async def read_until_close(reader: asyncio.StreamReader) -> tuple[int, list[bytes]]:
    """The server's frames up to its close: (close code, text payloads before it)."""
    texts: list[bytes] = []
    while True:
        hdr = await asyncio.wait_for(reader.readexactly(2), T)
        n = hdr[1] & 0x7F
        if n == 126:
            n = int.from_bytes(await reader.readexactly(2), "big")
        body = await reader.readexactly(n)
        if hdr[0] & 0x0F == 0x8:
            return int.from_bytes(body[:2], "big"), texts
        texts.append(body)


async def read_close_code(reader: asyncio.StreamReader) -> int:
    return (await read_until_close(reader))[0]


@pytest.mark.parametrize(
    "raw",
    [
        b"\x81\x02hi",  # unmasked client frame
        b"\xc1\x82\x00\x00\x00\x00hi",  # RSV1 without an extension
        b"\x80\x82\x00\x00\x00\x00hi",  # continuation without a message
        b"\x89\xfe\x00\x80\x00\x00\x00\x00" + b"x" * 128,  # control frame > 125 bytes
        b"\x83\x80\x00\x00\x00\x00",  # reserved opcode
    ],
)
async def test_websocket_protocol_errors_close_1002(serve: Any, raw: bytes) -> None:
    async with serve() as server:
        reader, writer = await raw_upgrade(server.port)
        writer.write(raw)
        assert await read_close_code(reader) == 1002
        writer.close()
        await wait_for(lambda: not server.connections)
        assert server.metrics.close_codes[1002] == 1


async def test_request_split_across_reads_and_frames_in_same_packet(
    serve: Any, record_dir: Path
) -> None:
    from websockets.frames import Frame, Opcode

    pcm = tone(800)
    frames, expected = mulaw_frames(pcm)
    wire = b"".join(
        Frame(Opcode.TEXT, f.encode()).serialize(mask=True, extensions=[])
        for f in [pf.start(), *frames, pf.stop()]
    )
    request = (
        b"GET /stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    async with serve() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request[:20])
        await writer.drain()
        await asyncio.sleep(0.05)
        # The rest of the request and every frame in one write; frames split oddly after.
        writer.write(request[20:] + wire[:7])
        await writer.drain()
        await asyncio.sleep(0.05)
        for i in range(7, len(wire), 333):
            writer.write(wire[i : i + 333])
        await writer.drain()
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
        assert await read_close_code(reader) == 1000
        writer.close()
        await wait_finished(server)
    data, _ = read_wav(record_dir / CID / f"{SID}.inbound.wav")
    assert np.array_equal(data, expected)


async def test_idle_timeout_closes_1008_but_active_streams_live(serve: Any) -> None:
    async with serve(idle_timeout_s=0.6) as server:
        busy = await connect(f"{server.url}/stream")
        await busy.send(pf.start(stream_id="busy-1"))
        idle = await connect(f"{server.url}/stream")
        await idle.send(pf.start(stream_id="idle-1"))
        frames, _ = mulaw_frames(tone(160 * 100))
        for f in frames[:75]:  # 1.5 s of activity at 20 ms
            await busy.send(f.replace(SID, "busy-1"))
            await asyncio.sleep(0.02)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(idle.recv(), T)
        assert idle.close_code == 1008
        assert busy.close_code is None
        await busy.close()


async def test_stop_and_close_in_one_packet_closes_cleanly(serve: Any) -> None:
    from websockets.frames import Frame, Opcode

    async with serve() as server:
        reader, writer = await raw_upgrade(server.port)
        wire = b"".join(
            Frame(op, data).serialize(mask=True, extensions=[])
            for op, data in [
                (Opcode.TEXT, pf.start().encode()),
                (Opcode.TEXT, pf.stop().encode()),
                (Opcode.CLOSE, (1000).to_bytes(2, "big")),
            ]
        )
        writer.write(wire)
        assert await read_close_code(reader) == 1000
        # The server saw our close frame and closed TCP itself (FIN), instead of waiting
        # for its close timeout and resetting the connection.
        assert await asyncio.wait_for(reader.read(), T) == b""
        writer.close()
        await wait_finished(server)
        assert server.metrics.close_codes[1000] == 1


class Counting(Handler):
    async def on_dtmf(self, dtmf: Any) -> None:
        self.count("digits")


async def test_handler_counters_in_metrics(serve: Any) -> None:
    name = f"{__name__}:Counting"
    async with serve(routes={"/s": {"handlers": [name]}}) as server:
        await stream_and_close(f"{server.url}/s", [pf.start(), pf.dtmf("1"), pf.dtmf("2")])
        await wait_finished(server)
        text = server.metrics.render()
    assert f'streamserver_handler_events_total{{handler="{name}",event="digits"}} 2' in text


class EchoThenCheckpoint(Handler):
    """Echo every frame; after the 5th, a checkpoint (which must not overtake the audio)."""

    def on_audio_nowait(self, chunk: AudioChunk) -> None:
        assert chunk.payload is not None
        self.ctx.play_encoded_nowait(chunk.payload)
        if chunk.end == 5 * 160:
            self.ctx.checkpoint("five")


async def test_coalesced_sends_keep_order_and_flush_a_lone_frame(
    serve: Any, make_settings: Any
) -> None:
    settings = make_settings(routes={"/s": {"handlers": [f"{__name__}:EchoThenCheckpoint"]}})
    settings.session.send_batch_frames = 4
    settings.session.send_batch_delay_ms = 30.0
    settings.session.send_batch_min_streams = 0
    settings.session.send_batch_busy = 1e-9  # any load counts as busy: frames pair up
    frames, _ = mulaw_frames(tone(160 * 7))
    async with serve(settings=settings) as server, connect(f"{server.url}/s") as ws:
        server.writes.update(1.0, 1)
        assert server.writes.update(1.0, 1)  # busy from the start, before the first tick
        await ws.send(pf.start())
        for f in frames:
            await ws.send(f)
        got = [json.loads(await asyncio.wait_for(ws.recv(), T)) for _ in range(8)]
    kinds = [g["event"] for g in got]
    # 5 audio frames, then the checkpoint, then the last 2 frames (the 7th flushed by the
    # timer even though the batch of 4 never filled).
    assert kinds == ["playAudio"] * 5 + ["checkpoint"] + ["playAudio"] * 2
    echoed = b"".join(base64.b64decode(g["media"]["payload"]) for g in got if "media" in g)
    assert echoed == b"".join(base64.b64decode(json.loads(f)["media"]["payload"]) for f in frames)


async def test_whole_split_and_batched_frames_mixed_on_one_stream(
    serve: Any, record_dir: Path
) -> None:
    # Most reads are exactly one frame (the fast path); the others (a frame split over
    # reads, two frames in one read) go through the buffer. Switching between the two must
    # lose or reorder nothing, and the per-stream counters must add up in /metrics both
    # while the stream is open and after it ended.
    frames, expected = mulaw_frames(tone(160 * 30))
    async with serve() as server:
        reader, writer = await raw_upgrade(server.port)
        writer.write(ws_text(pf.start()))
        i = 0
        while i < len(frames):
            kind = i % 3
            if kind == 0:  # one whole frame
                writer.write(ws_text(frames[i]))
                i += 1
            elif kind == 1:  # one frame in two reads
                w = ws_text(frames[i])
                writer.write(w[:5])
                await writer.drain()
                await asyncio.sleep(0.01)
                writer.write(w[5:])
                i += 1
            else:  # two frames in one read
                writer.write(b"".join(ws_text(f) for f in frames[i : i + 2]))
                i += 2
            await writer.drain()
            await asyncio.sleep(0.005)
        m = server.metrics
        await wait_for(lambda: m.media_frames == len(frames))
        assert m.frames_received == len(frames) + 1  # + start
        assert m.audio_bytes == 160 * 30
        open_bytes = m.bytes_received
        writer.write(ws_text(pf.stop()))
        assert await read_close_code(reader) == 1000
        writer.close()
        await wait_finished(server)
        assert m.media_frames == len(frames)
        assert m.frames_received == len(frames) + 2
        assert m.bytes_received == open_bytes + len(pf.stop())
        assert not m.live
    data, _ = read_wav(record_dir / CID / f"{SID}.inbound.wav")
    assert np.array_equal(data, expected)


async def _paced_stream(writer: asyncio.StreamWriter, frames: list[str]) -> None:
    for f in frames:
        writer.write(ws_text(f))
        await writer.drain()
        await asyncio.sleep(0.02)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_RCVLOWAT batching: Linux")
async def test_listen_only_stream_reads_batched_and_last_message_released(
    serve: Any, make_settings: Any, record_dir: Path
) -> None:
    import socket

    settings = make_settings()
    settings.session.read_batch_min_streams = 0  # batch from the first stream on
    frames, expected = mulaw_frames(tone(160 * 60))
    async with serve(settings=settings) as server:
        reader, writer = await raw_upgrade(server.port)
        writer.write(ws_text(pf.start()))
        # 1.2 s of audio: the server's ticker batches the stream while it flows.
        streaming = asyncio.create_task(_paced_stream(writer, frames))
        await wait_for(lambda: len(server.sessions) == 1)
        (conn,) = server.connections
        await wait_for(lambda: conn.read_batch > 0)
        frame_bytes = len(frames[0]) + 8
        # Woken when 1.5 frames are waiting, i.e. once per 2 frames.
        assert frame_bytes < conn.read_batch < 2 * frame_bytes
        sock = conn.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == conn.read_batch
        assert server.metrics.streams_read_batched == 1
        assert "streamserver_streams_read_batched 1" in server.metrics.render()
        await streaming
        # `stop` alone is below the mark: the stall check must release it, promptly.
        t0 = asyncio.get_running_loop().time()
        writer.write(ws_text(pf.stop()))
        assert await read_close_code(reader) == 1000
        assert asyncio.get_running_loop().time() - t0 < 3.0  # not left below the mark
        assert conn.read_batch == 0  # closing: our peer's close reply is read at once
        writer.close()
        await wait_finished(server)
        assert server.metrics.read_batch_stalls >= 1
        assert server.metrics.streams_read_batched == 0
        assert server.metrics.media_frames == len(frames)
    data, _ = read_wav(record_dir / CID / f"{SID}.inbound.wav")
    assert np.array_equal(data, expected)


@pytest.mark.parametrize("out_coalesced", [False, True])
async def test_stream_that_sends_back_is_never_read_batched(
    serve: Any, make_settings: Any, out_coalesced: bool
) -> None:
    # Echo/bot streams: batching their reads would add input latency; paired output
    # (send_batch_*) does not change that.
    settings = make_settings(routes={"/stream": {"handlers": ["recorder", "echo"]}})
    settings.session.read_batch_min_streams = 0
    settings.session.send_batch_min_streams = 0 if out_coalesced else 10
    frames, _ = mulaw_frames(tone(160 * 40))
    async with serve(settings=settings) as server:
        reader, writer = await raw_upgrade(server.port)
        writer.write(ws_text(pf.start()))
        await _paced_stream(writer, frames)
        (conn,) = server.connections
        assert conn.interactive
        assert conn.read_batch == 0
        assert server.metrics.streams_read_batched == 0
        writer.write(ws_text(pf.stop()))
        code, texts = await read_until_close(reader)  # every frame comes back either way
        echoed = sum(json.loads(t)["event"] == "playAudio" for t in texts)
        assert (code, echoed) == (1000, len(frames))
        writer.close()
        await wait_finished(server)


async def test_tiny_reads_at_frame_boundaries_after_whole_frames(
    serve: Any, record_dir: Path
) -> None:
    # After whole-frame reads (the fast path), a frame arriving 1, 2 and then the rest of
    # its bytes at a time must be buffered, not mistaken for a whole frame.

    frames, expected = mulaw_frames(tone(160 * 12))
    async with serve() as server:
        reader, writer = await raw_upgrade(server.port)
        writer.write(ws_text(pf.start()))
        for i, f in enumerate(frames):
            w = ws_text(f)
            parts = [w] if i % 2 == 0 else [w[:1], w[1:3], w[3:4], w[4:]]
            for part in parts:
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.01)  # separate reads (TCP_NODELAY is on)
        stop = ws_text(pf.stop())
        for part in (stop[:1], stop[1:]):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)
        assert await read_close_code(reader) == 1000
        writer.close()
        await wait_finished(server)
        assert server.metrics.media_frames == len(frames)
        assert server.metrics.close_codes == {1000: 1}
    data, _ = read_wav(record_dir / CID / f"{SID}.inbound.wav")
    assert np.array_equal(data, expected)


async def test_control_frame_claiming_a_huge_length_fails_on_its_header(serve: Any) -> None:
    async with serve() as server:
        reader, writer = await raw_upgrade(server.port)
        # A ping announcing 10^9 bytes (64-bit length): 1002 at once, nothing buffered.
        writer.write(b"\x89\xff" + (10**9).to_bytes(8, "big") + b"\x00\x00\x00\x00" + b"x" * 100)
        assert await read_close_code(reader) == 1002
        writer.close()
        await wait_for(lambda: not server.connections)
        assert server.metrics.close_codes[1002] == 1
