"""End to end: a call placed on the emulator streams to the real stream server.

The emulator fetches the answer XML, opens the stream with V3 signature headers to our
server (recorder + echo, signature verification on), plays the callee's audio on a real
20 ms clock and records what the callee heard. The recording must equal the callee's audio
sample for sample, and what the callee heard must contain the echo.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from emulator_support import noise, running

from streamserver import audio
from streamserver.net import StreamServer

T = 20.0


def xml_for(url: str, content_type: str = "audio/x-mulaw;rate=8000") -> str:
    return (
        "<Response>"
        f'<Stream bidirectional="true" keepCallAlive="true" contentType="{content_type}" '
        f'extraHeaders="tenant=acme,lang=en">{url}</Stream>'
        "</Response>"
    )


async def test_call_streams_to_server_recorded_exactly_and_echo_heard(
    tmp_path: Path, make_settings: Any, record_dir: Path
) -> None:
    voice = noise(1.2, seed=11)
    async with running(tmp_path, caller_audio=_wav(tmp_path, voice)) as env:
        port = _free_port()
        settings = make_settings(
            routes={"/bot": {"handlers": ["recorder", "echo"], "bidirectional": True}},
            verify_signatures=True,
            port=port,
            public_url=f"ws://127.0.0.1:{port}",
        )
        settings.plivo.auth_token = env.emu.auth_token
        server = StreamServer(settings)
        await server.start()
        try:
            call_uuid = await env.call(xml_for(f"{server.url}/bot"))
            call = await env.emu.simulator.wait_call_ended(call_uuid, T)
            streams = env.emu.simulator.streams_of(call.call_uuid)
            assert len(streams) == 1
            report = env.emu.simulator.stream_report(streams[0].stream_id)
            assert report is not None and report.ok, report and report.errors
            await asyncio.wait_for(_until_idle(server), T)
        finally:
            await server.shutdown()

    assert server.metrics.signature_checks["ok"] == 1
    wav = record_dir / call.call_uuid / f"{streams[0].stream_id}.inbound.wav"
    recorded, rate = sf.read(str(wav), dtype="int16")
    assert rate == 8000
    # μ-law on the wire: the recording is exactly the G.711 image of the callee's voice.
    expected = audio.ulaw_decode(audio.ulaw_encode(voice))
    assert len(recorded) >= len(expected)
    assert np.array_equal(recorded[: len(expected)], expected)
    assert not recorded[len(expected) :].any()  # after the voice: exact silence
    # The callee heard its own voice coming back (echo), a few frames later: sample-exact
    # and in order, segment by segment (a loaded machine may split it with silence).
    first = report.played_segments[0][0]
    assert first < 0.5, f"echo came back {first * 1000:.0f} ms late"
    heard = np.concatenate(
        [report.heard[round(b * 8000) : round(e * 8000)] for b, e in report.played_segments]
    )
    assert np.array_equal(heard[: len(expected)], expected)
    side = (wav.parent / f"{streams[0].stream_id}.json").read_text()
    assert '"tenant": "acme"' in side


async def test_l16_16k_stream_from_emulator(
    tmp_path: Path, make_settings: Any, record_dir: Path
) -> None:
    voice = noise(0.8, seed=3)
    async with running(tmp_path, caller_audio=_wav(tmp_path, voice)) as env:
        settings = make_settings(routes={"/s": {"handlers": ["recorder"]}})
        async with StreamServer(settings) as server:
            call_uuid = await env.call(xml_for(f"{server.url}/s", "audio/x-l16;rate=16000"))
            call = await env.emu.simulator.wait_call_ended(call_uuid, T)
            await asyncio.wait_for(_until_idle(server), T)
    [stream] = env.emu.simulator.streams_of(call.call_uuid)
    recorded, rate = sf.read(
        str(record_dir / call.call_uuid / f"{stream.stream_id}.inbound.wav"), dtype="int16"
    )
    assert rate == 16000
    # The emulator resamples the 8 kHz voice to 16 kHz; the recording is what it sent.
    expected = audio.resample(voice, 8000, 16000)
    n = min(len(expected), len(recorded)) - 64
    assert np.abs(recorded[:n].astype(int) - expected[:n].astype(int)).max() <= 2


async def _until_idle(server: StreamServer) -> None:
    while server.sessions:
        await asyncio.sleep(0.01)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wav(tmp_path: Path, pcm: np.ndarray) -> str:
    path = tmp_path / "voice.wav"
    sf.write(str(path), pcm, 8000, subtype="PCM_16")
    return str(path)
