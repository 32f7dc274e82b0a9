"""`streamserver serve --workers 2` as real processes: spreading, kill -9 of a worker, drain."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import plivo_frames as pf
import pytest
import soundfile as sf
from process_support import keep_reading, read_until, stop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from streamserver import audio
from streamserver.worker_metrics import label_sample, merge_metrics

T = 20.0


# -- the metrics merge (pure) ------------------------------------------------------------------


def test_label_sample() -> None:
    assert label_sample("a_total 3", "1") == 'a_total{worker="1"} 3'
    assert label_sample('a{code="1000"} 2', "0") == 'a{worker="0",code="1000"} 2'
    assert label_sample("a{} 2", "0") == 'a{worker="0"} 2'


def test_merge_keeps_one_description_per_family() -> None:
    text = '# HELP a A.\n# TYPE a counter\na 1\n# HELP b B.\n# TYPE b gauge\nb{x="y"} 2\n'
    merged = merge_metrics({"1": text.replace(" 1\n", " 5\n"), "0": text})
    assert merged.splitlines() == [
        "# HELP a A.",
        "# TYPE a counter",
        'a{worker="0"} 1',
        'a{worker="1"} 5',
        "# HELP b B.",
        "# TYPE b gauge",
        'b{worker="0",x="y"} 2',
        'b{worker="1",x="y"} 2',
    ]


# -- real processes ----------------------------------------------------------------------------


@asynccontextmanager
async def supervisor(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, list[str]]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamserver", "serve", "--port", "0", "--workers", "2",
        "--record-dir", str(tmp_path / "rec"), *args,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    lines: list[str] = []
    url = await read_until(proc, r"listening on (ws://\S+) \(2 workers\)", lines, T)
    reader = keep_reading(proc, lines)
    try:
        await wait_for_metrics(url, lambda t: len(series(t, "streamserver_up")) == 2)
        yield proc, url, lines
    finally:
        await stop(proc, T)  # the workers drain and go with it
        reader.cancel()


def series(text: str, name: str) -> dict[str, float]:
    """``worker -> value`` of the samples of ``name`` (without other labels)."""
    pat = re.compile(rf'^{name}\{{worker="(\d+)"\}} (\S+)$', re.M)
    return {w: float(v) for w, v in pat.findall(text)}


async def wait_for_metrics(url: str, check: object, timeout: float = T) -> str:
    http_url = url.replace("ws://", "http://") + "/metrics"
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            text = (await http.get(http_url)).text
            if check(text):  # type: ignore[operator]
                return text
            assert asyncio.get_running_loop().time() < deadline, text
            await asyncio.sleep(0.05)


def tone(n: int) -> np.ndarray:
    return (6000 * np.sin(np.arange(n) * 2 * np.pi * 300 / 8000)).astype(np.int16)


ENCODED = audio.ulaw_encode(tone(8000))
EXPECTED = audio.ulaw_decode(ENCODED)


def ids(i: int) -> tuple[str, str]:
    return f"call-{i:04d}", f"stream-{i:04d}"


async def open_stream(url: str, i: int) -> ClientConnection:
    call, stream = ids(i)
    ws = await connect(f"{url}/stream")
    await ws.send(pf.start(stream_id=stream, call_id=call))
    return ws


async def send_audio(ws: ClientConnection, i: int, frames: range) -> None:
    stream = ids(i)[1]
    for k in frames:
        await ws.send(pf.media(ENCODED[k * 160 : (k + 1) * 160], k + 1, stream_id=stream))


async def finish(ws: ClientConnection, i: int) -> None:
    await ws.send(pf.stop(ids(i)[1]))
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), T)
    assert ws.close_code == 1000


def recording(tmp_path: Path, i: int) -> np.ndarray:
    call, stream = ids(i)
    data, _ = sf.read(str(tmp_path / "rec" / call / f"{stream}.inbound.wav"), dtype="int16")
    return np.asarray(data)


async def test_two_workers_share_200_streams(tmp_path: Path) -> None:
    async with supervisor(tmp_path) as (_proc, url, _lines):

        async def one(i: int) -> None:
            ws = await open_stream(url, i)
            await send_audio(ws, i, range(10))
            await finish(ws, i)

        await asyncio.gather(*(one(i) for i in range(200)))
        text = await wait_for_metrics(
            url, lambda t: sum(series(t, "streamserver_streams_total").values()) == 200
        )
        per_worker = series(text, "streamserver_streams_total")
        # Each worker has its own SO_REUSEPORT socket and the kernel picks one by a hash of
        # the connection's 4-tuple (source ports vary): a balanced split whatever the
        # workers' wake-up order. 50 of 200 is far below what a fair hash gives (binomial,
        # p=0.5: below 50 happens with odds under 1e-12).
        assert set(per_worker) == {"0", "1"}, per_worker
        assert min(per_worker.values()) >= 50, per_worker
        print(f"\nstreams per worker: {per_worker}")
    for i in range(200):
        assert np.array_equal(recording(tmp_path, i), EXPECTED[: 10 * 160])


async def test_kill_9_of_a_worker_spares_the_other_and_it_comes_back(tmp_path: Path) -> None:
    async with supervisor(tmp_path) as (_proc, url, lines):
        socks = [await open_stream(url, i) for i in range(40)]
        await asyncio.gather(*(send_audio(ws, i, range(20)) for i, ws in enumerate(socks)))
        text = await wait_for_metrics(
            url, lambda t: sum(series(t, "streamserver_streams_active").values()) == 40
        )
        active = series(text, "streamserver_streams_active")
        assert min(active.values()) > 0, active
        pids = {
            m.group(1): int(m.group(2))
            for ln in lines
            if (m := re.search(r"worker (\d) \(pid (\d+)\) serving", ln))
        }
        os.kill(pids["1"], signal.SIGKILL)

        async def alive(ws: ClientConnection) -> bool:
            try:
                await asyncio.wait_for(await ws.ping(), T)
                return True
            except ConnectionClosed:
                return False

        up = await asyncio.gather(*(alive(ws) for ws in socks))
        assert sum(up) == active["0"], (up, active)  # worker 1's streams went with it
        survivors = [i for i, ok in enumerate(up) if ok]
        await asyncio.gather(*(send_audio(socks[i], i, range(20, 50)) for i in survivors))
        await asyncio.gather(*(finish(socks[i], i) for i in survivors))
        # The worker is back (a fresh process), counted once.
        text = await wait_for_metrics(
            url,
            lambda t: (
                series(t, "streamserver_worker_restarts_total").get("1") == 1
                and len(series(t, "streamserver_up")) == 2
            ),
        )
        assert any("worker 1" in ln and "died (signal 9)" in ln for ln in lines)
    for i in survivors:  # after the drain: every recorder finished
        assert np.array_equal(recording(tmp_path, i), EXPECTED[: 50 * 160])


async def test_sigterm_drains_every_worker(tmp_path: Path) -> None:
    async with supervisor(tmp_path) as (proc, url, _lines):
        socks = [await open_stream(url, i) for i in range(20)]
        await asyncio.gather(*(send_audio(ws, i, range(25)) for i, ws in enumerate(socks)))
        text = await wait_for_metrics(
            url, lambda t: sum(series(t, "streamserver_streams_active").values()) == 20
        )
        assert min(series(text, "streamserver_streams_active").values()) > 0
        proc.send_signal(signal.SIGTERM)
        # Draining: the streams still finish (Plivo hangs up within the drain window).
        await asyncio.gather(*(send_audio(ws, i, range(25, 50)) for i, ws in enumerate(socks)))
        await asyncio.gather(*(finish(ws, i) for i, ws in enumerate(socks)))
        assert await asyncio.wait_for(proc.wait(), T) == 0
    for i in range(20):
        assert np.array_equal(recording(tmp_path, i), EXPECTED[: 50 * 160])
