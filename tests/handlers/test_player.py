"""The player through the real server, heard by the emulator's Plivo-side stream client.

The stream client plays back what the server sends on a real-time clock and records what
the caller heard, so these tests check what a caller would hear: the prompt, when it
starts, and how soon it stops when the caller speaks (barge-in).
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import soundfile as sf
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers.player import PlayerEvent, load_prompt
from handlers.transcribe.sphinx import PocketsphinxOptions, decoder_pool
from streamserver import audio
from streamserver.emulator import AsgiServer
from streamserver.emulator.streamclient import (
    PlivoStreamClient,
    StreamClientOptions,
    StreamReport,
)
from streamserver.handler import BusEvent, Handler, HandlerLoadError, load_handler

DATA = Path(__file__).resolve().parents[1] / "data"
RATE = 8000


class Collector(Handler):
    events: ClassVar[dict[str, list[BusEvent]]] = defaultdict(list)

    async def on_event(self, event: Any) -> None:
        if type(event) is BusEvent:
            Collector.events[self.ctx.stream_id].append(event)


def topics(report: StreamReport, topic: str) -> list[Any]:
    return [e.data for e in Collector.events[report.stream_id] if e.topic == topic]


def tone_wav(path: Path, seconds: float, rate: int = 16000, freq: float = 440.0) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * freq * t), rate, subtype="PCM_16")
    return path


def speech_group(index: int = 0) -> np.ndarray:
    """One group of spoken digits (about 1 s) from tests/data/digits_8k.wav."""
    pcm, _ = sf.read(str(DATA / "digits_8k.wav"), dtype="int16")
    a, b = ((0.55, 1.75), (2.65, 3.8), (4.8, 6.6))[index]
    return pcm[int(a * RATE) : int(b * RATE)]


def heard_span(heard: np.ndarray) -> tuple[float, float]:
    """First and last sounding sample of what the caller heard, in seconds."""
    loud = np.flatnonzero(np.abs(heard.astype(np.int32)) > 50)
    assert len(loud), "the caller heard nothing"
    return loud[0] / RATE, (loud[-1] + 1) / RATE


async def call(url: str, inbound: np.ndarray, **kw: Any) -> StreamReport:
    kw.setdefault("tail_s", 0.1)
    opts = StreamClientOptions(
        url=url,
        inbound=inbound,
        source_rate=RATE,
        bidirectional=True,
        send_stop=False,  # Plivo ends a stream by closing the socket
        **kw,
    )
    report = await PlivoStreamClient(opts).run()
    assert report.ok, report.errors
    return report


def route(*handlers: str) -> dict[str, Any]:
    return {"/s": {"handlers": [*handlers, f"{__name__}:Collector"], "bidirectional": True}}


async def wait_done(server: Any) -> None:
    end = time.monotonic() + 10
    while server.sessions:
        assert time.monotonic() < end
        import asyncio

        await asyncio.sleep(0.01)


async def test_prompt_on_start_is_heard_whole(serve: Any, tmp_path: Path) -> None:
    wav = tone_wav(tmp_path / "hello.wav", 0.7)
    opts = {"prompt": str(wav), "checkpoint_every_s": 0.25}
    async with serve(routes=route("player"), handler={"player": opts}) as server:
        report = await call(f"{server.url}/s", np.zeros(RATE // 2, dtype=np.int16), speed=None)
        await wait_done(server)
    start, end = heard_span(report.heard)
    assert start < 0.1 and end - start == pytest.approx(0.7, abs=0.005)
    # what was heard is the prompt, resampled to 8 kHz and through μ-law
    want = audio.resample(sf.read(str(wav), dtype="int16")[0], 16000, RATE)
    got = report.heard[int(start * RATE) : int(start * RATE) + len(want)].astype(np.float64)
    corr = np.dot(got, want) / (np.linalg.norm(got) * np.linalg.norm(want))
    assert corr > 0.99
    [started] = topics(report, "player.started")
    [finished] = topics(report, "player.finished")
    assert isinstance(finished, PlayerEvent)
    assert started.prompt == str(wav) and started.duration_s == pytest.approx(0.7)
    assert finished.played_s == pytest.approx(0.7) and finished.reason == ""
    assert [name for name, _ in report.checkpoints] == [f"player-1-{i}" for i in range(3)]
    assert topics(report, "player.interrupted") == []


async def test_prompts_on_dtmf_from_a_url(serve: Any, tmp_path: Path) -> None:
    body = tone_wav(tmp_path / "one.wav", 0.4, 8000, 700.0).read_bytes()
    served: list[str] = []

    async def prompt(request: Request) -> Response:
        served.append(request.url.path)
        if request.path_params["name"] != "one.wav":
            return Response(status_code=404)
        return Response(body, media_type="audio/wav")

    app = Starlette(routes=[Route("/prompts/{name}", prompt)])
    async with AsgiServer(app) as http:
        opts = {
            "on_dtmf": {"1": f"{http.base_url}/prompts/one.wav", "2": f"{http.base_url}/x.wav"},
        }
        async with serve(routes=route("player"), handler={"player": opts}) as server:
            report = await call(
                f"{server.url}/s",
                np.zeros(RATE, dtype=np.int16),
                dtmf=[(0.2, "2"), (0.3, "1"), (0.5, "1")],
            )
            await wait_done(server)
    start, end = heard_span(report.heard)
    # After the digit and before the next one: the prompt is fetched over HTTP first, so
    # how soon it starts depends on the machine's load, not on the player (no timing bound).
    assert start >= 0.3
    # the second "1" (at 0.5 s) interrupted the first prompt and then played whole
    assert 0.5 + 0.4 <= end < 0.5 + 0.4 + 0.6  # the fetch takes what the machine gives
    [failed] = topics(report, "player.failed")
    assert "404" in failed.error
    [interrupted] = topics(report, "player.interrupted")
    assert (interrupted.reason, interrupted.played_s) == ("dtmf", 0.0)
    [finished] = topics(report, "player.finished")
    assert finished.prompt.endswith("/one.wav") and finished.id == 3
    assert served.count("/prompts/one.wav") == 1  # the second time it came from the cache


@pytest.mark.parametrize("source", ["vad", "transcriber"])
async def test_barge_in_stops_the_prompt_within_100_ms(
    serve: Any, tmp_path: Path, record_dir: Path, source: str
) -> None:
    wav = tone_wav(tmp_path / "long.wav", 3.0)
    speech_at = 0.8
    inbound = np.concatenate(
        [
            np.zeros(int(speech_at * RATE), dtype=np.int16),
            speech_group(),
            np.zeros(RATE // 2, dtype=np.int16),
        ]
    )
    handlers = {"player": {"prompt": str(wav), "barge_in": source}}
    names = ["player"]
    if source == "transcriber":
        names = ["transcriber", "player"]
        handlers["transcriber"] = {"engine": f"{__name__}:no_text", "record_dir": str(record_dir)}
    async with serve(routes=route(*names), handler=handlers) as server:
        report = await call(f"{server.url}/s", inbound, speed=1.0)
        await wait_done(server)
    [stopped] = topics(report, "player.interrupted")
    assert stopped.reason == "speech" and stopped.detected_sample is not None
    detected = stopped.detected_sample / RATE
    # speech starts about 0.1 s into the group; the VAD needs about 80 ms of it
    assert speech_at < detected < speech_at + 0.35
    start, end = heard_span(report.heard)
    assert start < 0.1
    assert end - detected <= 0.100, f"prompt still heard {1000 * (end - detected):.0f} ms"
    assert len(report.cleared) == 1
    assert report.cleared[0] - detected <= 0.1
    # checkpoints: only the first second was confirmed played; the rest was cleared
    assert stopped.played_s in (0.0, 1.0) and stopped.played_s <= detected
    assert topics(report, "player.finished") == []


def no_text(utterance: Any) -> str:
    return ""


async def test_dtmf_interrupts_and_hangup_is_reported(serve: Any, tmp_path: Path) -> None:
    wav = tone_wav(tmp_path / "menu.wav", 2.0)
    opts = {"prompt": str(wav), "barge_in": "off"}
    async with serve(routes=route("player"), handler={"player": opts}) as server:
        # speech does not interrupt (barge_in off), the digit does
        inbound = np.concatenate([np.zeros(RATE // 5, dtype=np.int16), speech_group(1)])
        report = await call(f"{server.url}/s", inbound[: int(0.6 * RATE)], dtmf=[(0.4, "5")])
        await wait_done(server)
    [stopped] = topics(report, "player.interrupted")
    assert stopped.reason == "dtmf"
    _, end = heard_span(report.heard)
    assert 0.4 <= end < 1.0  # the 2 s prompt was cut soon after the digit

    # a caller who hangs up mid-prompt
    async with serve(routes=route("player"), handler={"player": opts}) as server:
        client = PlivoStreamClient(
            StreamClientOptions(
                url=f"{server.url}/s",
                inbound=np.zeros(RATE * 3, dtype=np.int16),
                bidirectional=True,
                send_stop=False,
            )
        )
        import asyncio

        task = asyncio.create_task(client.run())
        await asyncio.sleep(0.5)
        await client.aclose()
        report = await task
        await wait_done(server)
    [stopped] = topics(report, "player.interrupted")
    assert stopped.reason == "hangup" and stopped.played_s < 1.0


async def test_not_bidirectional_plays_nothing(serve: Any, tmp_path: Path) -> None:
    wav = tone_wav(tmp_path / "x.wav", 0.2)
    routes = {"/s": {"handlers": ["player"], "bidirectional": False}}
    async with serve(routes=routes, handler={"player": {"prompt": str(wav)}}) as server:
        report = await PlivoStreamClient(
            StreamClientOptions(
                url=f"{server.url}/s", inbound=np.zeros(800), speed=None, send_stop=False
            )
        ).run()
        await wait_done(server)
    assert report.ok
    assert not [e for e in report.received_events if e.get("event") == "playAudio"]


async def test_load_prompt_mixes_resamples_and_refuses(tmp_path: Path) -> None:
    stereo = tmp_path / "stereo.flac"
    t = np.arange(4410) / 44100
    sf.write(
        str(stereo),
        np.stack([np.sin(2 * np.pi * 300 * t), -np.sin(2 * np.pi * 300 * t)], 1) * 0.5 + 0.2,
        44100,
    )
    pcm = await load_prompt(str(stereo), 16000, cache_size=0)
    assert len(pcm) == 1600 and pcm.dtype == np.int16
    assert (
        abs(int(np.median(pcm)) - int(0.2 * 32767)) < 300
    )  # the channels cancel, the offset stays
    from handlers.player import PromptError

    with pytest.raises(PromptError, match="max_prompt_s"):
        await load_prompt(str(stereo), 8000, max_s=0.05)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    with pytest.raises(PromptError, match="cannot be decoded"):
        await load_prompt(str(bad), 8000)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"on_dtmf": {"11": "x.wav"}}, "DTMF"),
        ({"prompt": "/no/such/prompt.wav"}, "not found"),
        ({"barge_in": "sometimes"}, "barge_in"),
        ({"checkpoint_every_s": 0}, "checkpoint_every_s"),
        ({"vad_aggressiveness": 7}, "vad_aggressiveness"),
        ({"vad_start_ms": 5}, "vad_start_ms"),
    ],
)
def test_bad_options_fail_at_load(options: dict[str, Any], message: str) -> None:
    with pytest.raises(HandlerLoadError, match=message):
        load_handler("player", options)


async def test_the_guides_worked_example(
    serve: Any, record_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/handlers.md's BeepBack, run as written: a spoken and a pressed digit."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "handlers.md").read_text(
        encoding="utf-8"
    )
    [code] = [
        block.split("\n", 1)[1]
        for block in guide.split("```")[1::2]
        if block.startswith('python\n"""beepback.py')
    ]
    (tmp_path / "beepback.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    jsgf = tmp_path / "digits.jsgf"
    jsgf.write_text(
        "#JSGF V1.0;\ngrammar digits;\npublic <digits> = <digit>+;\n"
        "<digit> = zero | oh | one | two | three | four | five | six | seven | eight | nine;\n"
    )
    handlers = {
        "transcriber": {"record_dir": str(record_dir), "pocketsphinx": {"grammar": str(jsgf)}},
    }
    # The decoder processes start with the first stream; have them ready, so that the
    # transcript comes well within the caller's tail.
    await decoder_pool(PocketsphinxOptions(grammar=str(jsgf)), 2).decode(speech_group(1), RATE)
    # "four one seven", and the caller presses 2
    inbound = np.concatenate([speech_group(0), np.zeros(RATE, dtype=np.int16)])
    async with serve(routes=route("transcriber", "beepback:BeepBack"), handler=handlers) as server:
        report = await call(f"{server.url}/s", inbound, speed=None, dtmf=[(2.0, "2")], tail_s=1.0)
        await wait_done(server)
    # (sent as fast as possible: the digit may overtake the transcript)
    confirmed = sorted(topics(report, "menu.confirmed"), key=lambda c: c["how"])
    assert confirmed == [
        {"digit": 2, "how": "keypad", "heard": True},
        {"digit": 4, "how": "voice", "heard": True},
    ]
    # six beeps of 0.1 s in what the caller heard
    loud = np.abs(report.heard.astype(np.int32)) > 50
    frames = loud[: len(loud) // 80 * 80].reshape(-1, 80).any(axis=1)  # 10 ms blocks
    onsets = np.flatnonzero(frames[1:] & ~frames[:-1]) + 1
    assert len(onsets) + int(frames[0]) == 6
