"""The transcriber through the real server, fed by the emulator's Plivo-side stream client.

The caller says three groups of digits (tests/data/digits_8k.wav, made by
scripts/make_speech_samples.py); pocketsphinx with a digits grammar recognises them offline,
directly and behind a local OpenAI-compatible HTTP endpoint.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import numpy as np
import pytest
import soundfile as sf
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from handlers.transcribe import (
    EngineStream,
    Recognition,
    StreamingEngine,
    Transcript,
    Utterance,
    UtteranceInfo,
)
from handlers.transcribe.sphinx import PocketsphinxOptions, decoder_pool
from streamserver.emulator import AsgiServer
from streamserver.emulator.streamclient import PlivoStreamClient, StreamClientOptions
from streamserver.handler import BusEvent, Handler, HandlerLoadError, load_handler

DATA = Path(__file__).resolve().parents[1] / "data"
DIGITS = "4172938056"
T = 20.0  # generous timeout unit
WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
DIGITS_JSGF = """#JSGF V1.0;
grammar digits;
public <digits> = <digit>+;
<digit> = zero | oh | one | two | three | four | five | six | seven | eight | nine;
"""


def speech() -> np.ndarray:
    pcm, rate = sf.read(str(DATA / "digits_8k.wav"), dtype="int16")
    assert rate == 8000
    return pcm


def to_digits(text: str) -> str:
    return "".join(WORDS.get(w, "?") for w in text.split())


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


class Collector(Handler):
    """Keeps every bus event with its arrival time, per stream."""

    events: ClassVar[dict[str, list[tuple[float, BusEvent]]]] = defaultdict(list)

    async def on_event(self, event: Any) -> None:
        if type(event) is BusEvent:
            Collector.events[self.ctx.stream_id].append((time.monotonic(), event))


def topics(stream_id: str, topic: str) -> list[Any]:
    return [e.data for _, e in Collector.events[stream_id] if e.topic == topic]


async def wait_for(pred: Any, timeout: float = T) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.01)


async def call(url: str, pcm: np.ndarray, *, speed: float | None = None) -> str:
    report = await PlivoStreamClient(
        # Plivo ends a stream by closing the socket (the stop event is optional).
        StreamClientOptions(
            url=url, inbound=pcm, source_rate=8000, speed=speed, tail_s=0.0, send_stop=False
        )
    ).run()
    assert report.ok, report.errors
    return report.stream_id


def read_jsonl(record_dir: Path, stream_id: str) -> list[Transcript]:
    [path] = record_dir.glob(f"*/{stream_id}.transcript.jsonl")
    return [msgspec.json.decode(line, type=Transcript) for line in path.read_bytes().splitlines()]


ROUTE = {"/s": {"handlers": ["transcriber", f"{__name__}:Collector"], "bidirectional": False}}


async def test_digits_with_pocketsphinx_and_a_grammar(serve: Any, record_dir: Path) -> None:
    opts = {"record_dir": str(record_dir), "pocketsphinx": {"grammar": DIGITS_JSGF}}
    routes = {"/s": {"handlers": ["recorder", *ROUTE["/s"]["handlers"]]}}
    async with serve(routes=routes, handler={"transcriber": opts}) as server:
        sid = await call(f"{server.url}/s", speech())
        await wait_for(lambda: not server.sessions)
    got: list[Transcript] = topics(sid, "transcript")
    heard = "".join(to_digits(t.text) for t in got)
    assert edit_distance(heard, DIGITS) <= 1, [t.text for t in got]
    assert len(got) == 3
    for t, (a, b) in zip(got, ((0.65, 1.63), (2.76, 3.71), (4.89, 6.53)), strict=True):
        assert (t.track, t.engine, t.is_final, t.sample_rate) == (
            "inbound",
            "pocketsphinx",
            True,
            8000,
        )
        assert t.start_s <= a < b <= t.end_s < b + 0.5
        assert t.start_sample == round(t.start_s * 8000)
        assert t.confidence is not None and 0.0 < t.confidence <= 1.0
        assert 0.0 <= t.latency_s < 5.0
        assert t.stream_id == sid
    assert [t.utterance for t in got] == [0, 1, 2]
    # the JSONL file sits beside the recording and holds the same transcripts
    assert read_jsonl(record_dir, sid) == got
    assert list(record_dir.glob(f"*/{sid}.inbound.wav"))
    starts = topics(sid, "speech.start")
    ends = topics(sid, "speech.end")
    assert len(starts) == 3 and len(ends) == 3 and all(e.kept for e in ends)
    assert abs(starts[0].start_s - 0.65) < 0.1


async def test_openai_engine_against_a_local_compatible_server(
    serve: Any, record_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OpenAI-style /v1/audio/transcriptions endpoint backed by pocketsphinx."""
    pool = decoder_pool(PocketsphinxOptions(grammar=DIGITS_JSGF), 1)
    requests: list[dict[str, Any]] = []

    async def transcriptions(request: Request) -> JSONResponse:
        body = await request.body()
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        form = BytesParser(policy=HTTP).parsebytes(head + body)
        fields: dict[str, Any] = {}
        for part in form.iter_parts():  # type: ignore[attr-defined]
            name = part.get_param("name", header="content-disposition")
            fields[name] = part.get_payload(decode=True)
        requests.append({"auth": request.headers.get("authorization"), **fields})
        if len(requests) == 1:  # the first answer fails: the engine retries once
            return JSONResponse({"error": "warming up"}, status_code=503)
        import io

        pcm, rate = sf.read(io.BytesIO(fields["file"]), dtype="int16")
        rec = await pool.decode(pcm, rate)
        return JSONResponse({"text": rec.text if rec else ""})

    app = Starlette(routes=[Route("/v1/audio/transcriptions", transcriptions, methods=["POST"])])
    monkeypatch.setenv("TEST_ASR_KEY", "sk-local-test")
    async with AsgiServer(app) as http:
        opts = {
            "engine": "openai",
            "record_dir": str(record_dir),
            "openai": {
                "base_url": f"{http.base_url}/v1",
                "model": "digits-1",
                "api_key_env": "TEST_ASR_KEY",
                "language": "en",
            },
        }
        async with serve(routes=ROUTE, handler={"transcriber": opts}) as server:
            sid = await call(f"{server.url}/s", speech())
            await wait_for(lambda: not server.sessions)
    got: list[Transcript] = topics(sid, "transcript")
    assert edit_distance("".join(to_digits(t.text) for t in got), DIGITS) <= 1
    assert {t.engine for t in got} == {"openai"}
    assert all(t.confidence is None for t in got)
    assert len(requests) == 4  # three utterances, one retried
    r = requests[1]
    assert r["auth"] == "Bearer sk-local-test"
    assert (r["model"], r["language"], r["response_format"]) == (b"digits-1", b"en", b"json")
    assert r["file"][:4] == b"RIFF"


def slow_engine(utterance: Utterance) -> str:
    """A deliberately slow engine (runs in the engine thread pool)."""
    time.sleep(1.5)
    return f"{utterance.duration_s:.1f} seconds"


async def test_slow_engine_does_not_delay_ingest_or_the_recorder(
    serve: Any, record_dir: Path
) -> None:
    # The transcriber comes *first*: its worst case. Audio is streamed in real time at
    # 4x speed while each utterance takes 1.5 s to recognise, and the backlog holds one.
    opts = {
        "engine": f"{__name__}:slow_engine",
        "record_dir": str(record_dir),
        "max_backlog": 1,
        "stop_timeout_s": 0.5,
        "vad": {"hangover_ms": 300},
    }
    routes = {"/s": {"handlers": ["transcriber", "recorder", f"{__name__}:Collector"]}}
    pcm = speech()
    async with serve(
        routes=routes, handler={"transcriber": opts, "recorder": {"flush_interval_s": 0.1}}
    ) as server:
        task = asyncio.create_task(call(f"{server.url}/s", pcm, speed=4.0))
        # While the engine sleeps, the recording keeps growing with the stream.
        await wait_for(lambda: bool(list(record_dir.glob("*/*.inbound.wav"))))
        [wav] = list(record_dir.glob("*/*.inbound.wav"))
        t0 = time.monotonic()
        sizes = []
        while not task.done():
            sizes.append((time.monotonic() - t0, sf.info(str(wav)).frames))
            await asyncio.sleep(0.05)
        sid = await task
        t_end = time.monotonic()
        await wait_for(lambda: not server.sessions)
        stop_delay = time.monotonic() - t_end
        lag = server.metrics.loop_lag_max_s
    data, _ = sf.read(str(wav), dtype="int16")
    assert len(data) >= len(pcm)
    # audio was recorded at the pace it was sent (4x real time), not at the engine's pace
    sent_s = len(pcm) / (4 * 8000)
    late = [(t, n) for t, n in sizes if 0.5 < t < sent_s and n < (t - 1.0) * 4 * 8000]
    assert not late, late[:5]
    assert stop_delay < 0.5 + 1.5 + 1.0  # on_stop waits stop_timeout_s, then gives up
    assert lag < 0.75  # the engine sleeps 1.5 s: blocking the loop would show
    got = topics(sid, "transcript")
    assert 1 <= len(got) < 3  # the backlog overflowed or the stop timeout cut it short
    assert all(t.text.endswith("seconds") for t in got)


class ToyStream(EngineStream):
    """A streaming engine's utterance: a partial result per chunk fed, final on close."""

    def __init__(self, info: UtteranceInfo) -> None:
        self.info = info
        self.samples = 0
        self.queue: asyncio.Queue[Recognition | None] = asyncio.Queue()

    def feed(self, pcm: np.ndarray) -> None:
        self.samples += len(pcm)
        self.queue.put_nowait(Recognition(f"{self.samples} samples", is_final=False))

    async def results(self) -> Any:
        while (rec := await self.queue.get()) is not None:
            yield rec

    async def close(self) -> None:
        await asyncio.sleep(0.01)
        self.queue.put_nowait(Recognition(f"{self.samples} samples", 0.5))
        self.queue.put_nowait(None)


class ToyStreamingEngine(StreamingEngine):
    name = "toy"

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def open_stream(self, info: UtteranceInfo) -> EngineStream:
        return ToyStream(info)


async def test_streaming_engine_partials_and_finals(serve: Any, record_dir: Path) -> None:
    opts = {
        "engine": f"{__name__}:ToyStreamingEngine",
        "engine_options": {"prefix": "x"},
        "record_dir": str(record_dir),
    }
    async with serve(routes=ROUTE, handler={"transcriber": opts}) as server:
        sid = await call(f"{server.url}/s", speech())
        await wait_for(lambda: not server.sessions)
    finals: list[Transcript] = topics(sid, "transcript")
    partials: list[Transcript] = topics(sid, "transcript.partial")
    assert len(finals) == 3 and len(partials) > 10
    assert {t.engine for t in finals} == {"toy"}
    assert all(not p.is_final for p in partials) and all(f.is_final for f in finals)
    for f in finals:
        # the stream was fed the whole utterance: pre-roll, speech, and the hangover
        n = int(f.text.split()[0])
        assert n >= f.end_sample - f.start_sample
        assert f.confidence == 0.5
    assert [f.utterance for f in finals] == [0, 1, 2]
    assert read_jsonl(record_dir, sid) == finals  # partials are not written


def broken_engine(utterance: Utterance) -> Any:
    raise RuntimeError("engine exploded")


async def test_engine_errors_are_counted_not_fatal(serve: Any, record_dir: Path) -> None:
    opts = {"engine": f"{__name__}:broken_engine", "record_dir": str(record_dir)}
    async with serve(routes=ROUTE, handler={"transcriber": opts}) as server:
        sid = await call(f"{server.url}/s", speech())
        await wait_for(lambda: not server.sessions)
        text = server.metrics.render()
    assert topics(sid, "transcript") == []
    assert len(topics(sid, "speech.start")) == 3
    assert topics(sid, "handler.error") == []  # the handler itself stays up
    assert 'handler_errors_total{handler="transcriber"}' not in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"engine": "whisper"}, "unknown engine"),
        ({"engine": "no.such.module:f"}, "cannot import"),
        ({"engine": "json:nothing_here"}, "has no"),
        ({"pocketsphinx": {"grammar": "/no/such.jsgf"}}, "not found"),
        ({"pocketsphinx": {"grammar": DIGITS_JSGF, "keywords": ["yes"]}}, "not both"),
        ({"openai": {"base_url": "ftp://x"}}, "http"),
        ({"vad": {"aggressiveness": 9}}, "aggressiveness"),
        ({"max_backlog": 0}, "max_backlog"),
        ({"tracks": ["sideways"]}, "tracks"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_options_fail_at_load(options: dict[str, Any], message: str) -> None:
    with pytest.raises(HandlerLoadError, match=message):
        load_handler("transcriber", options)


async def test_keywords_mode_spots_words() -> None:
    pool = decoder_pool(PocketsphinxOptions(keywords=["seven", "nine"]), 1)
    pcm = speech()
    rec = await asyncio.wait_for(pool.decode(pcm, 8000), T)
    assert rec is not None
    assert set(rec.text.split()) <= {"seven", "nine"} and "seven" in rec.text


def test_transcript_json_shape() -> None:
    t = Transcript(
        text="four one seven",
        confidence=0.9,
        track="inbound",
        start_s=0.44,
        end_s=1.86,
        start_sample=3520,
        end_sample=14880,
        sample_rate=8000,
        engine="pocketsphinx",
        latency_s=0.05,
    )
    doc = json.loads(msgspec.json.encode(t))
    assert doc["text"] == "four one seven" and doc["is_final"] is True
    assert set(doc) >= {"confidence", "track", "start_s", "end_s", "engine", "latency_s"}
