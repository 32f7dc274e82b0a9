"""The Telnyx media streaming dialect, sans-I/O: documented messages, codecs, bad input.

Fixtures follow https://developers.telnyx.com/docs/voice/programmable-voice/media-streaming
and https://developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket
(payloads shortened there; whole, valid base64 here).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from streamserver import audio
from streamserver.protocol import telnyx
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
    ENCODING_ALAW,
    ENCODING_L16_BE,
    BinaryNotSupported,
    Checkpoint,
    Clear,
    Connected,
    NotSupported,
    Play,
    ProtocolError,
    ProviderError,
)

SID = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
# Real call_control_ids carry "_" and "-" (v3:…_…-…).
CCID = "v3:2EC-70CTEjlUq3tDM0CxKXIt5-5N4iP4wo7_-PfH-qub97Sk4EqO5w"
USER = "3E6F995F-85F7-4705-9741-53B116D28237"
AUDIO = bytes(range(160))
B64 = base64.b64encode(AUDIO).decode()

CONNECTED = {"event": "connected", "version": "1.0.0"}
START = {
    "event": "start",
    "sequence_number": "1",
    "stream_id": SID,
    "start": {
        "user_id": USER,
        "call_control_id": CCID,
        "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
        "from": "+13122010094",
        "to": "+13122123456",
        "tags": ["TAG1", "TAG2"],
        "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
        "custom_parameters": {"customer_id": "customer_123"},
        "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
    },
}
MEDIA = {
    "event": "media",
    "sequence_number": "4",
    "media": {"track": "inbound", "chunk": "2", "timestamp": "5", "payload": B64},
    "stream_id": SID,
}
DTMF = {
    "event": "dtmf",
    "stream_id": SID,
    "occurred_at": "2022-04-29T20:08:08.431Z",
    "sequence_number": "5",
    "dtmf": {"digit": "1"},
}
MARK = {"event": "mark", "sequence_number": "4", "stream_id": SID, "mark": {"name": "my label"}}
ERROR = {
    "event": "error",
    "payload": {"code": 100002, "title": "unknown_error", "detail": "An unknown error occurred"},
    "stream_id": SID,
}
STOP = {
    "event": "stop",
    "sequence_number": "5",
    "stop": {"user_id": USER, "call_control_id": CCID},
    "stream_id": SID,
}
SEND_MEDIA = {"event": "media", "media": {"payload": B64}}
SEND_MARK = {"event": "mark", "mark": {"name": "my label"}}
SEND_CLEAR = {"event": "clear"}


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def start_with(encoding: str, rate: int) -> bytes:
    doc = json.loads(json.dumps(START))
    doc["start"]["media_format"] = {"encoding": encoding, "sample_rate": rate, "channels": 1}
    return raw(doc)


def test_documented_messages_decode() -> None:
    assert telnyx.decode(raw(CONNECTED)) == Connected(None, "1.0.0")
    assert telnyx.decode(raw(START)) == Start(
        stream_id=SID,
        call_id=CCID,
        account_id=USER,
        tracks=("inbound",),
        encoding=ENCODING_MULAW,
        sample_rate=8000,
        extra_headers={
            "from": "+13122010094",
            "to": "+13122123456",
            "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
            "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
        },
        sequence_number=1,
        custom_parameters={"customer_id": "customer_123"},
    )
    assert telnyx.decode(raw(MEDIA)) == Media("inbound", 2, 5, AUDIO, 4, SID)
    assert telnyx.decode(raw(DTMF)) == Dtmf("1", "inbound", None, 5, SID)
    assert telnyx.decode(raw(MARK)) == PlayedStream("my label", 4, SID)
    assert telnyx.decode(raw(ERROR)) == ProviderError(
        "100002", "unknown_error", "An unknown error occurred", None, SID
    )
    assert telnyx.decode(raw(STOP)) == Stop(None, 5, SID)


@pytest.mark.parametrize(
    ("codec", "rate", "encoding"),
    [
        ("PCMU", 8000, ENCODING_MULAW),
        ("PCMA", 8000, ENCODING_ALAW),
        ("pcma", 8000, ENCODING_ALAW),
        ("L16", 8000, ENCODING_L16_BE),
        ("L16", 16000, ENCODING_L16_BE),
    ],
)
def test_codecs(codec: str, rate: int, encoding: str) -> None:
    start = telnyx.decode(start_with(codec, rate))
    assert isinstance(start, Start) and (start.encoding, start.sample_rate) == (encoding, rate)


def test_pcma_is_decoded_as_a_law_not_mu_law() -> None:
    pcm = np.array([0, 1000, -1000, 20000, -32768], dtype=np.int16)
    payload = audio.alaw_encode(pcm)
    start = telnyx.decode(start_with("PCMA", 8000))
    media = telnyx.decode(telnyx.provider_media(payload, SID, 2, 1, 0))
    assert isinstance(start, Start) and isinstance(media, Media)
    decoded = audio.decode(media.payload, start.encoding)
    assert np.abs(decoded.astype(int) - pcm).max() <= 1024
    assert not np.array_equal(decoded, audio.ulaw_decode(payload))


def test_l16_is_network_byte_order_with_a_little_endian_variant() -> None:
    pcm = np.array([1, -2, 0x1234], dtype=np.int16)
    wire = audio.l16be_encode(pcm)  # what RTP carries
    start = telnyx.decode(start_with("L16", 16000))
    assert isinstance(start, Start)
    assert audio.decode(wire, start.encoding).tolist() == pcm.tolist()
    le = telnyx.dialect(l16_big_endian=False)
    start_le = le.decode(start_with("L16", 16000))
    assert isinstance(start_le, Start) and start_le.encoding == ENCODING_L16
    assert le.decode(start_with("PCMA", 8000)) == telnyx.decode(start_with("PCMA", 8000))
    assert le.decode(raw(MEDIA)) == telnyx.decode(raw(MEDIA))


@pytest.mark.parametrize(
    ("codec", "rate"),
    [("G722", 8000), ("OPUS", 48000), ("AMR-WB", 16000), ("PCMU", 16000), ("L16", 24000)],
)
def test_unsupported_codecs_and_rates(codec: str, rate: int) -> None:
    with pytest.raises(ProtocolError) as info:
        telnyx.decode(start_with(codec, rate))
    assert info.value.kind == "value"


def test_server_commands_have_the_documented_shape() -> None:
    assert json.loads(telnyx.encode_play(AUDIO, ENCODING_MULAW, 8000, SID)) == SEND_MEDIA
    assert json.loads(telnyx.encode_checkpoint(SID, "my label")) == SEND_MARK
    assert json.loads(telnyx.encode_clear(SID)) == SEND_CLEAR
    with pytest.raises(NotSupported) as info:
        telnyx.encode_send_dtmf(SID, "1")
    assert info.value.provider == "telnyx" and "telnyx" in str(info.value)
    with pytest.raises(BinaryNotSupported):
        telnyx.DIALECT.decode_binary(b"\x00\x00")
    d = telnyx.DIALECT
    assert (d.name, d.acks_clear, d.echoes_marks_after_clear, d.binary_audio) == (
        "telnyx",
        False,
        True,
        False,
    )


def test_provider_messages_are_the_documented_ones() -> None:
    assert json.loads(telnyx.provider_connected()) == CONNECTED
    start = telnyx.decode(raw(START))
    assert isinstance(start, Start)
    expected = json.loads(json.dumps(START))
    del expected["start"]["tags"]  # not modelled
    assert json.loads(telnyx.provider_start(start)) == expected
    assert json.loads(telnyx.provider_media(AUDIO, SID, 4, 2, 5)) == MEDIA
    dtmf = dict(DTMF)
    del dtmf["occurred_at"]
    assert json.loads(telnyx.provider_dtmf("1", SID, 5)) == dtmf
    assert json.loads(telnyx.provider_played("my label", SID, 4)) == MARK
    assert json.loads(telnyx.provider_stop(SID, CCID, USER, 5)) == STOP
    assert telnyx.provider_cleared(SID, 6) is None


def test_round_trips() -> None:
    d, p = telnyx.DIALECT, telnyx.PROVIDER
    for encoding, rate in ((ENCODING_ALAW, 8000), (ENCODING_L16_BE, 16000), (ENCODING_MULAW, 8000)):
        start = Start(SID, CCID, USER, ("inbound",), encoding, rate, {}, 1, {})
        assert d.decode(p.encode_start(start)) == start
    # Out of order on the wire: each frame keeps its chunk for the session to reorder.
    frames = [p.encode_media(AUDIO[:n], SID, n + 1, n, 20 * n, "inbound") for n in (3, 1, 2)]
    assert [m.chunk for m in map(d.decode, frames) if isinstance(m, Media)] == [3, 1, 2]
    assert d.decode(p.encode_media(AUDIO, SID, 9, 4, 60, "outbound")) == Media(
        "outbound", 4, 60, AUDIO, 9, SID
    )
    assert p.decode_command(d.encode_play(AUDIO, ENCODING_MULAW, 8000, SID)) == Play(AUDIO)
    assert p.decode_command(d.encode_checkpoint(SID, "n")) == Checkpoint("n")
    assert p.decode_command(d.encode_clear(SID)) == Clear()
    with pytest.raises(ProtocolError):
        p.decode_command(b'{"event":"stop"}')
    with pytest.raises(ValueError, match="codec"):
        telnyx.provider_start(Start(SID, CCID, USER, ("inbound",), "audio/ogg", 8000, {}))


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"{", "json"),
        (raw({"event": "media", "stream_id": SID}), "schema"),
        (raw({**MEDIA, "media": {**MEDIA["media"], "payload": "!!"}}), "base64"),
        (raw({**MEDIA, "sequence_number": "four"}), "value"),
        (raw({**START, "stream_id": None}), "schema"),
        (raw({k: v for k, v in START.items() if k != "stream_id"}), "schema"),
        (raw({**START, "start": {"media_format": START["start"]["media_format"]}}), "schema"),
        (raw({**DTMF, "dtmf": None}), "schema"),
        (raw({**MARK, "mark": {}}), "schema"),
    ],
)
def test_bad_input(data: bytes, kind: str) -> None:
    with pytest.raises(ProtocolError) as info:
        telnyx.decode(data)
    assert info.value.kind == kind


def test_stereo_is_refused_and_error_without_payload_is_tolerated() -> None:
    with pytest.raises(ProtocolError, match="mono"):
        doc = json.loads(json.dumps(START))
        doc["start"]["media_format"]["channels"] = 2
        telnyx.decode(raw(doc))
    assert telnyx.decode(b'{"event":"error"}') == ProviderError(None, None, None)
