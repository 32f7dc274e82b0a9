"""NATS and S3 going down in the middle of calls, as processes: `serve --workers 2` on a
real nats-server (killed with -9, then restarted on the same port and store) and a real
S3 server (SeaweedFS, killed and restarted). Every wait is on a condition (the merged
/metrics, the bus, the bucket); the timeouts only bound a hang."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import bus_support
import httpx
import numpy as np
import plivo_frames as pf
import pytest
import soundfile as sf
from bus_support import NatsServer, S3Server, find_binary
from process_support import keep_reading, read_until, stop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from streamserver import audio
from streamserver.bus import BusClient, CallEvent

s3_server = bus_support.s3_server
T = 30.0

ENCODED = audio.ulaw_encode(
    (6000 * np.sin(np.arange(8000) * 2 * np.pi * 300 / 8000)).astype(np.int16)
)
EXPECTED = audio.ulaw_decode(ENCODED)


@pytest.fixture
def outage_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test's own, to kill and restart on the same port and store."""
    binary = find_binary("nats-server")
    if binary is None:
        pytest.skip("nats-server not found")
    server = NatsServer(binary, tmp_path / "nats")
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()


@asynccontextmanager
async def serve(
    tmp_path: Path, env: dict[str, str]
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, list[str]]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamserver", "serve", "--port", "0", "--workers", "2",
        "--record-dir", str(tmp_path / "rec"),
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **env},
    )  # fmt: skip
    lines: list[str] = []
    url = await read_until(proc, r"listening on (ws://\S+) \(2 workers\)", lines, T)
    reader = keep_reading(proc, lines)
    try:
        await metrics_until(url, lambda m: len(m.get("streamserver_up", {})) == 2)
        yield proc, url, lines
    finally:
        await stop(proc, T)
        reader.cancel()


Metrics = dict[str, dict[str, float]]  # family (with its other labels) -> worker -> value


def parse(text: str) -> Metrics:
    out: Metrics = {}
    for m in re.finditer(r'^(\w+)\{worker="(\d+)",?([^}]*)\} (\S+)$', text, re.M):
        name = f"{m.group(1)}{{{m.group(3)}}}" if m.group(3) else m.group(1)
        out.setdefault(name, {})[m.group(2)] = float(m.group(4))
    return out


def total(m: Metrics, name: str) -> float:
    return sum(m.get(name, {}).values())


async def metrics_until(url: str, check: Callable[[Metrics], bool], timeout: float = T) -> Metrics:
    http_url = url.replace("ws://", "http://") + "/metrics"
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            m = parse((await http.get(http_url)).text)
            if check(m):
                return m
            assert asyncio.get_running_loop().time() < deadline, m
            await asyncio.sleep(0.05)


class Stream:
    def __init__(self, ws: ClientConnection, n: int) -> None:
        self.ws, self.call, self.stream = ws, f"call-{n:03d}", f"stream-{n:03d}"
        self.sent = 0

    @classmethod
    async def open(cls, url: str, n: int) -> Stream:
        s = cls(await connect(f"{url}/stream"), n)
        await s.ws.send(pf.start(stream_id=s.stream, call_id=s.call))
        return s

    async def audio(self, frames: int) -> None:
        for k in range(self.sent, self.sent + frames):
            chunk = ENCODED[k * 160 : (k + 1) * 160]
            await self.ws.send(pf.media(chunk, k + 1, stream_id=self.stream))
        self.sent += frames

    async def alive(self) -> None:
        await asyncio.wait_for(await self.ws.ping(), T)

    async def finish(self) -> None:
        await self.ws.send(pf.stop(self.stream))
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(self.ws.recv(), T)
        assert self.ws.close_code == 1000

    def recording(self, rec: Path) -> np.ndarray:
        data, _ = sf.read(str(rec / self.call / f"{self.stream}.inbound.wav"), dtype="int16")
        return np.asarray(data)


async def stored_events(url: str, count: int) -> list[CallEvent]:
    """The first ``count`` events JetStream holds, in order."""
    out: list[CallEvent] = []
    async with BusClient(url, timeout_s=T) as client:

        async def take() -> None:
            async for ev in client.events():
                out.append(ev)
                if len(out) == count:
                    return

        await asyncio.wait_for(take(), T)
    return out


PUBLISHED = "streamserver_bus_events_published_total"
DROPPED = "streamserver_bus_events_dropped_total"
DIGITS = "0123456789*#ABC"  # 15 DTMF events while NATS is down; the backlog keeps 10


async def test_nats_killed_mid_call(outage_nats: NatsServer, tmp_path: Path) -> None:
    env = {
        "STREAMSERVER_BUS__URL": outage_nats.url,
        "STREAMSERVER_BUS__BACKLOG": "10",
        "STREAMSERVER_BUS__RECONNECT_WAIT_S": "0.2",
    }
    rec = tmp_path / "rec"
    async with serve(tmp_path, env) as (_proc, url, lines):
        streams = [await Stream.open(url, n) for n in range(20)]
        await asyncio.gather(*(s.audio(10) for s in streams))
        await streams[0].ws.send(pf.dtmf("9"))
        await metrics_until(url, lambda m: total(m, PUBLISHED) == 21)

        outage_nats.stop(kill=True)
        await metrics_until(url, lambda m: total(m, "streamserver_bus_connected") == 0)
        # The calls go on while NATS is gone; their events wait in the bounded backlog.
        for digit in DIGITS:
            await streams[0].ws.send(pf.dtmf(digit))
        await asyncio.gather(*(s.audio(20) for s in streams))
        m = await metrics_until(url, lambda m: total(m, DROPPED) == 5)
        assert total(m, "streamserver_bus_events_backlog") == 10
        assert total(m, "streamserver_bus_events_published_total") == 21
        assert total(m, "streamserver_streams_active") == 20
        await asyncio.gather(*(s.alive() for s in streams))
        assert any("lost the NATS connection" in ln for ln in lines)

        outage_nats.start()  # the same port and JetStream store
        m = await metrics_until(
            url,
            lambda m: (
                total(m, "streamserver_bus_connected") == 2
                and total(m, "streamserver_bus_events_backlog") == 0
            ),
        )
        assert total(m, "streamserver_bus_events_published_total") == 31
        assert all(v >= 1 for v in m["streamserver_bus_reconnects_total"].values()), m
        await asyncio.gather(*(s.audio(20) for s in streams))
        # One at a time: each end is two events (recording.finished, stream.stopped), and a
        # burst of 40 would not fit this small backlog however fast NATS acknowledges.
        for n, s in enumerate(streams):
            await s.finish()
            published = 31 + 2 * (n + 1)
            await metrics_until(
                url, lambda m, p=published: total(m, "streamserver_bus_events_published_total") == p
            )
        m = await metrics_until(url, lambda m: True)
        assert total(m, "streamserver_bus_events_dropped_total") == 5
    events = await stored_events(outage_nats.url, 71)
    first = [e for e in events if e.call_id == streams[0].call]
    assert [e.kind for e in first] == [
        "stream.started", *["dtmf"] * 11, "recording.finished", "stream.stopped",
    ]  # fmt: skip
    # The backlog kept the oldest ten, in order; the five after it were dropped (counted).
    assert [e.data["digit"] for e in first if e.kind == "dtmf"] == ["9", *DIGITS[:10]]
    assert first[-1].data["media_frames"] == 50 and first[-1].data["gaps"] == 0
    for s in streams:
        assert np.array_equal(s.recording(rec), EXPECTED[: 50 * 160]), s.call


async def test_s3_killed_mid_call(s3_server: S3Server, tmp_path: Path) -> None:
    s3_server.create_bucket("outage-recordings")
    env = {
        "STREAMSERVER_STORAGE__URL": "s3://outage-recordings/calls",
        "STREAMSERVER_STORAGE__ENDPOINT_URL": s3_server.endpoint_url,
        "STREAMSERVER_STORAGE__RETRIES": "2",
        "STREAMSERVER_STORAGE__BACKOFF_S": "0.1",
        "STREAMSERVER_STORAGE__MAX_BACKOFF_S": "0.2",
        "STREAMSERVER_STORAGE__RESCAN_INTERVAL_S": "0.5",
        "STREAMSERVER_STORAGE__CONNECT_TIMEOUT_S": "1",
        "STREAMSERVER_STORAGE__READ_TIMEOUT_S": "5",
        **s3_server.env,
    }
    rec = tmp_path / "rec"
    try:
        async with serve(tmp_path, env) as (_proc, url, lines):
            streams = [await Stream.open(url, n) for n in range(10)]
            await asyncio.gather(*(s.audio(10) for s in streams))
            s3_server.stop()  # kill -9 in the middle of the calls
            await asyncio.gather(*(s.audio(30) for s in streams))
            await asyncio.gather(*(s.finish() for s in streams))
            # Every upload fails and is retried; the recordings stay on local disk.
            m = await metrics_until(
                url, lambda m: total(m, 'streamserver_uploads_total{result="failed"}') >= 10
            )
            assert total(m, 'streamserver_uploads_total{result="ok"}') == 0
            assert total(m, "streamserver_upload_retries_total") >= 10
            for s in streams:
                assert (rec / s.call / f"{s.stream}.json").exists()
                assert np.array_equal(s.recording(rec), EXPECTED[: 40 * 160])
            assert any("storage: upload of" in ln for ln in lines)

            s3_server.start()  # the same ports and data: the re-scans take them up
            m = await metrics_until(
                url,
                lambda m: (
                    total(m, 'streamserver_uploads_total{result="ok"}') == 10
                    and total(m, "streamserver_upload_queue") == 0
                ),
                timeout=T * 2,
            )
            assert total(m, "streamserver_upload_bytes_total") > 10 * 40 * 160 * 2
    finally:
        if not s3_server.running:
            s3_server.start()
    client = s3_server.client()
    for s in streams:
        key = f"calls/{s.call}/{s.stream}.inbound.wav"
        body = client.get_object(Bucket="outage-recordings", Key=key)["Body"].read()
        data, _ = sf.read(io.BytesIO(body), dtype="int16")
        assert np.array_equal(data, EXPECTED[: 40 * 160]), s.call
        assert not (rec / s.call / f"{s.stream}.json").exists()
        assert not (rec / s.call / f"{s.stream}.inbound.wav").exists()
