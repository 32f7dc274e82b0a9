"""Codecs and sample math for telephony audio.

Everything here is pure (numpy and soxr, no I/O, no asyncio) because it runs on the per-frame
hot path: about 50 frames per second per call, thousands of calls per process. The codecs are
single table lookups into precomputed numpy arrays, so decoding a 20 ms frame costs one small
allocation for the result and nothing else.

Sample representation: mono ``int16`` numpy arrays in native byte order ("PCM" below).
Wire encodings:

- ``audio/x-mulaw``: ITU-T G.711 μ-law, one byte per sample, 8000 Hz only.
- ``audio/x-alaw``: ITU-T G.711 A-law, one byte per sample, 8000 Hz only (Telnyx ``PCMA``).
- ``audio/x-l16``: signed 16-bit linear PCM, **little-endian** on the wire, 8000, 16000 or
  24000 Hz (24000: Exotel).
- ``audio/x-l16-be``: the same in network byte order (big-endian), as RTP carries L16
  (RFC 3551 §4.5.11): Telnyx ``L16``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import soxr

__all__ = [
    "ALAW_TO_LINEAR",
    "ENCODINGS",
    "ENCODING_ALAW",
    "ENCODING_L16",
    "ENCODING_L16_BE",
    "ENCODING_MULAW",
    "LINEAR_TO_ALAW",
    "LINEAR_TO_ULAW",
    "PCM",
    "SAMPLE_RATES",
    "ULAW_TO_LINEAR",
    "AudioFormat",
    "Framer",
    "Resampler",
    "alaw_decode",
    "alaw_encode",
    "bytes_per_sample",
    "decode",
    "encode",
    "frames",
    "l16_decode",
    "l16_encode",
    "l16be_decode",
    "l16be_encode",
    "resample",
    "samples_per_frame",
    "silence",
    "silence_bytes",
    "to_int16",
    "ulaw_decode",
    "ulaw_encode",
]

#: Mono signed 16-bit samples in native byte order.
PCM: TypeAlias = npt.NDArray[np.int16]

# Same strings as ``streamserver.protocol.events`` and ``.neutral``; repeated (not imported)
# so this module stays free of imports from the rest of the package.
ENCODING_MULAW = "audio/x-mulaw"
ENCODING_ALAW = "audio/x-alaw"
ENCODING_L16 = "audio/x-l16"
ENCODING_L16_BE = "audio/x-l16-be"
ENCODINGS: tuple[str, ...] = (ENCODING_MULAW, ENCODING_L16, ENCODING_ALAW, ENCODING_L16_BE)
#: Sample rates the telephony side speaks (G.711 only at 8000).
SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 24000)
_G711 = frozenset({ENCODING_MULAW, ENCODING_ALAW})

_INT16 = np.dtype(np.int16)
_UINT8 = np.dtype(np.uint8)
_UINT16 = np.dtype(np.uint16)
_L16_WIRE = np.dtype("<i2")
_L16_BE_WIRE = np.dtype(">i2")
_LITTLE_ENDIAN = sys.byteorder == "little"


# --- G.711 μ-law tables ----------------------------------------------------------------------

# Constants of the reference encoder (Sun Microsystems g711.c, 16-bit variant): the magnitude
# is clipped so that magnitude + bias still fits the top segment, then biased so that every
# segment boundary falls on a power of two.
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def _build_ulaw_to_linear() -> PCM:
    """Decode table for all 256 codes (G.711 ulaw2linear)."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF  # codes are transmitted bit-inverted
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    table = np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)
    table.flags.writeable = False
    return table


def _build_linear_to_ulaw() -> npt.NDArray[np.uint8]:
    """Encode table indexed by the sample's 16 bits read as unsigned (G.711 linear2ulaw)."""
    pcm = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), _ULAW_CLIP) + _ULAW_BIAS
    # Segment = index of the first segment end >= magnitude; the clip keeps it below 8.
    seg_end = np.array([(0x100 << s) - 1 for s in range(8)], dtype=np.int32)
    segment = np.searchsorted(seg_end, magnitude, side="left").astype(np.int32)
    mantissa = (magnitude >> (segment + 3)) & 0x0F
    table = (((segment << 4) | mantissa) ^ mask).astype(np.uint8)
    table.flags.writeable = False
    return table


#: int16[256]: μ-law code -> linear sample (exact G.711; 0xFF and 0x7F both decode to 0).
ULAW_TO_LINEAR: PCM = _build_ulaw_to_linear()
#: uint8[65536]: linear sample (as ``pcm.view(np.uint16)``) -> μ-law code.
LINEAR_TO_ULAW: npt.NDArray[np.uint8] = _build_linear_to_ulaw()


# --- G.711 A-law tables ----------------------------------------------------------------------

# G.711 A-law works on 13-bit magnitudes (the 16-bit sample >> 3) in 8 segments; segment 0
# and 1 share one step size, each later segment doubles it. Transmitted codes have their
# even bits inverted (XOR 0x55); the sign bit is 1 for positive values.
_ALAW_XOR = 0x55


def _build_alaw_to_linear() -> PCM:
    """Decode table for all 256 codes (G.711 alaw2linear, scaled to 16 bits)."""
    a = np.arange(256, dtype=np.int32) ^ _ALAW_XOR
    segment = (a >> 4) & 0x07
    mantissa = a & 0x0F
    # The decoder outputs the middle of each quantisation interval: (2m + 1) steps in
    # segment 0, then (2m + 33) steps shifted by the segment, in units of 8 (16-bit scale).
    magnitude = np.where(
        segment == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(segment - 1, 0),
    )
    table = np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)
    table.flags.writeable = False
    return table


def _build_linear_to_alaw() -> npt.NDArray[np.uint8]:
    """Encode table indexed by the sample's 16 bits read as unsigned (G.711 linear2alaw)."""
    pcm = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)
    value = pcm >> 3  # 13-bit
    positive = value >= 0
    mask = np.where(positive, 0xD5, 0x55)  # sign bit set for positive, then even-bit inversion
    magnitude = np.where(positive, value, -value - 1)  # one's complement for negatives
    # Segment = index of the first segment end >= magnitude (0x1F, 0x3F, ... 0xFFF).
    seg_end = np.array([(0x20 << s) - 1 for s in range(8)], dtype=np.int32)
    segment = np.searchsorted(seg_end, magnitude, side="left").astype(np.int32)
    shift = np.where(segment < 2, 1, segment)
    code = (segment << 4) | ((magnitude >> shift) & 0x0F)
    table = (code ^ mask).astype(np.uint8)
    table.flags.writeable = False
    return table


#: int16[256]: A-law code -> linear sample (exact G.711; ±8 is the smallest magnitude).
ALAW_TO_LINEAR: PCM = _build_alaw_to_linear()
#: uint8[65536]: linear sample (as ``pcm.view(np.uint16)``) -> A-law code.
LINEAR_TO_ALAW: npt.NDArray[np.uint8] = _build_linear_to_alaw()

_ulaw_take = ULAW_TO_LINEAR.take
_linear_take = LINEAR_TO_ULAW.take
_alaw_take = ALAW_TO_LINEAR.take
_linear_alaw_take = LINEAR_TO_ALAW.take
_frombuffer = np.frombuffer

BytesLike: TypeAlias = bytes | bytearray | memoryview


def _require_int16(pcm: npt.NDArray[Any], what: str) -> None:
    if pcm.dtype != _INT16:
        raise TypeError(f"{what} expects int16 samples, got {pcm.dtype}; convert with to_int16()")


# --- codecs ----------------------------------------------------------------------------------


def ulaw_decode(data: BytesLike, *, out: PCM | None = None) -> PCM:
    """Decode μ-law bytes to int16 samples (one sample per byte).

    ``out`` (an int16 array of ``len(data)`` samples) receives the result instead of a new
    array, for callers that decode straight into a buffer of their own.
    """
    codes = _frombuffer(data, _UINT8)
    if out is None:
        return _ulaw_take(codes)
    return _ulaw_take(codes, out=out)


def ulaw_encode(pcm: PCM) -> bytes:
    """Encode int16 samples to μ-law bytes (G.711, same codes as the reference encoder)."""
    if pcm.dtype is not _INT16:
        _require_int16(pcm, "ulaw_encode")
    return _linear_take(pcm.view(_UINT16)).tobytes()


def alaw_decode(data: BytesLike, *, out: PCM | None = None) -> PCM:
    """Decode A-law bytes to int16 samples (one sample per byte); ``out`` as in ulaw_decode."""
    codes = _frombuffer(data, _UINT8)
    if out is None:
        return _alaw_take(codes)
    return _alaw_take(codes, out=out)


def alaw_encode(pcm: PCM) -> bytes:
    """Encode int16 samples to A-law bytes (G.711, same codes as the reference encoder)."""
    if pcm.dtype is not _INT16:
        _require_int16(pcm, "alaw_encode")
    return _linear_alaw_take(pcm.view(_UINT16)).tobytes()


def l16_decode(data: BytesLike, *, out: PCM | None = None) -> PCM:
    """Decode little-endian signed 16-bit bytes to int16 samples.

    The result is always a fresh writable array (or ``out``), never a view of ``data``, so
    the caller may keep or modify it while the network buffer is reused.
    Raises ValueError if ``data`` has an odd number of bytes.
    """
    try:
        wire = _frombuffer(data, _L16_WIRE)
    except ValueError:
        raise ValueError(
            f"L16 audio must have an even number of bytes (2 per sample), got {len(data)}"
        ) from None
    if out is not None:
        np.copyto(out, wire)
        return out
    return wire.copy() if _LITTLE_ENDIAN else wire.astype(_INT16)


def l16_encode(pcm: PCM) -> bytes:
    """Encode int16 samples as little-endian signed 16-bit bytes."""
    if pcm.dtype is not _INT16:
        _require_int16(pcm, "l16_encode")
    if _LITTLE_ENDIAN:
        return pcm.tobytes()
    return pcm.astype(_L16_WIRE).tobytes()


def l16be_decode(data: BytesLike, *, out: PCM | None = None) -> PCM:
    """Decode big-endian (network order) signed 16-bit bytes to native int16 samples.

    Like :func:`l16_decode`: a fresh array (or ``out``); ValueError for an odd length.
    """
    try:
        wire = _frombuffer(data, _L16_BE_WIRE)
    except ValueError:
        raise ValueError(
            f"L16 audio must have an even number of bytes (2 per sample), got {len(data)}"
        ) from None
    if out is not None:
        np.copyto(out, wire)
        return out
    return wire.astype(_INT16) if _LITTLE_ENDIAN else wire.copy()


def l16be_encode(pcm: PCM) -> bytes:
    """Encode int16 samples as big-endian (network order) signed 16-bit bytes."""
    if pcm.dtype is not _INT16:
        _require_int16(pcm, "l16be_encode")
    if _LITTLE_ENDIAN:
        return pcm.astype(_L16_BE_WIRE).tobytes()
    return pcm.tobytes()


_DECODERS = {
    ENCODING_MULAW: ulaw_decode,
    ENCODING_L16: l16_decode,
    ENCODING_ALAW: alaw_decode,
    ENCODING_L16_BE: l16be_decode,
}
_ENCODERS = {
    ENCODING_MULAW: ulaw_encode,
    ENCODING_L16: l16_encode,
    ENCODING_ALAW: alaw_encode,
    ENCODING_L16_BE: l16be_encode,
}
_BYTES_PER_SAMPLE = {ENCODING_MULAW: 1, ENCODING_L16: 2, ENCODING_ALAW: 1, ENCODING_L16_BE: 2}


def _unknown_encoding(encoding: str) -> ValueError:
    return ValueError(f"unknown audio encoding {encoding!r}; expected one of {ENCODINGS}")


def decode(data: BytesLike, encoding: str) -> PCM:
    """Decode wire audio in ``encoding`` (one of :data:`ENCODINGS`) to int16."""
    try:
        decoder = _DECODERS[encoding]
    except KeyError:
        raise _unknown_encoding(encoding) from None
    return decoder(data)


def encode(pcm: PCM, encoding: str) -> bytes:
    """Encode int16 samples to wire audio in ``encoding``."""
    try:
        encoder = _ENCODERS[encoding]
    except KeyError:
        raise _unknown_encoding(encoding) from None
    return encoder(pcm)


def bytes_per_sample(encoding: str) -> int:
    """Bytes one sample takes on the wire: 1 for μ-law and A-law, 2 for L16."""
    try:
        return _BYTES_PER_SAMPLE[encoding]
    except KeyError:
        raise _unknown_encoding(encoding) from None


# --- sample math -----------------------------------------------------------------------------


def samples_per_frame(sample_rate: int, frame_ms: int = 20) -> int:
    """Samples in one frame of ``frame_ms`` milliseconds (160 for 20 ms at 8000 Hz)."""
    if sample_rate <= 0 or frame_ms <= 0:
        raise ValueError(f"sample_rate and frame_ms must be positive: {sample_rate}, {frame_ms}")
    n, rem = divmod(sample_rate * frame_ms, 1000)
    if rem:
        raise ValueError(f"{frame_ms} ms at {sample_rate} Hz is not a whole number of samples")
    return n


def silence(n_samples: int) -> PCM:
    """``n_samples`` of digital silence as int16 zeros."""
    return np.zeros(n_samples, dtype=_INT16)


@lru_cache(maxsize=64)
def silence_bytes(encoding: str, n_samples: int) -> bytes:
    """Wire bytes for ``n_samples`` of silence (μ-law 0xFF, A-law 0xD5, L16 zeros); cached,
    it is immutable.

    μ-law has two zero codes (0xFF and 0x7F); 0xFF is what the reference encoder produces
    for 0, so silence we send matches silence we would encode. A-law has no zero: 0xD5 is
    the code for 0 (it decodes to +8, the smallest step).
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if encoding == ENCODING_MULAW:
        return b"\xff" * n_samples
    if encoding == ENCODING_ALAW:
        return b"\xd5" * n_samples
    if encoding in (ENCODING_L16, ENCODING_L16_BE):
        return bytes(2 * n_samples)
    raise _unknown_encoding(encoding)


def to_int16(samples: npt.ArrayLike) -> PCM:
    """Convert user-supplied audio to mono int16 samples, clipping instead of wrapping.

    - float arrays are taken as full scale -1.0..1.0 (as ``soundfile`` reads them) and scaled
      by 32768, so int16 audio read as float converts back exactly; NaN becomes 0.
    - signed integer arrays are taken as int16-scale values and clipped to the int16 range
      (32-bit full-scale audio must be shifted down by 16 bits first).
    - 2-D input is ``(frames, channels)``, the layout ``soundfile`` returns; channels are
      averaged.

    int16 input is returned as is (no copy).
    """
    a = np.asarray(samples)
    if a.ndim == 2:
        if a.shape[1] == 0:
            raise ValueError("audio has no channels")
        if a.shape[1] == 1:
            a = a[:, 0]
        elif a.dtype.kind == "i":
            a = np.rint(a.mean(axis=1)).astype(np.int64)  # keep integer (int16) scale
        else:
            a = a.mean(axis=1)
    elif a.ndim != 1:
        raise ValueError(f"expected 1-D (mono) or 2-D (frames, channels) audio, got {a.ndim}-D")
    if a.dtype == _INT16:
        return a
    kind = a.dtype.kind
    if kind == "f":
        scaled = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0) * 32768.0
        converted: PCM = np.clip(np.rint(scaled), -32768, 32767).astype(np.int16)
        return converted
    if kind == "i":
        clipped: PCM = np.clip(a, -32768, 32767).astype(np.int16)
        return clipped
    raise TypeError(f"cannot convert {a.dtype} audio to int16; pass float or signed integers")


# --- resampling ------------------------------------------------------------------------------

_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


class Resampler:
    """Streaming int16 resampler (soxr) that keeps its filter state across chunks.

    Resampling each 20 ms chunk on its own would restart the filter at every chunk boundary
    and click 50 times a second; one ``Resampler`` per stream avoids that.

    soxr works in internal blocks: at "HQ" and the other filtered qualities the first
    ~100 ms of input yield no output and later output arrives in bursts of ~100 ms. That is
    fine for framing whole clips; for the lowest latency on a live source use ``"QQ"``
    (cubic interpolation, sample-by-sample output, lower quality). With equal rates the
    resampler is an identity and returns its input unchanged.

    The filter runs in float32 and the result is rounded here, not by soxr: soxr's own
    int16 output adds random dither, which would make the same input give different output.
    """

    __slots__ = ("_in_rate", "_out_rate", "_quality", "_stream")

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive: {in_rate} -> {out_rate}")
        if quality not in _QUALITIES:
            raise ValueError(f"unknown resampler quality {quality!r}; expected one of {_QUALITIES}")
        self._in_rate = in_rate
        self._out_rate = out_rate
        self._quality = quality
        self._stream: Any = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
        )

    @property
    def in_rate(self) -> int:
        """Input sample rate in Hz."""
        return self._in_rate

    @property
    def out_rate(self) -> int:
        """Output sample rate in Hz."""
        return self._out_rate

    def process(self, pcm: PCM, last: bool = False) -> PCM:
        """Resample the next chunk; ``last=True`` also drains what the filter still holds.

        After the last chunk the resampler is reset and can start a new stream.
        """
        _require_int16(pcm, "Resampler.process")
        if self._stream is None:
            return pcm
        out = self._stream.resample_chunk(pcm.astype(np.float32), last=last)
        if last:
            self._stream.clear()
        return _round_to_int16(out)

    def flush(self) -> PCM:
        """Remaining samples at the end of the stream (then reset, like ``process(last=True)``)."""
        return self.process(np.zeros(0, dtype=_INT16), last=True)

    def __repr__(self) -> str:
        return f"Resampler({self._in_rate}, {self._out_rate}, quality={self._quality!r})"


def resample(pcm: PCM, in_rate: int, out_rate: int) -> PCM:
    """Resample a whole int16 signal at once ("HQ"); equal rates return the input unchanged."""
    _require_int16(pcm, "resample")
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError(f"sample rates must be positive: {in_rate} -> {out_rate}")
    if in_rate == out_rate:
        return pcm
    return _round_to_int16(soxr.resample(pcm.astype(np.float32), in_rate, out_rate, quality="HQ"))


def _round_to_int16(samples: npt.NDArray[np.float32]) -> PCM:
    """Round and clip in place (the filter may overshoot full scale), then narrow to int16."""
    np.rint(samples, out=samples)
    np.clip(samples, -32768.0, 32767.0, out=samples)
    return samples.astype(np.int16)


# --- framing ---------------------------------------------------------------------------------


class Framer:
    """Cuts a stream of arbitrary-length int16 chunks into frames of exactly ``frame_samples``.

    Frames handed out are never views of the caller's chunks (the caller may reuse its
    buffers), and never change after they are handed out.
    """

    __slots__ = ("_buf", "_fill", "_n")

    def __init__(self, frame_samples: int) -> None:
        if frame_samples <= 0:
            raise ValueError(f"frame_samples must be positive, got {frame_samples}")
        self._n = frame_samples
        self._buf: PCM = np.empty(frame_samples, dtype=_INT16)
        self._fill = 0

    @property
    def frame_samples(self) -> int:
        """Samples per frame."""
        return self._n

    @property
    def pending(self) -> int:
        """Samples held back waiting for the rest of their frame."""
        return self._fill

    def push(self, pcm: PCM) -> list[PCM]:
        """Add samples; return the frames they complete, in order (often none or one)."""
        _require_int16(pcm, "Framer.push")
        n = self._n
        total = pcm.shape[0]
        out: list[PCM] = []
        pos = 0
        if self._fill:
            take = min(n - self._fill, total)
            self._buf[self._fill : self._fill + take] = pcm[:take]
            self._fill += take
            pos = take
            if self._fill < n:
                return out
            out.append(self._buf)
            # The finished buffer now belongs to the caller; start a fresh one.
            self._buf = np.empty(n, dtype=_INT16)
            self._fill = 0
        whole = (total - pos) // n
        if whole == 1:  # the usual case: one 20 ms chunk in, one frame out
            out.append(pcm[pos : pos + n].copy())
            pos += n
        elif whole:
            end = pos + whole * n
            # One copy for all whole frames; the rows are views into that private copy.
            out.extend(pcm[pos:end].reshape(whole, n).copy())
            pos = end
        rest = total - pos
        if rest:
            self._buf[:rest] = pcm[pos:]
            self._fill = rest
        return out

    def flush(self, pad: bool = True) -> PCM | None:
        """Return the held-back samples (zero-padded to a full frame if ``pad``), or None."""
        if not self._fill:
            return None
        fill = self._fill
        self._fill = 0
        if pad:
            frame = self._buf
            frame[fill:] = 0
            self._buf = np.empty(self._n, dtype=_INT16)
            return frame
        return self._buf[:fill].copy()


def frames(pcm: PCM, frame_samples: int, pad: bool = True) -> Iterator[PCM]:
    """Yield ``pcm`` in frames of ``frame_samples``; the last one zero-padded if ``pad``.

    Whole frames are views into ``pcm`` (no copying), so do not modify ``pcm`` while the
    frames are in use. Without ``pad`` the last frame may be short.
    """
    _require_int16(pcm, "frames")
    if frame_samples <= 0:
        raise ValueError(f"frame_samples must be positive, got {frame_samples}")
    total = pcm.shape[0]
    whole_end = total - total % frame_samples
    for start in range(0, whole_end, frame_samples):
        yield pcm[start : start + frame_samples]
    if whole_end < total:
        rest = pcm[whole_end:]
        if pad:
            last = np.zeros(frame_samples, dtype=_INT16)
            last[: rest.shape[0]] = rest
            yield last
        else:
            yield rest


# --- formats ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """A wire audio format: encoding plus sample rate, validated on construction.

    ``content_type`` is the form used in Plivo's ``<Stream contentType="...">`` attribute,
    e.g. ``audio/x-mulaw;rate=8000``.
    """

    encoding: str
    sample_rate: int

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise _unknown_encoding(self.encoding)
        if self.sample_rate not in SAMPLE_RATES:
            raise ValueError(
                f"unsupported sample rate {self.sample_rate!r}; expected one of {SAMPLE_RATES}"
            )
        if self.encoding in _G711 and self.sample_rate != 8000:
            raise ValueError(f"{self.encoding} is only defined at 8000 Hz")

    @classmethod
    def from_content_type(cls, content_type: str) -> AudioFormat:
        """Parse ``audio/x-mulaw;rate=8000`` or ``audio/x-l16;rate=16000`` (or A-law, L16 BE).

        Case and spaces around ``;`` and ``=`` are ignored. The rate may be left out only
        for G.711, which has a single rate. Raises ValueError for anything else.
        """
        if not isinstance(content_type, str):
            raise ValueError(f"content type must be a string, got {type(content_type).__name__}")
        encoding, *params = (part.strip() for part in content_type.lower().split(";"))
        rate: int | None = None
        for param in params:
            key, sep, value = (p.strip() for p in param.partition("="))
            if key != "rate" or not sep:
                raise ValueError(f"unexpected parameter {param!r} in content type {content_type!r}")
            if rate is not None:
                raise ValueError(f"rate given twice in content type {content_type!r}")
            if not value.isdigit() or not value.isascii():
                raise ValueError(f"rate must be a whole number of Hz in {content_type!r}")
            rate = int(value)
        if encoding not in ENCODINGS:
            raise ValueError(
                f"unknown audio encoding {encoding!r} in content type {content_type!r}; "
                f"expected one of {ENCODINGS}"
            )
        if rate is None:
            if encoding not in _G711:
                raise ValueError(f"content type {content_type!r} needs a rate (;rate=8000)")
            rate = 8000
        return cls(encoding, rate)

    @property
    def bytes_per_sample(self) -> int:
        """1 for μ-law and A-law, 2 for L16."""
        return _BYTES_PER_SAMPLE[self.encoding]

    @property
    def content_type(self) -> str:
        """``<encoding>;rate=<sample_rate>``, as in ``<Stream contentType>``."""
        return f"{self.encoding};rate={self.sample_rate}"

    @property
    def frame_samples(self) -> int:
        """Samples in one 20 ms frame."""
        return self.sample_rate // 50

    @property
    def frame_bytes(self) -> int:
        """Wire bytes in one 20 ms frame (160 G.711/8k, 320 L16/8k, 640 L16/16k, 960 L16/24k)."""
        return self.frame_samples * _BYTES_PER_SAMPLE[self.encoding]

    def decode(self, data: BytesLike) -> PCM:
        """Decode wire bytes in this format to int16 samples."""
        return _DECODERS[self.encoding](data)

    def encode(self, pcm: PCM) -> bytes:
        """Encode int16 samples to wire bytes in this format."""
        return _ENCODERS[self.encoding](pcm)

    def __str__(self) -> str:
        return self.content_type
