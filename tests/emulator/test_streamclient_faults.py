"""The stream client's faults against the real server: what the server answers to a bad
network. Each test runs a real :class:`~streamserver.net.StreamServer` with the recorder on
loopback and checks the recording sample by sample, the counters in /metrics and how
the sockets ended."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from streamserver.audio import AudioFormat
from streamserver.emulator.streamclient import PlivoStreamClient, StreamClientOptions
from streamserver.handler import Handler
from streamserver.net.connection import MAX_DEFERRED_FRAMES
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


def sent_frames(fmt: AudioFormat, voice: np.ndarray) -> np.ndarray:
    """The frames as the server decodes them, one row per 20 ms frame."""
    return fmt.decode(fmt.encode(voice)).reshape(-1, fmt.frame_samples)


async def test_jitter_bursts_and_drift_change_only_when_frames_arrive(
    serve: Any, record_dir: Path
) -> None:
    fmt = AudioFormat.from_content_type("audio/x-mulaw;rate=8000")
    voice = noise(8000 * 2, seed=4)
    faults = NetFaults(jitter_ms=45, burst_every_s=0.5, burst_hold_ms=150, drift_ppm=3000, seed=5)
    async with serve() as server:
        report = await asyncio.wait_for(
            PlivoStreamClient(
                StreamClientOptions(url=f"{server.url}/stream", inbound=voice, faults=faults)
            ).run(),
            T,
        )
        await wait_for(lambda: not server.sessions)
        m = server.metrics
        assert report.ok, report.errors
        assert report.fault_counts["held"] > 0
        # Late, bunched, on a fast clock: the chunks still say where each frame goes.
        recorded = recording(record_dir, report.call_id, report.stream_id)
        np.testing.assert_array_equal(recorded, sent_frames(fmt, voice).reshape(-1))
        assert m.gaps == m.duplicates == m.gaps_capped == 0


@pytest.mark.parametrize(("dialect", "content_type"), DIALECTS)
async def test_a_reset_socket_and_its_reconnect_make_one_recording(
    dialect: str, content_type: str, serve: Any, record_dir: Path
) -> None:
    fmt = AudioFormat.from_content_type(content_type)
    fs = fmt.frame_samples
    voice = noise(fmt.sample_rate * 2, seed=6)
    faults = NetFaults(vanish_at_s=0.6, vanish="abort", reconnect_after_s=0.4)
    async with serve() as server:
        report = await asyncio.wait_for(
            PlivoStreamClient(
                StreamClientOptions(
                    url=f"{server.url}/stream",
                    inbound=voice,
                    source_rate=fmt.sample_rate,
                    content_type=content_type,
                    dialect=dialect,
                    faults=faults,
                    tail_s=0.1,
                )
            ).run(),
            T,
        )
        await wait_for(lambda: not server.sessions)
        m = server.metrics
    assert report.ok, report.errors
    assert [link.vanished for link in report.links] == ["abort", ""]
    assert m.streams_resumed == 1 and m.stop_reasons["error"] == 1
    files = sorted(p.name for p in (record_dir / report.call_id).iterdir())
    assert files == [f"{report.stream_id}.inbound.wav", f"{report.stream_id}.json"]
    side = json.loads((record_dir / report.call_id / f"{report.stream_id}.json").read_text())
    assert side["connection"] == 2 and side["stop_reason"] in ("stop", "closed")
    frames = sent_frames(fmt, voice)
    recorded = recording(record_dir, report.call_id, report.stream_id).reshape(-1, fs)
    before = 30  # frames 0..29 went out before the vanish at 0.6 s
    lost = report.fault_counts["lost"]
    back = before + lost  # the first frame the new socket carried
    assert back >= 50  # nothing went out in the 0.4 s before the reconnect
    np.testing.assert_array_equal(recorded[:before], frames[:before])
    if dialect == "vonage":
        # No chunk numbers: the new socket's frames follow on, the outage is not there.
        np.testing.assert_array_equal(recorded[before:], frames[back:])
        return
    # The chunks carry on: the outage is silence of its exact length, then the rest.
    assert not recorded[before:back].any()
    np.testing.assert_array_equal(recorded[back:], frames[back:])
    assert m.gap_samples == lost * fs


async def test_a_silent_socket_is_taken_over_by_its_reconnect(serve: Any, record_dir: Path) -> None:
    fmt = AudioFormat.from_content_type("audio/x-l16;rate=8000")
    voice = noise(8000 * 2, seed=7)
    # The path goes quiet (no FIN, no RST): the server still believes the old socket
    # alive when the new one arrives, and the new one takes the stream over.
    faults = NetFaults(vanish_at_s=0.5, vanish="silent", reconnect_after_s=0.3)
    async with serve() as server:
        report = await asyncio.wait_for(
            PlivoStreamClient(
                StreamClientOptions(
                    url=f"{server.url}/stream",
                    inbound=voice,
                    content_type=fmt.content_type,
                    faults=faults,
                    tail_s=0.1,
                )
            ).run(),
            T,
        )
        await wait_for(lambda: not server.sessions)
        m = server.metrics
    assert report.ok, report.errors
    assert m.streams_replaced == 1 and m.streams_resumed == 1
    assert m.stop_reasons["replaced"] == 1 and m.doctor["duplicate_stream"] == 1
    frames = sent_frames(fmt, voice)
    recorded = recording(record_dir, report.call_id, report.stream_id).reshape(-1, 160)
    before, lost = 25, report.fault_counts["lost"]
    np.testing.assert_array_equal(recorded[:before], frames[:before])
    assert not recorded[before : before + lost].any()
    np.testing.assert_array_equal(recorded[before + lost :], frames[before + lost :])


async def test_a_second_socket_for_the_stream_takes_over_without_a_gap(
    serve: Any, record_dir: Path
) -> None:
    fmt = AudioFormat.from_content_type("audio/x-mulaw;rate=8000")
    voice = noise(8000 * 2, seed=8)
    faults = NetFaults(second_socket_at_s=0.5)
    async with serve() as server:
        report = await asyncio.wait_for(
            PlivoStreamClient(
                StreamClientOptions(
                    url=f"{server.url}/stream", inbound=voice, faults=faults, tail_s=0.1
                )
            ).run(),
            T,
        )
        await wait_for(lambda: not server.sessions)
        m = server.metrics
    assert report.ok, report.errors
    first, second = report.links
    # The newest socket wins: the server closes the first one normally.
    assert first.closed_by_server and first.close_code == 1000
    assert "replaced" in first.close_reason
    assert second.ok and not second.closed_by_server
    assert m.streams_replaced == 1
    # Both sockets carried the same frames for a while: one copy of each is kept.
    recorded = recording(record_dir, report.call_id, report.stream_id)
    np.testing.assert_array_equal(recorded, sent_frames(fmt, voice).reshape(-1))
    assert m.gaps == 0


async def test_a_silent_socket_alone_ends_by_the_idle_timeout(
    make_settings: Any, serve: Any, record_dir: Path
) -> None:
    settings = make_settings()
    settings.server.idle_timeout_s = 0.5
    voice = noise(8000 * 20, seed=9)  # the caller talks on; the path is gone at 0.4 s
    faults = NetFaults(vanish_at_s=0.4, vanish="silent")
    async with serve(settings=settings) as server:
        client = PlivoStreamClient(
            StreamClientOptions(url=f"{server.url}/stream", inbound=voice, faults=faults)
        )
        run = asyncio.create_task(client.run())
        await wait_for(lambda: server.metrics.stop_reasons["timeout"] == 1)
        await client.aclose()  # the caller hangs up: the silent socket is dropped
        report = await asyncio.wait_for(run, T)
        await wait_for(lambda: not server.sessions)
        m = server.metrics
    assert report.links[0].vanished == "silent"
    assert m.close_codes[1008] == 1  # "idle timeout"
    recorded = recording(record_dir, report.call_id, report.stream_id)
    fmt = AudioFormat.from_content_type("audio/x-mulaw;rate=8000")
    np.testing.assert_array_equal(recorded, sent_frames(fmt, voice)[:20].reshape(-1))


class BigPrompt(Handler):
    """Plays ten minutes at once to a caller that does not read."""

    async def on_start(self) -> None:
        await self.ctx.play(np.full(8000 * 600, 1000, dtype=np.int16), 8000)


async def test_a_reader_that_stops_reading_costs_a_bounded_buffer(
    make_settings: Any, serve: Any
) -> None:
    limit = 256 * 1024
    settings = make_settings(
        routes={"/bot": {"handlers": [f"{__name__}:BigPrompt"], "bidirectional": True}},
        max_send_buffer_bytes=limit,
    )
    settings.session.send_timeout_s = 0.5  # the grace a full buffer gets to drain
    faults = NetFaults(slow_read_at_s=0.0)  # reads nothing, ever
    async with serve(settings=settings) as server:
        client = PlivoStreamClient(
            StreamClientOptions(
                url=f"{server.url}/bot",
                inbound=noise(8000 * 30),
                bidirectional=True,
                faults=faults,
            )
        )
        run = asyncio.create_task(client.run())
        await wait_for(lambda: server.sessions)
        peak = 0
        while not server.metrics.close_codes:
            for s in list(server.sessions):
                transport = s.outlet.transport  # type: ignore[attr-defined]
                if transport is not None:
                    peak = max(peak, transport.get_write_buffer_size())
            await asyncio.sleep(0.005)
            assert not run.done(), run
        await client.aclose()
        await asyncio.wait_for(run, T)
        await wait_for(lambda: not server.sessions)
        m = server.metrics
    # Ten minutes of playAudio (~9 MB) were queued; the server kept at most its bound
    # plus one pass's batch of frames (~330 bytes each), stopped queueing, and cut the
    # peer off: 1008 (the buffer stayed full) or 1001 (the bot's play() waited longer
    # than send_timeout_s), both after 0.5 s.
    assert 0 < peak <= limit + MAX_DEFERRED_FRAMES * 512
    assert set(m.close_codes) <= {1001, 1008} and sum(m.close_codes.values()) == 1
    assert m.send_buffer_overflows == 1
    assert "streamserver_send_buffer_overflows_total 1" in m.render()


async def test_replay_takes_faults_and_says_what_they_did(
    serve: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamserver.cli import main

    wav = tmp_path / "caller.wav"
    sf.write(str(wav), noise(8000), 8000, subtype="PCM_16")
    async with serve() as server:
        argv = [
            "replay", str(wav), "--url", f"{server.url}/stream", "--speed", "max",
            "--faults", "drop=10,dup=10,seed=3", "--no-progress",
        ]  # fmt: skip
        code = await asyncio.to_thread(main, argv)
        await wait_for(lambda: not server.sessions)
        assert server.metrics.duplicates > 0 and server.metrics.gaps > 0
    out = capsys.readouterr().out
    assert code == 0, out
    plan = plan_frames(NetFaults(drop_pct=10, duplicate_pct=10, seed=3), 50, 0.02)
    assert f"faults     drop=10,dup=10,seed=3 ({plan.dropped} dropped, " in out


def test_replay_refuses_a_bad_fault(capsys: pytest.CaptureFixture[str]) -> None:
    from streamserver.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["replay", "x.wav", "--url", "ws://h/s", "--faults", "drop=200"])
    assert exit_.value.code == 2
    assert "drop_pct must be a percentage" in capsys.readouterr().err
