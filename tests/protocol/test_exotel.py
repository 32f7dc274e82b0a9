"""The Exotel Voicebot/Stream applet dialect, sans-I/O: both documented ``media_format``
shapes, snake_case messages, 320-byte chunking, bad input.

Fixtures are the examples of https://developer.exotel.com/docs/agentstream/websocket-protocol
and, for the older ``media_format`` shape, of
https://support.exotel.com/support/solutions/articles/3000108630-working-with-the-stream-and-voicebot-applet
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from streamserver.protocol import exotel
from streamserver.protocol.events import (
    ENCODING_L16,
    ENCODING_MULAW,
    Dtmf,
    Media,
    PlayedStream,
    Start,
    Stop,
)
from streamserver.protocol.neutral import (
    BinaryNotSupported,
    Checkpoint,
    Clear,
    Connected,
    NotSupported,
    Play,
    ProtocolError,
)

SID = "MZxxxxxxxxxxxxxxxxxxxxxxxx"
CALL = "CAxxxxxxxxxxxxxxxxxxxxxxxx"
ACC = "ACxxxxxxxxxxxxxxxxxxxxxxxx"
AUDIO = bytes(range(256)) * 12 + bytes(128)  # 3,200 bytes: 200 ms of 8 kHz L16
B64 = base64.b64encode(AUDIO).decode()

CONNECTED = {"event": "connected"}
START = {
    "event": "start",
    "sequence_number": "1",
    "stream_sid": SID,
    "start": {
        "stream_sid": SID,
        "call_sid": CALL,
        "account_sid": ACC,
        "from": "+919876543210",
        "to": "+918047491899",
        "custom_parameters": {"key1": "value1"},
        "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"},
    },
}
OLD_MEDIA_FORMAT = {"encoding": "base64", "sample_rate": "8000", "bit_rate": "128kbps"}
MEDIA = {
    "event": "media",
    "sequence_number": "3",
    "stream_sid": SID,
    "media": {"chunk": "2", "timestamp": "200", "payload": B64},
}
DTMF = {
    "event": "dtmf",
    "sequence_number": "7",
    "stream_sid": SID,
    "dtmf": {"digit": "5", "duration": "100"},
}
MARK = {"event": "mark", "sequence_number": "15", "stream_sid": SID, "mark": {"name": "greeting"}}
STOP = {
    "event": "stop",
    "sequence_number": "20",
    "stream_sid": SID,
    "stop": {"call_sid": CALL, "account_sid": ACC, "reason": "callended"},
}


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def start_with(media_format: dict[str, Any] | None) -> bytes:
    doc = json.loads(json.dumps(START))
    if media_format is None:
        del doc["start"]["media_format"]
    else:
        doc["start"]["media_format"] = media_format
    return raw(doc)


def test_documented_messages_decode() -> None:
    assert exotel.decode(raw(CONNECTED)) == Connected()
    assert exotel.decode(raw(START)) == Start(
        stream_id=SID,
        call_id=CALL,
        account_id=ACC,
        tracks=("inbound",),
        encoding=ENCODING_L16,
        sample_rate=8000,
        extra_headers={"from": "+919876543210", "to": "+918047491899"},
        sequence_number=1,
        custom_parameters={"key1": "value1"},
    )
    assert exotel.decode(raw(MEDIA)) == Media("inbound", 2, 200, AUDIO, 3, SID)
    assert exotel.decode(raw(DTMF)) == Dtmf("5", "inbound", None, 7, SID)
    assert exotel.decode(raw(MARK)) == PlayedStream("greeting", 15, SID)
    assert exotel.decode(raw(STOP)) == Stop("callended", 20, SID)


@pytest.mark.parametrize(
    ("media_format", "encoding", "rate"),
    [
        (OLD_MEDIA_FORMAT, ENCODING_L16, 8000),
        (
            {"encoding": "audio/x-raw", "sample_rate": "16000", "bit_rate": "16"},
            ENCODING_L16,
            16000,
        ),
        (
            {"encoding": "audio/x-raw", "sample_rate": "24000", "bit_rate": "16"},
            ENCODING_L16,
            24000,
        ),
        ({"encoding": "base64", "sample_rate": 16000, "bit_rate": "256kbps"}, ENCODING_L16, 16000),
        ({"encoding": "audio/x-raw", "sample_rate": 8000, "bit_rate": 16}, ENCODING_L16, 8000),
        ({"encoding": "audio/x-mulaw", "sample_rate": "8000"}, ENCODING_MULAW, 8000),
        (None, ENCODING_L16, 8000),
    ],
)
def test_both_media_format_shapes(
    media_format: dict[str, Any] | None, encoding: str, rate: int
) -> None:
    start = exotel.decode(start_with(media_format))
    assert isinstance(start, Start) and (start.encoding, start.sample_rate) == (encoding, rate)


@pytest.mark.parametrize(
    "media_format",
    [
        {"encoding": "audio/x-raw", "sample_rate": "44100", "bit_rate": "16"},
        {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "8"},
        {"encoding": "audio/x-raw", "sample_rate": "eight", "bit_rate": "16"},
        {"encoding": "audio/x-mulaw", "sample_rate": "16000"},
        {"encoding": "audio/ogg", "sample_rate": "8000"},
    ],
)
def test_bad_media_formats(media_format: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        exotel.decode(start_with(media_format))
    assert info.value.kind == "value"


def test_stream_sid_from_the_top_level_when_start_lacks_it() -> None:
    doc = json.loads(json.dumps(START))
    del doc["start"]["stream_sid"]
    start = exotel.decode(raw(doc))
    assert isinstance(start, Start) and start.stream_id == SID
    del doc["stream_sid"]
    with pytest.raises(ProtocolError, match="stream_sid"):
        exotel.decode(raw(doc))


def test_numbers_as_ints_too() -> None:
    doc = {**MEDIA, "sequence_number": 3, "media": {**MEDIA["media"], "chunk": 2}}
    assert exotel.decode(raw(doc)) == Media("inbound", 2, 200, AUDIO, 3, SID)


def test_outbound_chunks_are_multiples_of_320_bytes() -> None:
    sent = json.loads(exotel.encode_play(AUDIO, ENCODING_L16, 8000, SID))
    assert sent == {"event": "media", "stream_sid": SID, "media": {"payload": B64}}
    short = base64.b64decode(
        json.loads(exotel.encode_play(b"\x01\x02" * 10, ENCODING_L16, 8000, SID))["media"][
            "payload"
        ]
    )
    assert len(short) == 320 and short[:20] == b"\x01\x02" * 10 and not short[20:].strip(b"\x00")
    mulaw = base64.b64decode(
        json.loads(exotel.encode_play(b"\x00" * 5, ENCODING_MULAW, 8000, SID))["media"]["payload"]
    )
    assert mulaw == b"\x00" * 5 + b"\xff" * 315
    assert exotel.DIALECT.play_frame_ms == 200
    # A play frame at every documented rate is a whole number of 320-byte blocks, >= 3.2 kB.
    for rate in (8000, 16000, 24000):
        chunk = rate * exotel.DIALECT.play_frame_ms // 1000 * 2
        assert chunk % exotel.CHUNK_MULTIPLE == 0
        assert exotel.MIN_CHUNK_BYTES <= chunk <= exotel.MAX_CHUNK_BYTES


def test_server_commands() -> None:
    assert json.loads(exotel.encode_checkpoint(SID, "greeting")) == {
        "event": "mark",
        "stream_sid": SID,
        "mark": {"name": "greeting"},
    }
    assert json.loads(exotel.encode_clear(SID)) == {"event": "clear", "stream_sid": SID}
    with pytest.raises(NotSupported, match="exotel"):
        exotel.encode_send_dtmf(SID, "1")
    with pytest.raises(BinaryNotSupported):
        exotel.DIALECT.decode_binary(b"\x00\x00")
    with pytest.raises(ValueError, match="stream_sid"):
        exotel.encode_clear("")


def test_provider_messages_and_round_trips() -> None:
    d, p = exotel.DIALECT, exotel.PROVIDER
    assert json.loads(exotel.provider_connected()) == CONNECTED
    start = d.decode(raw(START))
    assert isinstance(start, Start)
    assert json.loads(p.encode_start(start)) == START
    assert d.decode(p.encode_start(start)) == start
    assert json.loads(p.encode_media(AUDIO, SID, 3, 2, 200, "inbound")) == MEDIA
    assert json.loads(p.encode_dtmf("5", SID, 7)) == DTMF
    assert json.loads(p.encode_played("greeting", SID, 15)) == MARK
    stop = p.encode_stop(SID, CALL, ACC, 20, None)
    assert stop is not None and json.loads(stop) == STOP
    assert p.encode_cleared(SID, 21) is None
    for rate in (16000, 24000):
        s = Start(SID, CALL, ACC, ("inbound",), ENCODING_L16, rate, {}, 1, {})
        assert d.decode(p.encode_start(s)) == s
    mulaw = Start(SID, CALL, ACC, ("inbound",), ENCODING_MULAW, 8000, {}, 1, {})
    assert d.decode(p.encode_start(mulaw)) == mulaw
    with pytest.raises(ValueError):
        p.encode_start(Start(SID, CALL, ACC, ("inbound",), "audio/x-alaw", 8000, {}))
    assert p.decode_command(d.encode_play(AUDIO, ENCODING_L16, 8000, SID)) == Play(AUDIO, SID)
    assert p.decode_command(d.encode_checkpoint(SID, "g")) == Checkpoint("g", SID)
    assert p.decode_command(d.encode_clear(SID)) == Clear(SID)
    with pytest.raises(ProtocolError):
        p.decode_command(b'{"event":"media","stream_sid":"x","media":{"payload":"%"}}')


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"nope", "json"),
        (raw({"event": "media", "stream_sid": SID}), "schema"),
        (raw({**MEDIA, "media": {"payload": "@@"}}), "base64"),
        (raw({**START, "start": None}), "schema"),
        (raw({**START, "start": {"stream_sid": SID}}), "schema"),
        (raw({**DTMF, "dtmf": {"duration": "100"}}), "schema"),
        (raw({**MARK, "mark": None}), "schema"),
    ],
)
def test_bad_input(data: bytes, kind: str) -> None:
    with pytest.raises(ProtocolError) as info:
        exotel.decode(data)
    assert info.value.kind == kind
