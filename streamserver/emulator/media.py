"""Audio the call simulator plays and records: files, URLs, speech, and recordings on disk.

The simulator's calls all run at 8 kHz mono int16 (the telephone rate); everything here
converts to and from that. File and subprocess work runs in threads, never on the loop.
"""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import numpy as np
import soundfile as sf

from ..audio import PCM, resample, to_int16

__all__ = [
    "FRAME",
    "RATE",
    "MediaError",
    "Tts",
    "decode_audio",
    "end_of_silence_run",
    "fetch_audio",
    "load_audio_file",
    "silent_frames",
    "tone_for_text",
    "write_recording",
]

log = logging.getLogger("streamserver.emulator.media")

#: Sample rate of every simulated call's audio.
RATE = 8000
#: Samples in one 20 ms frame at :data:`RATE`.
FRAME = RATE // 50
#: int16 RMS below which a 20 ms frame counts as silence (about -50 dBFS).
SILENCE_RMS = 100.0


class MediaError(Exception):
    """Audio could not be fetched or decoded; the message says which and why."""


def decode_audio(data: bytes, what: str) -> PCM:
    """Decode WAV/FLAC/OGG/MP3 bytes to 8 kHz mono int16."""
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise MediaError(f"{what}: not a readable audio file ({exc})") from None
    return resample(to_int16(samples), int(rate), RATE)


@lru_cache(maxsize=32)
def _load_cached(path: str, mtime_ns: int) -> PCM:
    pcm = decode_audio(Path(path).read_bytes(), path)
    pcm.setflags(write=False)  # shared between calls: nobody may change it
    return pcm


def load_audio_file(path: str | Path) -> PCM:
    """Read an audio file as 8 kHz mono int16 (cached while the file is unchanged)."""
    p = Path(path).expanduser()
    try:
        stat = p.stat()
    except OSError as exc:
        raise MediaError(f"{p}: cannot read audio file ({exc.strerror or exc})") from None
    return _load_cached(str(p.resolve()), stat.st_mtime_ns)


async def fetch_audio(http: httpx.AsyncClient, url: str) -> PCM:
    """Audio from an http(s) URL, a ``file://`` URL or a local path, at 8 kHz mono."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        try:
            response = await http.get(url)
        except httpx.HTTPError as exc:
            raise MediaError(f"{url}: fetch failed ({exc})") from None
        if response.status_code != 200:
            raise MediaError(f"{url}: HTTP {response.status_code}")
        return await asyncio.to_thread(decode_audio, response.content, url)
    path = unquote(parts.path) if parts.scheme == "file" else url
    return await asyncio.to_thread(load_audio_file, path)


def tone_for_text(text: str) -> PCM:
    """A stand-in for speech: a soft two-tone pattern as long as the text would take to say.

    About 150 words per minute, so the call's timing stays plausible without a synthesizer.
    """
    words = max(1, len(text.split()))
    seconds = 0.3 + words * 0.4
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    # A new pitch each "word" keeps it recognisably speech-paced in a recording.
    pitch = np.where((t // 0.4).astype(int) % 2 == 0, 440.0, 554.0)
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.02)
    wave = 0.25 * np.sin(2 * np.pi * pitch * t) * envelope
    return to_int16(wave.astype(np.float32))


class Tts:
    """Text to 8 kHz speech: espeak-ng when available (``mode`` "auto"/"espeak"), else tones.

    Which one is used is logged once, so nobody mistakes the tone for a broken call.
    """

    def __init__(self, mode: str = "auto") -> None:
        self._binary = None if mode == "tone" else shutil.which("espeak-ng")
        if mode == "espeak" and self._binary is None:
            log.warning("emulator: tts = espeak but espeak-ng is not on PATH; using tones")
        self._logged = False

    @property
    def engine(self) -> str:
        """``espeak-ng`` or ``tone``."""
        return "espeak-ng" if self._binary else "tone"

    async def synthesize(self, text: str, voice: str = "WOMAN", language: str = "en-US") -> PCM:
        """Speak ``text``; falls back to a tone of plausible length if espeak-ng fails."""
        if not self._logged:
            self._logged = True
            if self._binary:
                log.info("emulator: <Speak> uses espeak-ng (%s)", self._binary)
            else:
                log.info("emulator: <Speak> plays tones (espeak-ng not on PATH)")
        if self._binary:
            try:
                return await self._espeak(self._binary, text, voice, language)
            except MediaError as exc:
                log.warning("emulator: espeak-ng failed (%s); playing a tone instead", exc)
        return tone_for_text(text)

    async def _espeak(self, binary: str, text: str, voice: str, language: str) -> PCM:
        lang = language.lower()
        variant = "+f3" if voice.upper() == "WOMAN" else "+m3"
        proc = await asyncio.create_subprocess_exec(
            binary, "-v", f"{lang}{variant}", "-s", "160", "--stdout", text,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        if proc.returncode != 0 or not out:
            if lang != "en-us":
                # Unknown language codes should not silence the call: retry in English.
                return await self._espeak(binary, text, voice, "en-US")
            raise MediaError(err.decode("utf-8", "replace").strip() or "no audio produced")
        return await asyncio.to_thread(decode_audio, out, "espeak-ng output")


def silent_frames(pcm: PCM, threshold: float = SILENCE_RMS) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """One bool per 20 ms frame (the last one partial): True where the frame is silent."""
    n = -(-pcm.shape[0] // FRAME)
    padded = np.zeros(n * FRAME, dtype=np.float32)
    padded[: pcm.shape[0]] = pcm
    rms = np.sqrt(np.mean(padded.reshape(n, FRAME) ** 2, axis=1))
    result: np.ndarray[Any, np.dtype[np.bool_]] = rms < threshold
    return result


def end_of_silence_run(quiet: np.ndarray[Any, np.dtype[np.bool_]], need: int) -> int | None:
    """Index just past the first run of ``need`` consecutive True frames, or None."""
    if need <= 0:
        return 0
    run = 0
    for i, q in enumerate(quiet.tolist()):
        run = run + 1 if q else 0
        if run >= need:
            return i + 1
    return None


def write_recording(path: Path, pcm: PCM | np.ndarray[Any, np.dtype[np.int16]], fmt: str) -> str:
    """Write 8 kHz audio (mono, or frames x 2 for stereo) as WAV or MP3; return the format.

    MP3 needs libsndfile 1.1+; without it the file is written as WAV and "wav" returned.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "mp3":
        try:
            sf.write(str(path), pcm, RATE, format="MP3", subtype="MPEG_LAYER_III")
            return "mp3"
        except (sf.LibsndfileError, ValueError, TypeError) as exc:
            log.warning("emulator: cannot write MP3 (%s); writing WAV instead", exc)
            path.unlink(missing_ok=True)
    sf.write(str(path.with_suffix(".wav")), pcm, RATE, format="WAV", subtype="PCM_16")
    return "wav"
