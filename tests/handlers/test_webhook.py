"""The webhook through the real server, delivering to a real local HTTP endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers.webhook import SIGNATURE_HEADER, sign, stats, verify_signature
from streamserver.emulator import AsgiServer
from streamserver.emulator.streamclient import PlivoStreamClient, StreamClientOptions
from streamserver.handler import Handler, HandlerLoadError, load_handler

DATA = Path(__file__).resolve().parents[1] / "data"
SECRET = "whsec_test_0123456789"
T = 10.0

Answer = Callable[[dict[str, Any]], Awaitable[Response]]


class Receiver:
    """Your web app: records every POST and answers with ``answer`` (200 by default)."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.hits: list[dict[str, Any]] = []
        self.answer = answer
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        hit = {"body": body, "headers": dict(request.headers), "doc": json.loads(body)}
        self.hits.append(hit)
        if self.answer is not None:
            return await self.answer(hit)
        return Response(status_code=204)

    def delivered(self) -> list[dict[str, Any]]:
        """Distinct events, in stream order."""
        docs = {h["doc"]["id"]: h["doc"] for h in self.hits}
        return sorted(docs.values(), key=lambda d: d["seq"])


class Breaker(Handler):
    """Fails on DTMF 9 (a handler.error for the webhook to report)."""

    async def on_dtmf(self, dtmf: Any) -> None:
        if dtmf.digit == "9":
            raise RuntimeError("nine is not allowed")


async def call(url: str, seconds: float, **kw: Any) -> Any:
    pcm = np.zeros(int(seconds * 8000), dtype=np.int16)
    kw.setdefault("inbound", pcm)
    report = await PlivoStreamClient(
        StreamClientOptions(url=url, speed=None, send_stop=False, **kw)
    ).run()
    assert report.ok, report.errors
    return report


async def wait_for(pred: Callable[[], bool], timeout: float = T) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.01)


JSGF = """#JSGF V1.0;
grammar digits;
public <digits> = <digit>+;
<digit> = zero | oh | one | two | three | four | five | six | seven | eight | nine;
"""


async def test_events_are_forwarded_and_signed(serve: Any, record_dir: Path) -> None:
    rx = Receiver()
    speech, _ = sf.read(str(DATA / "digits_8k.wav"), dtype="int16", frames=16000)
    async with AsgiServer(rx.app) as http:
        handlers = {
            "transcriber": {"record_dir": str(record_dir), "pocketsphinx": {"grammar": JSGF}},
            "webhook": {"url": f"{http.base_url}/hook", "secret": SECRET},
        }
        routes = {"/s": {"handlers": ["transcriber", f"{__name__}:Breaker", "webhook"]}}
        async with serve(routes=routes, handler=handlers) as server:
            report = await call(
                f"{server.url}/s",
                2.0,
                inbound=speech,
                dtmf=[(0.1, "1"), (0.2, "9")],
                extra_headers={"tenant": "acme"},
            )
            await wait_for(lambda: not server.sessions)
    docs = rx.delivered()
    assert [d["seq"] for d in docs] == list(range(1, len(docs) + 1))
    kinds = [d["event"] for d in docs]
    assert kinds[0] == "stream.start" and kinds[-1] == "stream.stop"
    assert sorted(kinds[1:-1]) == ["dtmf", "dtmf", "handler.error", "transcript"]
    by = {d["event"]: d for d in docs}
    for d in docs:
        assert (d["stream_id"], d["call_id"]) == (report.stream_id, report.call_id)
        assert d["id"].startswith("evt_") and d["route"] == "/s"
    assert by["stream.start"]["data"]["extra_headers"] == {"tenant": "acme"}
    assert by["stream.start"]["data"]["format"] == {
        "encoding": "audio/x-mulaw",
        "sample_rate": 8000,
    }
    assert [d["data"]["digit"] for d in docs if d["event"] == "dtmf"] == ["1", "9"]
    err = by["handler.error"]["data"]
    assert err["handler"].endswith(":Breaker") and "nine is not allowed" in err["error"]
    tr = by["transcript"]["data"]
    assert tr["text"] == "four one seven" and tr["source"] == "transcriber"
    assert tr["engine"] == "pocketsphinx" and tr["is_final"] is True
    assert by["stream.stop"]["data"]["reason"] == "closed"
    # every request is signed over its exact body
    for hit in rx.hits:
        header = hit["headers"][SIGNATURE_HEADER.lower()]
        assert verify_signature(SECRET, header, hit["body"])
        t = header.split(",")[0].removeprefix("t=")
        mac = hmac.new(SECRET.encode(), f"{t}.".encode() + hit["body"], hashlib.sha256)
        assert header == f"t={t},v1={mac.hexdigest()}"
        assert not verify_signature(SECRET, header, hit["body"] + b" ")
        assert not verify_signature("other", header, hit["body"])
        assert not verify_signature(SECRET, header, hit["body"], now=int(t) + 301)
        assert hit["headers"]["x-streamserver-event"] == hit["doc"]["event"]
        assert hit["headers"]["content-type"] == "application/json"


def test_signature_helpers() -> None:
    body = b'{"event":"dtmf"}'
    header = sign("k", body, timestamp=1700000000)
    mac = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={mac}"
    assert verify_signature("k", header, body, now=1700000100)
    # a rotated secret: several v1 values, one matching is enough
    assert verify_signature("k", f"t=1700000000,v1=00,v1={mac}", body, now=1700000000)
    for bad in ("", "t=x,v1=y", f"v1={mac}", "garbage"):
        assert not verify_signature("k", bad, body, now=1700000000)


async def test_retries_with_backoff_then_delivers_or_gives_up(serve: Any) -> None:
    attempts: dict[str, int] = {}

    async def flaky(hit: dict[str, Any]) -> Response:
        eid = hit["doc"]["id"]
        attempts[eid] = attempts.get(eid, 0) + 1
        event = hit["doc"]["event"]
        if event == "dtmf":
            return Response(status_code=422)  # a client error: not retried
        if event == "stream.stop":
            return Response(status_code=503)  # never recovers
        if attempts[eid] == 1:
            return Response(status_code=429, headers={"Retry-After": "0.05"})
        if attempts[eid] == 2:
            return Response(status_code=502)
        return Response(status_code=200)

    rx = Receiver(flaky)
    before = stats()
    async with AsgiServer(rx.app) as http:
        opts = {
            "url": f"{http.base_url}/hook",
            "max_attempts": 4,
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.2,
        }
        routes = {"/s": {"handlers": ["webhook"], "bidirectional": False}}
        async with serve(routes=routes, handler={"webhook": opts}) as server:
            t0 = time.monotonic()
            await call(f"{server.url}/s", 0.2, dtmf=[(0.0, "4")])
            await wait_for(lambda: not server.sessions)
            elapsed = time.monotonic() - t0
    after = stats()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    by_event = {h["doc"]["event"]: h["doc"]["id"] for h in rx.hits}
    assert attempts[by_event["stream.start"]] == 3  # 429 (Retry-After), 502, then 200
    assert attempts[by_event["dtmf"]] == 1
    assert attempts[by_event["stream.stop"]] == 4  # max_attempts, then failed
    assert delta["delivered"] == 1 and delta["failed"] == 2
    assert delta["retried"] == 2 + 3
    assert elapsed < 6.0  # backoff 0.01 s doubling, capped at 0.2 s: short
    # the attempt number is sent with each try
    stops = [h for h in rx.hits if h["doc"]["event"] == "stream.stop"]
    tries = [h["headers"]["x-streamserver-attempt"] for h in stops]
    assert tries == ["1", "2", "3", "4"]


async def test_bounded_queue_drops_and_counts(serve: Any) -> None:
    release = asyncio.Event()

    async def stuck(hit: dict[str, Any]) -> Response:
        await release.wait()
        return Response(status_code=200)

    rx = Receiver(stuck)
    before = stats()
    async with AsgiServer(rx.app) as http:
        opts = {
            "url": f"{http.base_url}/hook",
            "concurrency": 1,
            "max_queue": 2,
            "flush_timeout_s": 0.2,
            "timeout_s": 5.0,
        }
        routes = {"/s": {"handlers": ["webhook"], "bidirectional": False}}
        async with serve(routes=routes, handler={"webhook": opts}) as server:
            digits = [(0.02 * i, d) for i, d in enumerate("123456")]
            await call(f"{server.url}/s", 0.3, dtmf=digits)
            # on_stop gave up waiting after flush_timeout_s: the stream ended anyway
            await wait_for(lambda: not server.sessions, timeout=3.0)
            mid = stats()
            release.set()
            await wait_for(lambda: stats().get("delivered", 0) - before.get("delivered", 0) >= 3)
            from handlers.webhook import drain

            await drain(2.0)
    after = stats()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    # 8 events (start, 6 digits, stop): one in flight, two queued, the rest dropped
    assert delta["delivered"] == 3
    assert delta["dropped"] == 5
    assert mid.get("dropped", 0) - before.get("dropped", 0) == 5
    assert len(rx.hits) == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "ftp://example.com"}, "http"),
        ({"url": "http://x", "max_queue": 0}, "max_queue"),
        ({"url": "http://x", "events": []}, "events"),
        ({"url": "http://x", "retries": 3}, "retries"),
    ],
)
def test_bad_options_fail_at_load(options: dict[str, Any], message: str) -> None:
    with pytest.raises(HandlerLoadError, match=message):
        load_handler("webhook", options)
