#!/usr/bin/env python3
"""The floor: the least per-frame work a Python Plivo stream server on uvloop can do.

Not a server to run: a yardstick. It shows how much of a core the kernel's socket work and
the event loop take at N streams, before any parsing, ordering, handlers or metrics, so that
``streamserver serve`` can be compared with the cost no Python server can go below.

Per WebSocket message it unmasks the frame (``websockets.speedups``), finds the ``payload``
string with ``bytes.find`` (no JSON parsing), and with ``--echo`` writes that same base64
text straight back inside a ``playAudio`` frame (one ``transport.write`` per frame, as
``send_batch_frames = 1``). With ``--record-dir`` it keeps each stream's base64 payloads and
writes them once, at the end, as a μ-law WAV file per stream
(``{record_dir}/{callId}/{streamId}.inbound.wav``), so ``--verify-recordings`` can check
that nothing was lost. ``/metrics`` gives ``streamserver_media_frames_total`` (the load tester
counts lost frames from it) and nothing else.

    FLOOR='.venv/bin/python scripts/floor_server.py --echo'
    .venv/bin/streamserver loadtest -n 1000 --duration 30 --echo --server-cpus 0 \\
        --generator-cpus 1 --verify-recordings \\
        --server-cmd "$FLOOR --port {port} --record-dir {record_dir}"
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import re
import signal
from pathlib import Path

import uvloop
from websockets.speedups import apply_mask

from handlers.wavfile import WavWriter

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_KEY = re.compile(rb"(?im)^sec-websocket-key:\s*(\S+)\s*$")
_ID = re.compile(rb'"(callId|streamId)"\s*:\s*"([A-Za-z0-9_-]{1,64})"')
_PLAY_HEAD = (
    b'{"event":"playAudio","media":{"contentType":"audio/x-mulaw","sampleRate":8000,"payload":"'
)
_PLAY_TAIL = b'"}}'


class Floor(asyncio.Protocol):
    frames = 0  # media frames received, all connections

    def __init__(self, echo: bool, record_dir: Path | None, pair: bool) -> None:
        self.echo = echo
        self.pair = pair
        self.held = b""
        self.record_dir = record_dir
        self.buf = b""
        self.upgraded = False
        self.payloads: list[bytes] | None = [] if record_dir else None
        self.ids: dict[bytes, bytes] = {}
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            self._upgrade(data[: end + 4])
            data = data[end + 4 :]
        pos, n = 0, len(data)
        while n - pos >= 6:
            b0, b1 = data[pos], data[pos + 1] & 0x7F
            head = pos + 2
            if b1 == 126:
                if n - pos < 8:
                    break
                b1 = (data[head] << 8) | data[head + 1]
                head += 2
            elif b1 == 127:
                self.transport.close()  # type: ignore[union-attr]
                return
            end = head + 4 + b1
            if end > n:
                break
            payload = apply_mask(data[head + 4 : end], data[head : head + 4])
            pos = end
            opcode = b0 & 0x0F
            if opcode == 1:
                self._message(payload)
            elif opcode == 8:
                self.transport.write(b"\x88\x02\x03\xe8")  # type: ignore[union-attr]
                self.transport.close()  # type: ignore[union-attr]
                return
        if pos < n:
            self.buf = data[pos:]

    def _message(self, msg: bytes) -> None:
        i = msg.find(b'"payload"')
        if i < 0:
            if not self.ids:
                self.ids = dict(_ID.findall(msg))
            return
        i = msg.find(b'"', i + 9) + 1
        j = msg.find(b'"', i)
        b64 = msg[i:j]
        Floor.frames += 1
        if self.payloads is not None:
            self.payloads.append(b64)
        if self.echo:
            body = _PLAY_HEAD + b64 + _PLAY_TAIL
            n = len(body)
            head = bytes((0x81, n)) if n < 126 else b"\x81\x7e" + n.to_bytes(2, "big")
            if not self.pair:
                self.transport.write(head + body)  # type: ignore[union-attr]
            elif self.held:
                self.transport.write(self.held + head + body)  # type: ignore[union-attr]
                self.held = b""
            else:
                self.held = head + body

    def _upgrade(self, request: bytes) -> None:
        assert self.transport is not None
        m = _KEY.search(request)
        if m is None:
            metrics = request.startswith(b"GET /metrics")
            body = b"not found\n"
            if metrics:
                body = f"streamserver_media_frames_total {Floor.frames}\n".encode()
            status = b"200 OK" if metrics else b"404 Not Found"
            self.transport.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: text/plain\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            self.transport.close()
            return
        accept = base64.b64encode(hashlib.sha1(m.group(1) + _GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.upgraded = True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.record_dir is None or not self.payloads or b"streamId" not in self.ids:
            return
        call = self.ids.get(b"callId", b"call").decode()
        path = self.record_dir / call / f"{self.ids[b'streamId'].decode()}.inbound.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        wav = WavWriter(path, 8000, "ulaw")  # the recorder's own writer (μ-law kept)
        try:
            wav.write(b"".join(base64.b64decode(p) for p in self.payloads))
        finally:
            wav.close()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--echo", action="store_true", help="write every frame back as playAudio")
    p.add_argument(
        "--pair",
        action="store_true",
        help="write two frames per write (every other frame waits 20 ms), as streamserver "
        "does when its core is short",
    )
    p.add_argument("--record-dir", type=Path, help="keep each stream as a μ-law WAV file")
    args = p.parse_args()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Floor(args.echo, args.record_dir, args.pair), args.host, args.port, backlog=4096
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    uvloop.run(main())
