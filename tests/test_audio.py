"""Tests for streamserver.audio: G.711 μ-law against independent references, L16 byte order,
streaming resampling, framing and audio formats."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import pytest

from streamserver import audio
from streamserver.audio import (
    ENCODING_L16,
    ENCODING_MULAW,
    LINEAR_TO_ULAW,
    ULAW_TO_LINEAR,
    AudioFormat,
    Framer,
    Resampler,
)

ALL_CODES = bytes(range(256))
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def as_any(value: object) -> Any:
    """Pass a deliberately wrong type past the type checker to test the runtime check."""
    return value


# --- independent μ-law references ------------------------------------------------------------


def ref_ulaw_decode(code: int) -> int:
    """G.711 μ-law decoding by the textbook formula (14-bit magnitude, scaled to 16 bits)."""
    u = ~code & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = ((((mantissa << 1) + 33) << exponent) - 33) << 2
    return -magnitude if sign else magnitude


def ref_ulaw_encode(sample: int) -> int:
    """Bit-by-bit μ-law encoder (bias 0x84, clip 32635), finding the exponent by scanning bits."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, 32635) + 0x84
    exponent = 7
    while exponent > 0 and not magnitude & (1 << (exponent + 7)):
        exponent -= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


# --- μ-law -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "linear"),
    [
        (0xFF, 0),
        (0x7F, 0),
        (0x00, -32124),
        (0x80, 32124),
        (0x01, -31100),
        (0x81, 31100),
        (0x8F, 16764),
        (0x0F, -16764),
        (0xCE, 988),
        (0xEF, 132),
        (0xF0, 120),
        (0xFE, 8),
        (0x7E, -8),
    ],
)
def test_ulaw_decode_known_values(code: int, linear: int) -> None:
    assert ULAW_TO_LINEAR[code] == linear
    assert audio.ulaw_decode(bytes([code]))[0] == linear


@pytest.mark.parametrize(
    ("linear", "code"),
    [
        (0, 0xFF),
        (1, 0xFF),
        (-1, 0x7F),
        (8, 0xFE),
        (-8, 0x7E),
        (1000, 0xCE),
        (-1000, 0x4E),
        (32124, 0x80),
        (32767, 0x80),
        (-32124, 0x00),
        (-32768, 0x00),
    ],
)
def test_ulaw_encode_known_values(linear: int, code: int) -> None:
    assert audio.ulaw_encode(np.array([linear], dtype=np.int16)) == bytes([code])


def test_ulaw_tables_shape_and_dtype() -> None:
    assert ULAW_TO_LINEAR.shape == (256,) and ULAW_TO_LINEAR.dtype == np.int16
    assert LINEAR_TO_ULAW.shape == (65536,) and LINEAR_TO_ULAW.dtype == np.uint8
    # Shared process-wide: a stray in-place write must fail loudly.
    with pytest.raises(ValueError):
        ULAW_TO_LINEAR[0] = 1


def test_ulaw_decode_all_codes_match_formula() -> None:
    expected = np.array([ref_ulaw_decode(c) for c in range(256)], dtype=np.int16)
    np.testing.assert_array_equal(audio.ulaw_decode(ALL_CODES), expected)


def test_ulaw_encode_all_int16_match_bitwise_reference() -> None:
    expected = bytes(ref_ulaw_encode(int(s)) for s in ALL_INT16)
    assert audio.ulaw_encode(ALL_INT16) == expected


def test_ulaw_round_trip_is_stable() -> None:
    decoded = audio.ulaw_decode(ALL_CODES)
    np.testing.assert_array_equal(audio.ulaw_decode(audio.ulaw_encode(decoded)), decoded)
    # Every code re-encodes to itself except the second zero, 0x7F, which becomes 0xFF.
    reencoded = audio.ulaw_encode(decoded)
    assert [c for c in range(256) if reencoded[c] != c] == [0x7F]
    assert reencoded[0x7F] == 0xFF


def test_ulaw_encode_is_monotonic() -> None:
    # Larger samples never map to a smaller decoded value.
    decoded = audio.ulaw_decode(audio.ulaw_encode(ALL_INT16)).astype(np.int32)
    assert np.all(np.diff(decoded) >= 0)


def test_ulaw_matches_stdlib_audioop_where_defined_alike() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    decoded = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype=np.int16)
    np.testing.assert_array_equal(audio.ulaw_decode(ALL_CODES), decoded)
    # audioop encodes from 14 bits (x >> 2, rounding negatives down); on non-negative samples
    # and on multiples of 4 it must agree with the 16-bit reference encoder exactly.
    samples = ALL_INT16[(ALL_INT16 >= 0) | (ALL_INT16 % 4 == 0)]
    assert audio.ulaw_encode(samples) == audioop.lin2ulaw(samples.tobytes(), 2)


def test_ulaw_accepts_bytes_like_and_out() -> None:
    data = bytes([0x00, 0x80, 0xFF])
    expected = [-32124, 32124, 0]
    assert audio.ulaw_decode(bytearray(data)).tolist() == expected
    assert audio.ulaw_decode(memoryview(data)).tolist() == expected
    out = np.full(3, 7, dtype=np.int16)
    assert audio.ulaw_decode(data, out=out) is out
    assert out.tolist() == expected


def test_ulaw_encode_handles_strided_input_and_rejects_other_dtypes() -> None:
    pcm = np.array([0, 999, 32767, 999, -32768, 999], dtype=np.int16)
    assert audio.ulaw_encode(pcm[::2]) == bytes([0xFF, 0x80, 0x00])
    with pytest.raises(TypeError, match="int16"):
        audio.ulaw_encode(as_any(np.zeros(4, dtype=np.float32)))


def test_ulaw_empty() -> None:
    assert audio.ulaw_decode(b"").shape == (0,)
    assert audio.ulaw_encode(np.zeros(0, dtype=np.int16)) == b""


# --- L16 -------------------------------------------------------------------------------------


def test_l16_byte_order_is_little_endian() -> None:
    assert audio.l16_decode(b"\x01\x00").tolist() == [1]
    assert audio.l16_decode(b"\x00\x01").tolist() == [256]
    assert audio.l16_decode(b"\xff\xff").tolist() == [-1]
    assert audio.l16_decode(b"\x00\x80").tolist() == [-32768]
    assert audio.l16_decode(b"\xff\x7f\x18\xfc").tolist() == [32767, -1000]
    assert audio.l16_encode(np.array([1, 256, -1, -32768], dtype=np.int16)) == (
        b"\x01\x00\x00\x01\xff\xff\x00\x80"
    )


def test_l16_round_trip_all_values() -> None:
    data = audio.l16_encode(ALL_INT16)
    assert len(data) == 2 * 65536
    np.testing.assert_array_equal(audio.l16_decode(data), ALL_INT16)


def test_l16_odd_length_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"even number of bytes.*got 3"):
        audio.l16_decode(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="even number of bytes"):
        audio.decode(b"\x00", ENCODING_L16)


def test_l16_decode_returns_a_private_writable_array() -> None:
    buf = bytearray(b"\x01\x00\x02\x00")
    pcm = audio.l16_decode(buf)
    buf[0] = 9  # the network buffer gets reused
    assert pcm.tolist() == [1, 2]
    pcm[0] = 5  # and the caller may modify what it got
    assert audio.l16_decode(b"\x01\x00").flags.writeable
    out = np.zeros(2, dtype=np.int16)
    assert audio.l16_decode(b"\x03\x00\x04\x00", out=out) is out
    assert out.tolist() == [3, 4]


def test_l16_encode_strided_and_wrong_dtype() -> None:
    pcm = np.array([1, 0, 2, 0], dtype=np.int16)
    assert audio.l16_encode(pcm[::2]) == b"\x01\x00\x02\x00"
    with pytest.raises(TypeError, match="int16"):
        audio.l16_encode(as_any(np.zeros(2, dtype=np.int32)))


# --- dispatch, sizes, silence ----------------------------------------------------------------


def test_decode_encode_dispatch() -> None:
    pcm = np.array([0, 1000, -1000], dtype=np.int16)
    assert audio.encode(pcm, ENCODING_L16) == audio.l16_encode(pcm)
    assert audio.encode(pcm, ENCODING_MULAW) == audio.ulaw_encode(pcm)
    assert audio.decode(b"\xff\x80", ENCODING_MULAW).tolist() == [0, 32124]
    assert audio.decode(b"\x01\x00", ENCODING_L16).tolist() == [1]
    for bad in ("audio/wav", "audio/x-mulaw;rate=8000", ""):
        with pytest.raises(ValueError, match="unknown audio encoding"):
            audio.decode(b"", bad)
        with pytest.raises(ValueError, match="unknown audio encoding"):
            audio.encode(pcm, bad)
        with pytest.raises(ValueError, match="unknown audio encoding"):
            audio.bytes_per_sample(bad)


def test_encoding_strings_match_protocol() -> None:
    from streamserver.protocol import events

    assert events.ENCODING_MULAW == ENCODING_MULAW
    assert events.ENCODING_L16 == ENCODING_L16


def test_bytes_per_sample_and_samples_per_frame() -> None:
    assert audio.bytes_per_sample(ENCODING_MULAW) == 1
    assert audio.bytes_per_sample(ENCODING_L16) == 2
    assert audio.samples_per_frame(8000) == 160
    assert audio.samples_per_frame(16000) == 320
    assert audio.samples_per_frame(8000, 10) == 80
    assert audio.samples_per_frame(44100, 20) == 882
    with pytest.raises(ValueError, match="whole number"):
        audio.samples_per_frame(44100, 1)
    with pytest.raises(ValueError, match="positive"):
        audio.samples_per_frame(0)


def test_silence() -> None:
    s = audio.silence(160)
    assert s.dtype == np.int16 and s.shape == (160,) and not s.any()
    mulaw = audio.silence_bytes(ENCODING_MULAW, 160)
    l16 = audio.silence_bytes(ENCODING_L16, 160)
    assert mulaw == b"\xff" * 160
    assert l16 == bytes(320)
    assert not audio.decode(mulaw, ENCODING_MULAW).any()
    assert not audio.decode(l16, ENCODING_L16).any()
    assert audio.decode(l16, ENCODING_L16).shape == (160,)
    assert audio.silence_bytes(ENCODING_MULAW, 0) == b""
    with pytest.raises(ValueError, match="unknown audio encoding"):
        audio.silence_bytes("audio/wav", 10)
    with pytest.raises(ValueError):
        audio.silence_bytes(ENCODING_L16, -1)


# --- to_int16 --------------------------------------------------------------------------------


def test_to_int16_float_scaling_and_clipping() -> None:
    got = audio.to_int16(np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, np.nan, np.inf]))
    assert got.dtype == np.int16
    assert got.tolist() == [0, 16384, -16384, 32767, -32768, 32767, -32768, 0, 32767]
    # int16 audio read as float (x / 32768, as soundfile does) converts back exactly.
    np.testing.assert_array_equal(audio.to_int16(ALL_INT16 / 32768.0), ALL_INT16)
    assert audio.to_int16(np.array([0.25], dtype=np.float32)).tolist() == [8192]


def test_to_int16_integers() -> None:
    pcm = np.array([1, -2], dtype=np.int16)
    assert audio.to_int16(pcm) is pcm
    got = audio.to_int16(np.array([40000, -40000, 123], dtype=np.int32))
    assert got.dtype == np.int16 and got.tolist() == [32767, -32768, 123]
    assert audio.to_int16([100, -100]).tolist() == [100, -100]


def test_to_int16_mixes_channels_down() -> None:
    stereo = np.array([[0.5, -0.5], [0.5, 0.0]])
    assert audio.to_int16(stereo).tolist() == [0, 8192]
    assert audio.to_int16(np.array([[1000, 3000]], dtype=np.int16)).tolist() == [2000]
    assert audio.to_int16(np.array([[7], [8]], dtype=np.int16)).tolist() == [7, 8]


def test_to_int16_rejects_unusable_input() -> None:
    with pytest.raises(TypeError):
        audio.to_int16(np.array([1, 2], dtype=np.uint8))
    with pytest.raises(TypeError):
        audio.to_int16(np.array(["a"]))
    with pytest.raises(ValueError, match="1-D"):
        audio.to_int16(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="no channels"):
        audio.to_int16(np.zeros((4, 0)))


# --- resampling ------------------------------------------------------------------------------


def sine(rate: int, seconds: float, freq: float = 440.0, amplitude: float = 12000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def stream_resample(
    pcm: np.ndarray, in_rate: int, out_rate: int, chunk: int
) -> tuple[np.ndarray, list[int]]:
    """Resample in chunks; also return where each output chunk starts (chunk boundaries)."""
    r = Resampler(in_rate, out_rate)
    parts = [r.process(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]
    parts.append(r.flush())
    starts = np.cumsum([0] + [len(p) for p in parts])[1:-1].tolist()
    return np.concatenate(parts), starts


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000), (24000, 8000)])
def test_streaming_resample_matches_one_shot(in_rate: int, out_rate: int) -> None:
    freq, amplitude = 440.0, 12000.0
    pcm = sine(in_rate, 1.0, freq, amplitude)
    streamed, boundaries = stream_resample(pcm, in_rate, out_rate, in_rate // 50)  # 20 ms
    one_shot = audio.resample(pcm, in_rate, out_rate)
    assert streamed.dtype == np.int16 and one_shot.dtype == np.int16
    assert len(streamed) == len(one_shot) == len(pcm) * out_rate // in_rate
    assert np.abs(streamed.astype(np.int32) - one_shot).max() <= 1

    # No clicks: a sine's sample-to-sample step is at most A * 2π f / fs; allow 10 % slack.
    # The first and last 10 ms are left out: the filter rings where the sine starts and ends.
    jumps = np.abs(np.diff(streamed.astype(np.int32)))
    max_step = amplitude * 2 * math.pi * freq / out_rate * 1.1 + 2
    edge = out_rate // 100
    assert jumps[edge:-edge].max() <= max_step
    inner = [b for b in boundaries if edge < b < len(streamed) - edge]
    assert inner, "output never crossed a chunk boundary"
    assert max(jumps[b - 1] for b in inner) <= max_step

    # Sample-accurate timeline: the output is the same sine at the new rate, no delay.
    expected = sine(out_rate, 1.0, freq, amplitude).astype(np.int32)
    middle = slice(out_rate // 10, -out_rate // 10)
    assert np.abs(streamed[middle] - expected[middle]).max() <= amplitude * 0.01


def test_resampler_is_reusable_after_flush() -> None:
    pcm = sine(8000, 0.2)
    first, _ = stream_resample(pcm, 8000, 16000, 160)
    r = Resampler(8000, 16000)
    for _ in range(2):
        parts = [r.process(pcm[i : i + 160]) for i in range(0, len(pcm), 160)]
        parts.append(r.flush())
        np.testing.assert_array_equal(np.concatenate(parts), first)


def test_resampler_last_chunk_flag_equals_flush() -> None:
    pcm = sine(8000, 0.1)
    r = Resampler(8000, 16000)
    out = np.concatenate([r.process(pcm[:400]), r.process(pcm[400:], last=True)])
    assert len(out) == 2 * len(pcm)


def test_resampler_identity_and_validation() -> None:
    pcm = sine(8000, 0.02)
    r = Resampler(8000, 8000)
    assert r.process(pcm) is pcm
    assert r.flush().shape == (0,)
    assert audio.resample(pcm, 16000, 16000) is pcm
    assert (r.in_rate, r.out_rate) == (8000, 8000)
    with pytest.raises(ValueError, match="quality"):
        Resampler(8000, 16000, quality="best")
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 16000)
    with pytest.raises(TypeError, match="int16"):
        Resampler(8000, 16000).process(as_any(np.zeros(10, dtype=np.float32)))


def test_resampler_low_latency_quality_outputs_every_chunk() -> None:
    r = Resampler(8000, 16000, quality="QQ")
    pcm = sine(8000, 0.1)
    sizes = [len(r.process(pcm[i : i + 160])) for i in range(0, len(pcm), 160)]
    assert all(s > 0 for s in sizes)


# --- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_framer_random_chunks_reproduce_input(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = int(rng.choice([160, 320, 7]))
    pcm = rng.integers(-32768, 32768, size=int(rng.integers(0, 20_000)), dtype=np.int16)
    framer = Framer(frame)
    out: list[np.ndarray] = []
    pos = 0
    while pos < len(pcm):
        n = int(rng.integers(0, 3 * frame))
        chunk = pcm[pos : pos + n].copy()
        out.extend(framer.push(chunk))
        chunk[:] = 12345  # the caller reuses its buffer; frames handed out must not change
        pos += n
        assert framer.pending == pos % frame or pos > len(pcm)
    assert all(f.shape == (frame,) and f.dtype == np.int16 for f in out)
    rest = len(pcm) % frame
    assert framer.pending == rest
    tail = framer.flush(pad=False)
    assert framer.pending == 0
    got = np.concatenate([*out, tail]) if tail is not None else np.concatenate([*out, pcm[:0]])
    np.testing.assert_array_equal(got, pcm)
    assert (tail is None) == (rest == 0)


def test_framer_flush_pads_with_zeros() -> None:
    framer = Framer(4)
    assert framer.flush() is None
    assert [f.tolist() for f in framer.push(np.arange(1, 7, dtype=np.int16))] == [[1, 2, 3, 4]]
    assert framer.pending == 2
    padded = framer.flush()
    assert padded is not None and padded.tolist() == [5, 6, 0, 0]
    assert framer.pending == 0 and framer.flush() is None
    # The flushed frame stays as it was while the framer goes on.
    framer.push(np.array([9, 9, 9], dtype=np.int16))
    assert padded.tolist() == [5, 6, 0, 0]


def test_framer_frames_are_independent() -> None:
    framer = Framer(2)
    a = framer.push(np.array([1], dtype=np.int16))
    b = framer.push(np.array([2, 3], dtype=np.int16))
    c = framer.push(np.array([4, 5, 6], dtype=np.int16))
    assert a == []
    assert [f.tolist() for f in b] == [[1, 2]]
    assert [f.tolist() for f in c] == [[3, 4], [5, 6]]
    assert b[0].tolist() == [1, 2]
    assert framer.push(np.zeros(0, dtype=np.int16)) == []


def test_framer_validation() -> None:
    with pytest.raises(ValueError):
        Framer(0)
    with pytest.raises(TypeError, match="int16"):
        Framer(160).push(as_any(np.zeros(3, dtype=np.float64)))
    assert Framer(160).frame_samples == 160


def test_frames_one_shot() -> None:
    pcm = np.arange(10, dtype=np.int16)
    assert [f.tolist() for f in audio.frames(pcm, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 0]]
    assert [f.tolist() for f in audio.frames(pcm, 4, pad=False)][-1] == [8, 9]
    assert len(list(audio.frames(pcm, 5))) == 2
    assert list(audio.frames(pcm[:0], 5)) == []
    with pytest.raises(ValueError):
        list(audio.frames(pcm, 0))


# --- AudioFormat -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "rate", "frame_samples", "frame_bytes"),
    [
        ("audio/x-mulaw;rate=8000", ENCODING_MULAW, 8000, 160, 160),
        ("audio/x-l16;rate=8000", ENCODING_L16, 8000, 160, 320),
        ("audio/x-l16;rate=16000", ENCODING_L16, 16000, 320, 640),
        ("Audio/X-L16 ; Rate = 16000", ENCODING_L16, 16000, 320, 640),
        ("audio/x-mulaw", ENCODING_MULAW, 8000, 160, 160),
    ],
)
def test_audio_format_parse(
    text: str, encoding: str, rate: int, frame_samples: int, frame_bytes: int
) -> None:
    fmt = AudioFormat.from_content_type(text)
    assert fmt == AudioFormat(encoding, rate)
    assert fmt.frame_samples == frame_samples
    assert fmt.frame_bytes == frame_bytes
    assert fmt.bytes_per_sample == frame_bytes // frame_samples
    assert fmt.content_type == f"{encoding};rate={rate}"
    assert AudioFormat.from_content_type(fmt.content_type) == fmt
    assert str(fmt) == fmt.content_type


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("audio/x-mulaw;rate=16000", "only defined at 8000"),
        ("audio/x-l16", "needs a rate"),
        ("audio/x-l16;rate=44100", "unsupported sample rate"),
        ("audio/x-l16;rate=", "whole number"),
        ("audio/x-l16;rate=abc", "whole number"),
        ("audio/x-l16;rate=-8000", "whole number"),
        ("audio/x-l16;rate=8000;rate=8000", "twice"),
        ("audio/x-l16;channels=1", "unexpected parameter"),
        ("audio/x-l16;rate", "unexpected parameter"),
        ("audio/wav;rate=8000", "unknown audio encoding"),
        ("", "unknown audio encoding"),
    ],
)
def test_audio_format_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AudioFormat.from_content_type(text)


def test_audio_format_validates_and_is_frozen() -> None:
    with pytest.raises(ValueError, match="only defined at 8000"):
        AudioFormat(ENCODING_MULAW, 16000)
    with pytest.raises(ValueError, match="unknown audio encoding"):
        AudioFormat("audio/wav", 8000)
    with pytest.raises(ValueError):
        AudioFormat.from_content_type(None)  # type: ignore[arg-type]
    fmt = AudioFormat(ENCODING_L16, 16000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fmt.sample_rate = 8000  # type: ignore[misc]
    assert {fmt, AudioFormat(ENCODING_L16, 16000)} == {fmt}


def test_audio_format_codec_shortcuts() -> None:
    pcm = np.array([0, 1000, -1000, 32767], dtype=np.int16)
    for fmt in (AudioFormat(ENCODING_MULAW, 8000), AudioFormat(ENCODING_L16, 16000)):
        data = fmt.encode(pcm)
        assert data == audio.encode(pcm, fmt.encoding)
        assert len(data) == len(pcm) * fmt.bytes_per_sample
        np.testing.assert_array_equal(fmt.decode(data), audio.decode(data, fmt.encoding))


# --- G.711 A-law -----------------------------------------------------------------------------

_ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def ref_alaw_encode(sample: int) -> int:
    """Scalar G.711 A-law encoder, step by step as the standard describes it (13-bit input)."""
    value = sample >> 3
    if value >= 0:
        mask = 0xD5  # sign bit 1 for positive values, then the even bits inverted
    else:
        mask = 0x55
        value = -value - 1
    segment = next((i for i, end in enumerate(_ALAW_SEGMENT_ENDS) if value <= end), 8)
    if segment == 8:
        return 0x7F ^ mask
    step = value >> 1 if segment < 2 else value >> segment
    return ((segment << 4) | (step & 0x0F)) ^ mask


def ref_alaw_decode(code: int) -> int:
    """Scalar G.711 A-law decoder: the middle of the code's quantisation interval."""
    a = code ^ 0x55
    segment = (a >> 4) & 0x07
    value = ((a & 0x0F) << 4) + (8 if segment == 0 else 0x108)
    if segment > 1:
        value <<= segment - 1
    return value if a & 0x80 else -value


@pytest.mark.parametrize(
    ("code", "linear"),
    [
        # G.711 Table 1 (scaled to 16 bits): the smallest positive/negative levels, the
        # first level of each segment 1..7 (code = segment << 4, even bits inverted) and
        # full scale.
        (0xD5, 8),
        (0x55, -8),
        (0xD4, 24),
        (0xC5, 264),
        (0xF5, 528),
        (0xE5, 1056),
        (0x95, 2112),
        (0x85, 4224),
        (0xB5, 8448),
        (0xA5, 16896),
        (0x25, -16896),
        (0xAA, 32256),
        (0x2A, -32256),
    ],
)
def test_alaw_decode_known_values(code: int, linear: int) -> None:
    assert audio.ALAW_TO_LINEAR[code] == linear
    assert audio.alaw_decode(bytes([code]))[0] == linear


@pytest.mark.parametrize(
    ("linear", "code"),
    [(0, 0xD5), (-1, 0x55), (7, 0xD5), (-8, 0x55), (32767, 0xAA), (-32768, 0x2A), (4224, 0x85)],
)
def test_alaw_encode_known_values(linear: int, code: int) -> None:
    assert audio.alaw_encode(np.array([linear], dtype=np.int16)) == bytes([code])


def test_alaw_tables_match_the_scalar_reference_everywhere() -> None:
    assert audio.ALAW_TO_LINEAR.shape == (256,) and audio.ALAW_TO_LINEAR.dtype == np.int16
    assert audio.LINEAR_TO_ALAW.shape == (65536,) and audio.LINEAR_TO_ALAW.dtype == np.uint8
    assert not audio.ALAW_TO_LINEAR.flags.writeable
    assert audio.ALAW_TO_LINEAR.tolist() == [ref_alaw_decode(c) for c in range(256)]
    expected = bytes(ref_alaw_encode(int(v)) for v in ALL_INT16)
    assert audio.alaw_encode(ALL_INT16) == expected


def test_alaw_all_256_codes_round_trip() -> None:
    # A-law has no duplicate code (no "negative zero"), so every code survives decode+encode.
    assert audio.alaw_encode(audio.alaw_decode(ALL_CODES)) == ALL_CODES
    assert len(set(audio.ALAW_TO_LINEAR.tolist())) == 256


def test_alaw_encode_is_monotonic_and_error_bounded() -> None:
    decoded = audio.alaw_decode(audio.alaw_encode(ALL_INT16)).astype(np.int32)
    assert (np.diff(decoded) >= 0).all()
    # The error is at most half a step of the segment the sample falls in (4096 at the top).
    assert np.abs(decoded - ALL_INT16.astype(np.int32)).max() <= 512


def test_alaw_matches_stdlib_audioop_where_available() -> None:
    audioop = pytest.importorskip("audioop")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert audio.alaw_encode(ALL_INT16) == audioop.lin2alaw(ALL_INT16.tobytes(), 2)
        ours = audio.alaw_decode(ALL_CODES).tobytes()
        assert ours == audioop.alaw2lin(ALL_CODES, 2)


def test_alaw_out_dispatch_silence_and_format() -> None:
    out = np.empty(4, dtype=np.int16)
    assert audio.alaw_decode(memoryview(b"\xd5\x55\xaa\x2a"), out=out) is out
    assert out.tolist() == [8, -8, 32256, -32256]
    pcm = np.array([0, 1000, -1000, 32767], dtype=np.int16)
    assert audio.encode(pcm, audio.ENCODING_ALAW) == audio.alaw_encode(pcm)
    np.testing.assert_array_equal(
        audio.decode(b"\xd5\x55", audio.ENCODING_ALAW), audio.alaw_decode(b"\xd5\x55")
    )
    assert audio.bytes_per_sample(audio.ENCODING_ALAW) == 1
    assert audio.silence_bytes(audio.ENCODING_ALAW, 3) == b"\xd5\xd5\xd5"
    assert audio.alaw_encode(audio.silence(3)) == b"\xd5\xd5\xd5"
    fmt = AudioFormat.from_content_type("audio/x-alaw")
    assert fmt == AudioFormat(audio.ENCODING_ALAW, 8000)
    assert fmt.frame_bytes == 160
    assert fmt.decode(fmt.encode(pcm)).tolist() == audio.alaw_decode(fmt.encode(pcm)).tolist()
    with pytest.raises(ValueError, match="only defined at 8000"):
        AudioFormat(audio.ENCODING_ALAW, 16000)
    with pytest.raises(TypeError, match="int16"):
        audio.alaw_encode(np.zeros(3, dtype=np.float32))  # type: ignore[arg-type]


# --- L16 big-endian and 24 kHz -------------------------------------------------------------


def test_l16be_byte_order_and_round_trip() -> None:
    pcm = np.array([1, -2, 0x0102, -32768, 32767], dtype=np.int16)
    wire = audio.l16be_encode(pcm)
    assert wire == bytes.fromhex("0001fffe010280007fff")
    assert wire == audio.l16_encode(pcm.byteswap())
    np.testing.assert_array_equal(audio.l16be_decode(wire), pcm)
    assert audio.l16be_decode(audio.l16be_encode(ALL_INT16)).tolist() == ALL_INT16.tolist()
    decoded = audio.l16be_decode(wire)
    assert decoded.dtype == np.int16 and decoded.flags.writeable
    out = np.empty(5, dtype=np.int16)
    assert audio.l16be_decode(wire, out=out) is out and out.tolist() == pcm.tolist()
    with pytest.raises(ValueError, match="even number"):
        audio.l16be_decode(b"\x00")
    assert audio.decode(wire, audio.ENCODING_L16_BE).tolist() == pcm.tolist()
    assert audio.silence_bytes(audio.ENCODING_L16_BE, 2) == bytes(4)
    fmt = AudioFormat.from_content_type("audio/x-l16-be;rate=16000")
    assert fmt.encode(pcm) == wire and fmt.frame_bytes == 640


def test_l16_at_24000_hz() -> None:
    fmt = AudioFormat.from_content_type("audio/x-l16;rate=24000")
    assert fmt.frame_samples == 480 and fmt.frame_bytes == 960


def test_new_encoding_strings_match_protocol() -> None:
    from streamserver.protocol import neutral

    assert neutral.ENCODING_ALAW == audio.ENCODING_ALAW
    assert neutral.ENCODING_L16_BE == audio.ENCODING_L16_BE
