"""Make the speech samples the tests stream: ``tests/data/digits_8k.wav``.

Three groups of spoken digits ("four one seven", "two nine three", "eight zero five six"),
each synthesised with flite's ``rms`` voice, resampled to 8 kHz and joined with 0.8 s of
silence, with 0.5 s of silence before and after; stored as 8 kHz G.711 μ-law WAV (what a
phone line carries, and half the size of 16-bit PCM). The digits are in ``DIGITS`` below
and in the WAV's ``comment`` field.

flite's voices are recognised far better by pocketsphinx's bundled acoustic model than
espeak-ng's formant voices (10/10 digits against about 5/10 here), so the tests can assert
the digit sequence. Needs the ``flite`` program (Debian: ``apt-get install flite``)::

    python scripts/make_speech_samples.py [--out tests/data]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from streamserver import audio

RATE = 8000
VOICE = "rms"
GROUPS = ("four one seven", "two nine three", "eight zero five six")
DIGITS = "4172938056"
LEAD_S = 0.5
PAUSE_S = 0.8


def synthesise(text: str, workdir: Path) -> np.ndarray:
    """Speak ``text`` with flite; int16 at ``RATE``."""
    wav = workdir / "say.wav"
    subprocess.run(["flite", "-voice", VOICE, "-t", text, "-o", str(wav)], check=True)
    pcm, rate = sf.read(str(wav), dtype="int16")
    return audio.resample(pcm, rate, RATE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent.parent / "tests" / "data"))
    args = parser.parse_args(argv)
    if shutil.which("flite") is None:
        print("flite not found; install it (apt-get install flite)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = [np.zeros(int(LEAD_S * RATE), dtype=np.int16)]
    with tempfile.TemporaryDirectory() as tmp:
        for i, group in enumerate(GROUPS):
            if i:
                parts.append(np.zeros(int(PAUSE_S * RATE), dtype=np.int16))
            parts.append(synthesise(group, Path(tmp)))
    parts.append(np.zeros(int(LEAD_S * RATE), dtype=np.int16))
    pcm = np.concatenate(parts)
    path = out / "digits_8k.wav"
    with sf.SoundFile(
        str(path), "w", samplerate=RATE, channels=1, format="WAV", subtype="ULAW"
    ) as f:
        f.comment = f"digits={DIGITS}; flite voice {VOICE}; scripts/make_speech_samples.py"
        f.write(pcm)
    print(f"{path}: {len(pcm) / RATE:.2f} s, {path.stat().st_size} bytes, digits {DIGITS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
