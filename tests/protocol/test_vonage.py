"""The Vonage Voice API WebSocket dialect, sans-I/O: binary L16 audio, text events, commands.

Fixtures follow https://developer.vonage.com/en/voice/voice-api/concepts/websockets and the
NCCO reference https://developer.vonage.com/en/voice/voice-api/ncco-reference.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamserver import audio
from streamserver.protocol import vonage
from streamserver.protocol.events import (
    ENCODING_L16,
    ClearedAudio,
    Dtmf,
    Media,
    PlayedStream,
    Start,
    Unknown,
)
from streamserver.protocol.neutral import Checkpoint, Clear, NotSupported, Play, ProtocolError

CONNECTED = {
    "event": "websocket:connected",
    "content-type": "audio/l16;rate=16000",
    "prop1": "value1",
    "prop2": "value2",
}
FRAME_16K = bytes(640)  # 20 ms at 16 kHz


def raw(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_connected_is_the_start() -> None:
    start = vonage.decode(raw(CONNECTED))
    assert start == Start(
        stream_id="",  # Vonage has no stream id: the session generates one
        call_id="",
        account_id="",
        tracks=("inbound",),
        encoding=ENCODING_L16,
        sample_rate=16000,
        extra_headers={"prop1": "value1", "prop2": "value2"},
        custom_parameters={"prop1": "value1", "prop2": "value2"},
    )


def test_ids_from_endpoint_headers() -> None:
    doc = {
        **CONNECTED,
        "content-type": "audio/l16;rate=8000",
        "uuid": "63f61863-4a51-4f6b-86e1-46edebcf9356",
        "stream_id": "s-1",
        "n": 5,
    }
    start = vonage.decode(raw(doc))
    assert isinstance(start, Start)
    assert (start.call_id, start.stream_id, start.sample_rate) == (doc["uuid"], "s-1", 8000)
    assert start.extra_headers["n"] == "5" and start.custom_parameters["n"] == 5
    call_id = vonage.decode(raw({**doc, "call_id": "c-1"}))
    assert isinstance(call_id, Start) and call_id.call_id == "c-1"


@pytest.mark.parametrize(
    "content_type",
    ["audio/l16;rate=16000", "Audio/L16 ; rate = 16000", "audio/l16;rate=16000;channels=1"],
)
def test_content_type_forms(content_type: str) -> None:
    assert vonage.parse_content_type(content_type) == 16000


@pytest.mark.parametrize(
    "content_type", ["audio/l16", "audio/l16;rate=44100", "audio/pcmu;rate=8000", 16000, None]
)
def test_bad_content_types(content_type: object) -> None:
    with pytest.raises(ProtocolError):
        vonage.decode(raw({"event": "websocket:connected", "content-type": content_type}))


def test_events() -> None:
    assert vonage.decode(b'{"event":"websocket:dtmf","digit":"5","duration":260}') == Dtmf(
        "5", "inbound", None
    )
    assert vonage.decode(b'{"event":"websocket:cleared"}') == ClearedAudio()
    assert vonage.decode(b'{"event":"websocket:notify","payload":{"name":"cp1"}}') == PlayedStream(
        "cp1"
    )
    # A notify someone else sent: named by its payload's JSON.
    assert vonage.decode(
        b'{"event":"websocket:notify","payload":{"customKey":"customValue"}}'
    ) == PlayedStream('{"customKey":"customValue"}')
    assert vonage.decode(b'{"event":"websocket:notify"}') == PlayedStream("")
    assert vonage.decode(b'{"event":"websocket:media:update","x":1}') == Unknown(
        "websocket:media:update", {"event": "websocket:media:update", "x": 1}
    )


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"{", "json"),
        (b"[]", "json"),
        (b'{"digit":"1"}', "schema"),
        (b'{"event":"websocket:dtmf"}', "schema"),
        (b'{"event":"websocket:dtmf","digit":""}', "schema"),
        (b"\xff", "json"),
    ],
)
def test_bad_text(data: bytes, kind: str) -> None:
    with pytest.raises(ProtocolError) as info:
        vonage.decode(data)
    assert info.value.kind == kind


def test_binary_audio_in() -> None:
    pcm = np.arange(-160, 160, dtype=np.int16)
    frame = audio.l16_encode(pcm)
    media = vonage.decode_binary(memoryview(frame))
    assert media == Media("inbound", None, None, frame)
    assert type(media.payload) is bytes
    assert audio.decode(media.payload, ENCODING_L16).tolist() == pcm.tolist()  # little-endian
    assert vonage.DIALECT.decode_binary(bytearray(frame)) == media
    with pytest.raises(ProtocolError, match="empty"):
        vonage.decode_binary(b"")


def test_server_side() -> None:
    d = vonage.DIALECT
    assert d.binary_audio and d.acks_clear and not d.echoes_marks_after_clear
    assert d.encode_play(FRAME_16K, ENCODING_L16, 16000, None) == FRAME_16K
    padded = d.encode_play(b"\x01\x00" * 10, ENCODING_L16, 8000, None)
    assert len(padded) == 320 and padded.startswith(b"\x01\x00" * 10) and not any(padded[20:])
    assert json.loads(d.encode_checkpoint("", "cp1")) == {
        "action": "notify",
        "payload": {"name": "cp1"},
    }
    assert json.loads(d.encode_clear("")) == {"action": "clear"}
    with pytest.raises(NotSupported, match="vonage"):
        d.encode_dtmf("", "1")


def test_provider_side_and_round_trips() -> None:
    d, p = vonage.DIALECT, vonage.PROVIDER
    assert p.binary_media and p.encode_connected() is None
    start = Start(
        "",
        "",
        "",
        ("inbound",),
        ENCODING_L16,
        16000,
        {"prop1": "value1"},
        None,
        {"prop1": "value1"},
    )
    assert json.loads(p.encode_start(start)) == {
        "event": "websocket:connected",
        "content-type": "audio/l16;rate=16000",
        "prop1": "value1",
    }
    assert d.decode(p.encode_start(start)) == start
    with_ids = Start("s-9", "u-1", "", ("inbound",), ENCODING_L16, 8000, {}, None, {})
    back = d.decode(p.encode_start(with_ids))
    assert isinstance(back, Start) and (back.stream_id, back.call_id) == ("s-9", "u-1")
    with pytest.raises(ValueError):
        p.encode_start(Start("", "", "", ("inbound",), "audio/x-mulaw", 8000, {}))
    assert d.decode_binary(p.encode_media(FRAME_16K, "", 1, 1, 0, "inbound")) == Media(
        "inbound", None, None, FRAME_16K
    )
    assert d.decode(p.encode_dtmf("#", "", 0)) == Dtmf("#", "inbound", None)
    assert d.decode(p.encode_played("cp1", "", 0)) == PlayedStream("cp1")
    cleared = p.encode_cleared("", 0)
    assert cleared is not None and d.decode(cleared) == ClearedAudio()
    assert p.encode_stop("", "", "", 0, None) is None
    assert p.decode_command(d.encode_checkpoint("", "cp1")) == Checkpoint("cp1")
    assert p.decode_command(d.encode_clear("")) == Clear()
    assert p.decode_command_binary(d.encode_play(FRAME_16K, ENCODING_L16, 16000, None)) == Play(
        FRAME_16K
    )
    for bad in (b'{"action":"talk"}', b"[]", b"{"):
        with pytest.raises(ProtocolError):
            p.decode_command(bad)
