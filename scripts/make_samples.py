#!/usr/bin/env python3
"""Make the emulator's sample recordings of speech (8 kHz mono 16-bit WAV) with flite.

flite's voices (``apt-get install flite``) are recognised far better by the transcriber's
offline engine than espeak-ng's (measured: "one two three four five" exactly, against
"well we or i"); espeak-ng is used when flite is missing. The files in
``streamserver/emulator/samples/`` are committed; run this only to change or regenerate
them (the output depends on the synthesizer's version, so expect binary diffs)::

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
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamserver.audio import resample, to_int16

RATE = 8000
PAD_S = 0.2
MAX_BYTES = 100_000

#: file name -> (flite voice, espeak-ng voice, words per minute, word gap in 10 ms, text)
SAMPLES: dict[str, tuple[str, str, int, int, str]] = {
    "hello-8k.wav": ("slt", "en-us+f3", 165, 0, "Hello, this is a test call. Can you hear me?"),
    "digits-8k.wav": ("slt", "en-us+m3", 130, 20, "One two three four five."),
    "question-8k.wav": (
        "slt",
        "en-gb+m3",
        160,
        0,
        "Hi, I would like to check on my order, please.",
    ),
}


def synthesize(binary: str, voice: str, wpm: int, gap: int, text: str) -> np.ndarray:
    """Run flite or espeak-ng and return 8 kHz mono int16 with silence padding."""
    if Path(binary).name == "flite":
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "speech.wav"
            subprocess.run(
                [binary, "-voice", voice, "-t", text, "-o", str(out)],
                check=True,
                capture_output=True,
            )
            samples, rate = sf.read(str(out), dtype="int16", always_2d=False)
    else:
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
    binary = shutil.which("flite") or shutil.which("espeak-ng")
    if binary is None:
        print(
            "make_samples: neither flite nor espeak-ng is on PATH (apt-get install flite)",
            file=sys.stderr,
        )
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (flite_voice, espeak_voice, wpm, gap, text) in SAMPLES.items():
        voice = flite_voice if Path(binary).name == "flite" else espeak_voice
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
