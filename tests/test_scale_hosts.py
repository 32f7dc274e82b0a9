"""Two `serve` processes ("two hosts") on one real NATS (and one real S3 bucket)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import bus_support
import numpy as np
import plivo_frames as pf
import pytest
import soundfile as sf
from bus_support import NatsServer
from process_support import keep_reading, read_until
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from streamserver import audio
from streamserver.bus import BusClient, CallEvent, CallNotFoundError

nats_server = bus_support.nats_server
T = 20.0

ENCODED = audio.ulaw_encode(
    (6000 * np.sin(np.arange(8000) * 2 * np.pi * 300 / 8000)).astype(np.int16)
)
EXPECTED = audio.ulaw_decode(ENCODED)


@asynccontextmanager
async def host(
    rec: Path, env: dict[str, str], *args: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, list[str]]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamserver", "serve", "--port", "0",
        "--record-dir", str(rec), *args,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )  # fmt: skip
    lines: list[str] = []
    url = await read_until(proc, r"listening on (ws://\S+)\s*$", lines, T)
    reader = keep_reading(proc, lines)
    try:
        yield proc, url, lines
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), T)
        reader.cancel()


class Stream:
    def __init__(self, ws: ClientConnection, call: str) -> None:
        self.ws, self.call, self.stream = ws, call, f"s-{call}"

    @classmethod
    async def open(cls, url: str, call: str) -> Stream:
        s = cls(await connect(f"{url}/stream"), call)
        await s.ws.send(pf.start(stream_id=s.stream, call_id=call))
        return s

    async def audio(self, frames: range) -> None:
        for k in frames:
            chunk = ENCODED[k * 160 : (k + 1) * 160]
            await self.ws.send(pf.media(chunk, k + 1, stream_id=self.stream))

    async def recv_event(self, name: str) -> dict[str, object]:
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), T))
            if msg["event"] == name:
                return dict(msg)

    async def finish(self) -> None:
        await self.ws.send(pf.stop(self.stream))
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(self.ws.recv(), T)


def recording(rec: Path, s: Stream) -> np.ndarray:
    data, _ = sf.read(str(rec / s.call / f"{s.stream}.inbound.wav"), dtype="int16")
    return np.asarray(data)


class Collector:
    """Every event of the given calls, from one consumer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[CallEvent] = []
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        self.client = await BusClient(self.url).connect()

        async def run() -> None:
            async for ev in self.client.events():
                self.events.append(ev)
                self.changed.set()

        self.task = asyncio.create_task(run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await self.client.aclose()

    def kinds(self, call: str) -> list[str]:
        return [e.kind for e in self.events if e.call_id == call]

    async def wait(self, call: str, kind: str, timeout: float = T) -> CallEvent:
        async def find() -> CallEvent:
            while True:
                for e in self.events:
                    if e.call_id == call and e.kind == kind:
                        return e
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(find(), timeout)


async def test_commands_reach_the_host_holding_the_call(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    env = {"STREAMSERVER_BUS__URL": nats_server.url}
    a_call, b_call = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    async with (
        Collector(nats_server.url) as events,
        host(tmp_path / "rec1", env) as (p1, url1, _),
        host(tmp_path / "rec2", env) as (p2, url2, _),
    ):
        a, b = await Stream.open(url1, a_call), await Stream.open(url2, b_call)
        await events.wait(a_call, "stream.started")
        await events.wait(b_call, "stream.started")
        client = events.client
        reply = await client.play(a_call, np.zeros(1600, np.int16), 8000)
        assert reply["ok"] and reply["worker"] == str(p1.pid)
        assert (await a.recv_event("playAudio"))["event"] == "playAudio"
        await client.send_dtmf(b_call, "42")
        assert (await b.recv_event("sendDTMF"))["dtmf"] == "42"
        await a.audio(range(25))
        await b.audio(range(25))
        await a.ws.send(pf.dtmf("7"))
        await events.wait(a_call, "dtmf")
        await a.finish()
        await b.finish()
        stopped = await events.wait(a_call, "stream.stopped")
        await events.wait(b_call, "stream.stopped")
        assert stopped.data["reason"] == "stop" and stopped.data["media_frames"] == 25
        assert stopped.data["gaps"] == 0 and stopped.data["drops"] == 0
        assert events.kinds(a_call) == [
            "stream.started",
            "dtmf",
            "recording.finished",
            "stream.stopped",
        ]
        assert events.kinds(b_call) == ["stream.started", "recording.finished", "stream.stopped"]
        assert {e.worker for e in events.events if e.call_id == b_call} == {str(p2.pid)}
        with pytest.raises(CallNotFoundError):  # the call is gone: no responders
            await client.clear(a_call)
    assert np.array_equal(recording(tmp_path / "rec1", a), EXPECTED[: 25 * 160])


async def test_nats_down_at_start_then_back(nats_server: NatsServer, tmp_path: Path) -> None:
    call = f"c-{uuid.uuid4().hex[:8]}"
    nats_server.stop()
    try:
        env = {
            "STREAMSERVER_BUS__URL": nats_server.url,
            "STREAMSERVER_BUS__RECONNECT_WAIT_S": "0.2",
        }
        async with host(tmp_path / "rec", env) as (_p, url, lines):
            s = await Stream.open(url, call)
            await s.audio(range(25))
            await s.finish()
            assert any("NATS at nats://127.0.0.1" in ln for ln in lines), lines
            nats_server.start()
            async with Collector(nats_server.url) as events:
                await events.wait(call, "stream.stopped", timeout=T * 2)
                assert events.kinds(call) == [
                    "stream.started",
                    "recording.finished",
                    "stream.stopped",
                ]
        assert np.array_equal(recording(tmp_path / "rec", s), EXPECTED[: 25 * 160])
    finally:
        if not nats_server.running:
            nats_server.start()


s3_server = bus_support.s3_server


async def test_recordings_from_two_hosts_land_in_the_bucket(
    nats_server: NatsServer, s3_server: bus_support.S3Server, tmp_path: Path
) -> None:
    import io

    s3_server.create_bucket("scale-recordings")
    env = {
        "STREAMSERVER_BUS__URL": nats_server.url,
        "STREAMSERVER_STORAGE__URL": "s3://scale-recordings/calls",
        "STREAMSERVER_STORAGE__ENDPOINT_URL": s3_server.endpoint_url,
        **s3_server.env,
    }
    calls = [f"r{n}-{uuid.uuid4().hex[:8]}" for n in (1, 2)]
    async with (
        Collector(nats_server.url) as events,
        host(tmp_path / "rec1", env) as (_p1, url1, _),
        host(tmp_path / "rec2", env) as (_p2, url2, _),
    ):
        streams = [await Stream.open(u, c) for u, c in zip((url1, url2), calls, strict=True)]
        for n, s in enumerate(streams):
            await s.audio(range(10 + 15 * n))
            await s.finish()
        ready = [await events.wait(c, "recording.ready", timeout=T * 3) for c in calls]
    client = s3_server.client()
    for n, ev in enumerate(ready):
        url = ev.data["files"]["inbound"]
        assert url.startswith("s3://scale-recordings/calls/")
        key = url[len("s3://scale-recordings/") :]
        body = client.get_object(Bucket="scale-recordings", Key=key)["Body"].read()
        data, _ = sf.read(io.BytesIO(body), dtype="int16")
        assert np.array_equal(data, EXPECTED[: (10 + 15 * n) * 160])
        assert not (tmp_path / f"rec{n + 1}" / calls[n] / f"s-{calls[n]}.json").exists()
