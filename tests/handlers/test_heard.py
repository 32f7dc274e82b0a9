"""The heard-track model: the server's playback placed on the inbound timeline from its
send positions and the provider's answers (pure, no event loop)."""

from __future__ import annotations

from handlers.heard import HeardTrack


def track() -> HeardTrack:
    return HeardTrack(bytes_per_sample=1, frame_samples=160, hold=40_000)


def audio(n: int, value: int) -> bytes:
    return bytes([value]) * n


def placed(t: HeardTrack) -> list[tuple[int, int, int]]:
    """(position, samples, value of the first byte) of what was settled."""
    return [(pos, len(data), data[0]) for pos, data in t.take()]


def test_an_acknowledged_checkpoint_places_the_audio_before_it_to_end_there() -> None:
    t = track()
    t.feed("audio", 1000, audio(1600, 1))
    t.feed("checkpoint", 1000, name="a")
    assert placed(t) == [] and t.settled_through == 1000
    # The provider played it later than sent (its jitter buffer): the answer, on its
    # 20 ms clock, says the audio ended in the frame before 2760: placed to end mid-frame.
    t.feed("played", 2760, name="a")
    assert placed(t) == [(1080, 1600, 1)]
    assert t.settled_through is None and t.settled_end == 2680
    [p] = t.prompts
    assert (p.start, p.planned_end, p.heard_end, p.interrupted) == (1080, 2680, 2680, False)
    assert p.checkpoints == [("a", 2680, True)]


def test_an_answer_in_the_frame_after_the_modelled_end_moves_nothing() -> None:
    t = track()
    t.feed("audio", 0, audio(1000, 1))
    t.feed("checkpoint", 0, name="a")
    t.feed("played", 1120, name="a")  # 1000 lies in (960, 1120]: the model holds
    assert placed(t) == [(0, 1000, 1)]


def test_audio_never_moves_before_it_was_sent_nor_into_settled_audio() -> None:
    t = track()
    t.feed("audio", 0, audio(800, 1))
    t.feed("checkpoint", 0, name="a")
    t.feed("played", 800, name="a")
    t.feed("audio", 900, audio(400, 2))
    t.feed("checkpoint", 900, name="b")
    t.feed("played", 1000, name="b")  # an early answer cannot pull it before 900
    assert placed(t) == [(0, 800, 1), (900, 400, 2)]


def test_audio_queued_behind_an_answer_continues_from_it() -> None:
    t = track()
    t.feed("audio", 0, audio(800, 1))
    t.feed("checkpoint", 0, name="a")
    t.feed("audio", 0, audio(800, 2))
    t.feed("checkpoint", 0, name="b")
    t.feed("played", 1040, name="a")  # started late: ended in (880, 1040]
    assert placed(t) == [(160, 800, 1)]
    t.feed("played", 1760, name="b")  # 1760 is right behind the modelled end: it holds
    assert placed(t) == [(960, 800, 2)]
    assert len(t.prompts) == 1 and t.prompts[0].checkpoints[1] == ("b", 1760, True)


def test_a_clear_cuts_where_it_took_effect_and_later_audio_follows() -> None:
    t = track()
    t.feed("audio", 0, audio(800, 1))
    t.feed("checkpoint", 0, name="part1")
    t.feed("audio", 0, audio(3200, 2))
    t.feed("checkpoint", 0, name="part2")
    t.feed("played", 800, name="part1")
    t.feed("clear", 2000)
    t.feed("audio", 2010, audio(480, 3))  # the next prompt, sent before the clear's answer
    t.feed("cleared", 2080)
    assert placed(t) == [(0, 800, 1), (800, 1280, 2)]  # cut at 2080
    first = t.prompts[0]
    assert (first.start, first.heard_end, first.planned_end) == (0, 2080, 4000)
    assert first.interrupted
    assert first.checkpoints == [("part1", 800, True), ("part2", 2080, False)]
    t.finish()
    assert placed(t) == [(2080, 480, 3)]
    second = t.prompts[1]
    assert (second.start, second.heard_end, second.interrupted) == (2080, 2560, False)


def test_a_clear_before_the_audio_started_drops_it_all() -> None:
    t = track()
    t.feed("audio", 500, audio(800, 1))
    t.feed("clear", 500)
    t.feed("cleared", 500)
    assert placed(t) == []
    [p] = t.prompts
    assert p.heard_end == p.start == 500 and p.planned_end == 1300 and p.interrupted


def test_audio_sent_while_nothing_plays_starts_a_prompt() -> None:
    t = track()
    t.feed("audio", 0, audio(800, 1))
    t.feed("audio", 400, audio(800, 2))  # sent while the first still plays: the same prompt
    t.feed("audio", 1600, audio(800, 3))  # the provider ran dry at 1600: the next prompt
    t.feed("audio", 5000, audio(800, 4))
    t.finish()
    assert placed(t) == [(0, 800, 1), (800, 800, 2), (1600, 800, 3), (5000, 800, 4)]
    assert [(p.start, p.heard_end) for p in t.prompts] == [(0, 1600), (1600, 2400), (5000, 5800)]


def test_an_unknown_or_cleared_checkpoint_answer_moves_nothing() -> None:
    t = track()
    t.feed("audio", 0, audio(800, 1))
    t.feed("checkpoint", 0, name="a")
    t.feed("played", 3000, name="nope")
    t.feed("clear", 100)
    t.feed("audio", 100, audio(800, 2))
    t.feed("checkpoint", 100, name="b")
    t.feed("played", 3000, name="b")  # past a pending clear: not before it is done
    assert placed(t) == [] and t.settled_through == 0
    t.feed("cleared", 400)
    assert placed(t) == [(0, 400, 1)]
    t.feed("played", 900, name="a")  # cleared already: nothing to move
    t.feed("played", 1200, name="b")
    assert placed(t) == [(400, 800, 2)]


def test_an_answer_between_a_clear_and_its_effect_still_counts() -> None:
    t = track()
    t.feed("audio", 0, audio(800, 1))
    t.feed("checkpoint", 0, name="a")
    t.feed("audio", 0, audio(800, 2))
    t.feed("clear", 100)  # reaches the provider after "a" has played
    t.feed("played", 800, name="a")
    t.feed("cleared", 1000)
    assert placed(t) == [(0, 800, 1), (800, 200, 2)]


def test_finish_cuts_at_an_unanswered_clear() -> None:
    t = track()
    t.feed("audio", 0, audio(1600, 1))
    t.feed("clear", 320)
    t.finish()
    assert placed(t) == [(0, 320, 1)]
    assert t.prompts[0].interrupted


def test_two_byte_samples_are_cut_on_sample_boundaries() -> None:
    t = HeardTrack(bytes_per_sample=2, frame_samples=160, hold=40_000)
    t.feed("audio", 0, bytes(range(200)))
    t.feed("clear", 0)
    t.feed("cleared", 37)
    [(pos, data)] = t.take()
    assert pos == 0 and data == bytes(range(74))


def test_audio_no_answer_will_place_is_settled_once_the_caller_is_far_past_it() -> None:
    t = HeardTrack(bytes_per_sample=1, frame_samples=160, hold=8000)
    for k in range(100):  # an echo: a frame back per frame in, no checkpoints
        t.feed("audio", 160 * (k + 1), audio(160, 1 + k % 200))
    # The model ends frame k at 160 * (k + 2); the caller is at 16,000: the ones ended
    # by 8,000 are settled, the rest still wait.
    got = placed(t)
    assert [pos for pos, _, _ in got] == [160 * (k + 1) for k in range(49)]
    assert t.settled_through == 160 * 50
    t.advance(10**6)
    assert len(placed(t)) == 51
