"""What the caller heard: the recorder's ``heard`` track against the emulator stream
client's own record of its loudspeaker (``report.heard``, ``played_segments``), through a
real server on loopback. The two must agree to within one frame."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from streamserver.audio import AudioFormat
from streamserver.emulator.streamclient import PlivoStreamClient, StreamClientOptions
from streamserver.handler import Handler

T = 30.0  # bounds a hang, never a duration
ME = __name__
PART_S = 0.25  # the bot's checkpoints: one after every quarter second of a prompt


def noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-9000, 9000, n).astype(np.int16)


def prompts(rate: int) -> list[np.ndarray]:
    """A 1 s prompt played out, a 2 s one the bot interrupts, a 0.5 s one after it."""
    return [noise(rate, 1), noise(2 * rate, 2), noise(rate // 2, 3)]


class Bot(Handler):
    """Plays three prompts with a checkpoint every quarter second; barges in on the
    second one (clear) once two of its checkpoints have played."""

    async def on_start(self) -> None:
        asyncio.get_running_loop().create_task(self._talk())

    async def _say(self, pcm: np.ndarray) -> list[asyncio.Future[bool]]:
        ctx, rate = self.ctx, self.ctx.sample_rate
        step = int(PART_S * rate)
        marks = []
        for i in range(0, len(pcm), step):
            await ctx.play(pcm[i : i + step], rate)
            marks.append(ctx.checkpoint(f"p{len(marks)}"))
        return marks

    async def _talk(self) -> None:
        first, second, third = prompts(self.ctx.sample_rate)
        assert all(await asyncio.gather(*await self._say(first)))
        marks = await self._say(second)
        assert await marks[0] and await marks[1]
        self.ctx.clear()
        assert not any(await asyncio.gather(*marks[2:]))
        await asyncio.gather(*await self._say(third))


def played_as(pcm: np.ndarray, fs: int, dialect: str) -> np.ndarray:
    """A prompt as the caller hears it: Vonage pads each part's last frame with silence
    (its binary frames are always 20 ms)."""
    if dialect != "vonage":
        return pcm
    step = int(PART_S * (fs * 50))
    parts = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    return np.concatenate([np.pad(p, (0, -len(p) % fs)) for p in parts])


CASES = [
    ("plivo", "audio/x-mulaw;rate=8000"),
    ("plivo", "audio/x-l16;rate=16000"),
    ("vonage", "audio/x-l16;rate=16000"),
    # Twilio answers no clear; the marks it echoes after one say when it took effect.
    ("twilio", "audio/x-mulaw;rate=8000"),
]


@pytest.mark.parametrize(("dialect", "content_type"), CASES)
@pytest.mark.parametrize("layout", ["mono", "stereo"])
async def test_the_heard_track_matches_what_the_caller_heard(
    dialect: str, content_type: str, layout: str, serve: Any, record_dir: Path
) -> None:
    if layout == "stereo" and dialect != "plivo":
        pytest.skip("the stereo layout is the same placement; one dialect is enough")
    fmt = AudioFormat.from_content_type(content_type)
    rate, fs = fmt.sample_rate, fmt.frame_samples
    routes = {"/bot": {"handlers": ["recorder", f"{ME}:Bot"], "bidirectional": True}}
    handler = {"recorder": {"heard": True, "layout": layout}}
    async with serve(routes=routes, handler=handler) as server:
        report = await asyncio.wait_for(
            PlivoStreamClient(
                StreamClientOptions(
                    url=f"{server.url}/bot",
                    inbound=noise(rate * 5, 9),
                    source_rate=rate,
                    content_type=content_type,
                    dialect=dialect,
                    bidirectional=True,
                    tail_s=0.2,
                )
            ).run(),
            T,
        )
        async with asyncio.timeout(T):
            while server.sessions:
                await asyncio.sleep(0.01)
    assert report.ok, report.errors
    base = record_dir / report.call_id / report.stream_id
    side = json.loads(base.with_suffix(".json").read_text())
    if layout == "stereo":
        both, _ = sf.read(f"{base}.wav", dtype="int16")
        caller, recorded = both[:, 0], both[:, 1]
        voice = fmt.decode(fmt.encode(noise(rate * 5, 9)))
        np.testing.assert_array_equal(caller[: len(voice)], voice)  # L: the caller
    else:
        recorded, _ = sf.read(f"{base}.heard.wav", dtype="int16")
    heard = report.heard
    said = [played_as(fmt.decode(fmt.encode(p)), fs, dialect) for p in prompts(rate)]

    # The server's prompts: played out, interrupted, played out.
    got = side["heard"]["prompts"]
    assert [p["interrupted"] for p in got] == [False, True, False]
    for i, p in enumerate(got):
        start, end = p["heard"]
        # The same audio as sent, from the prompt's start, as far as it was heard...
        np.testing.assert_array_equal(recorded[start:end], said[i][: end - start])
        # ... where the caller's loudspeaker played it: the same prompt starts within a
        # frame of there, and plays as long, to within a frame.
        a = next(
            a
            for a in range(max(0, start - fs), start + fs + 1)
            if np.array_equal(heard[a : a + fs], said[i][:fs])
        )
        same = heard[a : a + len(said[i])] == said[i][: len(heard) - a]
        b = a + (int(np.argmin(same)) if not same.all() else len(same))
        assert abs(a - start) <= fs and abs(b - end) <= fs, (i, (start, end), (a, b))
    # The interrupted prompt: planned in full, heard up to the cut, after two of its
    # checkpoints' audio (0.5 s) and before its end.
    planned = got[1]["planned"]
    assert planned[1] - planned[0] == len(said[1])
    cut = got[1]["heard"][1] - got[1]["heard"][0]
    assert 2 * int(PART_S * rate) <= cut < len(said[1])
    assert [c["played"] for c in got[1]["checkpoints"]] == [True] * 2 + [False] * 6
    # Every sample the caller heard is in one of those prompts; silence elsewhere.
    played = sum(b - a for a, b in report.played_segments) * rate
    assert abs(played - sum(p["heard"][1] - p["heard"][0] for p in got)) <= 3 * fs
    # Silence everywhere else on the heard track.
    mask = np.ones(len(recorded), dtype=bool)
    for p in got:
        mask[p["heard"][0] : p["heard"][1]] = False
    assert not recorded[mask].any()
    assert len(recorded) >= len(heard) - fs


sys.modules.setdefault(ME, sys.modules[__name__])
