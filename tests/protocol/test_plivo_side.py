"""The Plivo side of the Plivo dialect, sans-I/O, and round trips with the server side.

What the Plivo side encodes (start/media/dtmf/playedStream/clearedAudio/stop), the server
side decodes to the same neutral events; what the server side encodes (playAudio,
checkpoint, clearAudio, sendDTMF), the Plivo side decodes to the same neutral commands.
Pure tests, no event loop.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plivo_frames import json_values

from streamserver.protocol import (
    DTMF_DIGITS,
    ENCODING_L16,
    ENCODING_MULAW,
    KEYPAD_DIGITS,
    Checkpoint,
    ClearAudio,
    ClearedAudio,
    Dtmf,
    Media,
    PlayAudio,
    PlayedStream,
    ProtocolError,
    SendDtmf,
    Start,
    Stop,
    Unknown,
)
from streamserver.protocol.plivo import (
    decode,
    decode_command,
    encode_checkpoint,
    encode_clear_audio,
    encode_cleared_audio,
    encode_dtmf,
    encode_media,
    encode_play_audio,
    encode_played_stream,
    encode_send_dtmf,
    encode_start,
    encode_stop,
    format_extra_headers,
    parse_extra_headers,
    random_account_id,
)

SID = "b77e037d-4119-44b5-902d-25826b654539"
CID = "a1b2c3d4-0000-4000-8000-000000000001"
ACC = "MAXXXXXXXXXXXXXXXXXX"

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def command_error(data: bytes | str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_command(data)
    return info.value


# --- the alphabet -------------------------------------------------------------------------


def test_dtmf_alphabet() -> None:
    assert DTMF_DIGITS == "0123456789*#ABCD"
    assert KEYPAD_DIGITS == "0123456789*#"


# --- Plivo -> server: exact frames, then what the server makes of them ---------------------


def test_encode_start_exact_json_and_round_trip() -> None:
    headers = format_extra_headers({"tenant": "acme", "run": "7"})
    frame = encode_start(1, CID, SID, ACC, ("inbound", "outbound"), ENCODING_L16, 16000, headers)
    assert frame == (
        b'{"event":"start","sequenceNumber":1,"start":{"callId":"' + CID.encode() + b'",'
        b'"streamId":"' + SID.encode() + b'","accountId":"' + ACC.encode() + b'",'
        b'"tracks":["inbound","outbound"],"mediaFormat":{"encoding":"audio/x-l16",'
        b'"sampleRate":16000}},"extra_headers":"tenant=acme;run=7"}'
    )
    assert decode(frame) == Start(
        stream_id=SID,
        call_id=CID,
        account_id=ACC,
        tracks=("inbound", "outbound"),
        encoding=ENCODING_L16,
        sample_rate=16000,
        extra_headers={"tenant": "acme", "run": "7"},
        sequence_number=1,
    )


def test_encode_media_exact_json() -> None:
    assert encode_media(2, SID, "inbound", 40, 3, b"\x00\xff") == (
        b'{"event":"media","sequenceNumber":2,"streamId":"' + SID.encode() + b'",'
        b'"media":{"track":"inbound","timestamp":"40","chunk":3,"payload":"AP8="},'
        b'"extra_headers":""}'
    )


@PROPERTY
@given(
    payload=st.binary(max_size=700),
    seq=st.integers(min_value=0, max_value=2**40),
    chunk=st.integers(min_value=1, max_value=2**40),
    ts=st.integers(min_value=0, max_value=2**45),
    track=st.sampled_from(["inbound", "outbound"]),
)
def test_media_round_trips(payload: bytes, seq: int, chunk: int, ts: int, track: str) -> None:
    frame = encode_media(seq, SID, track, ts, chunk, payload, "a=1")
    assert decode(frame) == Media(track, chunk, ts, payload, seq, SID)


@pytest.mark.parametrize("digit", list(DTMF_DIGITS))
def test_dtmf_round_trips(digit: str) -> None:
    frame = encode_dtmf(7, SID, digit, 1234)
    assert json.loads(frame)["dtmf"] == {"digit": digit, "track": "inbound", "timestamp": "1234"}
    assert decode(frame) == Dtmf(digit, "inbound", 1234, 7, SID)


@pytest.mark.parametrize("digit", ["", "12", "x", "E", " "])
def test_encode_dtmf_rejects_anything_but_one_digit(digit: str) -> None:
    with pytest.raises(ValueError, match="DTMF"):
        encode_dtmf(1, SID, digit, 0)


def test_played_cleared_and_stop_round_trip() -> None:
    assert encode_played_stream(9, SID, "cp-1") == (
        b'{"event":"playedStream","sequenceNumber":9,"streamId":"' + SID.encode() + b'",'
        b'"name":"cp-1"}'
    )
    assert decode(encode_played_stream(9, SID, "cp-1")) == PlayedStream("cp-1", 9, SID)
    assert decode(encode_cleared_audio(10, SID)) == ClearedAudio(10, SID)
    stop = encode_stop(11, CID, SID, ("inbound",))
    assert json.loads(stop) == {
        "event": "stop",
        "sequenceNumber": 11,
        "streamId": SID,
        "stop": {"callId": CID, "streamId": SID, "tracks": ["inbound"]},
    }
    assert decode(stop) == Stop(None, 11, SID)


@PROPERTY
@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
        st.from_regex(r"([A-Za-z0-9_.-][A-Za-z0-9 _.-]{0,10}[A-Za-z0-9_.-])?", fullmatch=True),
        max_size=5,
    )
)
def test_extra_headers_round_trip(headers: dict[str, str]) -> None:
    assert parse_extra_headers(format_extra_headers(headers)) == headers


@pytest.mark.parametrize(
    "headers", [{"": "x"}, {"a=b": "x"}, {"a;b": "x"}, {"a": "1;2"}, {"a": "1,2"}, {" a": "1"}]
)
def test_format_extra_headers_rejects_what_would_not_read_back(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="extra header"):
        format_extra_headers(headers)


def test_random_account_id_is_plivo_shaped() -> None:
    ids = {random_account_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(re.fullmatch(r"MA[A-Z0-9]{18}", i) for i in ids)


# --- server -> Plivo: what the Plivo side makes of the server's commands -------------------


@PROPERTY
@given(
    payload=st.binary(max_size=700),
    fmt=st.sampled_from([(ENCODING_MULAW, 8000), (ENCODING_L16, 8000), (ENCODING_L16, 16000)]),
    sid=st.none() | st.just(SID),
)
def test_play_audio_round_trips(payload: bytes, fmt: tuple[str, int], sid: str | None) -> None:
    encoding, rate = fmt
    frame = encode_play_audio(payload, encoding, rate, sid)
    assert decode_command(frame) == PlayAudio(payload, encoding, rate, sid)


def test_checkpoint_clear_and_dtmf_round_trip() -> None:
    assert decode_command(encode_checkpoint(SID, "greeting")) == Checkpoint("greeting", SID)
    assert decode_command(encode_clear_audio(SID)) == ClearAudio(SID)
    assert decode_command(encode_send_dtmf("12#A")) == SendDtmf("12#A")
    assert decode_command(encode_send_dtmf("abcd")) == SendDtmf("abcd")


def play(media: Any, **top: Any) -> str:
    return json.dumps({"event": "playAudio", "media": media, **top})


def test_decode_command_tolerates_documented_variants() -> None:
    # ";rate=" as in XML, upper case, the rate as a digit string, no streamId, unknown keys.
    frame = play(
        {"contentType": "Audio/X-L16;rate=16000", "sampleRate": "16000", "payload": "AQI="},
        extra=1,
    )
    assert decode_command(frame) == PlayAudio(b"\x01\x02", ENCODING_L16, 16000, None)
    assert decode_command(b'{"event":"clearAudio"}') == ClearAudio(None)
    cp = decode_command('{"event":"checkpoint","name":"x","streamId":"s"}')
    assert cp == Checkpoint("x", "s")


def test_decode_command_returns_unknown_commands() -> None:
    cmd = decode_command('{"event":"muteStream","streamId":"s","x":[1]}')
    assert cmd == Unknown(
        "muteStream", {"event": "muteStream", "streamId": "s", "x": [1]}, None, "s"
    )
    # A server event sent the wrong way is unknown here too, never fatal.
    assert isinstance(decode_command(encode_media(2, SID, "inbound", 0, 1, b"")), Unknown)


@pytest.mark.parametrize(
    ("frame", "kind", "word"),
    [
        ("not json", "json", "JSON"),
        ("[1]", "json", "object"),
        (b"\xff", "json", "JSON"),
        ('{"x":1}', "schema", "event"),
        ('{"event":"playAudio"}', "schema", "media"),
        (play({"contentType": ENCODING_MULAW, "sampleRate": 8000}), "schema", "payload"),
        (play({"sampleRate": 8000, "payload": ""}), "schema", "contentType"),
        (play({"contentType": ENCODING_MULAW, "sampleRate": 8000, "payload": "***"}), "base64", ""),
        (
            play({"contentType": ENCODING_MULAW, "sampleRate": 16000, "payload": ""}),
            "value",
            "8000",
        ),
        (play({"contentType": "audio/x-opus", "sampleRate": 8000, "payload": ""}), "value", "opus"),
        (play({"contentType": ENCODING_L16, "sampleRate": 11025, "payload": ""}), "value", "11025"),
        (
            play({"contentType": "audio/x-l16;rate=8000", "sampleRate": 16000, "payload": ""}),
            "value",
            "contradicts",
        ),
        (play({"contentType": ENCODING_L16, "sampleRate": "fast", "payload": ""}), "value", ""),
        ('{"event":"checkpoint","streamId":"s"}', "schema", "name"),
        ('{"event":"checkpoint","name":""}', "schema", "name"),
        ('{"event":"sendDTMF"}', "value", "digits"),
        ('{"event":"sendDTMF","dtmf":"12x"}', "value", "12x"),
        ('{"event":"sendDTMF","dtmf":""}', "value", "digits"),
    ],
)
def test_decode_command_malformed(frame: bytes | str, kind: str, word: str) -> None:
    exc = command_error(frame)
    assert exc.kind == kind, exc
    assert word in exc.reason, exc


FIELDS = ["media", "contentType", "sampleRate", "payload", "name", "dtmf", "streamId"]
commands = st.builds(
    lambda event, rest: {"event": event, **rest},
    st.sampled_from(["playAudio", "checkpoint", "clearAudio", "sendDTMF"]) | json_values,
    st.dictionaries(
        st.sampled_from(FIELDS),
        json_values
        | st.sampled_from([ENCODING_MULAW, ENCODING_L16, 8000, 16000, "AAAA", "1#"])
        | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4),
        max_size=4,
    ),
)


@PROPERTY
@given(st.binary(max_size=300) | commands.map(json.dumps))
def test_decode_command_only_raises_protocol_error(data: bytes | str) -> None:
    try:
        cmd = decode_command(data)
    except ProtocolError as exc:
        assert exc.kind in ("json", "base64", "schema", "value")
    else:
        assert isinstance(cmd, PlayAudio | Checkpoint | ClearAudio | SendDtmf | Unknown)
