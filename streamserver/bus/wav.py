"""Audio in commands: a ``play`` command carries a mono 16-bit WAV file."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

__all__ = ["decode_wav", "encode_wav"]


def encode_wav(pcm: np.ndarray, rate: int) -> bytes:
    """Mono 16-bit WAV bytes of ``pcm`` (int16, or float in -1..1)."""
    buf = io.BytesIO()
    data = np.asarray(pcm)
    if data.ndim != 1:
        raise ValueError(f"pcm must be mono (one dimension), got shape {data.shape}")
    sf.write(buf, data, int(rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()


def decode_wav(wav: bytes) -> tuple[np.ndarray, int]:
    """Samples (int16, mono: channels are averaged) and rate of a WAV file's bytes."""
    try:
        data, rate = sf.read(io.BytesIO(wav), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise ValueError(f"not a readable WAV file: {exc}") from None
    if data.shape[1] > 1:
        data = data.mean(axis=1).astype(np.int16)
    else:
        data = data[:, 0]
    return np.ascontiguousarray(data), int(rate)
