"""The caller's loudspeaker as a timeline: what was heard and when checkpoints' audio ended,
decided by arrival times alone, whatever the driver's timing (pure, no event loop)."""

from __future__ import annotations

import numpy as np
import pytest

from streamserver.emulator.streamclient.speaker import Answer, Speaker

FS = 160
FRAME_S = 0.02


def speaker() -> Speaker:
    return Speaker(rate=8000, frame_samples=FS, frame_s=FRAME_S, record=True)


def tone(n: int, value: int) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


def test_audio_starts_at_the_first_tick_after_it_arrived_and_plays_on() -> None:
    sp = speaker()
    sp.enqueue_audio(tone(400, 7), at=0.031)  # arrives during tick 1: sounds from tick 2
    sp.enqueue_checkpoint("a", at=0.031)
    assert sp.next_time() == pytest.approx(0.04)
    # 400 samples end inside tick 4: answered when it is over
    assert sp.advance(0.5) == [Answer("a", pytest.approx(0.1))]
    heard = sp.heard_audio(0)
    assert not heard[:320].any() and (heard[320:720] == 7).all() and not heard[720:].any()
    assert sp.segments == [(0.04, 0.09)]
    assert sp.idle


def test_a_late_driver_hears_the_same_and_stamps_the_same() -> None:
    def run(step: float) -> tuple[np.ndarray, list[Answer], list[tuple[float, float]]]:
        sp = speaker()
        events = [(0.005, tone(800, 1)), (0.005, "a"), (0.150, tone(320, 2)), (0.150, "b")]
        answers: list[Answer] = []
        t = 0.0
        pending = list(events)
        while t < 1.0:
            t += step
            # Everything that arrived by now is enqueued (with its own arrival time).
            while pending and pending[0][0] <= t:
                at, item = pending.pop(0)
                if isinstance(item, str):
                    sp.enqueue_checkpoint(item, at)
                else:
                    sp.enqueue_audio(item, at)
            answers += sp.advance(t)
        return sp.heard_audio(8000), answers, sp.segments

    prompt, late = run(0.001), run(0.137)  # on time, or waking every 137 ms
    np.testing.assert_array_equal(prompt[0], late[0])
    assert prompt[1] == late[1] == [Answer("a", pytest.approx(0.12)), Answer("b", 0.2)]
    assert prompt[2] == late[2]


def test_audio_arriving_while_busy_follows_without_a_gap() -> None:
    sp = speaker()
    sp.enqueue_audio(tone(240, 1), at=0.0)  # ticks 0 and half of 1
    sp.advance(0.0)
    sp.enqueue_audio(tone(200, 2), at=0.019)  # arrived before tick 1 began
    sp.advance(1.0)
    heard = sp.heard_audio(0)
    assert (heard[:240] == 1).all() and (heard[240:440] == 2).all()


def test_audio_arriving_mid_tick_waits_for_the_next_tick() -> None:
    sp = speaker()
    sp.enqueue_audio(tone(240, 1), at=0.0)
    sp.enqueue_audio(tone(160, 2), at=0.025)  # tick 1 began at 0.020 without it
    sp.advance(1.0)
    heard = sp.heard_audio(0)
    assert (heard[:240] == 1).all() and not heard[240:320].any() and (heard[320:480] == 2).all()


def test_a_checkpoint_mid_tick_is_answered_when_that_tick_is_over() -> None:
    sp = speaker()
    sp.enqueue_audio(tone(100, 1), at=0.0)
    sp.enqueue_checkpoint("half", at=0.0)
    assert sp.advance(0.019) == []
    assert sp.advance(0.020) == [Answer("half", 0.02)]


def test_a_checkpoint_after_played_audio_is_answered_at_its_arrival() -> None:
    sp = speaker()
    sp.enqueue_audio(tone(160, 1), at=0.0)
    sp.advance(0.5)
    sp.enqueue_checkpoint("late", at=0.3)
    assert sp.next_time() == 0.3
    assert sp.advance(0.3) == [Answer("late", 0.3)]


def test_clear_lets_the_sounding_tick_play_on_and_drops_the_rest() -> None:
    sp = speaker()
    sp.enqueue_audio(tone(1600, 3), at=0.0)
    sp.enqueue_checkpoint("one", at=0.0, link=1)
    sp.enqueue_audio(tone(160, 4), at=0.0)
    sp.enqueue_checkpoint("two", at=0.0)
    due, dropped = sp.clear(0.05)  # during tick 2: ticks 0, 1, 2 sound
    assert due == [] and [a.name for a in dropped] == ["one", "two"]
    assert dropped[0].link == 1
    heard = sp.heard_audio(0)
    assert sp.heard_end == 480 and (heard[:480] == 3).all()
    assert sp.idle and sp.queued_samples == 0
    sp.enqueue_audio(tone(160, 5), at=0.051)
    sp.advance(1.0)
    assert (sp.heard_audio(0)[480:640] == 5).all()  # the next audio at the next tick


def test_clear_answers_what_finished_before_it() -> None:
    sp = speaker()
    sp.enqueue_audio(tone(160, 1), at=0.0)
    sp.enqueue_checkpoint("done", at=0.0)
    sp.enqueue_audio(tone(800, 2), at=0.0)
    due, dropped = sp.clear(0.021)  # nobody advanced: the clear does
    assert due == [Answer("done", 0.02)] and dropped == []


def test_not_recording_keeps_segments_only() -> None:
    sp = Speaker(rate=8000, frame_samples=FS, frame_s=FRAME_S, record=False)
    sp.enqueue_audio(tone(320, 1), at=0.0)
    sp.advance(1.0)
    assert sp.heard_audio(1000).size == 0 and sp.segments == [(0.0, 0.04)]
