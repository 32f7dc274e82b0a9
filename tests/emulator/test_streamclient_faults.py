"""The stream client's faults against the real server: what the server answers to a bad
network. Each test runs a real :class:`~streamserver.net.StreamServer` with the recorder on
loopback and checks the recording sample by sample, the counters in /metrics and how
the sockets ended."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from streamserver.audio import AudioFormat
from streamserver.emulator.streamclient import PlivoStreamClient, StreamClientOptions
from streamserver.netfaults import NetFaults, plan_frames

T = 20.0  # bounds a hang, never a duration


def noise(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(-8000, 8000, n).astype(np.int16)


async def wait_for(pred: Any, timeout: float = T) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


def recording(record_dir: Path, call_id: str, stream_id: str, track: str = "inbound") -> Any:
    pcm, _ = sf.read(str(record_dir / call_id / f"{stream_id}.{track}.wav"), dtype="int16")
    return pcm


DIALECTS = [
    ("plivo", "audio/x-mulaw;rate=8000"),
    ("twilio", "audio/x-mulaw;rate=8000"),
    ("telnyx", "audio/x-l16;rate=16000"),
    ("exotel", "audio/x-l16;rate=8000"),
    ("vonage", "audio/x-l16;rate=16000"),
]


@pytest.mark.parametrize(("dialect", "content_type"), DIALECTS)
async def test_drops_duplicates_and_reordering_get_the_servers_answer(
    dialect: str, content_type: str, serve: Any, record_dir: Path
) -> None:
    fmt = AudioFormat.from_content_type(content_type)
    fs = fmt.frame_samples
    n_frames = 150
    voice = noise(n_frames * fs, seed=3)
    faults = NetFaults(drop_pct=6, duplicate_pct=6, reorder_pct=10, reorder_window=3, seed=11)
    plan = plan_frames(faults, n_frames, 0.02)
    assert plan.dropped and plan.duplicated and plan.reordered  # the seed exercises all three
    async with serve() as server:
        client = PlivoStreamClient(
            StreamClientOptions(
                url=f"{server.url}/stream",
                inbound=voice,
                source_rate=fmt.sample_rate,
                content_type=content_type,
                dialect=dialect,
                faults=faults,
                speed=None,  # the order of the sends is the fault here, not their timing
                tail_s=0.1,
            )
        )
        report = await asyncio.wait_for(client.run(), T)
        await wait_for(lambda: not server.sessions)
        metrics = server.metrics
        assert report.ok, report.errors
        assert report.faults == faults.describe()
        assert report.fault_counts["dropped"] == plan.dropped
        assert report.frames_sent == len(plan)
        recorded = recording(record_dir, report.call_id, report.stream_id)
        sent = fmt.decode(fmt.encode(voice)).reshape(n_frames, fs)
        if dialect == "vonage":
            # Binary frames carry no chunk number or timestamp: the server cannot see what
            # went wrong and records the frames as they came, in arrival order.
            arrived = np.concatenate([sent[k] for k in plan.frames])
            np.testing.assert_array_equal(recorded, arrived)
            assert metrics.duplicates == metrics.gaps == metrics.reordered == 0
            return
        # Every dropped frame is silence of its exact length, every duplicate is dropped,
        # every reordered frame is back in its place: the recording is sample-exact.
        last = max(plan.frames) + 1
        expected = sent[:last].copy()
        expected[[k for k in plan.lost if k < last]] = 0
        np.testing.assert_array_equal(recorded, expected.reshape(-1))
        assert metrics.duplicates == plan.duplicated
        missing = sum(1 for k in plan.lost if k < last)
        assert metrics.gap_samples == missing * fs
        assert 0 < metrics.gaps <= missing
        assert metrics.reordered >= plan.reordered
        text = metrics.render()
        assert f"streamserver_duplicates_total {plan.duplicated}" in text
        assert f"streamserver_gap_samples_total {missing * fs}" in text
