"""In-process benchmark of the server's per-frame receive path, without sockets or kernel.

N streams are opened on a real :class:`~streamserver.net.StreamServer` through its
connection protocol objects (upgrade, ``start``), with a transport that only counts bytes.
Then every stream gets one masked ``media`` frame per round, exactly as uvloop would hand it
over after one read, round after round, the event loop running
between rounds (so the recorder's flush timer and writer thread run as in production).
Reports the CPU time per frame of the whole process — the Python path of the server plus
its handlers, not the kernel's TCP receive or the event loop's polling.

With many streams each frame touches cold objects, as in a real server, so the cost per
frame grows with N; compare changes at the same N.

    python scripts/bench_hotpath.py                           # recorder, 2,000 streams
    python scripts/bench_hotpath.py --handlers recorder,echo -n 1000
    python scripts/bench_hotpath.py --handlers none -n 1 --rounds 20000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import uvloop

from streamserver.audio import AudioFormat
from streamserver.cli import _serve_settings
from streamserver.loadtest.wire import (
    SAMPLES_DIR,
    MediaTemplates,
    Target,
    load_audio,
    new_key,
    start_frame,
    stop_frame,
    tagged_frames,
    upgrade_request,
)
from streamserver.net import StreamServer
from streamserver.net.connection import Connection
from streamserver.protocol.websocket import Opcode, client_frame

MASK = b"\x1f\x2e\x3d\x4c"


class CountingTransport:
    """What the connection needs of a transport; writes are only counted."""

    def __init__(self) -> None:
        self.written = 0
        self.writes = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def masked(text: bytes) -> bytes:
    return client_frame(Opcode.TEXT, text, MASK)


def feed(conn: Any, data: bytes) -> None:
    """Hand ``data`` to the connection as the event loop would after one read."""
    if isinstance(conn, asyncio.BufferedProtocol):
        buf = conn.get_buffer(len(data))
        buf[: len(data)] = data
        conn.buffer_updated(len(data))
    else:
        conn.data_received(data)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(args: argparse.Namespace, record_dir: str) -> dict[str, float]:
    ns = argparse.Namespace(
        config=None,
        host="127.0.0.1",
        port=0,
        log_level="WARNING",
        log_format=None,
        record_dir=record_dir,
        handlers=args.handlers if args.handlers != "none" else None,
    )
    settings = _serve_settings(ns)
    if args.handlers == "none":  # the receive path alone: streams with no handler
        for route in settings.routes.values():
            route.handlers = []
            route.required_handlers = []
    server = StreamServer(settings)
    fmt = AudioFormat.from_content_type(args.content_type)
    audio = load_audio(SAMPLES_DIR / "hello-8k.wav", fmt)
    # One frame per round, numbered on: every frame is new to the server (no duplicates).
    frames = tagged_frames(audio, fmt.frame_bytes, args.rounds, tag=False)
    templates = MediaTemplates(frames, ("inbound",), "")
    target = Target.parse("ws://127.0.0.1:8080/stream")
    conns: list[tuple[Connection, CountingTransport, bytes, str, str]] = []
    for _ in range(args.streams):
        conn = Connection(server)
        tr = CountingTransport()
        conn.connection_made(tr)  # type: ignore[arg-type]
        feed(conn, upgrade_request(target, new_key()))
        assert conn.session is not None, "upgrade refused"
        call_id, stream_id = str(uuid.uuid4()), str(uuid.uuid4())
        start = start_frame(call_id, stream_id, "MA0", ("inbound",), fmt, "")
        feed(conn, masked(start))
        conns.append((conn, tr, stream_id.encode(), call_id, stream_id))
    # Handlers start (the recorder opens its files on the writer thread): wait for them, so
    # only the steady per-frame work is measured.
    expect = args.streams if "recorder" in args.handlers else 0
    for _ in range(600):
        await asyncio.sleep(0.05)
        if sum(1 for _ in Path(record_dir).rglob("*.wav")) >= expect:
            break
    await asyncio.sleep(0.2)
    # Pre-build every stream's frames: the benchmark measures the server, not the builder.
    n_frames = templates.n
    wire = [
        [masked(templates.pre[0][k] + sid + templates.post[0][k]) for k in range(n_frames)]
        for _, _, sid, _, _ in conns
    ]
    gc.collect()
    rounds = args.rounds
    t_wall = time.perf_counter()
    c0 = cpu()
    for r in range(rounds):
        k = r % n_frames
        for i, (conn, _, _, _, _) in enumerate(conns):
            feed(conn, wire[i][k])
        await asyncio.sleep(0)  # timers and writer-thread completions run between rounds
    c1 = cpu()
    wall = time.perf_counter() - t_wall
    total = rounds * len(conns)
    received = server.metrics.media_frames
    dropped = server.metrics.duplicates + server.metrics.resyncs
    for conn, _, _, call_id, stream_id in conns:
        feed(conn, masked(stop_frame(rounds + 2, call_id, stream_id, ("inbound",))))
        conn.connection_lost(None)
    await asyncio.sleep(0.2)
    for _ in range(100):
        if not server.finishing():
            break
        await asyncio.sleep(0.05)
    return {
        "frames": total,
        "received": received,
        "dropped": dropped,
        "cpu_us_per_frame": (c1 - c0) / total * 1e6,
        "wall_us_per_frame": wall / total * 1e6,
        "written_bytes": sum(tr.written for _, tr, _, _, _ in conns),
    }


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--handlers", default="recorder", help="handler list, or 'none' (default recorder)"
    )
    p.add_argument("-n", "--streams", type=int, default=2000, help="streams (default 2000)")
    p.add_argument("--rounds", type=int, default=500, help="frames per stream (default 500)")
    p.add_argument("--repeat", type=int, default=3, help="runs; the best is kept (default 3)")
    p.add_argument("--content-type", default="audio/x-mulaw;rate=8000")
    args = p.parse_args()
    best: dict[str, float] | None = None
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-hotpath-") as d:
            res = uvloop.run(run(args, d))
            files = sum(1 for _ in Path(d).rglob("*.wav"))
        if res["received"] != res["frames"] or res["dropped"]:
            print(
                f"error: server counted {res['received']} of {res['frames']} frames, "
                f"{res['dropped']} dropped or resynced",
                file=sys.stderr,
            )
            return 1
        print(
            f"run {i + 1}: {res['cpu_us_per_frame']:.2f} µs CPU / frame "
            f"({res['wall_us_per_frame']:.2f} µs wall), {int(res['frames']):,} frames, "
            f"{files} recordings, {int(res['written_bytes']):,} bytes written back",
            file=sys.stderr,
        )
        if best is None or res["cpu_us_per_frame"] < best["cpu_us_per_frame"]:
            best = res
    assert best is not None
    print(
        f"handlers={args.handlers} streams={args.streams} {args.content_type}: "
        f"{best['cpu_us_per_frame']:.2f} µs CPU per frame (best of {args.repeat}); "
        f"the Python path alone would fill a core at {1e6 / best['cpu_us_per_frame'] / 50:,.0f} "
        "streams (the kernel's socket work and the event loop come on top)"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
