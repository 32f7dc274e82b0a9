"""Auto-detection of all five dialects from their first message, and the common interface
(the Plivo dialect behind it included)."""

from __future__ import annotations

import json

import pytest

from streamserver.protocol import detect, dialect, exotel, plivo, telnyx, twilio, vonage
from streamserver.protocol.dialect import Dialect, ProviderSide
from streamserver.protocol.events import (
    ENCODING_L16,
    ENCODING_MULAW,
    ClearedAudio,
    Media,
    PlayedStream,
    Start,
)
from streamserver.protocol.neutral import PROVIDERS, BinaryNotSupported, ProtocolError

PLIVO_START = {
    "event": "start",
    "sequenceNumber": 1,
    "start": {
        "callId": "a1b2c3d4-0000-4000-8000-000000000001",
        "streamId": "b77e037d-4119-44b5-902d-25826b654539",
        "accountId": "MAXXXXXXXXXXXXXXXXXX",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
    },
    "extra_headers": "",
}
TWILIO_START = Start("MZ1", "CA1", "AC1", ("inbound",), ENCODING_MULAW, 8000, {}, 1, {})
TELNYX_START = Start("S1", "v3:a_b-c", "U1", ("inbound",), ENCODING_MULAW, 8000, {}, 1, {})
EXOTEL_START = Start("MZ2", "CA2", "AC2", ("inbound",), ENCODING_L16, 8000, {}, 1, {})


def raw(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_first_messages_of_all_five() -> None:
    assert detect.detect(raw(PLIVO_START)) is dialect.PLIVO
    assert detect.detect(twilio.provider_connected()) is twilio.DIALECT
    assert (
        detect.detect(b'{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}')
        is vonage.DIALECT
    )
    assert detect.detect_binary() is vonage.DIALECT
    # Telnyx and Exotel both open with a bare ``connected``: decided on ``start``.
    assert detect.detect(telnyx.provider_connected()) is None
    assert detect.detect(exotel.provider_connected()) is None
    assert detect.detect(telnyx.provider_start(TELNYX_START)) is telnyx.DIALECT
    assert detect.detect(exotel.provider_start(EXOTEL_START)) is exotel.DIALECT
    # Without a connected (or when it was missed), start alone decides for Twilio too.
    assert detect.detect(twilio.provider_start(TWILIO_START)) is twilio.DIALECT


def test_later_messages_detect_too() -> None:
    assert detect.detect(twilio.provider_media(b"\xff", "MZ1", 2, 1, 0)) is twilio.DIALECT
    assert detect.detect(telnyx.provider_media(b"\xff", "S1", 2, 1, 0)) is telnyx.DIALECT
    assert detect.detect(exotel.provider_media(b"\x00\x00", "MZ2", 2, 1, 0)) is exotel.DIALECT
    assert detect.detect(b'{"event":"media","streamId":"x","media":{}}') is dialect.PLIVO
    assert detect.detect(b'{"event":"websocket:dtmf","digit":"1"}') is vonage.DIALECT


def test_detect_then_decode_the_same_message() -> None:
    for first, start in (
        (twilio.provider_start(TWILIO_START), TWILIO_START),
        (telnyx.provider_start(TELNYX_START), TELNYX_START),
        (exotel.provider_start(EXOTEL_START), EXOTEL_START),
    ):
        found = detect.detect(first)
        assert found is not None and found.decode(first) == start
    found = detect.detect(raw(PLIVO_START))
    assert found is not None and isinstance(found.decode(raw(PLIVO_START)), Start)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"not json", "json"),
        (b"[1]", "json"),
        (b"\xff\xfe", "json"),
        (b'{"event":"start","start":{"id":"x"}}', "dialect"),
        (b'{"hello":"world"}', "dialect"),
        (b'{"event":"media"}', "dialect"),
    ],
)
def test_unrecognised_first_messages(data: bytes, kind: str) -> None:
    with pytest.raises(ProtocolError) as info:
        detect.detect(data)
    assert info.value.kind == kind


def test_pinning_by_name() -> None:
    assert set(detect.DIALECTS) == set(PROVIDERS)
    for name in PROVIDERS:
        assert detect.get(name).name == name
    assert detect.get(" Twilio ") is twilio.DIALECT
    with pytest.raises(ValueError, match="unknown dialect"):
        detect.get("signalwire")
    assert set(detect.PROVIDER_SIDES) == set(PROVIDERS)


def test_every_dialect_satisfies_the_interface() -> None:
    dialects: list[Dialect] = list(detect.DIALECTS.values())
    sides: list[ProviderSide] = list(detect.PROVIDER_SIDES.values())
    for d in dialects:
        assert d.name in PROVIDERS and d.play_frame_ms > 0
        assert d.binary_audio is (d.name == "vonage")
        assert d.supports_dtmf_out is (d.name == "plivo")
    for side in sides:
        assert side.binary_media is (side.name == "vonage")


def test_plivo_behind_the_interface() -> None:
    d = dialect.PLIVO
    assert d.name == "plivo" and d.acks_clear and not d.echoes_marks_after_clear
    sid = "b77e037d-4119-44b5-902d-25826b654539"
    assert d.encode_play(b"\xff", ENCODING_MULAW, 8000, sid) == plivo.encode_play_audio(
        b"\xff", ENCODING_MULAW, 8000, sid
    )
    assert d.encode_checkpoint(sid, "c") == plivo.encode_checkpoint(sid, "c")
    assert d.encode_clear(sid) == plivo.encode_clear_audio(sid)
    assert d.encode_dtmf(sid, "12") == plivo.encode_send_dtmf("12")
    assert d.decode(b'{"event":"clearedAudio","sequenceNumber":3,"streamId":"s"}') == ClearedAudio(
        3, "s"
    )
    assert d.decode(b'{"event":"playedStream","name":"c","streamId":"s"}') == PlayedStream(
        "c", None, "s"
    )
    with pytest.raises(BinaryNotSupported) as info:
        d.decode_binary(b"\x00")
    assert info.value.close_code == 1003 and info.value.provider == "plivo"
    assert isinstance(info.value, plivo.ProtocolError)


def test_vonage_binary_is_media_everyone_else_refuses() -> None:
    for d in detect.DIALECTS.values():
        if d.name == "vonage":
            assert d.decode_binary(b"\x01\x00") == Media("inbound", None, None, b"\x01\x00")
        else:
            with pytest.raises(BinaryNotSupported, match=d.name):
                d.decode_binary(b"\x01\x00")
