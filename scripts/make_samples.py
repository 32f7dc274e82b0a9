#!/usr/bin/env python3
"""Make the emulator's sample recordings of speech (8 kHz mono 16-bit WAV) with espeak-ng.

The files in ``streamserver/emulator/samples/`` are committed; run this only to change or
regenerate them (the output depends on the espeak-ng version, so expect binary diffs)::

    python scripts/make_samples.py            # writes streamserver/emulator/samples/*.wav
    python scripts/make_samples.py --out DIR

Each clip gets 0.2 s of silence before and after, like a caller who pauses to listen.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamserver.audio import resample, to_int16

RATE = 8000
PAD_S = 0.2
MAX_BYTES = 100_000

#: file name -> (espeak-ng voice, words per minute, word gap in 10 ms units, text)
SAMPLES: dict[str, tuple[str, int, int, str]] = {
    "hello-8k.wav": ("en-us+f3", 165, 0, "Hello, this is a test call. Can you hear me?"),
    "digits-8k.wav": ("en-us+m3", 130, 20, "one, two, three, four, five"),
    "question-8k.wav": ("en-gb+m3", 160, 0, "Hi, I would like to check on my order, please."),
}


def synthesize(binary: str, voice: str, wpm: int, gap: int, text: str) -> np.ndarray:
    """Run espeak-ng and return 8 kHz mono int16 with silence padding."""
    cmd = [binary, "-v", voice, "-s", str(wpm), "-g", str(gap), "--stdout", text]
    wav = subprocess.run(cmd, check=True, capture_output=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="int16", always_2d=False)
    pcm = resample(to_int16(samples), int(rate), RATE)
    pad = np.zeros(int(PAD_S * RATE), dtype=np.int16)
    out: np.ndarray = np.concatenate([pad, pcm, pad])
    return out


def main(argv: list[str] | None = None) -> int:
    default_out = Path(__file__).resolve().parent.parent / "streamserver" / "emulator" / "samples"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=default_out, help="output directory")
    args = parser.parse_args(argv)
    binary = shutil.which("espeak-ng")
    if binary is None:
        print("make_samples: espeak-ng is not on PATH (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (voice, wpm, gap, text) in SAMPLES.items():
        pcm = synthesize(binary, voice, wpm, gap, text)
        path = args.out / name
        sf.write(str(path), pcm, RATE, format="WAV", subtype="PCM_16")
        size = path.stat().st_size
        print(f"{path}: {len(pcm) / RATE:.2f} s, {size} bytes")
        if size > MAX_BYTES:
            print(f"make_samples: {name} is over {MAX_BYTES} bytes; shorten it", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
