#!/usr/bin/env python3
"""A Plivo stream server built on Plivo's official ``plivo-stream-sdk``, for side-by-side
load tests.

It is what the SDK's README shows, doing the same per-frame work as streamserver's
recorder and echo: one ``PlivoWebsocketStreamingHandler`` per connection under
``websockets.serve``; ``on_start`` opens a WAV file per track in the recorder's layout
(``{record_dir}/{callId}/{streamId}.{track}.wav``, so ``--verify-recordings`` works);
``on_media`` decodes the payload (``get_raw_media``), converts μ-law/L16 to 16-bit PCM with
numpy and appends it; with ``--echo`` every inbound frame goes back with ``send_media``.

Needs its own environment (the SDK brings FastAPI and pydantic; version 0.1.1 also imports
the ``plivo`` REST SDK without declaring it)::

    python -m venv /tmp/sdkvenv
    /tmp/sdkvenv/bin/pip install plivo-stream-sdk plivo numpy uvloop
    SDK='/tmp/sdkvenv/bin/python scripts/plivo_sdk_server.py --echo'
    streamserver loadtest --ladder 250,500,750 --duration 30 --handlers recorder,echo \\
        --server-cpus 0 --generator-cpus 1 --generator-rt --verify-recordings \\
        --compare-name 'plivo-stream-sdk' \\
        --compare-cmd "$SDK --port {port} --record-dir {record_dir}"
"""

from __future__ import annotations

import contextlib
import wave
from pathlib import Path
from typing import Any

import numpy as np
from plivo_stream import PlivoWebsocketStreamingHandler
from websockets.asyncio.server import ServerConnection

# The shared parts (options, serving, ids, μ-law table) of the bare websockets baseline,
# which sits in the same folder.
from ws_baseline_server import _SAFE_ID, ULAW, run


def make_connection_handler(record_dir: Path, echo: bool) -> Any:
    async def connection(ws: ServerConnection) -> None:
        sdk = PlivoWebsocketStreamingHandler()
        files: dict[str, wave.Wave_write] = {}
        fmt = {"encoding": "audio/x-mulaw", "rate": 8000}

        @sdk.on_start
        async def on_start(event: Any) -> None:
            start = event.start
            media_format = start.media_format
            fmt["encoding"] = media_format.encoding
            fmt["rate"] = int(media_format.sample_rate)
            if not (_SAFE_ID.match(start.call_id) and _SAFE_ID.match(start.stream_id)):
                await ws.close(1008, "bad ids")
                return
            folder = record_dir / start.call_id
            folder.mkdir(parents=True, exist_ok=True)
            for track in start.tracks or ["inbound"]:
                w = wave.open(str(folder / f"{start.stream_id}.{track}.wav"), "wb")
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(fmt["rate"])
                files[track] = w

        @sdk.on_media
        async def on_media(event: Any) -> None:
            raw = event.get_raw_media()
            track = event.media.track
            w = files.get(track)
            if w is not None:
                if fmt["encoding"] == "audio/x-mulaw":
                    pcm = ULAW[np.frombuffer(raw, dtype=np.uint8)]
                else:
                    pcm = np.frombuffer(raw, dtype="<i2")
                w.writeframesraw(pcm.tobytes())
            if echo and track == "inbound":
                await sdk.send_media(raw, fmt["encoding"], int(fmt["rate"]))

        try:
            await sdk.handle(ws)  # type: ignore[arg-type]
        finally:
            for w in files.values():
                with contextlib.suppress(Exception):
                    w.close()

    return connection


if __name__ == "__main__":
    run(make_connection_handler, __doc__, 8091)
