"""The voice-activity segmenter on its own: pure computation, no event loop."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from handlers.transcribe.vad import (
    Segmenter,
    SpeechAudio,
    SpeechEnd,
    SpeechStart,
    Utterance,
    VadEvent,
    VadOptions,
)
from streamserver import audio

DATA = Path(__file__).resolve().parents[1] / "data"
RATE = 8000
# Where the speech is in tests/data/digits_8k.wav (seconds; peaks above -36 dBFS).
GROUPS = ((0.65, 1.63), (2.76, 3.71), (4.89, 6.53))


def speech() -> np.ndarray:
    pcm, rate = sf.read(str(DATA / "digits_8k.wav"), dtype="int16")
    assert rate == RATE
    return pcm


def run(seg: Segmenter, pcm: np.ndarray, step: int = 160, start: int = 0) -> list[VadEvent]:
    events: list[VadEvent] = []
    for i in range(0, len(pcm), step):
        events += seg.push(pcm[i : i + step], start + i)
    events += seg.flush()
    return events


def of(events: list[VadEvent], kind: type) -> list:
    return [e for e in events if type(e) is kind]


def test_three_digit_groups_are_three_utterances() -> None:
    pcm = speech()
    events = run(Segmenter(RATE), pcm)
    utts = of(events, Utterance)
    starts = of(events, SpeechStart)
    assert len(utts) == 3 and len(starts) == 3
    for u, s, (a, b) in zip(utts, starts, GROUPS, strict=True):
        # the pre-roll keeps the onset; the end is padded but stops well before the next group
        assert a - 0.3 <= u.start_s <= a
        assert b - 0.1 <= u.end_s <= b + 0.35
        assert np.array_equal(u.samples, pcm[u.start_sample : u.end_sample])
        # detection needs about start_ms of speech, no more
        assert 0.05 <= (s.detected_at - s.position) / RATE <= 0.15
        assert abs(s.position / RATE - a) < 0.15
        assert s.start == u.start_sample
    assert [u.index for u in utts] == [0, 1, 2]
    assert [e.kept for e in of(events, SpeechEnd)] == [True, True, True]


def test_frame_size_and_chunking_do_not_matter_much() -> None:
    pcm = speech()
    for frame_ms, step in ((10, 37), (30, 1000), (20, 8000)):
        utts = of(run(Segmenter(RATE, VadOptions(frame_ms=frame_ms)), pcm, step), Utterance)
        assert len(utts) == 3, (frame_ms, step)
        for u, (a, _) in zip(utts, GROUPS, strict=True):
            assert abs(u.start_s - (a - 0.2)) < 0.2


def test_16k_audio() -> None:
    pcm = audio.resample(speech(), RATE, 16000)
    utts = of(run(Segmenter(16000), pcm, 320), Utterance)
    assert len(utts) == 3
    assert utts[0].sample_rate == 16000


def test_silence_and_faint_noise_are_not_speech() -> None:
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 40, RATE * 3).astype(np.int16)  # about -58 dBFS
    seg = Segmenter(RATE, VadOptions(aggressiveness=0))
    assert run(seg, noise) == []
    assert run(Segmenter(RATE), np.zeros(RATE * 2, dtype=np.int16)) == []


def test_short_blip_is_dropped_as_noise() -> None:
    pcm = speech()
    a = int(GROUPS[0][0] * RATE)
    blip = np.zeros(RATE * 2, dtype=np.int16)
    blip[RATE // 2 : RATE // 2 + 1200] = pcm[a : a + 1200]  # 150 ms of speech
    events = run(Segmenter(RATE, VadOptions(min_utterance_ms=300)), blip)
    assert of(events, Utterance) == []
    assert [e.kept for e in of(events, SpeechEnd)] == [False]


def test_long_speech_is_cut_at_max_utterance() -> None:
    pcm = speech()
    a, b = (int(x * RATE) for x in GROUPS[2])
    events = run(
        Segmenter(RATE, VadOptions(max_utterance_ms=800, min_utterance_ms=100)),
        pcm[a - 800 : b + 4000],
    )
    utts = of(events, Utterance)
    assert len(utts) >= 3
    assert utts[0].cut and utts[0].duration_s == pytest.approx(0.8, abs=0.03)
    # the pieces are contiguous
    for x, y in itertools.pairwise(utts):
        if x.cut:
            assert y.start_sample == x.end_sample


def test_gaps_in_positions() -> None:
    pcm = speech()
    seg = Segmenter(RATE)
    events: list[VadEvent] = []
    # a 40 ms hole inside speech: filled with silence, positions stay true
    cut = int(1.0 * RATE)
    events += seg.push(pcm[:cut], 0)
    events += seg.push(pcm[cut + 320 :], cut + 320)
    events += seg.flush()
    utts = of(events, Utterance)
    assert len(utts) == 3
    assert utts[-1].end_sample <= len(pcm)
    # a long gap ends the utterance in progress and jumps ahead
    seg = Segmenter(RATE)
    events = seg.push(pcm[: int(1.2 * RATE)], 0)
    events += seg.push(pcm[: int(1.2 * RATE)], 100 * RATE)
    events += seg.flush()
    utts = of(events, Utterance)
    assert len(utts) == 2
    assert utts[1].start_sample >= 100 * RATE


def test_detection_only_keeps_no_audio_and_streaming_audio_is_complete() -> None:
    pcm = speech()
    events = run(Segmenter(RATE, keep_audio=False), pcm)
    assert len(of(events, SpeechStart)) == 3 and of(events, Utterance) == []
    events = run(Segmenter(RATE, emit_audio=True), pcm, 480)
    # SpeechStart's pre-roll plus the SpeechAudio events rebuild each utterance exactly
    utts = of(events, Utterance)
    for u in utts:
        got = []
        for e in events:
            if type(e) is SpeechStart and e.start == u.start_sample:
                got = [e.samples]
            elif type(e) is SpeechAudio and got and e.position < u.end_sample:
                got.append(e.samples)
        joined = np.concatenate(got)
        assert np.array_equal(joined[: len(u.samples)], u.samples)


def test_one_frame_pushes_and_odd_chunks_give_the_same_events() -> None:
    # One analysis frame per push takes a shortcut; odd chunks go the general way.
    pcm = speech()

    def marks(events: list[VadEvent]) -> list[tuple[object, ...]]:
        out: list[tuple[object, ...]] = []
        for e in events:
            if type(e) is SpeechStart:
                out.append(("start", e.position, e.detected_at, e.start))
            elif type(e) is SpeechEnd:
                out.append(("end", e.start, e.end, e.kept))
        return out

    framed = run(Segmenter(RATE), pcm, 160)
    assert marks(framed) == marks(run(Segmenter(RATE), pcm, 97))
    # Detection only (barge-in) decides exactly as the segmenter that keeps the audio.
    assert marks(run(Segmenter(RATE, keep_audio=False), pcm, 160)) == marks(framed)
    full = of(framed, Utterance)
    assert [(u.start_sample, u.end_sample) for u in full] == [
        (u.start_sample, u.end_sample) for u in of(run(Segmenter(RATE), pcm, 97), Utterance)
    ]
    for u in full:
        assert np.array_equal(u.samples, pcm[u.start_sample : u.end_sample])


@pytest.mark.parametrize(
    "bad",
    [
        {"aggressiveness": 4},
        {"frame_ms": 25},
        {"start_ms": 10},
        {"max_utterance_ms": 100, "min_utterance_ms": 200},
        {"padding_ms": -1},
    ],
)
def test_bad_options(bad: dict[str, int]) -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(bad, VadOptions)


def test_unsupported_rate() -> None:
    with pytest.raises(ValueError, match="8000"):
        Segmenter(11025)
