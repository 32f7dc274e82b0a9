"""The recorder, driven through a real Session with a fake outlet: sample-exact files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import plivo_frames as pf
import pytest
import soundfile as sf
from session_support import CID, SID, T, feed, finish, make_session, media_frames, tone

from streamserver import audio
from streamserver.handler import HandlerSpec, load_handler
from streamserver.session import Session, SessionLimits

F = 160


def recorder(record_dir: Path, **options: Any) -> HandlerSpec:
    return load_handler("recorder", {"record_dir": str(record_dir), **options})


def read(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(str(path), dtype="int16")
    return data, rate


def wav(record_dir: Path, track: str = "inbound", ext: str = "wav") -> Path:
    return record_dir / CID / f"{SID}.{track}.{ext}"


async def record(
    record_dir: Path, frames: list[str], *, window: int = 5, **options: Any
) -> Session:
    s, _ = make_session(
        recorder(record_dir, **options), limits=SessionLimits(reorder_window=window)
    )
    feed(s, *frames)
    await finish(s)
    return s


def mulaw(seconds: float = 1.0) -> tuple[list[bytes], np.ndarray]:
    """20 ms μ-law payloads of a tone, and the samples they decode to."""
    enc = audio.ulaw_encode(tone(int(8000 * seconds)))
    return [enc[i : i + F] for i in range(0, len(enc), F)], audio.ulaw_decode(enc)


async def test_in_order_mulaw_is_recorded_sample_exact(record_dir: Path) -> None:
    chunks, expected = mulaw()
    await record(record_dir, [pf.start(), *media_frames(chunks)])
    got, rate = read(wav(record_dir))
    assert rate == 8000 and np.array_equal(got, expected)


async def test_reordered_and_duplicated_input_is_recorded_in_order(record_dir: Path) -> None:
    chunks, expected = mulaw()
    order = list(range(1, len(chunks) + 1))
    order[3], order[4] = order[4], order[3]  # a swap
    order[10:13] = [13, 11, 12]  # one two frames late
    order.insert(20, 7)  # a duplicate
    await record(record_dir, [pf.start(), *media_frames(chunks, order)])
    assert np.array_equal(read(wav(record_dir))[0], expected)


async def test_lost_chunks_are_exact_silence(record_dir: Path) -> None:
    chunks, expected = mulaw()
    lost = {5, 6, 30}
    order = [c for c in range(1, len(chunks) + 1) if c not in lost]
    s = await record(record_dir, [pf.start(), *media_frames(chunks, order)], window=2)
    want = expected.copy()
    for c in lost:
        want[(c - 1) * F : c * F] = 0
    got = read(wav(record_dir))[0]
    assert len(got) == len(want) and np.array_equal(got, want)
    assert s.summary()["gap_samples"] == 3 * F
    side = json.loads((record_dir / CID / f"{SID}.json").read_text())
    assert side["gap_samples_filled"] == {"inbound": 3 * F}
    assert side["samples"] == {"inbound": len(want)}
    assert side["stop_reason"] == "closed" and side["gaps"] == 2


async def test_chunks_missing_at_the_end_are_flushed_as_silence(record_dir: Path) -> None:
    chunks, expected = mulaw(0.2)  # 10 frames
    await record(record_dir, [pf.start(), *media_frames(chunks, [1, 2, 3, 5])])
    want = expected[: 5 * F].copy()
    want[3 * F : 4 * F] = 0
    assert np.array_equal(read(wav(record_dir))[0], want)


async def test_l16_two_tracks_aligned_by_position(record_dir: Path) -> None:
    rate, n = 16000, 320
    a, b = tone(rate // 2, rate, 300.0, 1), tone(rate // 2, rate, 700.0, 2)
    pa = [audio.l16_encode(a[i : i + n]) for i in range(0, len(a), n)]
    pb = [audio.l16_encode(b[i : i + n]) for i in range(0, len(b), n)]
    order_b = [c for c in range(1, len(pb) + 1) if c != 4]
    frames = [
        pf.start(encoding="audio/x-l16", rate=rate, tracks=("inbound", "outbound")),
        *media_frames(pa),
        *media_frames(pb, order_b, track="outbound"),
    ]
    await record(record_dir, frames, window=0)
    got_a, r = read(wav(record_dir))
    got_b, _ = read(wav(record_dir, "outbound"))
    want_b = b.copy()
    want_b[3 * n : 4 * n] = 0
    assert r == rate and np.array_equal(got_a, a) and np.array_equal(got_b, want_b)


async def test_keep_mulaw_stores_the_bytes_received(record_dir: Path) -> None:
    chunks, _ = mulaw(0.5)
    await record(record_dir, [pf.start(), *media_frames(chunks)], keep_mulaw=True)
    info = sf.info(str(wav(record_dir)))
    assert info.subtype == "ULAW"
    raw = wav(record_dir).read_bytes()
    assert raw.endswith(b"".join(chunks))


async def test_stereo_layout_and_flac(record_dir: Path) -> None:
    chunks, expected = mulaw(0.4)
    out, expected_out = mulaw(0.2)
    frames = [
        pf.start(tracks=("inbound", "outbound")),
        *media_frames(chunks),
        *media_frames(out, track="outbound"),
    ]
    await record(record_dir, frames, layout="stereo", format="flac")
    got, _ = read(record_dir / CID / f"{SID}.flac")
    assert got.shape == (len(expected), 2)
    assert np.array_equal(got[:, 0], expected)
    assert np.array_equal(got[: len(expected_out), 1], expected_out)
    assert not got[len(expected_out) :, 1].any()  # the shorter track is padded with silence


async def test_files_are_readable_while_the_stream_runs(record_dir: Path) -> None:
    chunks, expected = mulaw(0.5)
    s, _ = make_session(recorder(record_dir, flush_interval_s=0.02))
    feed(s, pf.start(), *media_frames(chunks))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + T
    while not (wav(record_dir).exists() and len(read(wav(record_dir))[0]) == len(expected)):
        assert loop.time() < deadline, "the recording was not flushed in time"
        await asyncio.sleep(0.01)
    assert np.array_equal(read(wav(record_dir))[0], expected)
    await finish(s)


async def test_an_unwritable_record_dir_switches_the_recorder_off(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    s, _ = make_session(recorder(blocker))
    feed(s, pf.start())
    await finish(s)
    assert s.runners[0].failed
    assert s.metrics.handler_errors["recorder"] >= 1


@pytest.mark.parametrize("layout", ["mono", "stereo"])
async def test_sidecar_describes_the_stream(record_dir: Path, layout: str) -> None:
    chunks, expected = mulaw(0.2)
    await record(record_dir, [pf.start(), *media_frames(chunks)], layout=layout)
    side = json.loads((record_dir / CID / f"{SID}.json").read_text())
    assert (side["call_id"], side["stream_id"], side["route"]) == (CID, SID, "/stream")
    assert side["format"] == {"encoding": "audio/x-mulaw", "sample_rate": 8000}
    assert side["layout"] == "mono"  # stereo needs two tracks
    assert side["duration_s"] == {"inbound": round(len(expected) / 8000, 3)}
    assert side["stream"]["media_frames"] == len(chunks)


async def test_a_chunk_jump_of_a_day_records_only_the_capped_gap(record_dir: Path) -> None:
    # Issue 16, defect 1: one forward jump of 24 h used to write hours of silence.
    chunks, expected = mulaw(0.2)  # 10 frames
    day = 24 * 3600 * 50
    frames = [pf.media(chunks[c], c + 1) for c in range(5)]
    frames += [pf.media(chunks[c], day + c) for c in range(5, 10)]
    s, _ = make_session(recorder(record_dir), limits=SessionLimits(max_gap_s=2.0))
    feed(s, pf.start(), *frames)
    await finish(s)
    got = read(wav(record_dir))[0]
    assert len(got) == 10 * F + 2 * 8000
    assert np.array_equal(got[: 5 * F], expected[: 5 * F])
    assert not got[5 * F : 5 * F + 16000].any()
    assert np.array_equal(got[5 * F + 16000 :], expected[5 * F :])
    assert s.metrics.gaps_capped == 1 and s.metrics.gap_samples == 16000


@pytest.mark.parametrize("fmt", ["wav", "flac"])
async def test_a_long_gap_is_written_in_pieces(record_dir: Path, fmt: str) -> None:
    chunks, expected = mulaw(0.1)
    frames = [pf.media(chunks[0], 1), pf.media(chunks[1], 1 + 500)]  # 10 s later
    s, _ = make_session(
        recorder(record_dir, format=fmt), limits=SessionLimits(max_gap_s=30.0, reorder_window=0)
    )
    feed(s, pf.start(), *frames)
    await finish(s)
    got = read(wav(record_dir, ext=fmt))[0]
    assert len(got) == 501 * F
    assert not got[F : 500 * F].any()
    assert np.array_equal(got[500 * F :], expected[F : 2 * F])
