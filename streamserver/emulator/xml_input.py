"""``<GetDigits>`` and ``<GetInput>``: collect what the caller enters while nested
``<Speak>``/``<Play>`` prompts run, then send it to ``action``.

Attributes and defaults are Plivo's (``docs/emulator.md`` lists them). ``finishOnKey``
``""`` or ``none`` turns the finish key off. ``<GetInput>`` ``digitEndTimeout`` and
``speechEndTimeout`` take ``auto`` (the emulator's 5 s and 1 s) or 2-10 seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree

from ..protocol import DTMF_DIGITS
from .xml_base import Attrs, Prompt, XmlError, parse_prompts

__all__ = [
    "AUTO_DIGIT_END_S",
    "AUTO_SPEECH_END_S",
    "INPUT_TYPES",
    "GetDigitsVerb",
    "GetInputVerb",
    "parse_get_digits",
    "parse_get_input",
]

#: ``inputType`` values of ``<GetInput>``.
INPUT_TYPES = ("dtmf", "speech", "dtmf speech")
#: What ``digitEndTimeout="auto"`` and ``speechEndTimeout="auto"`` mean here.
AUTO_DIGIT_END_S = 5
AUTO_SPEECH_END_S = 1
_KEYS = "1234567890*#"


@dataclass(frozen=True, slots=True)
class GetDigitsVerb:
    action: str = ""
    method: str = "POST"
    #: Seconds to wait for the first digit once the prompts have played.
    timeout_s: int = 5
    #: Seconds allowed between two digits.
    digit_timeout_s: int = 2
    #: The key that submits (not part of ``Digits``); "" for none.
    finish_on_key: str = "#"
    num_digits: int = 99
    #: Listening attempts (each replays the prompts) before moving on without input.
    retries: int = 1
    redirect: bool = True
    play_beep: bool = False
    valid_digits: str = _KEYS
    invalid_digits_sound: str = ""
    prompts: tuple[Prompt, ...] = ()


@dataclass(frozen=True, slots=True)
class GetInputVerb:
    action: str
    method: str = "POST"
    input_type: str = "dtmf speech"
    #: Seconds to wait for input once the prompts have played.
    execution_timeout_s: int = 15
    digit_end_timeout_s: int = AUTO_DIGIT_END_S
    speech_end_timeout_s: int = AUTO_SPEECH_END_S
    finish_on_key: str = "#"
    num_digits: int = 32
    redirect: bool = True
    language: str = "en-US"
    prompts: tuple[Prompt, ...] = ()


def _finish_key(a: Attrs, default: str = "#") -> str:
    value = a.text("finishOnKey", default)
    if value.lower() == "none":
        return ""
    if value and (len(value) != 1 or value not in DTMF_DIGITS):
        raise a.fail("finishOnKey", "must be one key (0-9, *, #), empty or none")
    return value


def _end_timeout(a: Attrs, name: str, auto: int) -> int:
    if a.text(name, "auto").lower() == "auto":
        return auto
    return a.integer(name, auto, 2, 10)


def parse_get_digits(elem: ElementTree.Element, a: Attrs, where: str) -> GetDigitsVerb:
    valid = a.text("validDigits", _KEYS)
    if not valid or any(k not in DTMF_DIGITS for k in valid):
        raise a.fail("validDigits", "must be keys from 0-9, *, #")
    return GetDigitsVerb(
        action=a.url("action"),
        method=a.method("method"),
        timeout_s=a.integer("timeout", 5, 1),
        digit_timeout_s=a.integer("digitTimeout", 2, 1),
        finish_on_key=_finish_key(a),
        num_digits=a.integer("numDigits", 99, 1),
        retries=a.integer("retries", 1, 1),
        redirect=a.flag("redirect", True),
        play_beep=a.flag("playBeep", False),
        valid_digits=valid,
        invalid_digits_sound=a.url("invalidDigitsSound"),
        prompts=parse_prompts(elem, where),
    )


def parse_get_input(elem: ElementTree.Element, a: Attrs, where: str) -> GetInputVerb:
    action = a.url("action")
    if not action:
        raise XmlError(f"{where}: <GetInput> needs an action URL")
    input_type = " ".join(sorted(a.text("inputType", "dtmf speech").lower().split()))
    if input_type not in INPUT_TYPES:
        raise a.fail("inputType", f"must be one of {', '.join(INPUT_TYPES)}")
    return GetInputVerb(
        action=action,
        method=a.method("method"),
        input_type=input_type,
        execution_timeout_s=a.integer("executionTimeout", 15, 5, 60),
        digit_end_timeout_s=_end_timeout(a, "digitEndTimeout", AUTO_DIGIT_END_S),
        speech_end_timeout_s=_end_timeout(a, "speechEndTimeout", AUTO_SPEECH_END_S),
        finish_on_key=_finish_key(a),
        num_digits=a.integer("numDigits", 32, 1, 32),
        redirect=a.flag("redirect", True),
        language=a.text("language", "en-US") or "en-US",
        prompts=parse_prompts(elem, where),
    )
