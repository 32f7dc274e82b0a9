"""Drive a real :class:`~streamserver.session.Session` without sockets: a fake outlet that
keeps what the session sends, and helpers to build sessions and feed them Plivo frames."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import plivo_frames as pf

from streamserver import audio
from streamserver.handler import Handler, HandlerSpec, StopReason
from streamserver.metrics import Metrics
from streamserver.session import Route, Session, SessionLimits

T = 10.0  # generous timeout unit
SID = "b77e037d-4119-44b5-902d-25826b654539"
CID = "a1b2c3d4-0000-4000-8000-000000000001"


class FakeOutlet:
    """The session's transport: keeps sent frames (decoded) and the close, never blocks
    unless told to (``paused``)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.urgent: list[bool] = []
        self.binary: list[bytes] = []
        self.closes: list[tuple[int, str]] = []
        self.paused = False
        self.writable = asyncio.Event()

    def send_text(self, data: bytes, urgent: bool = True) -> None:
        self.sent.append(json.loads(data))
        self.urgent.append(urgent)

    def send_binary(self, data: bytes, urgent: bool = True) -> None:
        self.binary.append(data)

    def close(self, code: int, reason: str) -> None:
        self.closes.append((int(code), reason))

    def write_paused(self) -> bool:
        return self.paused

    async def wait_writable(self) -> None:
        await self.writable.wait()

    @property
    def close_code(self) -> int | None:
        return self.closes[0][0] if self.closes else None

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("event") == kind]

    def played(self) -> bytes:
        """The audio bytes of every playAudio frame sent, in order."""
        return b"".join(base64.b64decode(m["media"]["payload"]) for m in self.events("playAudio"))


def spec(cls: type[Handler], name: str | None = None, options: Any = None) -> HandlerSpec:
    return HandlerSpec(name or cls.__name__, cls, options)


def make_session(
    *handlers: HandlerSpec,
    bidirectional: bool = True,
    limits: SessionLimits | None = None,
    metrics: Metrics | None = None,
    required: frozenset[str] = frozenset(),
) -> tuple[Session, FakeOutlet]:
    outlet = FakeOutlet()
    session = Session(
        outlet,
        Route("/stream", tuple(handlers), bidirectional, required=required),
        metrics or Metrics(),
        path="/stream",
        query={"a": "1"},
        limits=limits,
        peer="127.0.0.1:4000",
    )
    return session, outlet


def feed(session: Session, *frames: str | bytes) -> None:
    for f in frames:
        session.feed_text(f.encode() if isinstance(f, str) else f)


async def settle(session: Session, rounds: int = 200) -> None:
    """Let the handler tasks run until every input is empty (yields, no sleeping)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
        if all(not r.queue for r in session.runners):
            await asyncio.sleep(0)
            return
    raise AssertionError("handler inputs did not drain")


async def finish(session: Session) -> None:
    """End the stream as a close would and wait for every handler's on_stop."""
    session.end(StopReason.CLOSED)
    await session.wait_handlers(T)


def tone(n: int, rate: int = 8000, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    """A loud tone with noise: every 20 ms frame differs."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    x = 8000 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 500, n)
    return np.clip(x, -32768, 32767).astype(np.int16)


def mulaw_chunks(pcm: np.ndarray, frame: int = 160) -> list[bytes]:
    """μ-law payloads of ``frame`` samples."""
    enc = audio.ulaw_encode(pcm)
    return [enc[i : i + frame] for i in range(0, len(enc), frame)]


def media_frames(
    payloads: Sequence[bytes], order: Sequence[int] | None = None, track: str = "inbound"
) -> list[str]:
    """Media frames for ``payloads`` (chunk numbers from 1), sent in ``order`` (chunk
    numbers; missing ones are lost, repeated ones duplicated)."""
    order = order if order is not None else range(1, len(payloads) + 1)
    return [pf.media(payloads[c - 1], c, track=track) for c in order]


def played_stream(name: str) -> str:
    """Plivo's answer to a checkpoint whose audio has played."""
    return json.dumps({"event": "playedStream", "streamId": SID, "name": name})


def cleared_audio() -> str:
    """Plivo's answer to clearAudio."""
    return json.dumps({"event": "clearedAudio", "streamId": SID})
