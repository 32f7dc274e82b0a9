"""Micro-benchmarks of the per-frame audio work: codecs, base64, every dialect's frame decode,
resampling.

Each case runs a tight ``time.perf_counter`` loop with the garbage collector off, repeats it
and keeps the best run (the least disturbed by the rest of the machine). Numbers include the
Python call overhead of the loop, shown on the first line of the table.

    python scripts/bench_codecs.py            # ~10 s
    python scripts/bench_codecs.py --quick    # ~1 s, rougher numbers
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gc
import json
import platform
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streamserver import audio
from streamserver.protocol import events, exotel, plivo, telnyx, twilio, vonage


@dataclass(frozen=True)
class Result:
    name: str
    ns_per_op: float

    @property
    def ops_per_s(self) -> float:
        return 1e9 / self.ns_per_op


def measure(fn: Callable[[], object], target_s: float, repeats: int) -> float:
    """Best-of-``repeats`` nanoseconds per call, each run lasting about ``target_s``."""
    n = 1
    while True:  # calibrate: grow the loop until one run takes a measurable time
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= target_s / 10:
            break
        n *= 4
    n = max(1, int(n * target_s / elapsed))
    best = float("inf")
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            best = min(best, time.perf_counter() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best / n * 1e9


def media_frame(payload: bytes, stream_id: str) -> bytes:
    """A realistic Plivo ``media`` frame as it arrives on the WebSocket."""
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": 2,
            "streamId": stream_id,
            "media": {
                "track": "inbound",
                "timestamp": "1234",
                "chunk": 1,
                "payload": base64.b64encode(payload).decode("ascii"),
            },
            "extra_headers": "",
        },
        separators=(",", ":"),
    ).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short runs (rougher numbers)")
    args = parser.parse_args(argv)
    target_s, repeats = (0.02, 3) if args.quick else (0.2, 5)

    rng = np.random.default_rng(0)
    stream_id = str(uuid.UUID(int=int(rng.integers(0, 2**63))))
    ulaw_160 = rng.integers(0, 256, 160, dtype=np.uint8).tobytes()
    pcm_160 = rng.integers(-20000, 20000, 160, dtype=np.int16)
    pcm_320 = rng.integers(-20000, 20000, 320, dtype=np.int16)
    l16_320 = audio.l16_encode(pcm_160)
    l16_640 = audio.l16_encode(pcm_320)
    b64_160 = base64.b64encode(ulaw_160)
    frame = media_frame(ulaw_160, stream_id)
    twilio_sid = "MZ" + stream_id.replace("-", "")[:32]
    twilio_frame = twilio.provider_media(ulaw_160, twilio_sid, 4, 2, 40)
    telnyx_frame = telnyx.provider_media(ulaw_160, stream_id, 4, 2, 40)
    l16_1600 = audio.l16_encode(rng.integers(-20000, 20000, 800, dtype=np.int16))
    exotel_frame = exotel.provider_media(l16_1600, twilio_sid, 4, 2, 200)
    event = plivo.decode(frame)
    assert isinstance(event, events.Media) and event.payload == ulaw_160
    resampler_hq = audio.Resampler(8000, 16000, "HQ")
    resampler_qq = audio.Resampler(8000, 16000, "QQ")
    framer = audio.Framer(160)

    def frame_and_ulaw() -> object:
        media = plivo.decode(frame)
        return audio.ulaw_decode(media.payload)  # type: ignore[union-attr]

    cases: list[tuple[str, Callable[[], object]]] = [
        ("loop overhead (no-op call)", lambda: None),
        ("ulaw_decode 160 B", lambda: audio.ulaw_decode(ulaw_160)),
        ("ulaw_encode 160 samples", lambda: audio.ulaw_encode(pcm_160)),
        ("alaw_decode 160 B", lambda: audio.alaw_decode(ulaw_160)),
        ("alaw_encode 160 samples", lambda: audio.alaw_encode(pcm_160)),
        ("l16be_decode 640 B", lambda: audio.l16be_decode(l16_640)),
        ("l16_decode 320 B", lambda: audio.l16_decode(l16_320)),
        ("l16_decode 640 B", lambda: audio.l16_decode(l16_640)),
        ("l16_encode 320 B", lambda: audio.l16_encode(pcm_160)),
        ("l16_encode 640 B", lambda: audio.l16_encode(pcm_320)),
        (
            "decode() dispatch, μ-law 160 B",
            lambda: audio.decode(ulaw_160, audio.ENCODING_MULAW),
        ),
        ("base64 decode 160 B payload", lambda: binascii.a2b_base64(b64_160)),
        (f"plivo.decode media frame ({len(frame)} B)", lambda: plivo.decode(frame)),
        ("plivo.decode + ulaw_decode", frame_and_ulaw),
        (f"twilio.decode media frame ({len(twilio_frame)} B)", lambda: twilio.decode(twilio_frame)),
        (f"telnyx.decode media frame ({len(telnyx_frame)} B)", lambda: telnyx.decode(telnyx_frame)),
        (
            f"exotel.decode media frame, 100 ms L16 ({len(exotel_frame)} B)",
            lambda: exotel.decode(exotel_frame),
        ),
        ("vonage.decode_binary 640 B", lambda: vonage.decode_binary(l16_640)),
        (
            "twilio.provider_media 160 B (load tester)",
            lambda: twilio.provider_media(ulaw_160, twilio_sid, 4, 2, 40),
        ),
        (
            "encode_play_audio 160 B μ-law",
            lambda: plivo.encode_play_audio(ulaw_160, audio.ENCODING_MULAW, 8000, stream_id),
        ),
        ("Resampler 8k->16k 20 ms (HQ)", lambda: resampler_hq.process(pcm_160)),
        ("Resampler 8k->16k 20 ms (QQ)", lambda: resampler_qq.process(pcm_160)),
        ("Framer.push 160 samples", lambda: framer.push(pcm_160)),
    ]

    print(
        f"Python {platform.python_version()} ({sys.implementation.name}), numpy {np.__version__}, "
        f"{'quick' if args.quick else 'full'} run: best of {repeats} × ~{target_s:g} s"
    )
    width = max(len(name) for name, _ in cases)
    print(f"{'case':<{width}}  {'ns/op':>9}  {'ops/s':>12}")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 12}")
    results: dict[str, Result] = {}
    for name, fn in cases:
        result = Result(name, measure(fn, target_s, repeats))
        results[name] = result
        print(f"{name:<{width}}  {result.ns_per_op:>9,.0f}  {result.ops_per_s:>12,.0f}")

    frame_ns = results[f"plivo.decode media frame ({len(frame)} B)"].ns_per_op
    ulaw_ns = results["ulaw_decode 160 B"].ns_per_op
    budget = frame_ns + ulaw_ns
    # At 50 frames/s per stream, the share of one core this work takes per 100 streams.
    core_share = budget * 1e-9 * 50 * 100 * 100
    print(
        f"\nper-frame budget: decode frame + ulaw decode = {frame_ns:,.0f} + {ulaw_ns:,.0f} = "
        f"{budget:,.0f} ns ({1e9 / budget:,.0f} frames/s per core, "
        f"{core_share:.2f} % of a core per 100 streams)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
