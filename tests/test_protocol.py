"""The Plivo dialect, sans-I/O: every frame variant in the reference, malformed input, encoders.

Pure tests, no event loop: frames are built as the reference shows them and fed as bytes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamserver.protocol import (
    ENCODING_L16,
    ENCODING_MULAW,
    ClearedAudio,
    Dtmf,
    Media,
    PlayedStream,
    ProtocolError,
    Start,
    Stop,
    Unknown,
)
from streamserver.protocol.plivo import (
    decode,
    encode_checkpoint,
    encode_clear_audio,
    encode_play_audio,
    encode_send_dtmf,
    parse_extra_headers,
)

SID = "b77e037d-4119-44b5-902d-25826b654539"
CID = "a1b2c3d4-0000-4000-8000-000000000001"
ACC = "MAXXXXXXXXXXXXXXXXXX"
EVENT_TYPES = (Start, Media, Dtmf, PlayedStream, ClearedAudio, Stop, Unknown)


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def start_doc(
    encoding: Any = "audio/x-mulaw",
    rate: Any = 8000,
    tracks: Any = ("inbound",),
    **top: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event": "start",
        "sequenceNumber": 1,
        "start": {
            "callId": CID,
            "streamId": SID,
            "accountId": ACC,
            "tracks": list(tracks) if isinstance(tracks, tuple) else tracks,
            "mediaFormat": {"encoding": encoding, "sampleRate": rate},
        },
        "extra_headers": "",
    }
    doc.update(top)
    return doc


def media_doc(payload: bytes = b"\x7f" * 160, **body: Any) -> dict[str, Any]:
    media: dict[str, Any] = {
        "track": "inbound",
        "timestamp": "1712345678901",
        "chunk": 1,
        "payload": base64.b64encode(payload).decode(),
    }
    media.update(body)
    return {"event": "media", "sequenceNumber": 2, "streamId": SID, "media": media}


def dtmf_doc(digit: str = "5", **body: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"digit": digit, "track": "inbound", "timestamp": "1712345679000"}
    d.update(body)
    return {"event": "dtmf", "sequenceNumber": 9, "streamId": SID, "dtmf": d}


def error_of(data: bytes | str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(data)
    return info.value


# --- start -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [(ENCODING_MULAW, 8000), (ENCODING_L16, 8000), (ENCODING_L16, 16000)],
)
def test_start_every_media_format(encoding: str, rate: int) -> None:
    event = decode(raw(start_doc(encoding, rate)))
    assert event == Start(
        stream_id=SID,
        call_id=CID,
        account_id=ACC,
        tracks=("inbound",),
        encoding=encoding,
        sample_rate=rate,
        extra_headers={},
        sequence_number=1,
        custom_parameters={},
    )


def test_start_tracks_both() -> None:
    event = decode(raw(start_doc(tracks=("inbound", "outbound"))))
    assert isinstance(event, Start)
    assert event.tracks == ("inbound", "outbound")


def test_start_tracks_missing_or_empty_means_inbound() -> None:
    doc = start_doc()
    del doc["start"]["tracks"]
    assert decode(raw(doc)).tracks == ("inbound",)  # type: ignore[union-attr]
    assert decode(raw(start_doc(tracks=[]))).tracks == ("inbound",)  # type: ignore[union-attr]


def test_start_accepts_content_type_suffix_and_case() -> None:
    # The XML/REST spelling with ";rate=" must not break a start that echoes it.
    event = decode(raw(start_doc("Audio/X-L16;rate=16000", 16000)))
    assert isinstance(event, Start)
    assert (event.encoding, event.sample_rate) == (ENCODING_L16, 16000)


def test_start_sample_rate_as_digit_string() -> None:
    event = decode(raw(start_doc(ENCODING_L16, "16000")))
    assert isinstance(event, Start)
    assert event.sample_rate == 16000


def test_integral_float_sample_rate_is_tolerated() -> None:
    # Lax decoding converts digit strings in C; an integral float (16000.0) converts too.
    event = decode(raw(start_doc(ENCODING_L16, 16000.0)))
    assert isinstance(event, Start)
    assert event.sample_rate == 16000
    assert type(event.sample_rate) is int


@pytest.mark.parametrize(
    ("present", "value", "expected"),
    [
        (False, None, {}),
        (True, None, {}),
        (True, "", {}),
        (True, "callerId=123;lang=en", {"callerId": "123", "lang": "en"}),
        (True, "a=1,b=2", {"a": "1", "b": "2"}),
        (True, " a = 1 ; b=2;;c ; ", {"a": "1", "b": "2", "c": ""}),
        (True, "k=v=w", {"k": "v=w"}),
    ],
    ids=["absent", "null", "empty", "semicolons", "commas", "messy", "equals-in-value"],
)
def test_start_extra_headers(present: bool, value: str | None, expected: dict[str, str]) -> None:
    doc = start_doc()
    del doc["extra_headers"]
    if present:
        doc["extra_headers"] = value
    event = decode(raw(doc))
    assert isinstance(event, Start)
    assert event.extra_headers == expected


@pytest.mark.parametrize("seq", [1, "1"], ids=["int", "digit-string"])
def test_start_sequence_number_int_or_string(seq: int | str) -> None:
    assert decode(raw(start_doc(sequenceNumber=seq))).sequence_number == 1


def test_start_without_sequence_number_or_account() -> None:
    doc = start_doc()
    del doc["sequenceNumber"]
    del doc["start"]["accountId"]
    event = decode(raw(doc))
    assert isinstance(event, Start)
    assert event.sequence_number is None
    assert event.account_id == ""


def test_start_custom_parameters() -> None:
    doc = start_doc()
    doc["start"]["customParameters"] = {"lang": "en", "n": 3, "nested": {"x": [1]}}
    event = decode(raw(doc))
    assert isinstance(event, Start)
    assert event.custom_parameters == {"lang": "en", "n": 3, "nested": {"x": [1]}}
    doc["start"]["customParameters"] = None
    assert decode(raw(doc)).custom_parameters == {}  # type: ignore[union-attr]


def test_decode_accepts_str_and_bytes_and_ignores_unknown_fields() -> None:
    doc = start_doc(somethingNew={"a": [1, 2]})
    doc["start"]["newField"] = True
    assert decode(json.dumps(doc)) == decode(raw(doc))


# --- media -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 160, 320, 640, 1000])
def test_media_payload_decodes_to_the_exact_bytes(size: int) -> None:
    payload = bytes(range(256)) * 4
    payload = payload[:size]
    event = decode(raw(media_doc(payload)))
    assert event == Media(
        track="inbound",
        chunk=1,
        timestamp_ms=1712345678901,
        payload=payload,
        sequence_number=2,
        stream_id=SID,
    )


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [("1712345678901", 1712345678901), (1712345678901, 1712345678901), ("40", 40), (0, 0)],
)
def test_media_timestamp_string_or_int(timestamp: int | str, expected: int) -> None:
    assert decode(raw(media_doc(timestamp=timestamp))).timestamp_ms == expected  # type: ignore[union-attr]


@pytest.mark.parametrize(("chunk", "expected"), [(7, 7), ("7", 7), (1, 1)])
def test_media_chunk_int_or_string(chunk: int | str, expected: int) -> None:
    assert decode(raw(media_doc(chunk=chunk))).chunk == expected  # type: ignore[union-attr]


def test_media_sequence_number_string() -> None:
    doc = media_doc()
    doc["sequenceNumber"] = "42"
    assert decode(raw(doc)).sequence_number == 42


@pytest.mark.parametrize("track", ["inbound", "outbound"])
def test_media_tracks(track: str) -> None:
    assert decode(raw(media_doc(track=track))).track == track  # type: ignore[union-attr]


def test_media_optional_fields_absent() -> None:
    doc = {"event": "media", "media": {"payload": base64.b64encode(b"\x01\x02").decode()}}
    assert decode(raw(doc)) == Media("inbound", None, None, b"\x01\x02", None, None)


def test_media_tolerates_extra_headers() -> None:
    doc = media_doc(b"\x00")
    doc["extra_headers"] = "a=1;b=2"
    assert decode(raw(doc)).payload == b"\x00"  # type: ignore[union-attr]


# --- dtmf, playedStream, clearedAudio, stop ---------------------------------------------


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_dtmf_every_digit(digit: str) -> None:
    assert decode(raw(dtmf_doc(digit))) == Dtmf(digit, "inbound", 1712345679000, 9, SID)


def test_dtmf_int_timestamp_and_defaults() -> None:
    assert decode(raw(dtmf_doc("#", timestamp=5))).timestamp_ms == 5  # type: ignore[union-attr]
    doc = {"event": "dtmf", "dtmf": {"digit": "1"}}
    assert decode(raw(doc)) == Dtmf("1", "inbound", None, None, None)


@pytest.mark.parametrize("name", ["playedStream", "played"])
def test_played_stream_and_its_old_name(name: str) -> None:
    doc = {"event": name, "sequenceNumber": 12, "streamId": SID, "name": "greeting-done"}
    assert decode(raw(doc)) == PlayedStream("greeting-done", 12, SID)


def test_played_stream_without_name() -> None:
    assert decode(raw({"event": "playedStream", "streamId": SID})) == PlayedStream("", None, SID)


def test_cleared_audio_with_sequence_number_zero() -> None:
    doc = {"event": "clearedAudio", "sequenceNumber": 0, "streamId": SID}
    event = decode(raw(doc))
    assert event == ClearedAudio(0, SID)
    assert event.sequence_number == 0  # 0 is a value, not "absent"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"event": "stop"}, Stop(None, None, None)),
        ({"event": "stop", "streamId": SID, "sequenceNumber": "99"}, Stop(None, 99, SID)),
        (
            {
                "event": "stop",
                "sequenceNumber": 99,
                "stop": {"callId": CID, "streamId": SID, "tracks": ["inbound"]},
            },
            Stop(None, 99, SID),
        ),
        ({"event": "stop", "streamId": SID, "reason": "hangup"}, Stop("hangup", None, SID)),
        ({"event": "stop", "stop": {"streamId": SID, "reason": "x"}}, Stop("x", None, SID)),
    ],
    ids=["bare", "top-level-ids", "with-body", "top-level-reason", "reason-in-body"],
)
def test_stop_every_shape(doc: dict[str, Any], expected: Stop) -> None:
    assert decode(raw(doc)) == expected


# --- unknown events ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        {"event": "playFailed", "streamId": SID, "sequenceNumber": 4, "reason": "bad audio"},
        {"event": "error", "reason": "stream error"},
        {"event": "muteStream", "streamId": SID},
        {"event": "unmuteStream", "streamId": SID},
        {"event": "Media", "media": {"payload": "not base64!"}},  # case matters
        {"event": ""},
        {
            "event": "weird",
            "sequenceNumber": "3",
            "streamId": 5,
            "media": "not an object",
            "start": [1, {"a": None}],
            "deep": {"x": [[[{"y": [True, 1.5, None]}]]]},
        },
    ],
    ids=["playFailed", "error", "muteStream", "unmuteStream", "Media", "empty", "weird"],
)
def test_unknown_events_are_returned_never_raised(doc: dict[str, Any]) -> None:
    event = decode(raw(doc))
    assert isinstance(event, Unknown)
    assert event.event == doc["event"]
    assert event.raw == doc
    seq, sid = doc.get("sequenceNumber"), doc.get("streamId")
    assert event.sequence_number == (seq if type(seq) is int else None)
    assert event.stream_id == (sid if isinstance(sid, str) else None)


# --- malformed input ------------------------------------------------------------------------


def _media_body(**body: Any) -> dict[str, Any]:
    doc = media_doc()
    doc["media"].update(body)
    return doc


def _no(doc: dict[str, Any], *path: str) -> dict[str, Any]:
    node = doc
    for p in path[:-1]:
        node = node[p]
    del node[path[-1]]
    return doc


def _custom(value: Any) -> dict[str, Any]:
    doc = start_doc()
    doc["start"]["customParameters"] = value
    return doc


MALFORMED: list[tuple[str, bytes | str, str, str]] = [
    # id, frame, kind, a word the reason must contain
    ("not-json", b"hello", "json", "JSON"),
    ("empty", b"", "json", "JSON"),
    ("truncated", b'{"event":"media"', "json", "JSON"),
    ("array", b'[{"event":"start"}]', "json", "object"),
    ("string", b'"start"', "json", "object"),
    ("number", b"42", "json", "object"),
    ("null", b"null", "json", "object"),
    ("no-event", raw({"sequenceNumber": 1, "streamId": SID}), "schema", "event"),
    ("event-int", raw({"event": 5}), "schema", "event"),
    ("event-null", raw({"event": None}), "schema", "event"),
    ("event-object", raw({"event": {"name": "start"}}), "schema", "event"),
    ("bad-base64", raw(_media_body(payload="@@@not base64@@@")), "base64", "media.payload"),
    ("bad-base64-padding", raw(_media_body(payload="A")), "base64", "media.payload"),
    ("missing-payload", raw(_no(media_doc(), "media", "payload")), "schema", "payload"),
    ("null-payload", raw(_media_body(payload=None)), "schema", "media.payload"),
    ("no-media-object", raw(_no(media_doc(), "media")), "schema", "media"),
    ("media-not-object", raw({"event": "media", "media": "abc"}), "schema", "media"),
    ("chunk-abc", raw(_media_body(chunk="abc")), "value", "media.chunk"),
    ("chunk-float", raw(_media_body(chunk=1.5)), "schema", "media.chunk"),
    ("chunk-bool", raw(_media_body(chunk=True)), "schema", "media.chunk"),
    ("timestamp-word", raw(_media_body(timestamp="soon")), "value", "media.timestamp"),
    ("track-not-string", raw(_media_body(track=1)), "schema", "media.track"),
    ("seq-abc", raw({**media_doc(), "sequenceNumber": "abc"}), "value", "sequenceNumber"),
    ("seq-float", raw({**media_doc(), "sequenceNumber": 1.5}), "schema", "sequenceNumber"),
    ("streamId-int", raw({**media_doc(), "streamId": 7}), "schema", "streamId"),
    ("no-start-object", raw(_no(start_doc(), "start")), "schema", "start"),
    ("start-not-object", raw({"event": "start", "start": []}), "schema", "start"),
    ("no-callId", raw(_no(start_doc(), "start", "callId")), "schema", "callId"),
    ("no-streamId", raw(_no(start_doc(), "start", "streamId")), "schema", "streamId"),
    ("no-mediaFormat", raw(_no(start_doc(), "start", "mediaFormat")), "schema", "mediaFormat"),
    (
        "no-encoding",
        raw(_no(start_doc(), "start", "mediaFormat", "encoding")),
        "schema",
        "encoding",
    ),
    ("sampleRate-x", raw(start_doc(rate="x")), "value", "mediaFormat.sampleRate"),
    ("sampleRate-float", raw(start_doc(rate=8000.5)), "schema", "sampleRate"),
    ("sampleRate-44100", raw(start_doc(ENCODING_L16, 44100)), "value", "mediaFormat.sampleRate"),
    ("mulaw-16000", raw(start_doc(ENCODING_MULAW, 16000)), "value", "mediaFormat.sampleRate"),
    ("encoding-opus", raw(start_doc("audio/opus")), "value", "mediaFormat.encoding"),
    ("encoding-int", raw(start_doc(7)), "schema", "encoding"),
    ("tracks-string", raw(start_doc(tracks="inbound")), "schema", "start.tracks"),
    ("tracks-ints", raw(start_doc(tracks=[1])), "schema", "start.tracks"),
    ("track-unknown", raw(start_doc(tracks=["inbound", "both"])), "value", "start.tracks"),
    ("extra-headers-object", raw(start_doc(extra_headers={"a": "b"})), "schema", "extra_headers"),
    ("custom-params-list", raw(_custom(["a"])), "schema", "customParameters"),
    ("no-dtmf-object", raw(_no(dtmf_doc(), "dtmf")), "schema", "dtmf"),
    ("no-digit", raw(_no(dtmf_doc(), "dtmf", "digit")), "schema", "digit"),
    ("dtmf-timestamp-x", raw(dtmf_doc(timestamp="x")), "value", "dtmf.timestamp"),
    ("played-name-int", raw({"event": "playedStream", "name": 5}), "schema", "name"),
    ("stop-reason-int", raw({"event": "stop", "reason": 5}), "schema", "reason"),
    ("stop-body-list", raw({"event": "stop", "stop": [1]}), "schema", "stop"),
    ("invalid-utf8", b'{"event":"media","media":{"payload":"","track":"\xff"}}', "json", "UTF-8"),
    ("invalid-utf8-start", b"\xff\xfe{}", "json", "JSON"),
    ("invalid-utf8-unknown", b'{"event":"zz","note":"\xc3\x28"}', "json", "UTF-8"),
    ("lone-surrogate-str", '{"event":"x","a":"\ud800"}', "json", "UTF-8"),
    ("lone-surrogate-escape", b'{"event":"x","a":"\\ud800x"}', "json", "JSON"),
    ("deep-nesting", b"[" * 100_000, "json", "nested"),
    ("deep-nesting-unknown", b'{"event":"zz","a":' + b'{"a":' * 50_000, "json", "nested"),
]


@pytest.mark.parametrize(
    ("frame", "kind", "word"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_frames_raise_protocol_error(frame: bytes | str, kind: str, word: str) -> None:
    exc = error_of(frame)
    assert exc.kind == kind, exc
    assert word in exc.reason, exc
    assert str(exc).startswith(f"{kind}: ")
    assert isinstance(exc, ValueError)  # callers may catch it as a ValueError


def test_known_event_schema_error_names_the_event() -> None:
    exc = error_of(raw(_no(media_doc(), "media", "payload")))
    assert exc.reason.startswith("media: ")


# --- encoders ------------------------------------------------------------------------------


def test_encode_play_audio_exact_json() -> None:
    assert encode_play_audio(b"\x00\xff", ENCODING_MULAW, 8000) == (
        b'{"event":"playAudio","media":{"contentType":"audio/x-mulaw","sampleRate":8000,'
        b'"payload":"AP8="}}'
    )
    assert encode_play_audio(b"\x01\x02\x03", ENCODING_L16, 16000, SID) == (
        b'{"event":"playAudio","media":{"contentType":"audio/x-l16","sampleRate":16000,'
        b'"payload":"AQID"},"streamId":"' + SID.encode() + b'"}'
    )


def test_encode_checkpoint_clear_and_dtmf_exact_json() -> None:
    assert encode_checkpoint(SID, "greeting") == (
        b'{"event":"checkpoint","streamId":"' + SID.encode() + b'","name":"greeting"}'
    )
    assert encode_clear_audio(SID) == b'{"event":"clearAudio","streamId":"' + SID.encode() + b'"}'
    assert encode_send_dtmf("0123456789*#ABCD") == b'{"event":"sendDTMF","dtmf":"0123456789*#ABCD"}'
    assert encode_send_dtmf("abcd") == b'{"event":"sendDTMF","dtmf":"abcd"}'


def test_encode_escapes_names() -> None:
    name = 'quote " back \\ slash é \n'
    assert json.loads(encode_checkpoint(SID, name))["name"] == name


@pytest.mark.parametrize("digits", ["", "12x", " ", "1 2", "E", "١", "\n"])
def test_encode_send_dtmf_rejects_bad_digits(digits: str) -> None:
    with pytest.raises(ValueError, match="DTMF"):
        encode_send_dtmf(digits)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 160, 320, 640])
def test_play_audio_base64_round_trip(size: int) -> None:
    payload = bytes((i * 37 + 11) % 256 for i in range(size))
    doc = json.loads(encode_play_audio(payload, ENCODING_L16, 8000))
    assert base64.b64decode(doc["media"]["payload"], validate=True) == payload
    # and the same base64 read back through the inbound path
    back = decode(raw(_media_body(payload=doc["media"]["payload"])))
    assert isinstance(back, Media)
    assert back.payload == payload


def test_parse_extra_headers_direct() -> None:
    assert parse_extra_headers(None) == {}
    assert parse_extra_headers("") == {}
    assert parse_extra_headers(";;,") == {}
    assert parse_extra_headers("=v;k=") == {"k": ""}
    assert parse_extra_headers("a=1;a=2") == {"a": "2"}  # last wins


# --- properties ----------------------------------------------------------------------------

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,  # keep the tree clean; failures print the example to reproduce it
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
KNOWN_EVENTS = ["start", "media", "dtmf", "playedStream", "played", "clearedAudio", "stop"]
FIELD_NAMES = [
    "event", "sequenceNumber", "streamId", "start", "media", "dtmf", "stop", "name",
    "reason", "extra_headers", "callId", "accountId", "tracks", "mediaFormat", "encoding",
    "sampleRate", "customParameters", "track", "timestamp", "chunk", "payload", "digit",
]  # fmt: skip


def plausible_values() -> st.SearchStrategy[Any]:
    """Values near the real ones, so decoding gets past the first check more often."""
    return st.recursive(
        json_values
        | st.sampled_from(
            [
                "inbound", "outbound", "audio/x-mulaw", "audio/x-l16", 8000, 16000, "8000",
                "AAAA", "AP8=", "=", "1", ["inbound"], ["inbound", "outbound"], SID,
            ]
        ),
        lambda inner: st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=6),
        max_leaves=6,
    )  # fmt: skip


frames = st.builds(
    lambda event, rest: {"event": event, **rest},
    st.sampled_from(KNOWN_EVENTS) | st.text(max_size=12) | json_values,
    st.dictionaries(st.sampled_from(FIELD_NAMES[1:]), plausible_values(), max_size=6),
)


def check_decode(data: bytes | str) -> None:
    try:
        event = decode(data)
    except ProtocolError as exc:
        assert exc.kind in ("json", "base64", "schema", "value")
        assert exc.reason
    else:
        assert isinstance(event, EVENT_TYPES)


@PROPERTY
@given(st.binary(max_size=300))
def test_decode_arbitrary_bytes_only_raises_protocol_error(data: bytes) -> None:
    check_decode(data)


@PROPERTY
@given(st.text(max_size=300))
def test_decode_arbitrary_text_only_raises_protocol_error(data: str) -> None:
    check_decode(data)


@PROPERTY
@given(json_values)
def test_decode_arbitrary_json_only_raises_protocol_error(value: Any) -> None:
    check_decode(json.dumps(value, ensure_ascii=False).encode())


@PROPERTY
@given(frames)
def test_decode_arbitrary_json_objects_only_raise_protocol_error(doc: dict[str, Any]) -> None:
    data = json.dumps(doc, ensure_ascii=False)
    check_decode(data.encode())
    check_decode(data)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


VALID_DOCS = [start_doc(), start_doc(ENCODING_L16, 16000), media_doc(), dtmf_doc(), _custom({})]


@PROPERTY
@given(st.data())
def test_decode_valid_frames_with_one_field_replaced(data: st.DataObject) -> None:
    doc = json.loads(json.dumps(data.draw(st.sampled_from(VALID_DOCS))))
    path = data.draw(st.sampled_from(_paths(doc)))
    node = doc
    for key in path[:-1]:
        node = node[key]
    if data.draw(st.booleans()):
        node[path[-1]] = data.draw(plausible_values())
    elif isinstance(node, dict):
        del node[path[-1]]
    check_decode(json.dumps(doc, ensure_ascii=False))


@PROPERTY
@given(
    payload=st.binary(max_size=700),
    chunk=st.integers(min_value=1, max_value=2**40),
    ts=st.integers(min_value=0, max_value=2**45),
    as_text=st.booleans(),
    track=st.sampled_from(["inbound", "outbound"]),
)
def test_valid_media_round_trips(
    payload: bytes, chunk: int, ts: int, as_text: bool, track: str
) -> None:
    doc = media_doc(
        payload,
        chunk=str(chunk) if as_text else chunk,
        timestamp=str(ts) if as_text else ts,
        track=track,
    )
    assert decode(raw(doc)) == Media(track, chunk, ts, payload, 2, SID)


@PROPERTY
@given(st.text(max_size=200))
def test_parse_extra_headers_never_raises(value: str) -> None:
    out = parse_extra_headers(value)
    assert all(k and k == k.strip() and ";" not in k and "," not in k for k in out)
