"""The far end's knobs: how a simulated call goes, and what its callee enters.

How a call (or a ``<Dial>`` leg) to a number goes is one of :data:`OUTCOMES`, picked by the
first of:

1. the per-call SIP header ``EmulatorOutcome`` (``sip_headers="EmulatorOutcome=busy"`` on
   the Call API, ``sipHeaders="EmulatorOutcome=busy"`` on ``<Dial>``): Plivo hands SIP
   headers to the far end, which is what the emulator simulates;
2. ``[emulator.outcome_by_number]`` (dialled digits -> outcome);
3. the magic numbers :data:`MAGIC_NUMBERS`;
4. else ``answer``.

What the callee enters at each ``<GetDigits>``/``<GetInput>`` is a list of answers, one per
listening attempt, in order: digits (``2345#``), ``say:<words>`` (speech) or "" (nothing,
so the element times out). ``[emulator] caller_input = "1|2345#|say:yes"`` sets it for
every call, the per-call SIP header ``EmulatorInput=1|2345#`` for one.

Pure: no I/O, nothing of the simulator's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..protocol.events import DTMF_DIGITS

__all__ = [
    "INPUT_HEADER",
    "MAGIC_NUMBERS",
    "OUTCOMES",
    "OUTCOME_HEADER",
    "InputAnswer",
    "input_for",
    "outcome_for",
    "parse_caller_input",
    "parse_input_answer",
]

#: How a simulated call can go. ``machine`` is answered by an answering machine.
OUTCOMES = ("answer", "machine", "busy", "no-answer", "rejected", "failed")

#: Dialled numbers (digits only; ``+`` optional) that always go one way: the last three
#: digits are the SIP answer a phone network would give (486 Busy Here, 480 Temporarily
#: Unavailable, 603 Decline, 503 Service Unavailable); 200/201 answer by a person/machine.
MAGIC_NUMBERS: dict[str, str] = {
    "15550100200": "answer",
    "15550100201": "machine",
    "15550100486": "busy",
    "15550100480": "no-answer",
    "15550100603": "rejected",
    "15550100503": "failed",
}

#: SIP header (case-insensitive) that picks one call's outcome.
OUTCOME_HEADER = "EmulatorOutcome"
#: SIP header (case-insensitive) with one call's input answers, ``|``-separated.
INPUT_HEADER = "EmulatorInput"

_SPEECH = "say:"
_DIGITS = frozenset(DTMF_DIGITS)


@dataclass(frozen=True, slots=True)
class InputAnswer:
    """One answer the callee gives to an input element: digits or speech (or nothing)."""

    digits: str = ""
    speech: str = ""


def parse_input_answer(text: str) -> InputAnswer:
    """``"12#"`` -> digits, ``"say:yes please"`` -> speech, ``""`` -> nothing.

    Raises ``ValueError`` naming the bad answer.
    """
    text = text.strip()
    if text.lower().startswith(_SPEECH):
        words = " ".join(text[len(_SPEECH) :].split())
        if not words:
            raise ValueError(f"{text!r}: say: needs words")
        return InputAnswer(speech=words)
    keys = text.upper()
    if any(k not in _DIGITS for k in keys):
        raise ValueError(f"{text!r} is not digits (0-9 * # A-D), say:<words> or empty")
    return InputAnswer(digits=keys)


def parse_caller_input(text: str) -> list[str]:
    """Split and check ``"1|2345#|say:yes"``; returns the answers as written (trimmed)."""
    answers = [part.strip() for part in text.split("|")] if text.strip() else []
    for answer in answers:
        parse_input_answer(answer)
    return answers


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() in (wanted, f"x-ph-{wanted}"):
            return value
    return None


def outcome_for(number: str, headers: Mapping[str, str], table: Mapping[str, str]) -> str:
    """How a call to ``number`` goes: the SIP header, else the table, else magic numbers.

    Raises ``ValueError`` for an ``EmulatorOutcome`` header that names no outcome.
    """
    asked = _header(headers, OUTCOME_HEADER)
    if asked is not None:
        outcome = asked.strip().lower()
        if outcome not in OUTCOMES:
            raise ValueError(f"{OUTCOME_HEADER}={asked!r} must be one of {', '.join(OUTCOMES)}")
        return outcome
    digits = number.strip().lstrip("+")
    return table.get(digits) or MAGIC_NUMBERS.get(digits, "answer")


def input_for(headers: Mapping[str, str], default: list[str]) -> list[InputAnswer]:
    """The callee's input answers: the ``EmulatorInput`` header, else ``default``.

    Raises ``ValueError`` for a header that does not parse.
    """
    given = _header(headers, INPUT_HEADER)
    answers = default if given is None else parse_caller_input(given)
    return [parse_input_answer(a) for a in answers]
