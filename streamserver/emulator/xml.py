"""Parse and validate Plivo answer XML into typed verbs the call simulator runs.

Validation follows Plivo's: the root must be ``<Response>``; a verb's required content
(a URL, a text) must be there; attribute values must parse (booleans ``true``/``false``,
integers in range, methods ``GET``/``POST``, the three stream content types). Anything
invalid raises :class:`XmlError` and the simulator hangs the call up with
"Invalid Answer XML", as Plivo does. Elements the emulator does not simulate
(``<PreAnswer>``, ``<Message>``) and unknown elements are skipped with a warning in the log.
The shared pieces (the error, attribute access, ``<Play>``/``<Speak>``) are
:mod:`.xml_base`'s; ``<GetDigits>``/``<GetInput>`` :mod:`.xml_input`'s, ``<Dial>``
:mod:`.xml_dial`'s.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias
from xml.etree import ElementTree

from ..protocol import DTMF_DIGITS
from .xml_base import (
    METHODS,
    Attrs,
    PlayVerb,
    SpeakVerb,
    XmlError,
    element_text,
    is_http_url,
    parse_play,
    parse_speak,
)
from .xml_dial import DialTarget, DialVerb, parse_dial
from .xml_input import GetDigitsVerb, GetInputVerb, parse_get_digits, parse_get_input

__all__ = [
    "DIGITS_RE",
    "METHODS",
    "ConferenceVerb",
    "DialTarget",
    "DialVerb",
    "DtmfVerb",
    "GetDigitsVerb",
    "GetInputVerb",
    "HangupVerb",
    "MultiPartyCallVerb",
    "PlayVerb",
    "RecordVerb",
    "RedirectVerb",
    "SpeakVerb",
    "StreamVerb",
    "Verb",
    "WaitVerb",
    "XmlError",
    "parse_answer_xml",
    "parse_extra_headers",
]

log = logging.getLogger("streamserver.emulator.xml")

STREAM_CONTENT_TYPES = (
    "audio/x-l16;rate=8000",
    "audio/x-l16;rate=16000",
    "audio/x-mulaw;rate=8000",
)
AUDIO_TRACKS = ("inbound", "outbound", "both")
#: DTMF digits as ``<DTMF>`` and the DTMF API take them: either case, ``w``/``W`` pauses.
DIGITS_RE = re.compile(f"[{re.escape(DTMF_DIGITS + DTMF_DIGITS[12:].lower())}wW]+")
_EXTRA_HEADER_RE = re.compile(r"^[A-Za-z0-9]+$")
#: Verbs Plivo knows but the emulator does not simulate: skipped, with a warning.
UNSIMULATED = frozenset({"PreAnswer", "Message"})


@dataclass(frozen=True, slots=True)
class StreamVerb:
    url: str
    bidirectional: bool = False
    audio_track: str = "inbound"
    stream_timeout_s: int = 86400
    status_callback_url: str = ""
    status_callback_method: str = "POST"
    content_type: str = "audio/x-l16;rate=8000"
    extra_headers: str = ""
    keep_call_alive: bool = False
    noise_cancellation: bool = False
    noise_cancellation_level: int = 85


@dataclass(frozen=True, slots=True)
class WaitVerb:
    length_s: int = 1
    silence: bool = False
    min_silence_ms: int = 2000
    beep: bool = False


@dataclass(frozen=True, slots=True)
class RecordVerb:
    action: str = ""
    method: str = "POST"
    file_format: str = "mp3"
    redirect: bool = True
    timeout_s: int = 15
    max_length_s: int = 60
    play_beep: bool = True
    finish_on_key: str = "1234567890*#"
    record_session: bool = False
    start_on_dial_answer: bool = False
    callback_url: str = ""
    callback_method: str = "POST"
    transcription_type: str = ""
    transcription_url: str = ""
    transcription_method: str = "POST"


@dataclass(frozen=True, slots=True)
class HangupVerb:
    reason: str = ""
    #: Hang up after this many seconds and go on with the XML meanwhile; 0: now.
    schedule_s: int = 0


@dataclass(frozen=True, slots=True)
class RedirectVerb:
    url: str
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class DtmfVerb:
    digits: str


@dataclass(frozen=True, slots=True)
class ConferenceVerb:
    name: str
    muted: bool = False
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    max_members: int = 200
    time_limit_s: int = 86400
    callback_url: str = ""
    callback_method: str = "POST"


@dataclass(frozen=True, slots=True)
class MultiPartyCallVerb:
    name: str
    role: str = "customer"
    coach_mode: bool = True
    mute: bool = False
    hold: bool = False
    start_mpc_on_enter: bool = True
    end_mpc_on_exit: bool = False
    stay_alone: bool = False


Verb: TypeAlias = (
    StreamVerb
    | PlayVerb
    | SpeakVerb
    | WaitVerb
    | RecordVerb
    | HangupVerb
    | RedirectVerb
    | DtmfVerb
    | ConferenceVerb
    | MultiPartyCallVerb
    | GetDigitsVerb
    | GetInputVerb
    | DialVerb
)


def parse_extra_headers(value: str, where: str = "extraHeaders") -> dict[str, str]:
    """Parse ``k1=v1,k2=v2`` (≤ 512 bytes, letters and digits only) into a dict."""
    if not value:
        return {}
    if len(value.encode("utf-8")) > 512:
        raise XmlError(f"{where}: longer than 512 bytes")
    headers: dict[str, str] = {}
    for pair in value.split(","):
        key, sep, val = pair.strip().partition("=")
        if not sep or not _EXTRA_HEADER_RE.match(key) or not _EXTRA_HEADER_RE.match(val):
            raise XmlError(f"{where}: {pair!r} is not key=value of letters and digits")
        headers[key] = val
    return headers


def _stream(elem: ElementTree.Element, a: Attrs, where: str) -> StreamVerb:
    url = element_text(elem)
    if not re.match(r"^wss?://[^\s/]+", url):
        raise XmlError(f"{where}: the stream URL must be a ws:// or wss:// URL, got {url!r}")
    bidirectional = a.flag("bidirectional", False)
    track = a.choice("audioTrack", "inbound", AUDIO_TRACKS)
    if bidirectional and track != "inbound":
        raise XmlError(f"{where}: audioTrack must be inbound when bidirectional is true")
    content_type = a.choice("contentType", "audio/x-l16;rate=8000", STREAM_CONTENT_TYPES)
    extra = a.text("extraHeaders")
    parse_extra_headers(extra, f"{where}: extraHeaders")
    return StreamVerb(
        url=url,
        bidirectional=bidirectional,
        audio_track=track,
        stream_timeout_s=a.integer("streamTimeout", 86400, 1),
        status_callback_url=a.url("statusCallbackUrl"),
        status_callback_method=a.method("statusCallbackMethod"),
        content_type=content_type,
        extra_headers=extra,
        keep_call_alive=a.flag("keepCallAlive", False),
        noise_cancellation=a.flag("noiseCancellation", False),
        noise_cancellation_level=a.integer("noiseCancellationLevel", 85, 60, 100),
    )


def _wait(elem: ElementTree.Element, a: Attrs, where: str) -> WaitVerb:
    return WaitVerb(
        length_s=a.integer("length", 1, 1),
        silence=a.flag("silence", False),
        min_silence_ms=a.integer("minSilence", 2000, 0),
        beep=a.flag("beep", False),
    )


def _record(elem: ElementTree.Element, a: Attrs, where: str) -> RecordVerb:
    finish = a.text("finishOnKey", "1234567890*#")
    if finish.lower() == "none":
        finish = ""
    return RecordVerb(
        action=a.url("action"),
        method=a.method("method"),
        file_format=a.choice("fileFormat", "mp3", ("mp3", "wav")),
        redirect=a.flag("redirect", True),
        timeout_s=a.integer("timeout", 15, 0),
        max_length_s=a.integer("maxLength", 60, 1),
        play_beep=a.flag("playBeep", True),
        finish_on_key=finish,
        record_session=a.flag("recordSession", False),
        start_on_dial_answer=a.flag("startOnDialAnswer", False),
        callback_url=a.url("callbackUrl"),
        callback_method=a.method("callbackMethod"),
        transcription_type=a.text("transcriptionType"),
        transcription_url=a.url("transcriptionUrl"),
        transcription_method=a.method("transcriptionMethod"),
    )


def _hangup(elem: ElementTree.Element, a: Attrs, where: str) -> HangupVerb:
    return HangupVerb(
        reason=a.choice("reason", "", ("", "rejected", "busy")),
        schedule_s=a.integer("schedule", 0, 0),
    )


def _redirect(elem: ElementTree.Element, a: Attrs, where: str) -> RedirectVerb:
    url = element_text(elem)
    if not is_http_url(url):
        raise XmlError(f"{where}: <Redirect> needs an http(s) URL, got {url!r}")
    return RedirectVerb(url=url, method=a.method("method"))


def _dtmf(elem: ElementTree.Element, a: Attrs, where: str) -> DtmfVerb:
    value = element_text(elem)
    if not DIGITS_RE.fullmatch(value):
        raise XmlError(f"{where}: <DTMF> needs digits (0-9 * # A-D, w/W for pauses)")
    return DtmfVerb(digits=value)


def _conference(elem: ElementTree.Element, a: Attrs, where: str) -> ConferenceVerb:
    name = element_text(elem)
    if not name:
        raise XmlError(f"{where}: <Conference> needs a conference name")
    return ConferenceVerb(
        name=name,
        muted=a.flag("muted", False),
        start_conference_on_enter=a.flag("startConferenceOnEnter", True),
        end_conference_on_exit=a.flag("endConferenceOnExit", False),
        max_members=a.integer("maxMembers", 200, 1, 200),
        time_limit_s=a.integer("timeLimit", 86400, 0),
        callback_url=a.url("callbackUrl"),
        callback_method=a.method("callbackMethod"),
    )


def _mpc(elem: ElementTree.Element, a: Attrs, where: str) -> MultiPartyCallVerb:
    name = element_text(elem)
    if not name:
        raise XmlError(f"{where}: <MultiPartyCall> needs a name")
    return MultiPartyCallVerb(
        name=name,
        role=a.choice("role", "customer", ("agent", "supervisor", "customer")),
        coach_mode=a.flag("coachMode", True),
        mute=a.flag("mute", False),
        hold=a.flag("hold", False),
        start_mpc_on_enter=a.flag("startMpcOnEnter", True),
        end_mpc_on_exit=a.flag("endMpcOnExit", False),
        stay_alone=a.flag("stayAlone", False),
    )


_PARSERS: dict[str, Callable[[ElementTree.Element, Attrs, str], Verb]] = {
    "Stream": _stream,
    "Play": parse_play,
    "Speak": parse_speak,
    "Wait": _wait,
    "Record": _record,
    "Hangup": _hangup,
    "Redirect": _redirect,
    "DTMF": _dtmf,
    "Conference": _conference,
    "MultiPartyCall": _mpc,
    "GetDigits": parse_get_digits,
    "GetInput": parse_get_input,
    "Dial": parse_dial,
}


def parse_answer_xml(text: str | bytes) -> list[Verb]:
    """Parse answer XML into the verbs to run, in order; raise :class:`XmlError` if invalid."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from None
    if root.tag != "Response":
        raise XmlError(f"the root element must be <Response>, not <{root.tag}>")
    verbs: list[Verb] = []
    for index, elem in enumerate(root, start=1):
        where = f"<{elem.tag}> (element {index})"
        parser = _PARSERS.get(elem.tag)
        if parser is None:
            if elem.tag in UNSIMULATED:
                log.warning("answer XML: %s is not simulated by the emulator; skipped", where)
            else:
                log.warning("answer XML: unknown element %s skipped", where)
            continue
        verbs.append(parser(elem, Attrs(elem, where), where))
    return verbs
