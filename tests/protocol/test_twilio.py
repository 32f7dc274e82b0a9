"""The Twilio Media Streams dialect, sans-I/O: the documented messages, both sides, bad input.

Fixtures are the examples of https://www.twilio.com/docs/voice/media-streams/websocket-messages
(the docs abbreviate media payloads; here they are whole, valid base64).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from streamserver.protocol import twilio
from streamserver.protocol.dialect import Dialect, ProviderSide
from streamserver.protocol.events import (
    ENCODING_MULAW,
    Dtmf,
    Media,
    PlayedStream,
    Start,
    Stop,
    Unknown,
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

SID = "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
CALL = "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
ACC = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
AUDIO = bytes(range(160))
B64 = base64.b64encode(AUDIO).decode()

# --- the documented messages (Twilio -> server) ---------------------------------------------

CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": ACC,
        "streamSid": SID,
        "callSid": CALL,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
    },
    "streamSid": SID,
}
MEDIA_OUTBOUND = {
    "event": "media",
    "sequenceNumber": "3",
    "media": {"track": "outbound", "chunk": "1", "timestamp": "5", "payload": B64},
    "streamSid": SID,
}
MEDIA_INBOUND = {
    "event": "media",
    "sequenceNumber": "4",
    "media": {"track": "inbound", "chunk": "2", "timestamp": "5", "payload": B64},
    "streamSid": SID,
}
STOP = {
    "event": "stop",
    "sequenceNumber": "5",
    "stop": {"accountSid": ACC, "callSid": CALL},
    "streamSid": SID,
}
DTMF = {
    "event": "dtmf",
    "streamSid": SID,
    "sequenceNumber": "5",
    "dtmf": {"track": "inbound_track", "digit": "1"},
}
MARK = {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "my label"}}

# --- the documented messages (server -> Twilio) ---------------------------------------------

SEND_MEDIA = {"event": "media", "streamSid": SID, "media": {"payload": B64}}
SEND_MARK = {"event": "mark", "streamSid": SID, "mark": {"name": "my label"}}
SEND_CLEAR = {"event": "clear", "streamSid": SID}


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_documented_messages_decode() -> None:
    assert twilio.decode(raw(CONNECTED)) == Connected("Call", "1.0.0")
    assert twilio.decode(raw(START)) == Start(
        stream_id=SID,
        call_id=CALL,
        account_id=ACC,
        tracks=("inbound",),
        encoding=ENCODING_MULAW,
        sample_rate=8000,
        extra_headers={},
        sequence_number=1,
        custom_parameters={"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
    )
    assert twilio.decode(raw(MEDIA_OUTBOUND)) == Media("outbound", 1, 5, AUDIO, 3, SID)
    assert twilio.decode(raw(MEDIA_INBOUND)) == Media("inbound", 2, 5, AUDIO, 4, SID)
    assert twilio.decode(raw(STOP)) == Stop(None, 5, SID)
    assert twilio.decode(raw(DTMF)) == Dtmf("1", "inbound", None, 5, SID)
    assert twilio.decode(raw(MARK)) == PlayedStream("my label", 4, SID)


def test_str_input_and_both_tracks() -> None:
    doc = json.loads(json.dumps(START))
    doc["start"]["tracks"] = ["inbound", "outbound"]
    start = twilio.decode(json.dumps(doc))
    assert isinstance(start, Start) and start.tracks == ("inbound", "outbound")


def test_server_commands_have_the_documented_shape() -> None:
    assert json.loads(twilio.encode_play(AUDIO, ENCODING_MULAW, 8000, SID)) == SEND_MEDIA
    assert json.loads(twilio.encode_checkpoint(SID, "my label")) == SEND_MARK
    assert json.loads(twilio.encode_clear(SID)) == SEND_CLEAR
    # Field order as documented: event first.
    assert twilio.encode_clear(SID).startswith(b'{"event":"clear"')
    with pytest.raises(ValueError, match="streamSid"):
        twilio.encode_play(AUDIO, ENCODING_MULAW, 8000, None)


def test_send_dtmf_is_not_supported() -> None:
    with pytest.raises(NotSupported) as info:
        twilio.encode_send_dtmf(SID, "123")
    err = info.value
    assert isinstance(err, ProtocolError) and err.kind == "unsupported"
    assert err.provider == "twilio" and err.command == "send_dtmf"
    assert "twilio" in str(err)
    with pytest.raises(NotSupported):
        twilio.DIALECT.encode_dtmf(SID, "1")


def test_binary_frames_are_refused_with_1003() -> None:
    with pytest.raises(BinaryNotSupported) as info:
        twilio.DIALECT.decode_binary(b"\x00\x01")
    assert info.value.kind == "binary" and info.value.close_code == 1003
    with pytest.raises(BinaryNotSupported):
        twilio.PROVIDER.decode_command_binary(b"\x00")


# --- provider side --------------------------------------------------------------------------


def test_provider_messages_are_the_documented_ones() -> None:
    assert json.loads(twilio.provider_connected()) == CONNECTED
    start = twilio.decode(raw(START))
    assert isinstance(start, Start)
    assert json.loads(twilio.provider_start(start)) == START
    assert json.loads(twilio.provider_media(AUDIO, SID, 4, 2, 5)) == MEDIA_INBOUND
    assert json.loads(twilio.provider_media(AUDIO, SID, 3, 1, 5, "outbound")) == MEDIA_OUTBOUND
    assert json.loads(twilio.provider_dtmf("1", SID, 5)) == DTMF
    assert json.loads(twilio.provider_played("my label", SID, 4)) == MARK
    assert json.loads(twilio.provider_stop(SID, CALL, ACC, 5)) == STOP
    assert twilio.provider_cleared(SID, 6) is None


def test_round_trips_provider_to_server() -> None:
    p: ProviderSide = twilio.PROVIDER
    d: Dialect = twilio.DIALECT
    start = Start(SID, CALL, ACC, ("inbound", "outbound"), ENCODING_MULAW, 8000, {}, 1, {"k": "v"})
    assert d.decode(p.encode_start(start)) == start
    for n in range(1, 4):
        frame = p.encode_media(AUDIO[:n], SID, n + 1, n, 20 * n, "inbound")
        assert d.decode(frame) == Media("inbound", n, 20 * n, AUDIO[:n], n + 1, SID)
    assert d.decode(p.encode_dtmf("#", SID, 9)) == Dtmf("#", "inbound", None, 9, SID)
    assert d.decode(p.encode_played("cp-1", SID, 10)) == PlayedStream("cp-1", 10, SID)
    stop = p.encode_stop(SID, CALL, ACC, 11, None)
    assert stop is not None and d.decode(stop) == Stop(None, 11, SID)
    connected = p.encode_connected()
    assert connected is not None and d.decode(connected) == Connected("Call", "1.0.0")


def test_round_trips_server_to_provider() -> None:
    d, p = twilio.DIALECT, twilio.PROVIDER
    assert p.decode_command(d.encode_play(AUDIO, ENCODING_MULAW, 8000, SID)) == Play(AUDIO, SID)
    assert p.decode_command(d.encode_checkpoint(SID, "x")) == Checkpoint("x", SID)
    assert p.decode_command(d.encode_clear(SID)) == Clear(SID)
    for bad in (b"{}", b'{"event":"media"}', b'{"event":"mark"}', b"[", b'{"event":"sendDTMF"}'):
        with pytest.raises(ProtocolError):
            p.decode_command(bad)


def test_marks_after_a_clear_are_flagged_for_the_session() -> None:
    # Twilio documents that a clear "causes any mark messages to be sent back": the mark
    # comes back as an ordinary mark event; the dialect tells the session to expect it.
    assert twilio.DIALECT.acks_clear is False
    assert twilio.DIALECT.echoes_marks_after_clear is True
    assert twilio.decode(raw(MARK)) == PlayedStream("my label", 4, SID)


def test_dialect_flags() -> None:
    d = twilio.DIALECT
    assert (d.name, d.binary_audio, d.supports_dtmf_out, d.play_frame_ms) == (
        "twilio",
        False,
        False,
        20,
    )
    assert twilio.PROVIDER.name == "twilio" and not twilio.PROVIDER.binary_media


# --- bad input ------------------------------------------------------------------------------


def _with(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"not json", "json"),
        (b"[1, 2]", "json"),
        (b'"media"', "json"),
        (b'{"sequenceNumber": "1"}', "schema"),
        (b"\xff\xfe", "json"),
        (b"[" * 5000, "json"),
        (raw({"event": "media", "streamSid": SID}), "schema"),
        (raw(_with(MEDIA_INBOUND, ("media", "payload"), "%%%")), "base64"),
        (raw(_with(MEDIA_INBOUND, ("media", "payload"), ...)), "schema"),
        (raw(_with(MEDIA_INBOUND, ("media", "chunk"), "two")), "value"),
        (raw(_with(MEDIA_INBOUND, ("sequenceNumber",), "x")), "value"),
        (raw(_with(START, ("start", "streamSid"), ...)), "schema"),
        (raw(_with(START, ("start",), ...)), "schema"),
        (raw(_with(START, ("start", "mediaFormat", "encoding"), "audio/x-l16")), "value"),
        (raw(_with(START, ("start", "mediaFormat", "sampleRate"), 16000)), "value"),
        (raw(_with(START, ("start", "tracks"), ["both"])), "value"),
        (raw(_with(DTMF, ("dtmf",), ...)), "schema"),
        (raw(_with(MARK, ("mark",), ...)), "schema"),
        (raw(_with(MARK, ("mark", "name"), 7)), "schema"),
    ],
)
def test_bad_input_raises_with_a_kind(data: bytes, kind: str) -> None:
    with pytest.raises(ProtocolError) as info:
        twilio.decode(data)
    assert info.value.kind == kind
    assert info.value.reason


def test_unknown_events_are_returned_not_raised() -> None:
    event = twilio.decode(raw({"event": "future", "sequenceNumber": "7", "streamSid": SID}))
    assert event == Unknown(
        "future", {"event": "future", "sequenceNumber": "7", "streamSid": SID}, 7, SID
    )
    assert twilio.decode(b'{"event": "x", "sequenceNumber": [1]}') == Unknown(
        "x", {"event": "x", "sequenceNumber": [1]}, None, None
    )


def test_extra_fields_are_tolerated() -> None:
    doc = _with(MEDIA_INBOUND, ("media", "extra"), {"nested": [1, 2]})
    doc["newTopLevel"] = True
    assert twilio.decode(raw(doc)) == Media("inbound", 2, 5, AUDIO, 4, SID)
