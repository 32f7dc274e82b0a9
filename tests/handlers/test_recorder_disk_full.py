"""The recorder when the disk fills up, without mounting anything: the WAV writer's system
call is replaced by one that runs out of room (``WavWriter.system_write``). Files stay
consistent, the sidecar is finalized with the error, new recordings are refused while the
record dir keeps failing (no files), and a route that requires the recorder closes the
stream with 1011 "recording storage full". ``test_recorder_tmpfs.py`` does the same on a
real, tiny filesystem."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import struct
from pathlib import Path

import numpy as np
import plivo_frames as pf
import pytest
import soundfile as sf
from session_support import CID, SID, T, feed, finish, make_session, media_frames, tone

from handlers import recorddir
from handlers.recorddir import HEALTH
from handlers.recorder import Recorder
from handlers.wavfile import WavWriter
from streamserver import audio
from streamserver.handler import load_handler
from streamserver.metrics import Metrics
from streamserver.protocol.websocket import CloseCode

HEADER = 44  # a 16-bit PCM WAV header
REQUIRED = frozenset({"recorder"})


class FullDisk:
    """``os.write`` with ``free`` bytes left for the whole process, then ENOSPC."""

    def __init__(self, free: int) -> None:
        self.free = free

    def __call__(self, fd: int, data: memoryview) -> int:
        if self.free <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, data[: min(len(data), self.free)])
        self.free -= n
        return n


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    d = FullDisk(1 << 40)
    monkeypatch.setattr(WavWriter, "system_write", staticmethod(d))
    return d


def chunks(seconds: float) -> list[bytes]:
    enc = audio.ulaw_encode(tone(int(8000 * seconds)))
    return [enc[i : i + 160] for i in range(0, len(enc), 160)]


def recorder(record_dir: Path, **options: object):  # type: ignore[no-untyped-def]
    return load_handler("recorder", {"record_dir": str(record_dir), **options})


def assert_consistent(wav: Path) -> int:
    """The header's sizes match the bytes in the file; returns its samples."""
    raw = wav.read_bytes()
    riff = struct.unpack("<I", raw[4:8])[0]
    data = struct.unpack("<I", raw[HEADER - 4 : HEADER])[0]
    assert riff == len(raw) - 8 and data == len(raw) - HEADER and data % 2 == 0
    frames = sf.info(str(wav)).frames
    assert frames == data // 2
    return frames


def leftovers(record_dir: Path) -> list[str]:
    return [p.name for p in record_dir.rglob("*.tmp")]


async def wait_for(cond, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(T / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_full_disk_at_the_end_finalizes_file_and_sidecar(
    record_dir: Path, disk: FullDisk
) -> None:
    disk.free = HEADER + 8000  # room for 4000 samples of 16-bit audio
    metrics = Metrics()
    s, out = make_session(recorder(record_dir), metrics=metrics)
    feed(s, pf.start(), *media_frames(chunks(2.0)))
    await finish(s)
    wav = record_dir / CID / f"{SID}.inbound.wav"
    assert assert_consistent(wav) == 4000
    doc = json.loads((record_dir / CID / f"{SID}.json").read_text())
    assert doc["error"] == "No space left on device (ENOSPC)"
    assert doc["end_time"] is not None and doc["stop_reason"] == "closed"
    assert doc["samples"] == {"inbound": 4000}
    assert doc["samples_not_written"] == {"inbound": 16000 - 4000}
    assert leftovers(record_dir) == []
    assert metrics.handler_events[("recorder", "write_errors")] == 1
    assert metrics.handler_errors["recorder"] == 1
    # not required on this route: a normal close (the caller's stream was fine)
    assert out.closes == []
    reason = Recorder.unready(recorder(record_dir).options)
    assert reason is not None and "No space left on device (ENOSPC)" in reason


async def test_a_full_disk_mid_stream_closes_a_required_stream_with_1011(
    record_dir: Path, disk: FullDisk
) -> None:
    disk.free = HEADER + 3000
    metrics = Metrics()
    s, out = make_session(
        recorder(record_dir, flush_interval_s=0.05), metrics=metrics, required=REQUIRED
    )
    frames = media_frames(chunks(2.0))
    feed(s, pf.start(), *frames[:50])
    root = record_dir.resolve()
    await wait_for(lambda: HEALTH.failure(root) is not None, "the write error")
    feed(s, *frames[50:])  # the next frame finds the error
    assert out.closes == [(CloseCode.INTERNAL_ERROR, "recording storage full")]
    assert s.ended
    await s.wait_handlers(T)
    assert metrics.required_handler_closes["recorder"] == 1
    wav = record_dir / CID / f"{SID}.inbound.wav"
    samples = assert_consistent(wav)
    doc = json.loads((record_dir / CID / f"{SID}.json").read_text())
    assert doc["samples"] == {"inbound": samples} and doc["error"] is not None
    assert doc["stop_reason"] == "error" and leftovers(record_dir) == []


async def test_while_the_dir_fails_new_streams_are_refused_without_files(
    record_dir: Path, disk: FullDisk, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = record_dir.resolve()
    HEALTH.failed(root, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    monkeypatch.setattr(recorddir, "RECHECK_S", 1e9)  # no new probe: still full
    metrics = Metrics()
    s, out = make_session(recorder(record_dir), metrics=metrics, required=REQUIRED)
    feed(s, pf.start(), *media_frames(chunks(0.2)))
    await wait_for(lambda: bool(out.closes), "the close")
    assert out.closes == [(CloseCode.INTERNAL_ERROR, "recording storage full")]
    await s.wait_handlers(T)
    assert not (record_dir / CID).exists()  # no empty WAV, no sidecar, no .json.tmp
    assert metrics.handler_events[("recorder", "refused")] == 1
    assert metrics.required_handler_closes["recorder"] == 1
    # Room again: the next stream probes the directory and is recorded.
    monkeypatch.setattr(recorddir, "RECHECK_S", 0.0)
    s2, out2 = make_session(recorder(record_dir), metrics=metrics, required=REQUIRED)
    feed(s2, pf.start(), *media_frames(chunks(0.2)))
    await finish(s2)
    assert out2.closes == []
    assert assert_consistent(record_dir / CID / f"{SID}.inbound.wav") == 1600
    assert HEALTH.failure(root) is None
    assert Recorder.unready(recorder(record_dir).options) is None


async def test_a_stop_on_a_required_route_closes_after_the_last_flush(
    record_dir: Path, disk: FullDisk
) -> None:
    ok, out_ok = make_session(recorder(record_dir / "a"), required=REQUIRED)
    feed(ok, pf.start(), *media_frames(chunks(0.2)), pf.stop())
    await ok.wait_handlers(T)
    assert out_ok.closes == [(CloseCode.NORMAL, "stream stopped")]
    disk.free = HEADER + 100
    bad, out_bad = make_session(recorder(record_dir / "b"), required=REQUIRED)
    feed(bad, pf.start(), *media_frames(chunks(0.2)), pf.stop())
    assert out_bad.closes == []  # not before the recording is finished
    await bad.wait_handlers(T)
    await wait_for(lambda: bool(out_bad.closes), "the close")
    assert out_bad.closes == [(CloseCode.INTERNAL_ERROR, "recording storage full")]
    doc = json.loads((record_dir / "b" / CID / f"{SID}.json").read_text())
    assert doc["stop_reason"] == "stop" and doc["samples"] == {"inbound": 50}


async def test_an_l16_file_cut_mid_sample_keeps_whole_samples(
    record_dir: Path, disk: FullDisk
) -> None:
    disk.free = HEADER + 1001  # one byte into a sample
    s, _ = make_session(recorder(record_dir))
    pcm = tone(1600)
    payloads = [pcm[i : i + 160].astype("<i2").tobytes() for i in range(0, 1600, 160)]
    feed(
        s,
        pf.start(encoding="audio/x-l16"),
        *(pf.media(p, i + 1) for i, p in enumerate(payloads)),
    )
    await finish(s)
    wav = record_dir / CID / f"{SID}.inbound.wav"
    assert assert_consistent(wav) == 500
    got = sf.read(str(wav), dtype="int16")[0]
    assert np.array_equal(got, pcm[:500])
