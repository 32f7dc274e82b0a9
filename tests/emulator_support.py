"""Shared pieces of the emulator tests: a running emulator, a webhook app, a WS recorder.

Everything runs for real on 127.0.0.1 port 0: the emulator on uvicorn, the user's
"application" (answer URLs, callbacks) as a small Starlette app, and a WebSocket server
that records what the emulator streams to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import numpy as np
import soundfile as sf
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.asyncio.server import ServerConnection, serve

from streamserver.emulator import AsgiServer, Emulator, EmulatorSettings

TIMEOUT = 10.0  # generous bound for anything a test waits for
RATE = 8000


def noise(seconds: float, seed: int = 7, amplitude: int = 6000) -> np.ndarray:
    """Loud, distinct samples (every 20 ms frame differs), never silent."""
    rng = np.random.default_rng(seed)
    return rng.integers(-amplitude, amplitude, int(seconds * RATE)).astype(np.int16)


def write_wav(path: Path, pcm: np.ndarray, rate: int = RATE) -> Path:
    sf.write(str(path), pcm, rate, subtype="PCM_16")
    return path


@dataclass
class Hit:
    """One request the webhook app received."""

    path: str
    method: str
    params: dict[str, str]
    headers: dict[str, str]
    url: str
    body: bytes


@dataclass
class Hooks:
    """The user's web app: serves answer XML per path and records every request."""

    base_url: str = ""
    xml: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    _queues: dict[str, asyncio.Queue[Hit]] = field(
        default_factory=lambda: defaultdict(asyncio.Queue)
    )

    def url(self, path: str) -> str:
        return self.base_url + path

    async def next(self, path: str, timeout_s: float = TIMEOUT) -> Hit:
        """The next request to ``path`` (waits for it)."""
        return await asyncio.wait_for(self._queues[path].get(), timeout_s)

    async def next_event(self, path: str, event: str, timeout_s: float = TIMEOUT) -> Hit:
        """The next request to ``path`` whose ``Event`` parameter is ``event``."""
        while True:
            hit = await self.next(path, timeout_s)
            if hit.params.get("Event") == event:
                return hit

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        params = dict(request.query_params)
        if request.headers.get("content-type", "").startswith("application/x-www-form"):
            params.update(parse_qsl(body.decode(), keep_blank_values=True))
        elif request.headers.get("content-type", "").startswith("application/json"):
            params.update({k: str(v) for k, v in json.loads(body).items()})
        hit = Hit(
            request.url.path, request.method, params, dict(request.headers), str(request.url), body
        )
        self.hits.append(hit)
        self._queues[hit.path].put_nowait(hit)
        if hit.path in self.status:
            return Response("error", status_code=self.status[hit.path])
        if hit.path in self.files:
            return Response(self.files[hit.path], media_type="audio/wav")
        xml = self.xml.get(hit.path)
        if xml is None:
            return Response("ok")
        return Response(xml, media_type="application/xml")


@dataclass
class WsRecorder:
    """A WebSocket server recording every frame the emulator streams to it."""

    url: str = ""
    frames: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    script: Callable[[ServerConnection, dict[str, Any]], Awaitable[None]] | None = None

    def events(self, name: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["event"] == name]

    def inbound_pcm(self) -> np.ndarray:
        """The L16 inbound audio received, decoded."""
        import base64

        chunks = [
            np.frombuffer(base64.b64decode(f["media"]["payload"]), dtype="<i2")
            for f in self.events("media")
            if f["media"]["track"] == "inbound"
        ]
        return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)


@contextlib.asynccontextmanager
async def ws_recorder(
    script: Callable[[ServerConnection, dict[str, Any]], Awaitable[None]] | None = None,
) -> AsyncIterator[WsRecorder]:
    rec = WsRecorder(script=script)

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        rec.headers.append(dict(ws.request.headers))
        rec.paths.append(ws.request.path)
        with contextlib.suppress(Exception):
            async for message in ws:
                frame = json.loads(message)
                rec.frames.append(frame)
                if rec.script is not None:
                    await rec.script(ws, frame)
        rec.closed.set()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        rec.url = f"ws://127.0.0.1:{port}/stream"
        yield rec


@dataclass
class Env:
    """A running emulator, the user's web app, and an authenticated httpx client."""

    emu: Emulator
    hooks: Hooks
    http: httpx.AsyncClient

    async def call(self, xml: str, **extra: Any) -> str:
        """Serve ``xml`` at /answer, place a call, return its uuid."""
        self.hooks.xml["/answer"] = xml
        body = {
            "from": "14155550100",
            "to": "14155550199",
            "answer_url": self.hooks.url("/answer"),
            "hangup_url": self.hooks.url("/hangup"),
            **extra,
        }
        r = await self.http.post("Call/", json=body)
        assert r.status_code == 201, r.text
        uuid: str = r.json()["request_uuid"]
        return uuid


def settings(tmp_path: Path, **overrides: Any) -> EmulatorSettings:
    """Fast test settings: no ring, a 0.6 s callee voice, hang-up 0.3 s after it."""
    audio = write_wav(tmp_path / "callee.wav", noise(0.6))
    values: dict[str, Any] = {
        "port": 0,
        "ring_s": 0.0,
        "calls_per_second": 0,
        "caller_audio": str(audio),
        "caller_hangup_after_audio_s": 0.3,
        "recordings_dir": str(tmp_path / "recordings"),
        "tts": "tone",
    }
    values.update(overrides)
    return EmulatorSettings(**values).with_credentials({})


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **overrides: Any) -> AsyncIterator[Env]:
    hooks = Hooks()
    app = Starlette(routes=[Route("/{path:path}", hooks.handle, methods=["GET", "POST"])])
    async with AsgiServer(app) as web:
        hooks.base_url = web.base_url
        async with Emulator(settings(tmp_path, **overrides)) as emu:
            auth = (emu.auth_id, emu.auth_token)
            async with httpx.AsyncClient(base_url=emu.api_base, auth=auth, timeout=TIMEOUT) as http:
                yield Env(emu, hooks, http)
