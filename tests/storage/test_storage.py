"""streamserver.storage against a real S3-compatible server (SeaweedFS) on loopback.

Recordings are made by the real recorder (``handlers.recorder``), so the sidecars are
exactly what the server writes; a "crash" is a recorder that never got ``on_stop``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bus_support
import numpy as np
import pytest
from bus_support import S3Server

from handlers.recorder import Recorder, RecorderOptions
from streamserver.audio import ENCODING_L16, AudioFormat
from streamserver.handler import AudioChunk, StopReason, StreamContext
from streamserver.storage import (
    RecordingUploader,
    StorageSettings,
    UploadResult,
    VerificationError,
    find_recordings,
    parse_url,
)

# The real server for this module (a fixture of bus_support).
s3_server = bus_support.s3_server

T = 20.0  # base timeout unit (s)
MiB = 1024 * 1024


# -- pure parts ------------------------------------------------------------------------------


def test_settings_and_url() -> None:
    assert parse_url("s3://my-bucket/a/b/") == ("my-bucket", "a/b")
    assert parse_url("s3://my-bucket") == ("my-bucket", "")
    with pytest.raises(ValueError, match="s3://"):
        parse_url("https://x/y")
    s = StorageSettings.from_table({"url": "s3://rec-bucket/p", "part_size": 6 * MiB})
    assert (s.bucket, s.prefix, s.multipart_threshold) == ("rec-bucket", "p", 8 * MiB)
    with pytest.raises(ValueError, match="5 MiB"):
        StorageSettings.from_table({"part_size": 1024})
    with pytest.raises(ValueError, match=r"\[storage\] .*unknown field `nope`"):
        StorageSettings.from_table({"nope": 1})


# -- recordings from the real recorder -------------------------------------------------------


class _Session:
    """What a recorder's StreamContext asks of its session."""

    metrics = None

    def summary(self) -> dict[str, Any]:
        return {"frames": 0}

    def publish(self, event: Any) -> None:  # the recorder's recording.finished
        pass


def _ctx(call_id: str, stream_id: str, tracks: tuple[str, ...]) -> StreamContext:
    return StreamContext(
        _Session(),  # type: ignore[arg-type]
        call_id=call_id,
        stream_id=stream_id,
        account_id="MA000",
        format=AudioFormat(ENCODING_L16, 8000),
        tracks=tracks,
        extra_headers={},
        path="/stream",
        query={},
        route="/stream",
        bidirectional=False,
        logger=logging.LoggerAdapter(logging.getLogger("test.recorder")),
    )


async def record(
    record_dir: Path,
    samples: dict[str, np.ndarray],
    *,
    finish: bool = True,
    call_id: str | None = None,
    **options: Any,
) -> Path:
    """Record ``samples`` per track with the real recorder; the sidecar's path. With
    ``finish=False`` the recorder never stops, as after a kill -9."""
    call_id = call_id or f"call-{uuid.uuid4().hex[:8]}"
    stream_id = f"st-{uuid.uuid4().hex[:8]}"
    rec = Recorder(
        _ctx(call_id, stream_id, tuple(samples)),
        RecorderOptions(record_dir=str(record_dir), flush_interval_s=0.02, **options),
    )
    await rec.on_start()
    for track, pcm in samples.items():
        payload = pcm.astype("<i2").tobytes()
        rec.on_audio_nowait(AudioChunk(track, 0, 8000, len(pcm), payload, ENCODING_L16))
    sidecar = record_dir / call_id / f"{stream_id}.json"
    if finish:
        await rec.on_stop(StopReason.CLOSED)
    else:
        # The periodic flush writes the audio; the sidecar keeps saying "not finished".
        wav = record_dir / call_id / f"{stream_id}.{next(iter(samples))}.wav"
        want = 44 + 2 * len(next(iter(samples.values())))
        deadline = time.monotonic() + T
        while not (wav.exists() and wav.stat().st_size >= want):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    return sidecar


def spool_files(sidecar: Path) -> dict[str, bytes]:
    """Every file of a recording (by name) as bytes, read before it is uploaded."""
    doc = json.loads(sidecar.read_text())
    names = {Path(p).name for p in doc["files"].values()} | {sidecar.name}
    return {n: (sidecar.parent / n).read_bytes() for n in names}


def noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-20000, 20000, n, dtype=np.int16)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def aws_env(s3_server: S3Server) -> Iterator[None]:
    """Credentials the usual way (AWS_* variables); never ask an instance metadata service."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in s3_server.env.items():
            mp.setenv(k, v)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.delenv("AWS_PROFILE", raising=False)
        yield


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server) -> str:
    name = f"rec-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    return name


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own in the module's bucket."""
    return f"rec-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def uploader(
    s3_server: S3Server,
    bucket: str,
    prefix: str,
    record_dir: Path,
) -> Callable[..., Any]:
    """``async with uploader(**settings) as (up, results):`` results arrive on a queue."""

    @asynccontextmanager
    async def run(
        **kw: Any,
    ) -> AsyncIterator[tuple[RecordingUploader, asyncio.Queue[UploadResult]]]:
        opts: dict[str, Any] = {
            "url": f"s3://{bucket}/{prefix}",
            "endpoint_url": s3_server.endpoint_url,
            "record_dir": str(record_dir),
            "backoff_s": 0.1,
            "max_backoff_s": 0.5,
            "connect_timeout_s": 2.0,
        }
        opts.update(kw)
        results: asyncio.Queue[UploadResult] = asyncio.Queue()
        up = RecordingUploader(StorageSettings(**opts), on_uploaded=results.put_nowait)
        await up.start()
        try:
            yield up, results
        finally:
            await up.aclose()

    return run


def get_object(s3: S3Server, bucket: str, key: str) -> bytes:
    body: bytes = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def assert_in_bucket(
    s3: S3Server, bucket: str, result: UploadResult, files: dict[str, bytes]
) -> None:
    keys = {o.key for o in result.files.values()} | {result.sidecar.key}
    assert {k.rsplit("/", 1)[1] for k in keys} == set(files)
    for key in keys:
        assert get_object(s3, bucket, key) == files[key.rsplit("/", 1)[1]], key


# -- tests -----------------------------------------------------------------------------------


async def test_small_recording_uploaded_verified_then_deleted(
    uploader: Callable[..., Any],
    record_dir: Path,
    s3_server: S3Server,
    bucket: str,
    prefix: str,
) -> None:
    async with uploader() as (up, results):
        sidecar = await record(record_dir, {"inbound": noise(16000), "outbound": noise(8000, 1)})
        files = spool_files(sidecar)
        assert up.submit(sidecar) and up.submit(sidecar)  # the second is the same job
        result = await asyncio.wait_for(results.get(), T)

    call_id, stream_id = sidecar.parent.name, sidecar.stem
    assert (result.call_id, result.stream_id, result.recovered) == (call_id, stream_id, False)
    base = f"s3://{bucket}/{prefix}/{call_id}/{stream_id}"
    assert result.url == f"{base}.json"
    assert result.files["inbound"].url == f"{base}.inbound.wav"
    assert_in_bucket(s3_server, bucket, result, files)
    # Verified: the ETag is the MD5 of the bytes sent.
    wav = files[f"{stream_id}.inbound.wav"]
    assert result.files["inbound"].etag == hashlib.md5(wav).hexdigest()
    assert result.files["inbound"].size == len(wav) == 44 + 2 * 16000
    # The spool copy is gone only now, directory and all.
    assert not sidecar.parent.exists()
    data = result.event_data()
    assert data["files"] == {t: o.url for t, o in result.files.items()}
    assert data["bytes"] == sum(len(b) for b in files.values())
    assert up.stats()["uploaded"] == 1 and up.stats()["pending"] == 0


async def test_stereo_flac_is_one_object_for_both_tracks(
    uploader: Callable[..., Any],
    record_dir: Path,
    s3_server: S3Server,
    bucket: str,
) -> None:
    tracks = {"inbound": noise(8000), "outbound": noise(8000, 5)}
    sidecar = await record(record_dir, tracks, format="flac", layout="stereo")
    files = spool_files(sidecar)
    assert set(files) == {f"{sidecar.stem}.flac", sidecar.name}
    async with uploader() as (_, results):
        result = await asyncio.wait_for(results.get(), T)
    assert result.files["inbound"] == result.files["outbound"]
    assert result.files["inbound"].key.endswith(".flac")
    assert_in_bucket(s3_server, bucket, result, files)
    assert not sidecar.parent.exists()


async def test_large_recording_goes_up_in_parts(
    uploader: Callable[..., Any],
    record_dir: Path,
    s3_server: S3Server,
    bucket: str,
) -> None:
    # 8 MiB + 100 KB of audio: above the threshold, two parts of 8 MiB and the rest.
    n = (8 * MiB + 100_000) // 2
    sidecar = await record(record_dir, {"inbound": noise(n)})
    files = spool_files(sidecar)
    async with uploader() as (up, results):  # the start-up scan finds it
        result = await asyncio.wait_for(results.get(), T)
        obj = result.files["inbound"]
        assert obj.size == 44 + 2 * n > 8 * MiB
        part1 = files[Path(obj.key).name][: 8 * MiB]
        part2 = files[Path(obj.key).name][8 * MiB :]
        parts_md5 = hashlib.md5(hashlib.md5(part1).digest() + hashlib.md5(part2).digest())
        assert obj.etag == f"{parts_md5.hexdigest()}-2"
        assert_in_bucket(s3_server, bucket, result, files)
        head = s3_server.client().head_object(Bucket=bucket, Key=obj.key)
        assert head["ContentLength"] == obj.size and head["ETag"].strip('"') == obj.etag

        # Verification catches an object that no longer matches what was uploaded.
        await up.verify(obj)
        s3_server.client().put_object(Bucket=bucket, Key=obj.key, Body=b"tampered")
        with pytest.raises(VerificationError, match="size"):
            await up.verify(obj)
        sc = result.sidecar
        s3_server.client().put_object(Bucket=bucket, Key=sc.key, Body=b"x" * sc.size)
        with pytest.raises(VerificationError, match="ETag"):
            await up.verify(sc)
    assert not sidecar.parent.exists()


async def test_retries_while_s3_is_down_then_uploads(
    uploader: Callable[..., Any],
    record_dir: Path,
    s3_server: S3Server,
    bucket: str,
) -> None:
    sidecar = await record(record_dir, {"inbound": noise(4000)})
    files = spool_files(sidecar)
    s3_server.stop()
    try:
        async with uploader(retries=1000) as (up, results):
            deadline = time.monotonic() + T
            while up.stats()["retried"] < 3:
                assert time.monotonic() < deadline, "no retries while S3 was down"
                await asyncio.sleep(0.02)
            assert sidecar.exists() and results.empty()  # nothing deleted meanwhile
            s3_server.start()  # same ports, same data
            result = await asyncio.wait_for(results.get(), T * 2)
    finally:
        if not s3_server.running:
            s3_server.start()
    assert_in_bucket(s3_server, bucket, result, files)
    assert not sidecar.parent.exists()


async def test_crash_leftovers_uploaded_at_start(
    uploader: Callable[..., Any],
    record_dir: Path,
    s3_server: S3Server,
    bucket: str,
    prefix: str,
) -> None:
    # A finished recording whose upload a crash prevented.
    done = await record(record_dir, {"inbound": noise(3000)})
    done_files = spool_files(done)
    # A recording whose process died mid-call: never finished, untouched for a while.
    orphan = await record(record_dir, {"inbound": noise(2000, 2)}, finish=False)
    orphan_wav = spool_files(orphan)
    old = time.time() - 120
    for p in orphan.parent.iterdir():
        os.utime(p, (old, old))
    # A live recording of another worker sharing the spool: unfinished and fresh.
    live = await record(record_dir, {"inbound": noise(2000, 3)}, finish=False)
    # Uploaded and half deleted when the crash came: its audio is gone, the sidecar is not.
    half = await record(record_dir, {"inbound": noise(1000, 4)})
    half_files = spool_files(half)
    wav_name = f"{half.stem}.inbound.wav"
    s3_server.client().put_object(
        Bucket=bucket, Key=f"{prefix}/{half.parent.name}/{wav_name}", Body=half_files[wav_name]
    )
    (half.parent / wav_name).unlink()

    found = set(find_recordings(record_dir, orphan_after_s=60))
    assert found == {done, orphan, half}

    async with uploader(orphan_after_s=60) as (up, results):
        got = [await asyncio.wait_for(results.get(), T) for _ in range(3)]
        assert await up.wait_idle(T)
    by_stream = {r.stream_id: r for r in got}
    assert set(by_stream) == {done.stem, orphan.stem, half.stem}

    assert_in_bucket(s3_server, bucket, by_stream[done.stem], done_files)
    assert_in_bucket(s3_server, bucket, by_stream[half.stem], half_files)
    # The orphan's audio is byte-exact; its sidecar says it was recovered.
    rec = by_stream[orphan.stem]
    assert rec.recovered
    wav_key = rec.files["inbound"].key
    assert get_object(s3_server, bucket, wav_key) == orphan_wav[Path(wav_key).name]
    side = json.loads(get_object(s3_server, bucket, rec.sidecar.key))
    assert side["recovered"] is True and side["stop_reason"] is None and side["end_time"]
    # The live one is left alone, in the spool and out of the bucket.
    assert live.exists()
    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
    assert not any(live.stem in o["Key"] for o in listed.get("Contents", []))
    assert not (done.parent.exists() or orphan.parent.exists() or half.parent.exists())
