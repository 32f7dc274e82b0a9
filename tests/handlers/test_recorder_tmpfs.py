"""Defect 5 of issue 16 on a real, tiny filesystem: a 2 MB tmpfs as the record dir of a
real ``serve`` process, on a route that requires the recorder, filled by 20 streams.

Every WAV's header then counts exactly the bytes it holds, every sidecar is finalized
(end time, the samples in its files, the error), no ``.json.tmp`` is left, the streams cut
short were closed with 1011 "recording storage full", ``/readyz`` says why, a new stream is
refused without leaving files, and once there is room again the server is ready and records.

Mounting needs root (CAP_SYS_ADMIN); elsewhere the test is skipped and
``test_recorder_disk_full.py`` covers the same logic with a simulated disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import plivo_frames as pf
import pytest
import soundfile as sf
from session_support import CID, SID, feed, finish, make_session, mulaw_chunks, tone
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from streamserver.handler import load_handler

T = 20.0
STREAMS = 20
FRAMES = 500  # 10 s each: 160 kB of 16-bit WAV per stream, 3.2 MB in all


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (skips the test when mounting is not allowed)."""
    where.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}; needs root "
            "or CAP_SYS_ADMIN): test_recorder_disk_full.py covers this with a simulated disk"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs under tmp_path."""
    with mounted_tmpfs(tmp_path / "tmpfs", "2m") as mnt:
        yield mnt


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAMSERVER_")}


def header_sizes(wav: Path) -> tuple[int, int, int]:
    """(RIFF size, data size, file size) of a 16-bit PCM WAV."""
    raw = wav.read_bytes()
    return struct.unpack("<I", raw[4:8])[0], struct.unpack("<I", raw[40:44])[0], len(raw)


async def stream(url: str, call_id: str, payloads: list[bytes]) -> tuple[int | None, str]:
    """One stream: start, the audio as fast as it goes, stop; the server's close."""
    sid = f"s-{call_id}"
    async with connect(f"{url}/stream", max_queue=None) as ws:
        try:
            await ws.send(pf.start(sid, call_id))
            for i, p in enumerate(payloads):
                await ws.send(pf.media(p, i + 1, stream_id=sid))
            await ws.send(pf.stop(sid))
            while True:
                await asyncio.wait_for(ws.recv(), T)
        except ConnectionClosed:
            pass
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


async def test_a_full_tmpfs_leaves_consistent_files_and_tells_the_callers(
    tmpfs: Path, tmp_path: Path
) -> None:
    rec = tmpfs / "rec"
    config = tmp_path / "server.toml"
    config.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 0
nonce_dir = ""
[routes."/stream"]
handlers = ["recorder"]
required_handlers = ["recorder"]
[handler.recorder]
record_dir = "{rec}"
flush_interval_s = 0.1
"""
    )
    payloads = mulaw_chunks(tone(160 * FRAMES))
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "streamserver", "serve", "--config", str(config)],
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(),
    )
    assert proc.stderr is not None
    url = ""
    try:
        while not url:
            line = (await asyncio.wait_for(proc.stderr.readline(), T)).decode()
            assert line, "server exited before listening"
            m = re.search(r"listening on (ws://\S+)", line)
            url = m.group(1) if m else ""
        http = url.replace("ws://", "http://")
        closes = await asyncio.gather(*(stream(url, f"call-{i}", payloads) for i in range(STREAMS)))
        full = [c for c in closes if c == (1011, "recording storage full")]
        assert full, closes  # the disk filled up: some callers were told
        assert all(c == (1000, "stream stopped") or c in full for c in closes), closes

        # Every file tells the truth about itself, and every caller was told the truth.
        assert list(rec.rglob("*.tmp")) == []
        wavs = sorted(rec.rglob("*.wav"))
        assert wavs
        for i, close in enumerate(closes):
            call = rec / f"call-{i}"
            if not call.exists():  # refused while the disk was full: nothing was created
                assert close == (1011, "recording storage full")
                continue
            wav, sidecar = call / f"s-call-{i}.inbound.wav", call / f"s-call-{i}.json"
            assert set(call.iterdir()) == {sidecar, wav}
            riff, data, size = header_sizes(wav)
            assert data == size - 44 and riff == size - 8 and data % 2 == 0, wav
            frames = sf.info(str(wav)).frames
            assert frames == data // 2
            doc = json.loads(sidecar.read_text())
            assert doc["end_time"] is not None, sidecar
            assert doc["samples"] == {"inbound": frames}, sidecar
            if doc["error"] is None:
                assert close == (1000, "stream stopped") and frames == 160 * FRAMES
            else:
                assert close == (1011, "recording storage full"), sidecar
                assert doc["error"] == "No space left on device (ENOSPC)"
                # received but lost to the error (the stream was closed, the rest never came)
                assert 0 <= doc["samples_not_written"]["inbound"] <= 160 * FRAMES - frames

        async with httpx.AsyncClient(timeout=T) as client:
            r = await client.get(f"{http}/readyz")
            assert r.status_code == 503
            assert "No space left on device (ENOSPC)" in r.text
            # While full: a new stream is refused at once, and leaves nothing on disk.
            assert await stream(url, "late", payloads[:10]) == (1011, "recording storage full")
            assert not (rec / "late").exists()
            metrics = (await client.get(f"{http}/metrics")).text
            # every 1011 counted (the late one too); refusals and write errors counted
            closed = (
                f'streamserver_required_handler_closes_total{{handler="recorder"}} {len(full) + 1}'
            )
            assert closed in metrics, metrics
            assert re.search(r'event="refused"\} [1-9]', metrics), metrics
            assert re.search(r'event="write_errors"\} [1-9]', metrics), metrics

            # Room again (the recordings were shipped elsewhere): ready, and recording.
            for wav in wavs:
                wav.unlink()
            deadline = time.monotonic() + T
            while (await client.get(f"{http}/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "never ready again"
                await asyncio.sleep(0.2)
        assert await stream(url, "after", payloads[:50]) == (1000, "stream stopped")
        after = rec / "after" / "s-after.inbound.wav"
        assert sf.info(str(after)).frames == 50 * 160
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), T) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(Exception):
            await proc.stderr.read()


@pytest.mark.parametrize(("layout", "fmt"), [("stereo", "wav"), ("mono", "flac")])
async def test_libsndfile_files_on_a_full_tmpfs_end_with_a_final_sidecar(
    tmp_path: Path, layout: str, fmt: str
) -> None:
    with mounted_tmpfs(tmp_path / "small", "128k") as mnt:
        rec = mnt / "rec"
        spec = load_handler("recorder", {"record_dir": str(rec), "layout": layout, "format": fmt})
        s, _ = make_session(spec)
        noise = np.random.default_rng(1).integers(0, 256, 160 * 1000, dtype=np.uint8).tobytes()
        payloads = [noise[i : i + 160] for i in range(0, len(noise), 160)]
        tracks = ("inbound", "outbound") if layout == "stereo" else ("inbound",)
        frames = [pf.media(p, i + 1, track=t) for i, p in enumerate(payloads) for t in tracks]
        feed(s, pf.start(tracks=tracks), *frames)
        await finish(s)
        doc = json.loads((rec / CID / f"{SID}.json").read_text())
        assert doc["error"] == "No space left on device (ENOSPC)"
        assert doc["end_time"] is not None and doc["stop_reason"] == "closed"
        assert list(rec.rglob("*.tmp")) == []
        if fmt == "wav":  # libsndfile's WAV header counts what it wrote; so does the sidecar
            wav = rec / CID / f"{SID}.wav"
            riff, data, size = header_sizes(wav)
            assert data == size - 44 and riff == size - 8
            frames_on_disk = sf.info(str(wav)).frames
            assert doc["samples"] == dict.fromkeys(tracks, frames_on_disk) and frames_on_disk
        else:  # a FLAC cut by a full disk has no final length: the sidecar says what was sure
            assert 0 <= doc["samples"]["inbound"] < 160 * 1000
