"""The Plivo-side stream client and ``streamserver replay``, against a real WebSocket server.

Each test starts a tiny scripted server on port 0 that records every frame (with its arrival
time) and, for bidirectional tests, answers with playAudio / checkpoint / clearAudio.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from streamserver.audio import l16_encode, resample, ulaw_decode, ulaw_encode
from streamserver.emulator.replay import add_parser, replay_main
from streamserver.emulator.streamclient import (
    PlivoStreamClient,
    StreamClientOptions,
    StreamReport,
)
from streamserver.protocol import plivo

TIMEOUT = 10.0  # generous bound on any single stream in these tests


def noise(n: int, seed: int = 1, amplitude: int = 8000) -> np.ndarray:
    """Distinct, non-silent samples, so every 20 ms frame encodes differently."""
    rng = np.random.default_rng(seed)
    return rng.integers(-amplitude, amplitude, n).astype(np.int16)


def frames_of(pcm: np.ndarray, n: int) -> list[np.ndarray]:
    total = -(-len(pcm) // n)
    padded = np.zeros(total * n, dtype=np.int16)
    padded[: len(pcm)] = pcm
    return [padded[i * n : (i + 1) * n] for i in range(total)]


def play_audio(payload: bytes, content_type: str = "audio/x-mulaw", rate: int = 8000) -> str:
    media = {
        "contentType": content_type,
        "sampleRate": rate,
        "payload": base64.b64encode(payload).decode(),
    }
    return json.dumps({"event": "playAudio", "media": media})


@dataclass
class Server:
    """What the test server saw: (arrival time.monotonic(), decoded JSON) per text frame."""

    url: str
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    request_headers: list[Any] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [f for _, f in self.frames if f["event"] == name]

    def media(self, track: str = "inbound") -> list[dict[str, Any]]:
        return [f for f in self.events("media") if f["media"]["track"] == track]


Script = Callable[[ServerConnection, dict[str, Any], Server], Awaitable[None]]


@contextlib.asynccontextmanager
async def stream_server(
    script: Script | None = None,
    process_request: Callable[[ServerConnection, Request], Response | None] | None = None,
    path: str = "/stream",
) -> AsyncIterator[Server]:
    holder: list[Server] = []

    async def handler(ws: ServerConnection) -> None:
        srv = holder[0]
        srv.request_headers.append(ws.request.headers if ws.request else None)
        with contextlib.suppress(Exception):
            async for message in ws:
                assert isinstance(message, str), "Plivo sends text frames only"
                frame = json.loads(message)
                srv.raw.append(message)
                srv.frames.append((time.monotonic(), frame))
                if script is not None:
                    await script(ws, frame, srv)

    async with serve(
        handler, "127.0.0.1", 0, compression=None, process_request=process_request
    ) as server:
        port = server.sockets[0].getsockname()[1]
        srv = Server(url=f"ws://127.0.0.1:{port}{path}")
        holder.append(srv)
        yield srv


async def run_client(**kwargs: Any) -> StreamReport:
    client = PlivoStreamClient(StreamClientOptions(**kwargs))
    return await asyncio.wait_for(client.run(), TIMEOUT)


# --- frame shapes ---------------------------------------------------------------------------


async def test_mulaw_frames_are_exactly_plivos() -> None:
    pcm = noise(1650)  # 10 whole frames and a short one, zero-padded
    async with stream_server() as srv:
        report = await run_client(
            url=srv.url,
            inbound=pcm,
            speed=None,
            tail_s=0,
            extra_headers={"lang": "en", "tier": "gold"},
            dtmf=[(0.05, "5"), (0.0, "1")],
            call_id="call-1",
            stream_id="stream-1",
            account_id="MAXXXXXXXXXXXXXXXXXX",
        )
    assert report.ok, report.errors
    assert report.errors == []
    frames = [f for _, f in srv.frames]
    assert frames[0] == {
        "event": "start",
        "sequenceNumber": 1,
        "start": {
            "callId": "call-1",
            "streamId": "stream-1",
            "accountId": "MAXXXXXXXXXXXXXXXXXX",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
        },
        "extra_headers": "lang=en;tier=gold",
    }
    assert [f["sequenceNumber"] for f in frames] == list(range(1, len(frames) + 1))
    assert [f["event"] for f in frames] == (
        ["start", "dtmf"] + ["media"] * 3 + ["dtmf"] + ["media"] * 8 + ["stop"]
    )
    media = srv.media()
    expected = frames_of(pcm, 160)
    assert len(media) == 11
    for i, (frame, samples) in enumerate(zip(media, expected, strict=True)):
        assert set(frame) == {"event", "sequenceNumber", "streamId", "media", "extra_headers"}
        assert frame["streamId"] == "stream-1"
        assert frame["extra_headers"] == "lang=en;tier=gold"
        body = frame["media"]
        assert set(body) == {"track", "timestamp", "chunk", "payload"}
        assert body["track"] == "inbound"
        assert body["chunk"] == i + 1
        assert body["timestamp"] == str(20 * i)
        assert base64.b64decode(body["payload"]) == ulaw_encode(samples)
    dtmf = srv.events("dtmf")
    assert [d["dtmf"] for d in dtmf] == [
        {"digit": "1", "track": "inbound", "timestamp": "0"},
        {"digit": "5", "track": "inbound", "timestamp": "50"},
    ]
    assert dtmf[0]["streamId"] == "stream-1"
    assert frames[-1] == {
        "event": "stop",
        "sequenceNumber": len(frames),
        "streamId": "stream-1",
        "stop": {"callId": "call-1", "streamId": "stream-1", "tracks": ["inbound"]},
    }
    # The server-side decoder understands every frame the client sends.
    for raw in srv.raw:
        plivo.decode(raw)
    assert report.frames_sent == report.frames_total == 11
    assert report.dtmf_sent == 2 and report.stop_sent
    assert report.bytes_sent == sum(len(r) for r in srv.raw)
    assert report.messages_sent == len(srv.raw)
    assert report.close_code == 1000 and not report.closed_by_server
    assert report.lateness_ms.tolist() == []  # no schedule at max speed


@pytest.mark.parametrize(("rate", "frame_bytes"), [(8000, 320), (16000, 640)])
async def test_l16_little_endian_payloads(rate: int, frame_bytes: int) -> None:
    pcm = noise(rate // 5)  # 200 ms
    async with stream_server() as srv:
        report = await run_client(
            url=srv.url,
            inbound=pcm,
            source_rate=rate,
            content_type=f"audio/x-l16;rate={rate}",
            speed=None,
            tail_s=0,
        )
    assert report.ok, report.errors
    assert srv.events("start")[0]["start"]["mediaFormat"] == {
        "encoding": "audio/x-l16",
        "sampleRate": rate,
    }
    media = srv.media()
    assert len(media) == 10
    for frame, samples in zip(media, frames_of(pcm, rate // 50), strict=True):
        payload = base64.b64decode(frame["media"]["payload"])
        assert len(payload) == frame_bytes
        assert payload == samples.astype("<i2").tobytes()


async def test_source_audio_is_resampled_to_the_stream_rate() -> None:
    pcm = noise(1600)  # 200 ms at 8 kHz
    async with stream_server() as srv:
        report = await run_client(
            url=srv.url,
            inbound=pcm,
            source_rate=8000,
            content_type="audio/x-l16;rate=16000",
            speed=None,
            tail_s=0,
        )
    assert report.ok, report.errors
    media = srv.media()
    assert len(media) == 10
    expected = frames_of(resample(pcm, 8000, 16000), 320)
    for frame, samples in zip(media, expected, strict=True):
        assert base64.b64decode(frame["media"]["payload"]) == l16_encode(samples)


async def test_both_tracks_each_with_their_own_chunks() -> None:
    inbound, outbound = noise(800, seed=1), noise(800, seed=2)
    async with stream_server() as srv:
        report = await run_client(
            url=srv.url, inbound=inbound, outbound=outbound, tracks="both", speed=None, tail_s=0
        )
    assert report.ok, report.errors
    assert srv.events("start")[0]["start"]["tracks"] == ["inbound", "outbound"]
    media = srv.events("media")
    assert [m["media"]["track"] for m in media] == ["inbound", "outbound"] * 5
    for track, pcm in (("inbound", inbound), ("outbound", outbound)):
        frames = srv.media(track)
        assert [f["media"]["chunk"] for f in frames] == [1, 2, 3, 4, 5]
        assert [f["media"]["timestamp"] for f in frames] == ["0", "20", "40", "60", "80"]
        for frame, samples in zip(frames, frames_of(pcm, 160), strict=True):
            assert base64.b64decode(frame["media"]["payload"]) == ulaw_encode(samples)
    assert report.frames_sent == report.frames_total == 10


async def test_outbound_track_without_audio_is_silence() -> None:
    async with stream_server() as srv:
        report = await run_client(
            url=srv.url, inbound=noise(320), tracks="outbound", speed=None, tail_s=0
        )
    assert report.ok, report.errors
    assert srv.events("start")[0]["start"]["tracks"] == ["outbound"]
    media = srv.events("media")
    assert [m["media"]["track"] for m in media] == ["outbound", "outbound"]
    assert {base64.b64decode(m["media"]["payload"]) for m in media} == {b"\xff" * 160}


# --- pacing ---------------------------------------------------------------------------------


async def test_realtime_pacing_on_an_absolute_clock() -> None:
    async with stream_server() as srv:
        report = await run_client(url=srv.url, inbound=noise(8000), tail_s=0)
    assert report.ok, report.errors
    arrivals = [t for t, f in srv.frames if f["event"] == "media"]
    assert len(arrivals) == 50
    # 49 intervals of 20 ms: never early by the client's clock; the server's view is noisier.
    assert arrivals[-1] - arrivals[0] >= 0.9
    assert report.duration_s >= 0.98
    assert len(report.lateness_ms) == 50
    lateness = report.lateness
    assert lateness is not None and lateness.p99 < 50.0  # loose: this is not a perf test


async def test_a_client_behind_its_clock_catches_up_without_starving_the_loop() -> None:
    # Issue 16: an overloaded emulator's streams fell behind and sent every late frame in
    # one run, so the loop (and SIGTERM) waited. Late frames still go out at once, but the
    # loop gets a turn every few of them: count frames sent between two loop turns.
    async with stream_server() as srv:
        client = PlivoStreamClient(StreamClientOptions(url=srv.url, inbound=noise(8000 * 3)))
        task = asyncio.ensure_future(client.run())
        loop = asyncio.get_running_loop()
        runs: list[int] = []
        last = [0]

        def turn() -> None:  # once per loop iteration
            sent = client.report.frames_sent
            runs.append(sent - last[0])
            last[0] = sent
            if not task.done():
                loop.call_soon(turn)

        while client.report.frames_sent < 5:
            await asyncio.sleep(0.01)
        time.sleep(1.0)  # the process stalls: 50 frames are due at once
        loop.call_soon(turn)
        report = await asyncio.wait_for(task, TIMEOUT)
    assert report.ok, report.errors
    assert len(srv.media()) == 150
    assert max(runs) <= 16  # never the whole backlog in one go
    assert sum(runs) >= 100  # and it did catch up while watched


# --- bidirectional playback -----------------------------------------------------------------


async def test_checkpoint_answered_only_after_the_queued_audio_played() -> None:
    prompt = noise(4000, seed=3)  # 500 ms

    async def script(ws: ServerConnection, frame: dict[str, Any], srv: Server) -> None:
        if frame["event"] == "start":
            sid = frame["start"]["streamId"]
            await ws.send(play_audio(ulaw_encode(prompt)))
            await ws.send(json.dumps({"event": "checkpoint", "streamId": sid, "name": "cp"}))
            srv.state["checkpoint_sent"] = time.monotonic()

    async with stream_server(script) as srv:
        report = await run_client(
            url=srv.url, inbound=noise(2400), bidirectional=True, tail_s=0.1, stream_id="s-1"
        )
    assert report.ok, report.errors
    assert report.errors == []
    played = [(t, f) for t, f in srv.frames if f["event"] == "playedStream"]
    assert len(played) == 1
    t_played, frame = played[0]
    assert frame == {
        "event": "playedStream",
        "sequenceNumber": frame["sequenceNumber"],
        "streamId": "s-1",
        "name": "cp",
    }
    assert t_played - srv.state["checkpoint_sent"] >= 0.5 - 1e-3
    # heard: the prompt, as μ-law decoded, from the first tick after it arrived.
    assert len(report.played_segments) == 1
    start_s, end_s = report.played_segments[0]
    assert end_s - start_s == pytest.approx(0.5)
    start = round(start_s * 8000)
    assert start % 160 == 0 and start <= 3 * 160
    heard = report.heard
    assert heard.dtype == np.int16
    np.testing.assert_array_equal(heard[start : start + 4000], ulaw_decode(ulaw_encode(prompt)))
    assert not heard[:start].any() and not heard[start + 4000 :].any()
    assert [name for name, _ in report.checkpoints] == ["cp"]
    assert report.checkpoints[0][1] >= end_s - 1e-6
    assert report.received_events[0]["media"] == {
        "contentType": "audio/x-mulaw",
        "sampleRate": 8000,
        "payload_bytes": 4000,
    }
    seqs = [f["sequenceNumber"] for _, f in srv.frames]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_echo_rtt_and_heard_echo() -> None:
    pcm = noise(3200, seed=4)  # 400 ms, every frame distinct

    async def echo(ws: ServerConnection, frame: dict[str, Any], srv: Server) -> None:
        if frame["event"] == "media":
            payload = base64.b64decode(frame["media"]["payload"])
            await ws.send(play_audio(payload))

    async with stream_server(echo) as srv:
        report = await run_client(url=srv.url, inbound=pcm, bidirectional=True, tail_s=0.1)
    assert report.ok, report.errors
    assert len(report.echo_rtt_ms) == 20
    assert all(0 <= rtt < 1000 for rtt in report.echo_rtt_ms)
    assert report.echo_rtt is not None
    played = sum(end - start for start, end in report.played_segments)
    assert played == pytest.approx(0.4)
    # Every echoed frame is heard, in order, no earlier than it was sent.
    expected = ulaw_decode(ulaw_encode(pcm))
    heard = report.heard
    nonzero = heard[heard != 0]
    np.testing.assert_array_equal(nonzero, expected[expected != 0])
    first = round(report.played_segments[0][0] * 8000)
    assert first >= 160


async def test_clear_audio_drops_queue_and_pending_checkpoints() -> None:
    long_prompt, short_prompt = noise(8000, seed=5), noise(800, seed=6)

    async def script(ws: ServerConnection, frame: dict[str, Any], srv: Server) -> None:
        if frame["event"] == "start":
            sid = frame["start"]["streamId"]
            srv.state["sid"] = sid
            await ws.send(play_audio(ulaw_encode(long_prompt)))
            await ws.send(json.dumps({"event": "checkpoint", "streamId": sid, "name": "a"}))
        elif frame["event"] == "media" and frame["media"]["chunk"] == 10:
            sid = srv.state["sid"]
            await ws.send(json.dumps({"event": "clearAudio", "streamId": sid}))
            srv.state["clear_sent"] = time.monotonic()
            await ws.send(play_audio(ulaw_encode(short_prompt)))
            await ws.send(json.dumps({"event": "checkpoint", "streamId": sid, "name": "b"}))

    async with stream_server(script) as srv:
        report = await run_client(url=srv.url, inbound=noise(4800), bidirectional=True, tail_s=0.2)
    assert report.ok, report.errors
    assert report.errors == []
    assert len(srv.events("clearedAudio")) == 1
    cleared_at = next(t for t, f in srv.frames if f["event"] == "clearedAudio")
    assert cleared_at >= srv.state["clear_sent"]
    assert [f["name"] for f in srv.events("playedStream")] == ["b"]
    assert [name for name, _ in report.checkpoints] == ["b"]
    assert len(report.cleared) == 1
    # heard: the long prompt from its start, cut on a frame boundary no later than one frame
    # after the clear arrived, then the whole short prompt; nothing else.
    heard = report.heard
    first = round(report.played_segments[0][0] * 8000)
    long_rt, short_rt = (
        ulaw_decode(ulaw_encode(long_prompt)),
        ulaw_decode(ulaw_encode(short_prompt)),
    )
    cut = next(
        m
        for m in range(160, 8000, 160)
        if np.array_equal(heard[first + m : first + m + 800], short_rt)
    )
    np.testing.assert_array_equal(heard[first : first + cut], long_rt[:cut])
    assert (first + cut) / 8000 <= report.cleared[0] + 0.02 + 1e-6
    assert not heard[:first].any() and not heard[first + cut + 800 :].any()
    played = sum(end - start for start, end in report.played_segments)
    assert played == pytest.approx(cut / 8000 + 0.1)
    assert report.checkpoints[0][1] >= (first + cut + 800) / 8000 - 1e-6


async def test_playback_formats_resampling_and_bad_messages() -> None:
    tone = (np.sin(np.arange(3200) * 2 * math.pi * 440 / 16000) * 8000).astype(np.int16)

    async def script(ws: ServerConnection, frame: dict[str, Any], srv: Server) -> None:
        if frame["event"] != "start":
            return
        sid = frame["start"]["streamId"]
        await ws.send(play_audio(b"\xff" * 320, "audio/x-mulaw", 16000))  # μ-law is 8k only
        await ws.send(play_audio(b"\x00" * 320, "audio/x-opus", 8000))
        await ws.send(play_audio(b"\x00\x01\x02", "audio/x-l16", 8000))  # odd length
        await ws.send(
            '{"event":"playAudio","media":{"contentType":"audio/x-mulaw",'
            '"sampleRate":8000,"payload":"***"}}'
        )
        await ws.send("not json")
        await ws.send("not json")  # the same error twice is counted, not repeated
        await ws.send(json.dumps({"event": "somethingNew", "x": 1}))
        await ws.send(json.dumps({"event": "sendDTMF", "dtmf": "12#"}))
        await ws.send(play_audio(l16_encode(tone), "audio/x-l16", 16000))  # 200 ms at 16 kHz
        await ws.send(json.dumps({"event": "checkpoint", "streamId": sid, "name": "end"}))

    async with stream_server(script) as srv:
        report = await run_client(url=srv.url, inbound=noise(2400), bidirectional=True, tail_s=0.1)
    assert report.ok
    assert len(report.errors) == 5, report.errors
    assert "8000" in report.errors[0]
    assert "audio/x-opus" in report.errors[1]
    assert "even number" in report.errors[2]
    assert "base64" in report.errors[3]
    assert "JSON" in report.errors[4] and report.errors[4].endswith("(x2)")
    assert [f["name"] for f in srv.events("playedStream")] == ["end"]
    events = [e["event"] for e in report.received_events]
    assert "somethingNew" in events and "sendDTMF" in events
    played = sum(end - start for start, end in report.played_segments)
    assert played == pytest.approx(0.2, abs=0.002)  # resampled 16 kHz -> 8 kHz


async def test_max_speed_still_plays_back_in_real_time() -> None:
    async def script(ws: ServerConnection, frame: dict[str, Any], srv: Server) -> None:
        if frame["event"] == "start":
            sid = frame["start"]["streamId"]
            await ws.send(play_audio(ulaw_encode(noise(2400))))  # 300 ms
            await ws.send(json.dumps({"event": "checkpoint", "streamId": sid, "name": "done"}))

    async with stream_server(script) as srv:
        report = await run_client(
            url=srv.url, inbound=noise(1600), bidirectional=True, speed=None, tail_s=0.05
        )
    assert report.ok, report.errors
    assert [name for name, _ in report.checkpoints] == ["done"]
    assert report.checkpoints[0][1] >= 0.3
    assert report.duration_s >= 0.3
    assert srv.events("stop")  # stop after the drain, then close


# --- failures -------------------------------------------------------------------------------


async def test_refused_upgrade_is_reported_not_raised() -> None:
    def refuse(conn: ServerConnection, request: Request) -> Response:
        return conn.respond(HTTPStatus.FORBIDDEN, "bad signature\n")

    async with stream_server(process_request=refuse) as srv:
        report = await run_client(url=srv.url, inbound=noise(800))
    assert not report.connected and not report.ok
    assert report.http_status == 403
    assert report.close_code is None
    assert "403" in report.errors[0] and "bad signature" in report.errors[0]
    assert srv.frames == []


async def test_connection_refused_is_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = await run_client(url=f"ws://127.0.0.1:{port}/x", inbound=noise(800))
    assert not report.connected and not report.ok
    assert "cannot connect" in report.errors[0]


async def test_server_closing_early_is_reported() -> None:
    async def script(ws: ServerConnection, frame: dict[str, Any], srv: Server) -> None:
        if frame["event"] == "media" and frame["media"]["chunk"] == 3:
            await ws.close(1011, "boom")

    async with stream_server(script) as srv:
        report = await run_client(url=srv.url, inbound=noise(8000))
    assert report.connected and not report.ok
    assert report.close_code == 1011 and report.close_reason == "boom"
    assert report.closed_by_server
    assert 3 <= report.frames_sent < report.frames_total
    assert any("early" in e for e in report.errors)
    assert not report.stop_sent
    assert report.duration_s < 0.5


async def test_aclose_stops_early_with_stop_and_normal_close() -> None:
    got_five = asyncio.Event()

    async def script(ws: ServerConnection, frame: dict[str, Any], srv: Server) -> None:
        if frame["event"] == "media" and frame["media"]["chunk"] == 5:
            got_five.set()

    async with stream_server(script) as srv:
        client = PlivoStreamClient(StreamClientOptions(url=srv.url, inbound=noise(40000)))
        task = asyncio.create_task(client.run())
        await asyncio.wait_for(got_five.wait(), TIMEOUT)
        await asyncio.wait_for(client.aclose(), TIMEOUT)
        assert task.done()
        report = task.result()
    assert report.ok and report.stop_sent
    assert report.close_code == 1000 and not report.closed_by_server
    assert 5 <= report.frames_sent < 20
    assert srv.frames[-1][1]["event"] == "stop"


async def test_signed_upgrade_verifies() -> None:
    signature = pytest.importorskip("streamserver.signature")
    results: list[Any] = []
    public: list[str] = []

    def check(conn: ServerConnection, request: Request) -> Response | None:
        verifier = signature.UpgradeVerifier(["s3cret"], public[0])
        result = verifier.verify(request.path, request.headers)
        results.append(result)
        return None if result.ok else conn.respond(HTTPStatus.FORBIDDEN, result.reason)

    async with stream_server(process_request=check, path="/stream?b=2&a=1") as srv:
        public.append(srv.url.split("/stream")[0])
        report = await run_client(url=srv.url, inbound=noise(800), auth_token="s3cret")
        unsigned = await run_client(url=srv.url, inbound=noise(800))
    assert report.ok, report.errors
    assert results[0].ok and results[0].matched_url.startswith("http://127.0.0.1:")
    headers = srv.request_headers[0]
    assert headers["X-Plivo-Signature-V3"] and headers["X-Plivo-Signature-Ma-V3"]
    assert len(headers["X-Plivo-Signature-V3-Nonce"]) == 20
    assert unsigned.http_status == 403


def test_invalid_options_raise() -> None:
    pcm = noise(160)
    bad: list[dict[str, Any]] = [
        {"url": "http://127.0.0.1/x"},
        {"tracks": "left"},
        {"bidirectional": True, "tracks": "both"},
        {"content_type": "audio/x-mulaw;rate=16000"},
        {"dtmf": [(1.0, "X")]},
        {"dtmf": [(-1.0, "1")]},
        {"speed": 0.0},
        {"extra_headers": {"a;b": "1"}},
        {"inbound": np.zeros((2, 2, 2))},
    ]
    for override in bad:
        options: dict[str, Any] = {"url": "ws://127.0.0.1/x", "inbound": pcm, **override}
        with pytest.raises(ValueError):
            PlivoStreamClient(StreamClientOptions(**options))


async def test_run_only_once() -> None:
    async with stream_server() as srv:
        client = PlivoStreamClient(
            StreamClientOptions(url=srv.url, inbound=noise(160), speed=None, tail_s=0)
        )
        await asyncio.wait_for(client.run(), TIMEOUT)
        with pytest.raises(RuntimeError):
            await client.run()


# --- streamserver replay --------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="streamserver")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_replay_streams_a_stereo_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio = tmp_path / "caller.wav"
    t = np.arange(4800) / 16000  # 300 ms, stereo, 16 kHz: mixed down and resampled
    sf.write(
        audio, np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 500 * t)], 1) * 0.3, 16000
    )
    heard = tmp_path / "heard.wav"

    async def echo(ws: ServerConnection, frame: dict[str, Any], srv: Server) -> None:
        if frame["event"] == "media":
            await ws.send(play_audio(base64.b64decode(frame["media"]["payload"])))

    async with stream_server(echo) as srv:
        args = parse(
            [
                "replay",
                str(audio),
                "--url",
                srv.url,
                "--bidirectional",
                "--speed",
                "max",
                "--dtmf",
                "5@0.1",
                "--extra-headers",
                "a=1;b=2",
                "--save-heard",
                str(heard),
                "--tail",
                "0.1",
                "--no-progress",
            ]
        )
        code = await replay_main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    assert len(srv.media()) == 15
    assert srv.events("dtmf")[0]["dtmf"]["digit"] == "5"
    assert srv.events("start")[0]["extra_headers"] == "a=1;b=2"
    assert "15/15 sent" in out and "result     ok" in out
    data, rate = sf.read(heard, dtype="int16")
    assert rate == 8000 and len(data) >= 2400 and np.any(data)


async def test_replay_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = parse(["replay", str(tmp_path / "nope.wav"), "--url", "ws://127.0.0.1:1/x"])
    assert await replay_main(missing) == 2
    assert "no such file" in capsys.readouterr().err

    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio")
    assert await replay_main(parse(["replay", str(garbage), "--url", "ws://127.0.0.1:1/x"])) == 2
    assert "cannot read audio" in capsys.readouterr().err

    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(800, dtype=np.int16), 8000)

    def refuse(conn: ServerConnection, request: Request) -> Response:
        return conn.respond(HTTPStatus.FORBIDDEN, "no\n")

    async with stream_server(process_request=refuse) as srv:
        code = await replay_main(parse(["replay", str(audio), "--url", srv.url]))
    assert code == 1
    assert "403" in capsys.readouterr().out

    both = parse(["replay", str(audio), "--url", "ws://h/x", "--bidirectional", "--tracks", "both"])
    assert await replay_main(both) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "http://h/x"],
        ["--url", "ws://h/x", "--dtmf", "5@"],
        ["--url", "ws://h/x", "--dtmf", "X@1"],
        ["--url", "ws://h/x", "--speed", "slow"],
        ["--url", "ws://h/x", "--content-type", "audio/x-mulaw;rate=16000"],
        ["--url", "ws://h/x", "--extra-headers", "novalue"],
        [],
    ],
)
def test_replay_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(["replay", "a.wav", *argv])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_replay_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["replay", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "--bidirectional" in text and "exit status" in text
    args = parse(["replay", "x.wav", "--url", "ws://h/x", "--speed", "2", "--dtmf", "1@0,#@2.5"])
    assert args.speed == 2.0 and args.dtmf == [(0.0, "1"), (2.5, "#")]
    assert parse(["replay", "x.wav", "--url", "ws://h/x", "--speed", "max"]).speed is None
