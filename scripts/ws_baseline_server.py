#!/usr/bin/env python3
"""A bare ``websockets`` asyncio Plivo stream server: the baseline for side-by-side load tests.

It does the per-frame work a straightforward hand-written server does: ``json.loads`` each
message, base64-decode the payload, decode μ-law/L16 with numpy, append the samples to a WAV
file per track (``{record_dir}/{callId}/{streamId}.{track}.wav``, the recorder's layout, so
``--verify-recordings`` works), and with ``--echo`` send every inbound frame straight back as
``playAudio``. One coroutine per connection, ``async for message in ws``: the websockets
asyncio connection layer that streamserver's own listener replaces.

    BASELINE='python scripts/ws_baseline_server.py --echo'
    scripts/loadtest.py --ladder 250,500,750 --handlers recorder,echo --server-cpus 0 \\
        --generator-cpus 1 --verify-recordings --compare-name 'websockets baseline' \\
        --compare-cmd "$BASELINE --port {port} --record-dir {record_dir}"
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import re
import signal
import wave
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _ulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


ULAW = _ulaw_table()


def _decode(raw: bytes, encoding: str) -> np.ndarray:
    if encoding == "audio/x-mulaw":
        return ULAW[np.frombuffer(raw, dtype=np.uint8)]
    return np.frombuffer(raw, dtype="<i2")


async def _health(conn: ServerConnection, request: Request) -> Response | None:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return conn.respond(HTTPStatus.NOT_FOUND, "not found\n")
    return None


def make_handler(record_dir: Path, echo: bool) -> Any:
    async def handler(ws: ServerConnection) -> None:
        files: dict[str, wave.Wave_write] = {}
        encoding = "audio/x-mulaw"
        rate = 8000
        try:
            async for message in ws:
                msg = json.loads(message)
                event = msg.get("event")
                if event == "media":
                    media = msg["media"]
                    payload = media["payload"]
                    pcm = _decode(base64.b64decode(payload), encoding)
                    w = files.get(media.get("track", "inbound"))
                    if w is not None:
                        w.writeframesraw(pcm.tobytes())
                    if echo and media.get("track", "inbound") == "inbound":
                        reply = {
                            "event": "playAudio",
                            "media": {
                                "contentType": encoding,
                                "sampleRate": rate,
                                "payload": payload,
                            },
                        }
                        await ws.send(json.dumps(reply))
                elif event == "start":
                    start = msg["start"]
                    encoding = start["mediaFormat"]["encoding"]
                    rate = int(start["mediaFormat"]["sampleRate"])
                    call_id, stream_id = start["callId"], start["streamId"]
                    if not (_SAFE_ID.match(call_id) and _SAFE_ID.match(stream_id)):
                        await ws.close(1008, "bad ids")
                        return
                    folder = record_dir / call_id
                    folder.mkdir(parents=True, exist_ok=True)
                    for track in start.get("tracks", ["inbound"]):
                        w = wave.open(str(folder / f"{stream_id}.{track}.wav"), "wb")
                        w.setnchannels(1)
                        w.setsampwidth(2)
                        w.setframerate(rate)
                        files[track] = w
                elif event == "stop":
                    break
        except ConnectionClosed:
            pass
        finally:
            for w in files.values():
                with contextlib.suppress(Exception):
                    w.close()

    return handler


def run(make: Any, doc: str, port: int) -> None:
    """Parse the shared options and serve ``make(record_dir, echo)`` connection handlers
    until SIGTERM/SIGINT (also used by ``plivo_sdk_server.py``)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=port)
    p.add_argument("--record-dir", type=Path, default=Path("recordings"))
    p.add_argument("--echo", action="store_true", help="send every inbound frame back")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
        async with serve(
            make(args.record_dir, args.echo),
            args.host,
            args.port,
            compression=None,
            max_size=2**16,
            ping_interval=None,
            process_request=_health,
        ):
            with contextlib.suppress(asyncio.CancelledError):
                await stop

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


if __name__ == "__main__":
    run(make_handler, __doc__, 8090)
