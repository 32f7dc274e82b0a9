"""What the callee's key presses and words add up to at an input element (``<GetDigits>``,
``<GetInput>``), worked out on the call's sample timeline before any waiting is done.

The callee is scripted (:mod:`.outcomes`): an answer's keys are pressed
:data:`KEY_DELAY_S` after the prompts end, :data:`KEY_GAP_S` apart; its words start
speaking then too and last :data:`WORD_S` a word. Scheduled presses (``caller_dtmf``) land
at their time. Given those, :func:`collect` applies Plivo's rules (first-key timeout, the
timeout between keys, the finish key, the digit count, the valid keys), so what an element
gets never depends on how fast the machine is. Pure: samples in, a result out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "KEY_DELAY_S",
    "KEY_GAP_S",
    "WORD_S",
    "DigitRules",
    "Entry",
    "Press",
    "answer_presses",
    "collect",
    "speech_span",
]

#: The callee starts entering this long after the prompts end.
KEY_DELAY_S = 0.5
#: Seconds between two keys the callee presses.
KEY_GAP_S = 0.3
#: Seconds a spoken word lasts (at least two words' worth).
WORD_S = 0.3


@dataclass(frozen=True, slots=True)
class Press:
    """A key pressed at sample ``at`` of the callee's timeline."""

    at: int
    key: str


@dataclass(frozen=True, slots=True)
class DigitRules:
    """Plivo's digit-collection rules, times in samples."""

    first_timeout: int
    digit_timeout: int
    finish_on_key: str = "#"
    num_digits: int = 99
    valid_digits: str = "1234567890*#ABCD"


@dataclass(frozen=True, slots=True)
class Entry:
    """What an attempt collected: ``digits`` (submitted), ``timeout`` (nothing) or
    ``invalid`` (a key outside ``validDigits``); ``end`` is the sample it is over at,
    ``first`` the sample of its first key (None without one)."""

    kind: Literal["digits", "timeout", "invalid"]
    digits: str
    end: int
    first: int | None = None


def answer_presses(keys: str, start: int, rate: int) -> list[Press]:
    """The callee types ``keys`` from sample ``start`` on, :data:`KEY_GAP_S` apart."""
    gap = round(KEY_GAP_S * rate)
    return [Press(start + i * gap, key) for i, key in enumerate(keys)]


def speech_span(words: str, rate: int) -> int:
    """Samples the callee takes to say ``words``."""
    return round(max(2, len(words.split())) * WORD_S * rate)


def collect(
    presses: Iterable[Press], *, listen_from: int, prompts_end: int, rules: DigitRules
) -> Entry:
    """Apply the rules to the presses at or after ``listen_from``.

    The first key must come within ``first_timeout`` of ``prompts_end``, each further one
    within ``digit_timeout`` of the last; the finish key submits (and is not part of the
    digits), so does the ``num_digits``-th key, and so does the timeout after a key.
    """
    digits = ""
    first: int | None = None
    deadline = prompts_end + rules.first_timeout
    for press in sorted((p for p in presses if p.at >= listen_from), key=lambda p: p.at):
        if press.at > deadline:
            break
        if first is None:
            first = press.at
        if rules.finish_on_key and press.key == rules.finish_on_key:
            return Entry("digits", digits, max(press.at, prompts_end), first)
        if press.key not in rules.valid_digits:
            return Entry("invalid", digits, max(press.at, prompts_end), first)
        digits += press.key
        deadline = press.at + rules.digit_timeout
        if len(digits) >= rules.num_digits:
            return Entry("digits", digits, max(press.at, prompts_end), first)
    return Entry("digits" if digits else "timeout", digits, max(deadline, prompts_end), first)
