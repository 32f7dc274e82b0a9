"""The webhook's JetStream mode: a durable consumer against a real nats-server, POSTing to a
real local HTTP receiver (Starlette on uvicorn); and as processes: `serve` with
`mode = "jetstream"` plus `streamserver webhook relay`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import bus_support
import numpy as np
import plivo_frames as pf
import pytest
from bus_support import NatsServer
from process_support import read_until
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from streamserver import audio
from streamserver.asgi import AsgiServer
from streamserver.bus import Bus, BusSettings
from streamserver.webhooks import SIGNATURE_HEADER, WebhookOptions, verify_signature
from streamserver.webhooks.relay import WebhookRelay, webhook_body

nats_server = bus_support.nats_server
T = 20.0
SECRET = "relay-secret"

Answer = Callable[[dict[str, Any]], Awaitable[Response]]


class Receiver:
    """The user's web app: records every POST, answers ``answer(hit)`` (204 by default)."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.hits: list[dict[str, Any]] = []
        self.answer = answer
        self.changed = asyncio.Event()
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        hit = {"body": body, "headers": dict(request.headers), "doc": json.loads(body)}
        self.hits.append(hit)
        self.changed.set()
        if self.answer is not None:
            return await self.answer(hit)
        return Response(status_code=204)

    def events(self) -> list[str]:
        return [h["doc"]["event"] for h in self.hits]

    async def wait(self, pred: Callable[[], bool], timeout_s: float = T) -> None:
        # Polled: a relay's counters change just after the POST its answer ended.
        deadline = time.monotonic() + timeout_s
        while not pred():
            assert time.monotonic() < deadline, f"condition not met; hits: {self.events()}"
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.05)


def bus_settings(server: NatsServer) -> BusSettings:
    tag = uuid.uuid4().hex[:8]
    return BusSettings(
        url=server.url, prefix=f"t{tag}", stream=f"EV_{tag}", reconnect_wait_s=0.1,
        ack_timeout_s=5.0, host="host-a", worker="0",
    )  # fmt: skip


def options(url: str, **kw: Any) -> WebhookOptions:
    kw.setdefault("backoff_initial_s", 0.05)
    kw.setdefault("backoff_max_s", 0.2)
    return WebhookOptions(url=url, secret=SECRET, mode="jetstream", **kw)


class Running:
    """A relay running in a task until :meth:`stop`."""

    def __init__(self, relay: WebhookRelay) -> None:
        self.relay = relay
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(relay.run(self.stop_event))

    async def ready(self) -> Running:
        await asyncio.wait_for(self.relay.ready.wait(), T)
        return self

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, T)


def test_body_names_and_ids() -> None:
    event = {"id": "b1-7", "kind": "stream.started", "call_id": "c", "stream_id": "s",
             "provider": "plivo", "host": "h", "worker": "1", "time": 12.5,
             "data": {"x": 1}}  # fmt: skip
    name, delivery_id, body = webhook_body(event, 42)
    doc = json.loads(body)
    assert (name, delivery_id) == ("stream.start", "evt_b1-7")
    assert doc == {"id": "evt_b1-7", "event": "stream.start", "created_at": 12.5, "seq": 42,
                   "call_id": "c", "stream_id": "s", "provider": "plivo", "host": "h",
                   "worker": "1", "data": {"x": 1}}  # fmt: skip
    assert webhook_body({**event, "kind": "dtmf"}, 1)[0] == "dtmf"


def test_options_check_mode_and_durable() -> None:
    with pytest.raises(ValueError, match="mode"):
        WebhookOptions.from_table({"url": "http://x/", "mode": "later"})
    with pytest.raises(ValueError, match="durable"):
        WebhookOptions(url="http://x/", durable="a.b")


async def test_relay_delivers_retries_acks_and_resumes(nats_server: NatsServer) -> None:
    tries: dict[str, int] = {}

    async def answer(hit: dict[str, Any]) -> Response:
        doc = hit["doc"]
        tries[doc["id"]] = tries.get(doc["id"], 0) + 1
        if doc["event"] == "dtmf" and tries[doc["id"]] == 1:
            return Response(status_code=503, headers={"Retry-After": "0"})
        if doc["event"] == "transcript":
            return Response(status_code=400)  # refused: not retried
        return Response(status_code=204)

    rx = Receiver(answer)
    s = bus_settings(nats_server)
    bus = Bus(s)
    await bus.start()
    async with AsgiServer(rx.app) as http:
        try:
            hook = f"{http.base_url}/hook"
            for kind, data in [("stream.started", {"route": "/stream"}), ("dtmf", {"digit": "5"}),
                               ("recording.ready", {}), ("transcript", {"text": "hi"}),
                               ("stream.stopped", {"reason": "stop"})]:  # fmt: skip
                bus.events.publish("call-1", kind, data, stream_id="s-1", provider="plivo")
            assert await bus.events.wait_sent(T)

            relay = await Running(WebhookRelay(s, options(hook), secret=SECRET)).ready()
            # stream.start, dtmf (503, then delivered), transcript (400: failed), stream.stop
            await rx.wait(lambda: len(rx.hits) == 5)
            await rx.wait(lambda: relay.relay.stats()["delivered"] == 3)
            assert relay.relay.stats() == {"delivered": 3, "failed": 1, "retried": 1, "skipped": 1}
            first = {h["doc"]["event"]: h for h in reversed(rx.hits)}
            for hit in rx.hits:
                header = hit["headers"][SIGNATURE_HEADER.lower()]
                assert verify_signature(SECRET, header, hit["body"])
                assert hit["headers"]["x-streamserver-delivery"] == hit["doc"]["id"]
            dtmf = [h for h in rx.hits if h["doc"]["event"] == "dtmf"]
            assert [h["headers"]["x-streamserver-attempt"] for h in dtmf] == ["1", "2"]
            assert dtmf[0]["doc"] == dtmf[1]["doc"]  # the same event, the same id
            assert first["stream.start"]["doc"]["data"] == {"route": "/stream"}
            seqs = [first[e]["doc"]["seq"] for e in ("stream.start", "dtmf", "stream.stop")]
            assert seqs == sorted(seqs)
            await relay.stop()

            # A new relay with the same durable resumes: only what came after is sent.
            bus.events.publish("call-2", "stream.started", {}, stream_id="s-2")
            assert await bus.events.wait_sent(T)
            before = len(rx.hits)
            relay = await Running(WebhookRelay(s, options(hook), secret=SECRET)).ready()
            await rx.wait(lambda: len(rx.hits) == before + 1)
            await rx.wait(lambda: relay.relay.stats()["delivered"] == 1)
            assert rx.hits[-1]["doc"]["call_id"] == "call-2"
            await relay.stop()
            assert len(rx.hits) == before + 1
        finally:
            await bus.aclose()


async def test_out_of_attempts_is_terminated_and_a_dead_endpoint_waits(
    nats_server: NatsServer,
) -> None:
    down = True

    async def answer(hit: dict[str, Any]) -> Response:
        return Response(status_code=502 if down else 204)

    rx = Receiver(answer)
    s = bus_settings(nats_server)
    bus = Bus(s)
    await bus.start()
    async with AsgiServer(rx.app) as http:
        try:
            hook = f"{http.base_url}/hook"
            bus.events.publish("call-1", "dtmf", {"digit": "1"})
            assert await bus.events.wait_sent(T)
            relay = await Running(
                WebhookRelay(s, options(hook, max_attempts=3), secret=SECRET)
            ).ready()
            await rx.wait(lambda: relay.relay.stats()["failed"] == 1)
            assert [h["headers"]["x-streamserver-attempt"] for h in rx.hits] == ["1", "2", "3"]
            assert relay.relay.stats()["retried"] == 2
            # Given up for good: a later event is delivered, the first one never again.
            down = False
            bus.events.publish("call-1", "dtmf", {"digit": "2"})
            await rx.wait(lambda: relay.relay.stats()["delivered"] == 1)
            assert [h["doc"]["data"]["digit"] for h in rx.hits] == ["1", "1", "1", "2"]
            await relay.stop()
        finally:
            await bus.aclose()


# -- as processes ------------------------------------------------------------------------------


async def test_serve_in_jetstream_mode_and_the_relay_process(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    rx = Receiver()
    s = bus_settings(nats_server)
    async with AsgiServer(rx.app) as http:
        config = tmp_path / "streamserver.toml"
        config.write_text(
            f'[routes."/stream"]\nhandlers = ["recorder", "webhook"]\n'
            f'[bus]\nurl = "{s.url}"\nprefix = "{s.prefix}"\nstream = "{s.stream}"\n'
            f'[handler.webhook]\nurl = "{http.base_url}/hook"\nsecret = "{SECRET}"\n'
            f'mode = "jetstream"\nevents = ["stream.start", "dtmf", "stream.stop"]\n'
            f"backoff_initial_s = 0.05\n"
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streamserver", "serve", "--config", str(config),
            "--port", "0", "--record-dir", str(tmp_path / "rec"),
            stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        relay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streamserver", "webhook", "relay", "--config", str(config),
            stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        server_lines: list[str] = []
        relay_lines: list[str] = []
        try:
            url = await read_until(server, r"listening on (ws://\S+)", server_lines, T)
            await read_until(relay, r"webhook relay: (consuming)", relay_lines, T)
            encoded = audio.ulaw_encode(np.zeros(1600, dtype=np.int16))
            async with connect(f"{url}/stream") as ws:
                await ws.send(pf.start(stream_id="s-1", call_id="call-1"))
                for k in range(10):
                    chunk = encoded[k * 160 : (k + 1) * 160]
                    await ws.send(pf.media(chunk, k + 1, stream_id="s-1"))
                await ws.send(pf.dtmf("4"))
                await ws.send(pf.stop("s-1"))
                with pytest.raises(ConnectionClosed):
                    while True:
                        await asyncio.wait_for(ws.recv(), T)
            await rx.wait(lambda: "stream.stop" in rx.events())
            # Exactly once each, from the relay (the worker's handler sent nothing itself).
            assert rx.events() == ["stream.start", "dtmf", "stream.stop"]
            # The relay's body (host, seq from JetStream), not the inline handler's (route).
            assert all("host" in h["doc"] and "route" not in h["doc"] for h in rx.hits)
            assert all(h["doc"]["call_id"] == "call-1" for h in rx.hits)
            assert rx.hits[1]["doc"]["data"]["digit"] == "4"
            assert rx.hits[2]["doc"]["data"]["reason"] == "stop"
        finally:
            for proc in (relay, server):
                if proc.returncode is None:
                    proc.terminate()
            code = await asyncio.wait_for(relay.wait(), T)
            await asyncio.wait_for(server.wait(), T)
        assert relay.stderr is not None
        rest = (await relay.stderr.read()).decode()
        assert code == 0, [*relay_lines, rest]
        assert "webhook relay: 3 delivered, 0 failed" in rest, [*relay_lines, rest]
