"""The bot profile's script and barge-in bookkeeping, without sockets."""

from __future__ import annotations

import numpy as np
import pytest

from streamserver.audio import AudioFormat
from streamserver.loadtest.bargein import Turns
from streamserver.loadtest.bot import BotScript, caller_turn, prompt_audio, speech_start
from streamserver.loadtest.wire import SAMPLES_DIR, load_audio

SCRIPT = BotScript()  # turns of 6 s: speech at 2 s for 1.2 s, a 4 s prompt


def test_script_frames() -> None:
    assert (SCRIPT.turn_frames, SCRIPT.onset_frame) == (300, 100)
    assert SCRIPT.turn_start(2) == 600 and SCRIPT.onset(2) == 700


@pytest.mark.parametrize(
    "kw",
    [
        {"speech_at_s": 4.5},  # after the prompt ended: nothing to interrupt
        {"prompt_s": 7.0},  # longer than the turn
        {"speech_s": 0.1},
        {"speech_s": 3.8},  # runs into the next turn (with the VAD's hangover)
    ],
)
def test_impossible_scripts_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BotScript(**kw)


def test_the_caller_speaks_exactly_at_the_onset_frame() -> None:
    fmt = AudioFormat.from_content_type("audio/x-mulaw;rate=8000")
    speech = fmt.decode(load_audio(SAMPLES_DIR / "hello-8k.wav", fmt))
    turn = caller_turn(speech, 8000, SCRIPT)
    assert turn.shape == (300 * 160,)
    onset = SCRIPT.onset_frame * 160
    assert not turn[:onset].any()  # silent until the onset frame
    assert speech_start(turn, 8000) == onset
    start = speech_start(speech, 8000)
    said = turn[onset : onset + 9600]  # 1.2 s
    np.testing.assert_array_equal(said[:-80], speech[start : start + 9600 - 80])
    assert not turn[onset + 9600 :].any()  # silent again until the turn ends
    # What goes on the wire is stable through a decode (the recording can be verified).
    wire = fmt.encode(turn)
    assert fmt.encode(fmt.decode(wire)) == wire


def test_silence_has_no_speech_start() -> None:
    with pytest.raises(ValueError, match="no speech"):
        speech_start(np.zeros(8000, dtype=np.int16), 8000)


def test_prompt_is_as_long_as_asked_and_not_clipped() -> None:
    pcm = prompt_audio(4.0, 16000)
    assert pcm.shape == (64000,) and pcm.dtype == np.int16
    assert 9000 < int(np.abs(pcm).max()) < 12000  # about -10 dBFS peak, never clipped
    assert np.array_equal(pcm, prompt_audio(4.0, 16000))  # deterministic


def test_a_clear_after_the_onset_is_a_barge_in_from_the_onset() -> None:
    tr = Turns(SCRIPT)
    tr.heard_audio(10.0)  # the bot's prompt arrives
    tr.heard_audio(10.5)  # (a later spurt of the same turn changes nothing)
    # The caller's onset frame 100 went out at 12.0; the clear comes at 12.15.
    assert tr.clear(12.15, 105, 12.0) == pytest.approx(150.0)
    assert tr.clear(12.2, 106, 12.0) is None  # a second clear in the turn: unexpected
    assert tr.next_turn(300) is False  # barged in: not missed
    assert (tr.turn, tr.onset) == (1, 400)


def test_a_clear_before_the_caller_spoke_is_unexpected() -> None:
    tr = Turns(SCRIPT)
    tr.heard_audio(10.0)
    assert tr.clear(11.0, 100, 0.0) is None  # frame 100 not sent yet
    # The turn stays open: the real barge-in is still counted.
    assert tr.clear(12.1, 104, 12.0) == pytest.approx(100.0)


def test_a_clear_before_the_bot_spoke_is_unexpected() -> None:
    tr = Turns(SCRIPT)
    assert tr.clear(12.1, 104, 12.0) is None


def test_a_bot_that_starts_after_the_caller_is_timed_from_its_first_audio() -> None:
    tr = Turns(SCRIPT)
    tr.heard_audio(12.3)  # the caller began at 12.0, the bot's first audio came later
    assert tr.clear(12.4, 120, 12.0) == pytest.approx(100.0)


def test_missed_barge_ins() -> None:
    tr = Turns(SCRIPT)
    tr.heard_audio(10.0)
    assert tr.next_turn(300) is True  # the caller spoke (frame 100 sent), no clear
    assert tr.next_turn(600) is False  # turn 1: the bot never spoke
    tr.heard_audio(30.0)
    assert tr.finish(650) is False  # turn 2 ends with the call before the caller spoke
    assert tr.finish(701) is True  # ... or after, without a clear
