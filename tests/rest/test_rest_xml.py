"""streamserver.rest.xml: exact answer-XML output, escaping, and validation errors."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import pytest

from streamserver.rest.xml import (
    GetDigits,
    Hangup,
    Play,
    Record,
    Redirect,
    Response,
    Speak,
    Stream,
    Wait,
)


def test_typical_bidirectional_stream() -> None:
    xml = Response(
        Stream(
            "wss://host/stream",
            bidirectional=True,
            keep_call_alive=True,
            content_type="audio/x-mulaw;rate=8000",
        )
    ).to_xml()
    assert xml == (
        '<Response><Stream bidirectional="true" contentType="audio/x-mulaw;rate=8000" '
        'keepCallAlive="true">wss://host/stream</Stream></Response>'
    )


def test_stream_every_attribute_in_order() -> None:
    s = Stream(
        "wss://media.test/s?tenant=a&run=1",
        bidirectional=False,
        audio_track="both",
        stream_timeout=600,
        status_callback_url="https://app.test/status?x=1&y=2",
        status_callback_method="get",
        content_type="audio/x-l16;rate=16000",
        extra_headers={"tenant": "acme", "run": "7"},
        keep_call_alive=False,
        noise_cancellation=True,
        noise_cancellation_level=85,
    )
    assert s.to_xml() == (
        '<Stream bidirectional="false" audioTrack="both" streamTimeout="600" '
        'statusCallbackUrl="https://app.test/status?x=1&amp;y=2" statusCallbackMethod="GET" '
        'contentType="audio/x-l16;rate=16000" extraHeaders="tenant=acme,run=7" '
        'keepCallAlive="false" noiseCancellation="true" noiseCancellationLevel="85">'
        "wss://media.test/s?tenant=a&amp;run=1</Stream>"
    )


def test_every_verb_exact() -> None:
    xml = Response(
        Speak('Hello <caller> & "friends"', voice="Polly.Joanna", language="en-US", loop=2),
        Play("https://s.test/a.mp3", loop=0),
        Wait(length=5, silence=True, min_silence=500, beep=False),
        Record(
            action="https://app.test/rec",
            method="POST",
            file_format="wav",
            max_length=60,
            timeout=5,
            finish_on_key="#*",
            play_beep=True,
            record_session=False,
            start_on_dial_answer=False,
            redirect=False,
            callback_url="https://app.test/rec-done",
            callback_method="GET",
        ),
        GetDigits(
            Speak("Press 1"),
            Play("https://s.test/menu.mp3"),
            action="https://app.test/digits",
            method="GET",
            timeout=10,
            digit_timeout=3,
            finish_on_key="#",
            num_digits=4,
            retries=2,
            redirect=True,
            play_beep=False,
            valid_digits="1234",
            invalid_digits_sound="https://s.test/bad.mp3",
        ),
        Redirect("https://app.test/next", method="GET"),
        Hangup(reason="busy", schedule=30),
    ).to_xml()
    assert xml == (
        "<Response>"
        '<Speak voice="Polly.Joanna" language="en-US" loop="2">'
        'Hello &lt;caller&gt; &amp; "friends"</Speak>'
        '<Play loop="0">https://s.test/a.mp3</Play>'
        '<Wait length="5" silence="true" minSilence="500" beep="false" />'
        '<Record action="https://app.test/rec" method="POST" fileFormat="wav" maxLength="60" '
        'timeout="5" finishOnKey="#*" playBeep="true" recordSession="false" '
        'startOnDialAnswer="false" redirect="false" callbackUrl="https://app.test/rec-done" '
        'callbackMethod="GET" />'
        '<GetDigits action="https://app.test/digits" method="GET" timeout="10" digitTimeout="3" '
        'finishOnKey="#" numDigits="4" retries="2" redirect="true" playBeep="false" '
        'validDigits="1234" invalidDigitsSound="https://s.test/bad.mp3">'
        "<Speak>Press 1</Speak><Play>https://s.test/menu.mp3</Play></GetDigits>"
        '<Redirect method="GET">https://app.test/next</Redirect>'
        '<Hangup reason="busy" schedule="30" />'
        "</Response>"
    )


def test_empty_and_declaration_and_indent() -> None:
    assert Response().to_xml() == "<Response />"
    assert Response(Hangup()).to_xml(declaration=True) == (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Hangup /></Response>'
    )
    assert Response(Speak("a"), Hangup()).to_xml(indent=True) == (
        "<Response>\n  <Speak>a</Speak>\n  <Hangup />\n</Response>"
    )
    assert str(Response(Hangup())) == "<Response><Hangup /></Response>"


def test_add_chains_and_verbs_compare_by_output() -> None:
    r = Response().add(Speak("a")).add(Wait(length=1), Hangup())
    assert r == Response(Speak("a"), Wait(length=1), Hangup())
    assert r != Response(Speak("b"))
    assert "Speak" in repr(Speak("a"))


def test_escaping_survives_a_round_trip() -> None:
    nasty = "a&b<c>d\"e'f\nnext line ünïcode"
    xml = Response(Speak(nasty, voice='x"y')).to_xml(declaration=True)
    root = ElementTree.fromstring(xml.encode())
    assert root[0].text == nasty and root[0].get("voice") == 'x"y'


def test_extra_headers_as_string() -> None:
    s = Stream("ws://h/s", extra_headers="a=1,B2=xY")
    assert 'extraHeaders="a=1,B2=xY"' in s.to_xml()


BAD: list[tuple[str, Any, str]] = [
    ("stream http url", lambda: Stream("https://h/s"), "Stream url"),
    ("stream no host", lambda: Stream("wss:///s"), "Stream url"),
    (
        "bidirectional outbound",
        lambda: Stream("wss://h/s", bidirectional=True, audio_track="outbound"),
        "Stream.audioTrack must be 'inbound' when Stream.bidirectional is true",
    ),
    ("audio track", lambda: Stream("wss://h/s", audio_track="left"), "Stream.audioTrack"),
    (
        "content type",
        lambda: Stream("wss://h/s", content_type="audio/x-mulaw;rate=16000"),
        "Stream.contentType",
    ),
    (
        "headers chars",
        lambda: Stream("wss://h/s", extra_headers={"a_b": "1"}),
        "Stream.extraHeaders",
    ),
    (
        "headers value",
        lambda: Stream("wss://h/s", extra_headers={"a": "x y"}),
        "Stream.extraHeaders",
    ),
    ("headers pairs", lambda: Stream("wss://h/s", extra_headers="a=1,b"), "Stream.extraHeaders"),
    ("headers empty", lambda: Stream("wss://h/s", extra_headers={}), "Stream.extraHeaders"),
    (
        "headers too long",
        lambda: Stream("wss://h/s", extra_headers={f"k{i}": "v" * 20 for i in range(30)}),
        "at most 512 bytes",
    ),
    (
        "level low",
        lambda: Stream("wss://h/s", noise_cancellation_level=59),
        "Stream.noiseCancellationLevel",
    ),
    (
        "level high",
        lambda: Stream("wss://h/s", noise_cancellation_level=101),
        "Stream.noiseCancellationLevel",
    ),
    ("timeout zero", lambda: Stream("wss://h/s", stream_timeout=0), "Stream.streamTimeout"),
    ("bool as string", lambda: Stream("wss://h/s", bidirectional="true"), "Stream.bidirectional"),
    (
        "callback method",
        lambda: Stream("wss://h/s", status_callback_method="PUT"),
        "Stream.statusCallbackMethod",
    ),
    (
        "callback url",
        lambda: Stream("wss://h/s", status_callback_url="/status"),
        "Stream.statusCallbackUrl",
    ),
    ("speak empty", lambda: Speak(""), "Speak text"),
    ("speak control char", lambda: Speak("a\x00b"), "Speak text"),
    ("speak loop", lambda: Speak("a", loop=-1), "Speak.loop"),
    ("play url", lambda: Play("s.test/a.mp3"), "Play url"),
    ("play loop bool", lambda: Play("https://s.test/a.mp3", loop=True), "Play.loop"),
    ("wait length", lambda: Wait(length=0), "Wait.length"),
    ("wait min silence", lambda: Wait(min_silence=200), "Wait.minSilence"),
    ("record format", lambda: Record(file_format="ogg"), "Record.fileFormat"),
    ("record keys", lambda: Record(finish_on_key="#x"), "Record.finishOnKey"),
    ("record action", lambda: Record(action="ftp://a"), "Record.action"),
    ("hangup reason", lambda: Hangup(reason="angry"), "Hangup.reason"),
    ("hangup schedule", lambda: Hangup(schedule=0), "Hangup.schedule"),
    ("redirect method", lambda: Redirect("https://a.test/x", method="PATCH"), "Redirect.method"),
    ("digits key", lambda: GetDigits(finish_on_key="##"), "GetDigits.finishOnKey"),
    ("digits valid", lambda: GetDigits(valid_digits="12a"), "GetDigits.validDigits"),
    ("digits num", lambda: GetDigits(num_digits=0), "GetDigits.numDigits"),
    ("digits nesting", lambda: GetDigits(Wait(length=1)), "GetDigits may nest only Speak and Play"),
    ("response nesting", lambda: Response(Response()), "Response may not contain"),
    ("response non-verb", lambda: Response("<Hangup/>"), "Response may not contain"),
]


@pytest.mark.parametrize(("name", "build", "message"), BAD, ids=[b[0] for b in BAD])
def test_invalid_values_name_the_attribute(name: str, build: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)


def test_finish_on_key_none_is_allowed() -> None:
    assert 'finishOnKey="none"' in GetDigits(finish_on_key="none").to_xml()
    assert 'finishOnKey="none"' in Record(finish_on_key="none").to_xml()


def test_output_is_accepted_by_the_emulator_parser() -> None:
    """What we build, the local emulator (playing Plivo) accepts, with the same meaning."""
    emulator_xml = pytest.importorskip("streamserver.emulator.xml")
    xml = Response(
        Speak("Hi"),
        Stream(
            "wss://h/s",
            bidirectional=True,
            keep_call_alive=True,
            content_type="audio/x-mulaw;rate=8000",
            extra_headers={"a": "1"},
            stream_timeout=60,
            noise_cancellation=True,
            noise_cancellation_level=70,
        ),
        Wait(length=1),
        Hangup(),
    ).to_xml(declaration=True)
    verbs = emulator_xml.parse_answer_xml(xml)
    stream = next(verb for verb in verbs if isinstance(verb, emulator_xml.StreamVerb))
    assert stream.url == "wss://h/s" and stream.bidirectional and stream.keep_call_alive
    assert stream.content_type == "audio/x-mulaw;rate=8000"
    assert stream.extra_headers == "a=1" and stream.stream_timeout_s == 60
    assert stream.noise_cancellation and stream.noise_cancellation_level == 70
