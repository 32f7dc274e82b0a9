"""What every answer-XML verb parser shares: the error, typed attribute access, and the
prompts (``<Play>``, ``<Speak>``) that stand alone or nest inside ``<GetDigits>``,
``<GetInput>``.

:mod:`.xml` parses a document with these; :mod:`.xml_input` and :mod:`.xml_dial` hold
the verbs that nest other elements.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from xml.etree import ElementTree

__all__ = [
    "METHODS",
    "Attrs",
    "PlayVerb",
    "Prompt",
    "SpeakVerb",
    "XmlError",
    "element_text",
    "is_http_url",
    "parse_play",
    "parse_prompts",
    "parse_speak",
]

log = logging.getLogger("streamserver.emulator.xml")

METHODS = ("GET", "POST")


class XmlError(ValueError):
    """The answer XML is invalid; the message says where."""


@dataclass(frozen=True, slots=True)
class PlayVerb:
    url: str
    #: Times to play; 0 plays until the call moves on (hang-up).
    loop: int = 1


@dataclass(frozen=True, slots=True)
class SpeakVerb:
    text: str
    voice: str = "WOMAN"
    language: str = "en-US"
    loop: int = 1


#: A prompt the far end hears.
Prompt = PlayVerb | SpeakVerb


class Attrs:
    """Typed, validated access to one element's attributes."""

    def __init__(self, elem: ElementTree.Element, where: str) -> None:
        self._attrs = dict(elem.attrib)
        self._where = where

    def fail(self, name: str, wanted: str) -> XmlError:
        """The error for attribute ``name``: ``<where>: attribute name='x' <wanted>``."""
        return XmlError(f"{self._where}: attribute {name}={self._attrs.get(name)!r} {wanted}")

    def has(self, name: str) -> bool:
        return name in self._attrs

    def text(self, name: str, default: str = "") -> str:
        return self._attrs.get(name, default).strip()

    def flag(self, name: str, default: bool) -> bool:
        if name not in self._attrs:
            return default
        value = self._attrs[name].strip().lower()
        if value not in ("true", "false"):
            raise self.fail(name, "must be true or false")
        return value == "true"

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        if name not in self._attrs:
            return default
        raw = self._attrs[name].strip()
        if not re.fullmatch(r"-?\d+", raw):
            raise self.fail(name, "must be an integer")
        value = int(raw)
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self.fail(name, f"must be {bound}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...], fold: bool = True) -> str:
        if name not in self._attrs:
            return default
        raw = self._attrs[name].strip()
        for c in choices:
            if raw == c or (fold and raw.lower() == c.lower()):
                return c
        raise self.fail(name, f"must be one of {', '.join(choices)}")

    def method(self, name: str, default: str = "POST") -> str:
        return self.choice(name, default, METHODS)

    def url(self, name: str) -> str:
        value = self.text(name)
        if value and not is_http_url(value):
            raise self.fail(name, "must be an http(s) URL")
        return value


def is_http_url(value: str) -> bool:
    return re.match(r"^https?://[^\s/]+", value) is not None


def element_text(elem: ElementTree.Element) -> str:
    return (elem.text or "").strip()


def parse_play(elem: ElementTree.Element, a: Attrs, where: str) -> PlayVerb:
    url = element_text(elem)
    if not url:
        raise XmlError(f"{where}: <Play> needs the URL of the audio to play")
    return PlayVerb(url=url, loop=a.integer("loop", 1, 0, 10000))


def parse_speak(elem: ElementTree.Element, a: Attrs, where: str) -> SpeakVerb:
    # Speak may hold SSML children; their text is what gets spoken.
    text = " ".join(t.strip() for t in elem.itertext() if t.strip())
    if not text:
        raise XmlError(f"{where}: <Speak> needs text to speak")
    return SpeakVerb(
        text=text,
        voice=a.text("voice", "WOMAN") or "WOMAN",
        language=a.text("language", "en-US") or "en-US",
        loop=a.integer("loop", 1, 0, 10000),
    )


_PROMPTS: dict[str, Callable[[ElementTree.Element, Attrs, str], Prompt]] = {
    "Play": parse_play,
    "Speak": parse_speak,
}


def parse_prompts(parent: ElementTree.Element, where: str) -> tuple[Prompt, ...]:
    """The ``<Speak>``/``<Play>`` nested in ``parent``; anything else is skipped (logged)."""
    prompts: list[Prompt] = []
    for index, elem in enumerate(parent, start=1):
        inner = f"{where} > <{elem.tag}> ({index})"
        parser = _PROMPTS.get(elem.tag)
        if parser is None:
            log.warning("answer XML: %s may not nest in %s; skipped", inner, where)
            continue
        prompts.append(parser(elem, Attrs(elem, inner), inner))
    return tuple(prompts)
