"""Plivo's side of a stream when the server misbehaves: reconnects under the same stream id
(chunks counting on), retries used up, a slow server (DegradedStream, then dropped), and a
stream server restarted in the middle of a call.

The stream servers are real: small websockets servers scripted to fail, and our own
StreamServer stopped and started again on the same port.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from emulator_support import TIMEOUT, Env, noise, running, write_wav
from websockets.asyncio.server import Server, ServerConnection, serve

from streamserver.net import StreamServer

FRAME = 160  # samples of one 20 ms frame at 8 kHz


@dataclass
class Sockets:
    """What a scripted server saw: the frames of each connection, in order."""

    url: str = ""
    conns: list[list[dict[str, Any]]] = field(default_factory=list)
    server: Server | None = None


#: Called for each frame of connection ``index``; returns False to stop reading it.
Script = Callable[[ServerConnection, int, list[dict[str, Any]]], Awaitable[bool]]


@contextlib.asynccontextmanager
async def scripted(script: Script, **kw: Any) -> AsyncIterator[Sockets]:
    seen = Sockets()

    async def handler(ws: ServerConnection) -> None:
        frames: list[dict[str, Any]] = []
        seen.conns.append(frames)
        index = len(seen.conns) - 1
        with contextlib.suppress(Exception):
            async for message in ws:
                frames.append(json.loads(message))
                if not await script(ws, index, frames):
                    return

    where: dict[str, Any] = {} if "sock" in kw else {"host": "127.0.0.1", "port": 0}
    async with serve(handler, compression=None, **where, **kw) as server:
        seen.server = server
        seen.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/stream"
        yield seen


def media(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["media"] for f in frames if f["event"] == "media"]


def assert_in_place(frames: list[dict[str, Any]], voice: np.ndarray, start: int) -> None:
    """Every media frame carries the callee's audio of its own chunk, at its timestamp
    (the stream started at sample ``start`` of the callee's voice)."""
    padded = np.concatenate([voice[start:], np.zeros(FRAME * 1000, np.int16)])
    for m in media(frames):
        k = m["chunk"] - 1
        assert int(m["timestamp"]) == k * 20
        pcm = np.frombuffer(base64.b64decode(m["payload"]), dtype="<i2")
        assert np.array_equal(pcm, padded[k * FRAME : (k + 1) * FRAME]), m["chunk"]


def stream_xml(env: Env, url: str) -> str:
    return (
        f'<Response><Stream keepCallAlive="true" statusCallbackUrl="{env.hooks.url("/ss")}">'
        f"{url}</Stream><Hangup/></Response>"
    )


async def test_a_dropped_socket_reconnects_with_the_same_stream_id(tmp_path: Path) -> None:
    voice = noise(4.0, seed=41)

    async def drop_first(ws: ServerConnection, index: int, frames: list[dict[str, Any]]) -> bool:
        if index == 0 and len(media(frames)) == 25:
            ws.transport.abort()  # gone without a close frame
            return False
        return True

    audio = str(write_wav(tmp_path / "v.wav", voice))
    async with (
        scripted(drop_first) as srv,
        running(tmp_path, caller_audio=audio, stream_retry_delay_s=0.05) as env,
    ):
        uuid = await env.call(stream_xml(env, srv.url))
        first = await env.hooks.next_event("/ss", "StartStream")
        again = await env.hooks.next_event("/ss", "StartStream")
        stopped = await env.hooks.next_event("/ss", "StopStream")
        await env.emu.simulator.wait_call_ended(uuid)
        stream_id = first.params["StreamID"]
        reports = env.emu.simulator.stream_reports(stream_id)
        start = env.emu.store.streams[stream_id].runtime.start_pos
    assert again.params["StreamID"] == stopped.params["StreamID"] == stream_id
    assert "DroppedStream" not in {h.params.get("Event") for h in env.hooks.hits}
    assert [r.connected for r in reports] == [True, True]
    one, two = srv.conns
    for conn in (one, two):
        assert conn[0]["event"] == "start" and conn[0]["sequenceNumber"] == 1
        assert conn[0]["start"]["streamId"] == stream_id and conn[0]["start"]["callId"] == uuid
    assert two[-1]["event"] == "stop"
    # Chunks count on from the stream's start: what was said while no socket was up is
    # a gap of exact length, everything else is at its place.
    last, resumed = media(one)[-1]["chunk"], media(two)[0]["chunk"]
    assert last == 25 and resumed > last + 1
    chunks = [m["chunk"] for m in media(two)]
    assert chunks == list(range(resumed, resumed + len(chunks)))
    assert_in_place(one, voice, start)
    assert_in_place(two, voice, start)


async def test_retries_are_used_up_then_the_stream_is_dropped(tmp_path: Path) -> None:
    holder: list[Sockets] = []

    async def die(ws: ServerConnection, index: int, frames: list[dict[str, Any]]) -> bool:
        if len(media(frames)) == 10:
            server = holder[0].server
            assert server is not None
            server.server.close()  # nobody listens any more, from now on...
            await ws.close(1011, "crashed")  # ...and this stream is gone
            return False
        return True

    async with (
        scripted(die) as srv,
        running(tmp_path, caller_hangup_after_audio_s=30.0, stream_retry_delay_s=0.05) as env,
    ):
        holder.append(srv)
        uuid = await env.call(stream_xml(env, srv.url))
        dropped = await env.hooks.next_event("/ss", "DroppedStream")
        call = await env.emu.simulator.wait_call_ended(uuid)
        reports = env.emu.simulator.stream_reports(dropped.params["StreamID"])
    # One socket that streamed, then the two retries Plivo makes, both refused.
    assert [r.connected for r in reports] == [True, False, False]
    assert "cannot connect" in dropped.params["Error"]
    events = [h.params["Event"] for h in env.hooks.hits if h.path == "/ss"]
    assert events == ["StartStream", "DroppedStream"]
    assert call.hangup_source == "Answer XML"  # keepCallAlive let the <Hangup> run after


async def test_a_slow_server_degrades_then_drops_the_stream(tmp_path: Path) -> None:
    # A server that stops reading after the first frame, with a small receive buffer:
    # the audio piles up on Plivo's side, 30/60/90 % of the (here 2 s) buffer, then full.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind(("127.0.0.1", 0))
    stalled = asyncio.Event()

    async def stall(ws: ServerConnection, index: int, frames: list[dict[str, Any]]) -> bool:
        stalled.set()
        await ws.wait_closed()  # never reads again
        return False

    long_voice = str(write_wav(tmp_path / "long.wav", noise(60.0, seed=43)))
    paused = {"max_queue": 1, "ping_interval": None, "close_timeout": 0.2}
    async with (
        scripted(stall, sock=sock, **paused) as srv,
        running(
            tmp_path, caller_audio=long_voice, stream_buffer_s=2.0, caller_hangup_after_audio_s=-1
        ) as env,
    ):
        xml = (
            f'<Response><Stream keepCallAlive="true" contentType="audio/x-l16;rate=16000" '
            f'statusCallbackUrl="{env.hooks.url("/ss")}">{srv.url}</Stream>'
            "<Hangup/></Response>"
        )
        uuid = await env.call(xml)
        await asyncio.wait_for(stalled.wait(), TIMEOUT)
        # The backlog only grows: each level comes once, in order, then the drop.
        dropped = await env.hooks.next_event("/ss", "DroppedStream", timeout_s=60)
        call = await env.emu.simulator.wait_call_ended(uuid)
        reports = env.emu.simulator.stream_reports(dropped.params["StreamID"])
    events = [h.params["Event"] for h in env.hooks.hits if h.path == "/ss"]
    assert events == [
        "StartStream",
        "DegradedStream",
        "DegradedStream",
        "DegradedStream",
        "DroppedStream",
    ]
    assert dropped.params["Error"] == "slow connection: 2 s of audio held"
    assert len(reports) == 1  # a stream dropped for a slow connection is not retried
    assert call.hangup_source == "Answer XML"


async def test_a_stream_server_restart_mid_call_is_survived(
    tmp_path: Path, make_settings: Any, record_dir: Path
) -> None:
    voice = noise(30.0, seed=47)  # longer than the test: the call is hung up at the end
    audio = str(write_wav(tmp_path / "v.wav", voice))
    # Enough retries (with doubling back-off, about 25 s) to outlast any restart here.
    async with running(
        tmp_path, caller_audio=audio, stream_retries=8, stream_retry_delay_s=0.1
    ) as env:
        first = StreamServer(make_settings(drain_timeout_s=0.0))
        await first.start()
        port = int(first.url.rsplit(":", 1)[1])
        uuid = await env.call(stream_xml(env, f"ws://127.0.0.1:{port}/stream"))
        started = await env.hooks.next_event("/ss", "StartStream")
        stream_id = started.params["StreamID"]
        await _until(lambda: any(s.media_frames >= 25 for s in first.active_sessions()))
        await first.shutdown()  # the stream is closed with 1001, the port is free
        second = StreamServer(make_settings(port=port))
        await second.start()
        try:
            again = await env.hooks.next_event("/ss", "StartStream")
            await _until(lambda: any(s.media_frames >= 25 for s in second.active_sessions()))
            assert (await env.http.delete(f"Call/{uuid}/")).status_code == 204
            await env.hooks.next_event("/ss", "StopStream")
            await _until(lambda: not list(second.active_sessions()) and not second.finishing())
        finally:
            await second.shutdown()
        srt = env.emu.store.streams[stream_id].runtime
        resumed_at, start = srt.first_frames[-1] * FRAME, srt.start_pos
    assert again.params["StreamID"] == stream_id
    assert "DroppedStream" not in {h.params.get("Event") for h in env.hooks.hits}
    assert resumed_at > 25 * FRAME
    # The restarted server got the rest of the call under the same ids, at its place on
    # the stream's timeline (the chunks counted on; what was lost is a gap it filled).
    wav = record_dir / uuid / f"{stream_id}.inbound.wav"
    recorded, _ = sf.read(str(wav), dtype="int16")
    heard = voice[start:]
    assert len(recorded) >= resumed_at + 25 * FRAME
    assert np.array_equal(recorded[resumed_at:], heard[resumed_at : len(recorded)])


async def _until(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), TIMEOUT)
