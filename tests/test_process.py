"""`streamserver serve` as a real process: SIGTERM drain, kill -9, signature checks."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import plivo_frames as pf
import pytest
import soundfile as sf
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from streamserver import audio
from streamserver.signature import sign_headers

SID = "b77e037d-4119-44b5-902d-25826b654539"
CID = "a1b2c3d4-0000-4000-8000-000000000001"
T = 15.0


@asynccontextmanager
async def server_process(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streamserver",
        "serve",
        "--port",
        "0",
        "--record-dir",
        str(tmp_path / "rec"),
        *args,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert proc.stderr is not None
    url = ""
    while not url:
        line = (await asyncio.wait_for(proc.stderr.readline(), T)).decode()
        assert line, "server exited before listening"
        m = re.search(r"listening on (ws://\S+)", line)
        if m:
            url = m.group(1)
    try:
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def frames_for(pcm: np.ndarray) -> tuple[list[str], np.ndarray]:
    enc = audio.ulaw_encode(pcm)
    out = [pf.media(enc[i : i + 160], i // 160 + 1) for i in range(0, len(enc), 160)]
    return out, audio.ulaw_decode(enc)


def tone(n: int) -> np.ndarray:
    return (6000 * np.sin(np.arange(n) * 2 * np.pi * 300 / 8000)).astype(np.int16)


async def test_sigterm_drains_and_finalizes(tmp_path: Path) -> None:
    frames, expected = frames_for(tone(8000))
    async with server_process(tmp_path) as (proc, url):
        ws = await connect(f"{url}/stream")
        await ws.send(pf.start())
        for f in frames:
            await ws.send(f)
        await asyncio.sleep(0.2)  # let the server read what was sent before the signal
        proc.send_signal(signal.SIGTERM)
        # Within the drain window the stream may still end by itself: Plivo hangs up.
        await ws.send(pf.stop())
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), T)
        assert ws.close_code == 1000
        code = await asyncio.wait_for(proc.wait(), T)
    assert code == 0
    wav = tmp_path / "rec" / CID / f"{SID}.inbound.wav"
    data, _ = sf.read(str(wav), dtype="int16")
    assert np.array_equal(data, expected)
    side = json.loads((wav.parent / f"{SID}.json").read_text())
    assert side["stop_reason"] == "stop"


async def test_sigterm_closes_lingering_streams_1001(tmp_path: Path) -> None:
    frames, expected = frames_for(tone(1600))
    env = {"STREAMSERVER_SERVER__DRAIN_TIMEOUT_S": "0.3"}
    async with server_process(tmp_path, env=env) as (proc, url):
        ws = await connect(f"{url}/stream")
        await ws.send(pf.start())
        for f in frames:
            await ws.send(f)
        await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), T)
        assert ws.close_code == 1001
        assert await asyncio.wait_for(proc.wait(), T) == 0
    data, _ = sf.read(str(tmp_path / "rec" / CID / f"{SID}.inbound.wav"), dtype="int16")
    assert np.array_equal(data, expected)


async def test_kill_9_leaves_readable_recording(tmp_path: Path) -> None:
    frames, expected = frames_for(tone(8000 * 3))
    env = {"STREAMSERVER_HANDLER__RECORDER__FLUSH_INTERVAL_S": "0.2"}
    async with server_process(tmp_path, env=env) as (proc, url):
        ws = await connect(f"{url}/stream")
        await ws.send(pf.start())
        for f in frames[: len(frames) // 2]:
            await ws.send(f)
        # Keep the stream alive with paced frames past a flush interval, then SIGKILL.
        for f in frames[len(frames) // 2 :]:
            await ws.send(f)
            await asyncio.sleep(0.005)
        proc.kill()
        await proc.wait()
    wav = tmp_path / "rec" / CID / f"{SID}.inbound.wav"
    data, rate = sf.read(str(wav), dtype="int16")
    assert rate == 8000
    # Everything flushed is exact; at most about a flush interval (plus queued) is missing.
    assert len(data) > len(expected) // 2
    assert np.array_equal(data, expected[: len(data)])


async def test_signature_verification(tmp_path: Path) -> None:
    token = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4"
    env = {
        "PLIVO_AUTH_TOKEN": token,
        "STREAMSERVER_SERVER__VERIFY_SIGNATURES": "true",
        "STREAMSERVER_SERVER__PUBLIC_URL": "wss://media.example.com",
    }
    async with server_process(tmp_path, env=env) as (_proc, url):
        with pytest.raises(InvalidStatus) as exc:
            async with connect(f"{url}/stream"):
                pass
        assert exc.value.response.status_code == 403
        bad = sign_headers("https://media.example.com/stream", "wrong-token", method="GET")
        with pytest.raises(InvalidStatus) as exc:
            async with connect(f"{url}/stream", additional_headers=bad):
                pass
        assert exc.value.response.status_code == 403
        # Plivo signs the public URL (here its https:// form), not our loopback address.
        good = sign_headers("https://media.example.com/stream?x=1", token, method="GET")
        async with connect(f"{url}/stream?x=1", additional_headers=good) as ws:
            await ws.send(pf.start())
            await ws.send(pf.stop())
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), T)
            assert ws.close_code == 1000
        # The same nonce again is a replay.
        with pytest.raises(InvalidStatus) as exc:
            async with connect(f"{url}/stream?x=1", additional_headers=good):
                pass
        assert exc.value.response.status_code == 403


async def test_disk_full_stops_the_recorder_not_the_stream(tmp_path: Path) -> None:
    """A real write failure: the server process may not grow files past 64 KiB
    (RLIMIT_FSIZE, like a full disk). The recorder reports it clearly and is switched off
    for that stream; the stream itself (echo) goes on and ends normally."""
    import resource

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    frames, _ = frames_for(tone(8000 * 6))  # 6 s of 16-bit audio = 96 KB > 64 KiB
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streamserver",
        "serve",
        "--port",
        "0",
        "--handlers",
        "recorder,echo",
        "--record-dir",
        str(tmp_path / "rec"),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "STREAMSERVER_HANDLER__RECORDER__FLUSH_INTERVAL_S": "0.1"},
        preexec_fn=limit_file_size,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    url = ""
    while not url:
        line = (await asyncio.wait_for(proc.stderr.readline(), T)).decode()
        assert line, "server exited before listening"
        lines.append(line)
        m = re.search(r"listening on (ws://\S+)", line)
        if m:
            url = m.group(1)
    try:
        async with connect(f"{url}/stream") as ws:
            await ws.send(pf.start())
            echoed = 0
            for i, f in enumerate(frames):
                await ws.send(f)
                if i % 25 == 0:
                    await asyncio.sleep(0.15)  # let a few flushes happen
            while echoed < len(frames):
                msg = json.loads(await asyncio.wait_for(ws.recv(), T))
                echoed += msg["event"] == "playAudio"
            await ws.send(pf.stop())
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), T)
            assert ws.close_code == 1000
        import httpx

        want = 'streamserver_handler_errors_total{handler="recorder"} 1'
        async with httpx.AsyncClient() as http:
            for _ in range(200):  # the recorder's on_stop may still be finishing
                metrics = (await http.get(url.replace("ws://", "http://") + "/metrics")).text
                if want in metrics:
                    break
                await asyncio.sleep(0.05)
        assert want in metrics
        assert 'handler_events_total{handler="recorder",event="write_errors"}' in metrics
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), T) == 0
        lines += [ln.decode() for ln in (await proc.stderr.read()).splitlines()]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = "\n".join(lines)
    assert "handler recorder failed" in log
    assert "check free disk space" in log
    wav = tmp_path / "rec" / CID / f"{SID}.inbound.wav"
    data, _ = sf.read(str(wav), dtype="int16")  # what was written before is readable
    assert 0 < len(data) < len(frames) * 160
