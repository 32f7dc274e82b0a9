"""Every provider dialect against the real server on loopback sockets: streams built with
the provider-side encoders (``protocol.<dialect>.PROVIDER``) into the recorder, sample by
sample; echo and checkpoints; marks after a clear; DTMF; bad input; detection; Twilio
upgrade signatures; the stream doctor."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import numpy as np
import plivo_frames as pf
import pytest
import soundfile as sf
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from streamserver import audio
from streamserver.handler import BusEvent, Dtmf, Handler, NotBidirectionalError
from streamserver.protocol import detect
from streamserver.protocol.dialect import ProviderSide
from streamserver.protocol.events import Start
from streamserver.protocol.neutral import Checkpoint, Clear, NotSupported, Play
from streamserver.signature import HEADER_TWILIO, compute_twilio

T = 10.0  # generous timeout unit
ME = __name__

#: per-dialect ids as the provider writes them (Telnyx: ``v3:…_…-…``, with '_')
IDS = {
    "twilio": ("MZ18ad3ab5a668481ce02b83e7395059f0", "CA8f7e0d3c2b1a09f8e7d6c5b4a3928170"),
    "telnyx": ("32de0dea-53cb-4b21-89a4-9e1819c043bc", "v3:AbC9xYz_dEf-12GhI_jKl3mN-oPq"),
    "exotel": ("a1b2c3d4e5f60718293a4b5c6d7e8f90", "9d8c7b6a5f4e3d2c1b0a"),
    "vonage": ("", "63f61863-4a51-4f6b-86e1-46edebcf9356"),
}
SEEN: dict[str, Any] = {}


def provider(name: str) -> ProviderSide:
    return detect.PROVIDER_SIDES[name]


def tone(n: int, rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 8000 * np.sin(2 * np.pi * 440.0 * np.arange(n) / rate) + rng.normal(0, 500, n)
    return np.clip(x, -32768, 32767).astype(np.int16)


def make_start(
    name: str, encoding: str, rate: int, tracks: tuple[str, ...] = ("inbound",)
) -> Start:
    sid, cid = IDS[name]
    return Start(sid, cid, "AC0123456789abcdef", tracks, encoding, rate, {})


async def send(ws: ClientConnection, data: bytes | None, *, binary: bool = False) -> None:
    if data is not None:
        await ws.send(data if binary else data.decode())


async def open_stream(ws: ClientConnection, name: str, start: Start) -> None:
    p = provider(name)
    await send(ws, p.encode_connected())
    await send(ws, p.encode_start(start))


async def send_audio(ws: ClientConnection, name: str, start: Start, encoded: bytes) -> int:
    """Send ``encoded`` in 20 ms frames; returns the number of frames."""
    p = provider(name)
    step = (
        start.sample_rate
        // 50
        * audio.AudioFormat(start.encoding, start.sample_rate).bytes_per_sample
    )
    n = 0
    for i in range(0, len(encoded), step):
        n += 1
        frame = p.encode_media(
            encoded[i : i + step], start.stream_id, n + 1, n, (n - 1) * 20, "inbound"
        )
        await send(ws, frame, binary=p.binary_media)
    return n


async def wait_for(pred: Any, timeout: float = T) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def recv_command(ws: ClientConnection, name: str, timeout: float = T) -> Any:
    msg = await asyncio.wait_for(ws.recv(), timeout)
    p = provider(name)
    if isinstance(msg, bytes):
        return p.decode_command_binary(msg)
    return p.decode_command(msg)


# --- recorder, sample by sample ---------------------------------------------------------------

RECORD_CASES = [
    ("twilio", audio.ENCODING_MULAW, 8000),
    ("telnyx", audio.ENCODING_MULAW, 8000),
    ("telnyx", audio.ENCODING_ALAW, 8000),
    ("telnyx", audio.ENCODING_L16_BE, 16000),
    ("exotel", audio.ENCODING_L16, 8000),
    ("exotel", audio.ENCODING_L16, 16000),
    ("exotel", audio.ENCODING_L16, 24000),
    ("vonage", audio.ENCODING_L16, 8000),
    ("vonage", audio.ENCODING_L16, 16000),
]


@pytest.mark.parametrize(("name", "encoding", "rate"), RECORD_CASES)
async def test_stream_recorded_sample_exact(
    serve: Any, record_dir: Path, name: str, encoding: str, rate: int
) -> None:
    start = make_start(name, encoding, rate)
    pcm = tone(rate + rate // 50 * 3, rate, seed=rate)
    encoded = audio.encode(pcm, encoding)
    async with serve() as server:  # the default route detects the dialect
        async with connect(f"{server.url}/stream", compression=None) as ws:
            await open_stream(ws, name, start)
            await send_audio(ws, name, start, encoded)
            stop = provider(name).encode_stop(
                start.stream_id, start.call_id, start.account_id, 999, None
            )
            await send(ws, stop)
            if stop is None:
                await ws.close()
            else:
                await asyncio.wait_for(ws.wait_closed(), T)
                assert ws.close_code == 1000
        await wait_for(lambda: not server.sessions)
        assert server.metrics.streams_by_provider == {name: 1}
    files = list((record_dir / start.call_id).glob("*.inbound.wav"))
    assert len(files) == 1
    if start.stream_id:
        assert files[0].name == f"{start.stream_id}.inbound.wav"
    data, got_rate = sf.read(str(files[0]), dtype="int16")
    assert got_rate == rate
    assert np.array_equal(data, audio.decode(encoded, encoding))


async def test_plivo_is_detected_too(serve: Any, record_dir: Path) -> None:
    async with serve() as server:
        async with connect(f"{server.url}/stream", compression=None) as ws:
            await ws.send(pf.start())
            await ws.send(pf.media(bytes(160), 1))
        await wait_for(lambda: not server.sessions)
        assert server.metrics.streams_by_provider == {"plivo": 1}


# --- echo, checkpoints, marks after clear, DTMF -------------------------------------------------


class Bot(Handler):
    """Plays 100 ms and a checkpoint; on DTMF, tries to send DTMF back."""

    async def on_start(self) -> None:
        SEEN["provider"] = self.ctx.provider
        await self.ctx.play(np.zeros(self.ctx.sample_rate // 10, dtype=np.int16))
        SEEN["c1"] = await self.ctx.checkpoint("c1")

    async def on_dtmf(self, dtmf: Dtmf) -> None:
        SEEN["dtmf"] = dtmf.digit
        try:
            self.ctx.send_dtmf("1")
        except NotSupported as exc:
            SEEN["dtmf_out"] = exc.provider


class Barge(Handler):
    """A checkpoint, a clear, then a checkpoint of the same name."""

    async def on_start(self) -> None:
        await self.ctx.play(np.zeros(self.ctx.sample_rate // 5, dtype=np.int16))
        first = self.ctx.checkpoint("m")
        self.ctx.clear()
        SEEN["first"] = await first
        SEEN["second"] = await self.ctx.checkpoint("m")


FORMATS = {
    "twilio": (audio.ENCODING_MULAW, 8000),
    "telnyx": (audio.ENCODING_ALAW, 8000),
    "exotel": (audio.ENCODING_L16, 8000),
    "vonage": (audio.ENCODING_L16, 16000),
}


@pytest.mark.parametrize("name", list(FORMATS))
async def test_echo_checkpoint_and_dtmf(serve: Any, name: str) -> None:
    SEEN.clear()
    start = make_start(name, *FORMATS[name])
    fmt = audio.AudioFormat(start.encoding, start.sample_rate)
    p = provider(name)
    routes = {"/bot": {"handlers": ["echo", f"{ME}:Bot"], "bidirectional": True}}
    async with serve(routes=routes) as server:
        async with connect(f"{server.url}/bot", compression=None) as ws:
            await open_stream(ws, name, start)
            await send_audio(
                ws,
                name,
                start,
                audio.encode(tone(fmt.sample_rate // 2, fmt.sample_rate), start.encoding),
            )
            played = b""
            deadline = asyncio.get_running_loop().time() + T
            while "c1" not in SEEN:
                # The mark's answer may land after the last command came: wait for either.
                assert asyncio.get_running_loop().time() < deadline, "no checkpoint result"
                try:
                    cmd = await recv_command(ws, name, timeout=0.1)
                except TimeoutError:
                    continue
                if type(cmd) is Play:
                    played += cmd.payload
                    if name == "exotel":
                        assert len(cmd.payload) % 320 == 0 and len(cmd.payload) >= 3200
                elif type(cmd) is Checkpoint:
                    assert cmd.name != "c1" and cmd.name.startswith("c1")  # unique wire name
                    await send(ws, p.encode_played(cmd.name, start.stream_id, 50))
                await asyncio.sleep(0)
            await send(ws, p.encode_dtmf("5", start.stream_id, 60))
            await wait_for(lambda: "dtmf_out" in SEEN)
        await wait_for(lambda: not server.sessions)
    assert SEEN["c1"] is True and SEEN["provider"] == name
    assert SEEN["dtmf"] == "5" and SEEN["dtmf_out"] == name
    assert len(played) >= fmt.sample_rate // 10 * fmt.bytes_per_sample  # the bot's 100 ms at least


@pytest.mark.parametrize("name", list(FORMATS))
async def test_marks_after_clear_resolve_false(serve: Any, name: str) -> None:
    SEEN.clear()
    start = make_start(name, *FORMATS[name])
    p = provider(name)
    async with serve(routes={"/b": {"handlers": [f"{ME}:Barge"]}}) as server:
        async with connect(f"{server.url}/b", compression=None) as ws:
            await open_stream(ws, name, start)
            marks: list[str] = []
            while len(marks) < 2:
                cmd = await recv_command(ws, name)
                if type(cmd) is Checkpoint:
                    marks.append(cmd.name)
                elif type(cmd) is Clear:
                    cleared = p.encode_cleared(start.stream_id, 10)
                    await send(ws, cleared)  # Vonage answers; the others do not
            await wait_for(lambda: "first" in SEEN)
            assert SEEN["first"] is False
            # The provider echoes the mark pending at the clear late: it must not count.
            await send(ws, p.encode_played(marks[0], start.stream_id, 11))
            await asyncio.sleep(0.1)
            assert "second" not in SEEN
            await send(ws, p.encode_played(marks[1], start.stream_id, 12))
            await wait_for(lambda: "second" in SEEN)
        await wait_for(lambda: not server.sessions)
    assert marks[0] != marks[1] and SEEN["second"] is True


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FORMATS))
async def test_bad_input_answered_like_plivo(serve: Any, name: str) -> None:
    start = make_start(name, *FORMATS[name])
    async with serve() as server:
        async with connect(f"{server.url}/stream", compression=None) as other:
            await other.send(pf.start())  # a Plivo stream beside it, untouched
            async with connect(f"{server.url}/stream", compression=None) as ws:
                await open_stream(ws, name, start)
                await ws.send("not json")
                await wait_for(lambda: server.metrics.frames_invalid["json"] == 1)
                if name == "vonage":
                    await ws.send(b"\x01")  # odd-length L16 audio
                    await wait_for(lambda: server.metrics.frames_invalid["audio"] == 1)
                    code = None
                else:
                    await ws.send(b"\x00\x01")  # binary: valid only on Vonage
                    await asyncio.wait_for(ws.wait_closed(), T)
                    code = ws.close_code
            if name != "vonage":
                assert code == 1003 and server.metrics.frames_invalid["binary"] == 1
            await other.send(pf.media(bytes(160), 1))
            await other.ping()
            assert other.close_code is None
        await wait_for(lambda: not server.sessions)


async def test_binary_on_pinned_plivo_route_closes_1003(serve: Any) -> None:
    routes = {"/p": {"handlers": ["recorder"], "dialect": "plivo"}}
    async with serve(routes=routes) as server, connect(f"{server.url}/p") as ws:
        await ws.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), T)
        assert ws.close_code == 1003


# --- Twilio signatures --------------------------------------------------------------------------


@pytest.mark.parametrize(("good", "status"), [(True, None), (False, 403)])
async def test_twilio_signature_on_upgrade(
    make_settings: Any, serve: Any, good: bool, status: int | None
) -> None:
    # The public URL is https (a proxy in front); Twilio signs the wss:// <Stream> URL.
    settings = make_settings(verify_signatures=True, public_url="https://media.example.test")
    settings.twilio.auth_token = "twilio-token"
    sig = compute_twilio("wss://media.example.test/stream?x=1", "twilio-token" if good else "other")
    async with serve(settings=settings) as server:
        url = f"{server.url}/stream?x=1"
        if good:
            async with connect(url, additional_headers={HEADER_TWILIO: sig}) as ws:
                await open_stream(ws, "twilio", make_start("twilio", audio.ENCODING_MULAW, 8000))
            assert server.metrics.signature_checks["ok"] == 1
        else:
            with pytest.raises(InvalidStatus) as err:
                async with connect(url, additional_headers={HEADER_TWILIO: sig}):
                    pass
            assert err.value.response.status_code == status
            assert server.metrics.connections_rejected["signature"] == 1


# --- the stream doctor ----------------------------------------------------------------------------


class Player(Handler):
    async def on_start(self) -> None:
        SEEN["bidirectional"] = self.ctx.bidirectional
        try:
            await self.ctx.play(np.zeros(160, dtype=np.int16))
        except NotBidirectionalError:
            SEEN["refused"] = True


class Watcher(Handler):
    async def on_event(self, event: Any) -> None:
        if isinstance(event, BusEvent) and event.topic.startswith("doctor."):
            SEEN.setdefault("doctor", []).append(event.topic)


async def test_doctor_one_way_play(serve: Any) -> None:
    SEEN.clear()
    routes = {"/s": {"handlers": [f"{ME}:Player", f"{ME}:Watcher"], "bidirectional": True}}
    # A Twilio <Start><Stream> of both tracks: listen-only, whatever the route says.
    start = make_start("twilio", audio.ENCODING_MULAW, 8000, ("inbound", "outbound"))
    async with serve(routes=routes) as server:
        async with connect(f"{server.url}/s") as ws:
            await open_stream(ws, "twilio", start)
            await wait_for(lambda: "doctor" in SEEN)
        await wait_for(lambda: not server.sessions)
        assert server.metrics.doctor == {"one_way_play": 1}
    assert SEEN["bidirectional"] is False and SEEN["refused"] is True
    assert SEEN["doctor"] == ["doctor.one_way_play"]


async def test_doctor_duplicate_stream_and_format(serve: Any) -> None:
    SEEN.clear()
    routes = {"/s": {"handlers": [f"{ME}:Watcher"], "expect_format": "audio/x-l16;rate=16000"}}
    start = make_start("twilio", audio.ENCODING_MULAW, 8000)
    async with serve(routes=routes) as server:
        async with connect(f"{server.url}/s") as a, connect(f"{server.url}/s") as b:
            await open_stream(a, "twilio", start)
            await wait_for(lambda: server.metrics.doctor["format_mismatch"] == 1)
            await open_stream(b, "twilio", start)
            await wait_for(lambda: server.metrics.doctor["duplicate_stream"] == 1)
        await wait_for(lambda: not server.sessions)
        assert server.metrics.doctor["format_mismatch"] == 2  # once per stream
        assert server.metrics.live_ids == {}
    assert sorted(SEEN["doctor"]) == [
        "doctor.duplicate_stream",
        "doctor.format_mismatch",
        "doctor.format_mismatch",
    ]


async def test_doctor_silence(make_settings: Any, serve: Any) -> None:
    settings = make_settings()
    settings.session.doctor_silence_s = 0.3
    start = make_start("exotel", audio.ENCODING_L16, 8000)
    async with serve(settings=settings) as server:
        async with connect(f"{server.url}/stream") as ws:
            await open_stream(ws, "exotel", start)
            await send_audio(ws, "exotel", start, bytes(640))
            await wait_for(lambda: server.metrics.doctor["silence"] == 1)
            assert ws.close_code is None  # reported, not closed
        await wait_for(lambda: not server.sessions)
        assert 'streamserver_doctor_total{kind="silence"} 1' in server.metrics.render()


sys.modules.setdefault(ME, sys.modules[__name__])
