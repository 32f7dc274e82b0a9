"""Build Plivo answer XML: what a call does when it is answered.

::

    Response(
        Speak("Connecting you."),
        Stream("wss://media.example.com/stream", bidirectional=True, keep_call_alive=True,
               content_type="audio/x-mulaw;rate=8000"),
    ).to_xml()

Every verb checks its values when it is made and raises :class:`ValueError` naming the
verb and the XML attribute (``Stream.audioTrack must be ...``), so an answer URL never
serves XML that Plivo would reject mid-call. Python names are snake_case and render as
Plivo's camelCase attributes, in a fixed order; unset (``None``) attributes are left out
so Plivo's defaults apply; booleans render as ``true``/``false``. Serialisation goes
through :mod:`xml.etree.ElementTree`, so text and attribute values are always escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal, Self
from xml.etree import ElementTree

from ..protocol.events import KEYPAD_DIGITS
from . import _validate as v

__all__ = [
    "GetDigits",
    "Hangup",
    "Play",
    "Record",
    "Redirect",
    "Response",
    "Speak",
    "Stream",
    "Verb",
    "Wait",
]

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

Method = Literal["GET", "POST"]
ContentType = Literal["audio/x-l16;rate=8000", "audio/x-l16;rate=16000", "audio/x-mulaw;rate=8000"]


class _Attrs:
    """Collects checked attributes of one element, in the order they are added."""

    __slots__ = ("out", "tag")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.out: dict[str, str] = {}

    def name(self, attr: str) -> str:
        return f"{self.tag}.{attr}"

    def boolean(self, attr: str, value: bool | None) -> None:
        if value is not None:
            self.out[attr] = "true" if v.boolean(self.name(attr), value) else "false"

    def integer(
        self, attr: str, value: int | None, lo: int | None = None, hi: int | None = None
    ) -> None:
        if value is not None:
            self.out[attr] = str(v.integer(self.name(attr), value, lo, hi))

    def text(self, attr: str, value: str | None) -> None:
        if value is not None:
            self.out[attr] = v.text(self.name(attr), value)

    def choice(self, attr: str, value: str | None, choices: tuple[str, ...]) -> None:
        if value is not None:
            self.out[attr] = v.choice(self.name(attr), value, choices)

    def method(self, attr: str, value: str | None) -> None:
        if value is not None:
            self.out[attr] = v.method(self.name(attr), value)

    def url(self, attr: str, value: str | None) -> None:
        if value is not None:
            self.out[attr] = v.url(self.name(attr), value)

    def keys(self, attr: str, value: str | None, *, single: bool = False) -> None:
        if value is not None:
            self.out[attr] = v.keys(self.name(attr), value, KEYPAD_DIGITS, single=single)


class Verb:
    """One element of answer XML: its attributes, text and nested verbs."""

    tag: ClassVar[str]
    __slots__ = ("attrs", "children", "text")

    def __init__(self, attrs: dict[str, str], text: str | None = None) -> None:
        self.attrs = attrs
        self.text = text
        self.children: list[Verb] = []

    def element(self) -> ElementTree.Element:
        """This verb (and what it nests) as an ElementTree element."""
        el = ElementTree.Element(self.tag, self.attrs)
        el.text = self.text
        el.extend(child.element() for child in self.children)
        return el

    def to_xml(self) -> str:
        """This verb alone, as an XML string."""
        return ElementTree.tostring(self.element(), encoding="unicode")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_xml()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verb):
            return NotImplemented
        return self.to_xml() == other.to_xml()

    __hash__ = None  # type: ignore[assignment]  # mutable (add): not hashable


class Stream(Verb):
    """``<Stream>``: stream the call's audio to a WebSocket (``ws://`` or ``wss://``).

    ``bidirectional`` lets the server play audio back and needs ``audio_track`` inbound
    (the default); ``content_type`` is one of the three Plivo formats; ``extra_headers``
    (a dict or ``"k=v,k2=v2"``, [A-Za-z0-9] only, at most 512 bytes) come back in the
    stream's ``start`` message; ``keep_call_alive`` holds the XML that follows until the
    stream ends; ``noise_cancellation_level`` is 60–100.
    """

    tag = "Stream"
    __slots__ = ()

    def __init__(
        self,
        url: str,
        *,
        bidirectional: bool | None = None,
        audio_track: Literal["inbound", "outbound", "both"] | None = None,
        stream_timeout: int | None = None,
        status_callback_url: str | None = None,
        status_callback_method: Method | None = None,
        content_type: ContentType | None = None,
        extra_headers: Mapping[str, str] | str | None = None,
        keep_call_alive: bool | None = None,
        noise_cancellation: bool | None = None,
        noise_cancellation_level: int | None = None,
    ) -> None:
        a = _Attrs(self.tag)
        v.stream_options(
            bidirectional=bidirectional,
            audio_track=audio_track,
            content_type=content_type,
            names=(a.name("bidirectional"), a.name("audioTrack"), a.name("contentType")),
        )
        a.boolean("bidirectional", bidirectional)
        a.choice("audioTrack", audio_track, v.AUDIO_TRACKS)
        a.integer("streamTimeout", stream_timeout, 1)
        a.url("statusCallbackUrl", status_callback_url)
        a.method("statusCallbackMethod", status_callback_method)
        a.choice("contentType", content_type, v.STREAM_CONTENT_TYPES)
        if extra_headers is not None:
            a.out["extraHeaders"] = v.extra_headers(a.name("extraHeaders"), extra_headers)
        a.boolean("keepCallAlive", keep_call_alive)
        a.boolean("noiseCancellation", noise_cancellation)
        a.integer("noiseCancellationLevel", noise_cancellation_level, 60, 100)
        super().__init__(a.out, v.ws_url("Stream url", url))


class Speak(Verb):
    """``<Speak>``: say ``text`` (text to speech); ``loop=0`` repeats until the call moves on."""

    tag = "Speak"
    __slots__ = ()

    def __init__(
        self,
        text: str,
        *,
        voice: str | None = None,
        language: str | None = None,
        loop: int | None = None,
    ) -> None:
        a = _Attrs(self.tag)
        a.text("voice", voice)
        a.text("language", language)
        a.integer("loop", loop, 0)
        super().__init__(a.out, v.text("Speak text", text))


class Play(Verb):
    """``<Play>``: play an audio file (mp3/wav URL); ``loop=0`` repeats until the call moves on."""

    tag = "Play"
    __slots__ = ()

    def __init__(self, url: str, *, loop: int | None = None) -> None:
        a = _Attrs(self.tag)
        a.integer("loop", loop, 0)
        super().__init__(a.out, v.url("Play url", url))


class Wait(Verb):
    """``<Wait>``: pause ``length`` seconds; with ``silence`` stop early once the caller is
    silent for ``min_silence`` ms; ``beep`` waits for a voicemail beep."""

    tag = "Wait"
    __slots__ = ()

    def __init__(
        self,
        *,
        length: int | None = None,
        silence: bool | None = None,
        min_silence: int | None = None,
        beep: bool | None = None,
    ) -> None:
        a = _Attrs(self.tag)
        a.integer("length", length, 1)
        a.boolean("silence", silence)
        if min_silence is not None and silence is not True:
            raise ValueError("Wait.minSilence needs silence=True")
        a.integer("minSilence", min_silence, 1)
        a.boolean("beep", beep)
        super().__init__(a.out)


class Record(Verb):
    """``<Record>``: record the caller (or, with ``record_session``, the whole call) and
    send the result to ``action`` / ``callback_url``."""

    tag = "Record"
    __slots__ = ()

    def __init__(
        self,
        *,
        action: str | None = None,
        method: Method | None = None,
        file_format: Literal["mp3", "wav"] | None = None,
        max_length: int | None = None,
        timeout: int | None = None,
        finish_on_key: str | None = None,
        play_beep: bool | None = None,
        record_session: bool | None = None,
        start_on_dial_answer: bool | None = None,
        redirect: bool | None = None,
        callback_url: str | None = None,
        callback_method: Method | None = None,
    ) -> None:
        a = _Attrs(self.tag)
        a.url("action", action)
        a.method("method", method)
        a.choice("fileFormat", file_format, ("mp3", "wav"))
        a.integer("maxLength", max_length, 1)
        a.integer("timeout", timeout, 1)
        a.keys("finishOnKey", finish_on_key)
        a.boolean("playBeep", play_beep)
        a.boolean("recordSession", record_session)
        a.boolean("startOnDialAnswer", start_on_dial_answer)
        a.boolean("redirect", redirect)
        a.url("callbackUrl", callback_url)
        a.method("callbackMethod", callback_method)
        super().__init__(a.out)


class Hangup(Verb):
    """``<Hangup>``: end the call now, after ``schedule`` seconds, or reject it with
    ``reason`` (``rejected`` or ``busy``) before it is answered."""

    tag = "Hangup"
    __slots__ = ()

    def __init__(
        self, *, reason: Literal["rejected", "busy"] | None = None, schedule: int | None = None
    ) -> None:
        a = _Attrs(self.tag)
        a.choice("reason", reason, ("rejected", "busy"))
        a.integer("schedule", schedule, 1)
        super().__init__(a.out)


class Redirect(Verb):
    """``<Redirect>``: continue the call with the XML at ``url``."""

    tag = "Redirect"
    __slots__ = ()

    def __init__(self, url: str, *, method: Method | None = None) -> None:
        a = _Attrs(self.tag)
        a.method("method", method)
        super().__init__(a.out, v.url("Redirect url", url))


class GetDigits(Verb):
    """``<GetDigits>``: collect DTMF digits while the nested ``Speak``/``Play`` prompts run,
    then send them to ``action``."""

    tag = "GetDigits"
    __slots__ = ()

    def __init__(
        self,
        *prompts: Speak | Play,
        action: str | None = None,
        method: Method | None = None,
        timeout: int | None = None,
        digit_timeout: int | None = None,
        finish_on_key: str | None = None,
        num_digits: int | None = None,
        retries: int | None = None,
        redirect: bool | None = None,
        play_beep: bool | None = None,
        valid_digits: str | None = None,
        invalid_digits_sound: str | None = None,
    ) -> None:
        a = _Attrs(self.tag)
        a.url("action", action)
        a.method("method", method)
        a.integer("timeout", timeout, 1)
        a.integer("digitTimeout", digit_timeout, 1)
        a.keys("finishOnKey", finish_on_key, single=True)
        a.integer("numDigits", num_digits, 1)
        a.integer("retries", retries, 1)
        a.boolean("redirect", redirect)
        a.boolean("playBeep", play_beep)
        if valid_digits is not None:
            if valid_digits == "none":
                raise ValueError("GetDigits.validDigits must be keys from '0123456789*#'")
            a.keys("validDigits", valid_digits)
        a.url("invalidDigitsSound", invalid_digits_sound)
        super().__init__(a.out)
        for prompt in prompts:
            if not isinstance(prompt, Speak | Play):
                raise ValueError(f"GetDigits may nest only Speak and Play, got {prompt!r}")
            self.children.append(prompt)


_TOP_LEVEL = (Stream, Speak, Play, Wait, Record, Hangup, Redirect, GetDigits)


class Response(Verb):
    """``<Response>``: the verbs Plivo runs, in order. ``to_xml()`` gives the document."""

    tag = "Response"
    __slots__ = ()

    def __init__(self, *verbs: Verb) -> None:
        super().__init__({})
        self.add(*verbs)

    def add(self, *verbs: Verb) -> Self:
        """Append verbs; returns the response, so calls chain."""
        for verb in verbs:
            if not isinstance(verb, _TOP_LEVEL):
                raise ValueError(f"Response may not contain {verb!r}")
            self.children.append(verb)
        return self

    def to_xml(self, *, declaration: bool = False, indent: bool = False) -> str:
        """The answer document; with ``declaration``, preceded by ``<?xml ...?>``;
        ``indent`` pretty-prints it for people (Plivo does not care)."""
        el = self.element()
        if indent:
            ElementTree.indent(el)
        body = ElementTree.tostring(el, encoding="unicode")
        return XML_DECLARATION + body if declaration else body

    def __str__(self) -> str:
        return self.to_xml()
