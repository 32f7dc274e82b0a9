"""The RFC 6455 frame codec, pure: bytes in, callbacks out, no event loop."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamserver.protocol.websocket import (
    CloseCode,
    FrameReader,
    MessageTooBig,
    Opcode,
    ProtocolViolation,
    WebSocketError,
    client_frame,
    close_payload,
    frame_header,
    parse_close,
    server_frame,
)

MASK = b"\x01\x02\x03\x04"


class Recorder:
    """A FrameReader wired to a list of what it called back."""

    def __init__(self, *, masked: bool = True, max_size: int | None = 1000) -> None:
        self.got: list[tuple[str, Any]] = []
        self.reader = FrameReader(
            on_text=lambda d: self.got.append(("text", d)),
            on_binary=lambda d: self.got.append(("binary", d)),
            on_ping=lambda d: self.got.append(("ping", d)),
            on_pong=lambda d: self.got.append(("pong", d)),
            on_close=lambda code, reason: self.got.append(("close", (code, reason))),
            masked=masked,
            max_size=max_size,
        )

    def feed(self, *chunks: bytes) -> list[tuple[str, Any]]:
        for c in chunks:
            self.reader.feed(c)
        return self.got


def cf(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    return client_frame(opcode, payload, MASK, fin=fin)


def test_one_text_frame_each_length_encoding() -> None:
    for n in (0, 5, 125, 126, 300, 65535, 65536):
        payload = bytes(i % 251 for i in range(n))
        rec = Recorder(max_size=None)
        assert rec.feed(cf(Opcode.TEXT, payload)) == [("text", payload)]
        assert rec.reader.idle


def test_frame_split_at_every_byte() -> None:
    wire = cf(Opcode.TEXT, b"x" * 300)
    rec = Recorder()
    for i in range(len(wire)):
        rec.reader.feed(wire[i : i + 1])
        assert rec.got == ([] if i < len(wire) - 1 else [("text", b"x" * 300)])
        assert rec.reader.idle == (i == len(wire) - 1)


def test_batched_frames_in_one_read_and_a_partial_tail() -> None:
    frames = [cf(Opcode.TEXT, f"m{i}".encode() * 70) for i in range(3)]
    tail = cf(Opcode.TEXT, b"last")
    rec = Recorder()
    rec.feed(b"".join(frames) + tail[:3])
    assert [d for _, d in rec.got] == [f"m{i}".encode() * 70 for i in range(3)]
    assert not rec.reader.idle
    rec.feed(tail[3:])
    assert rec.got[-1] == ("text", b"last")


def test_fragmented_text_and_binary_with_a_ping_in_between() -> None:
    rec = Recorder()
    rec.feed(
        cf(Opcode.TEXT, b"hel", fin=False),
        cf(Opcode.PING, b"p"),
        cf(Opcode.CONTINUATION, b"lo", fin=False),
        cf(Opcode.CONTINUATION, b"!"),
        cf(Opcode.BINARY, b"\x00", fin=False),
        cf(Opcode.CONTINUATION, b"\x01"),
        cf(Opcode.PONG, b""),
    )
    assert rec.got == [
        ("ping", b"p"),
        ("text", b"hello!"),
        ("binary", b"\x00\x01"),
        ("pong", b""),
    ]


def test_close_frame_ends_reading() -> None:
    rec = Recorder()
    rec.feed(cf(Opcode.CLOSE, close_payload(1000, "bye")) + cf(Opcode.TEXT, b"after"))
    assert rec.got == [("close", (1000, "bye"))]
    assert rec.reader.done
    rec.feed(cf(Opcode.TEXT, b"later"))
    assert len(rec.got) == 1


def test_empty_close_means_no_status() -> None:
    assert Recorder().feed(cf(Opcode.CLOSE, b""))[0] == ("close", (1005, ""))


def test_expect_close_skips_everything_but_the_close() -> None:
    rec = Recorder()
    rec.reader.expect_close()
    assert not rec.reader.idle
    rec.feed(cf(Opcode.TEXT, b"a"), cf(Opcode.PING, b"b"), cf(Opcode.CLOSE, close_payload(1001)))
    assert rec.got == [("close", (1001, ""))]


def test_expect_close_from_a_callback_applies_to_the_rest_of_the_read() -> None:
    got: list[bytes] = []

    def on_text(data: bytes) -> None:
        got.append(data)
        reader.expect_close()  # e.g. the session closed the stream on this message

    reader = FrameReader(
        on_text=on_text, on_binary=got.append, on_close=lambda c, r: None, masked=True
    )
    reader.feed(cf(Opcode.TEXT, b"stop") + cf(Opcode.TEXT, b"more"))
    assert got == [b"stop"]


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (b"\x81\x02hi", "must be masked"),
        (b"\xc1\x82" + MASK + b"hi", "reserved bits"),
        (b"\x80\x82" + MASK + b"hi", "continuation frame without a message"),
        (b"\x83\x80" + MASK, "unknown opcode 3"),
        (b"\x8b\x80" + MASK, "unknown opcode 11"),
        (b"\x09\x80" + MASK, "invalid control frame"),  # fragmented ping
        (b"\x89\xfe\x00\x80", "invalid control frame"),  # ping claiming 128 bytes
        (b"\x88\x81" + MASK + b"\x00", "1-byte body"),
        (b"\x81\xff\x80" + bytes(7), "top bit"),
    ],
)
def test_protocol_violations_close_1002(wire: bytes, error: str) -> None:
    rec = Recorder()
    with pytest.raises(ProtocolViolation, match=error) as exc:
        rec.feed(wire)
    assert exc.value.code == CloseCode.PROTOCOL_ERROR == 1002
    assert rec.reader.done
    rec.feed(cf(Opcode.TEXT, b"ignored"))  # a failed reader reads nothing more
    assert rec.got == []


def test_control_frame_claiming_a_huge_length_fails_on_its_header() -> None:
    # A ping announcing 10^9 bytes: refused on its 10-byte header, nothing buffered.
    with pytest.raises(ProtocolViolation):
        Recorder().feed(b"\x89\xff" + (10**9).to_bytes(8, "big"))


def test_new_message_inside_a_fragmented_one() -> None:
    with pytest.raises(ProtocolViolation, match="inside a fragmented"):
        Recorder().feed(cf(Opcode.TEXT, b"a", fin=False), cf(Opcode.TEXT, b"b"))


def test_oversize_frame_refused_on_its_header() -> None:
    rec = Recorder(max_size=100)
    with pytest.raises(MessageTooBig) as exc:
        rec.feed(cf(Opcode.TEXT, b"x" * 101)[:4])  # only the header has arrived
    assert exc.value.code == 1009


def test_oversize_fragmented_message() -> None:
    rec = Recorder(max_size=100)
    with pytest.raises(MessageTooBig):
        rec.feed(cf(Opcode.TEXT, b"x" * 60, fin=False), cf(Opcode.CONTINUATION, b"x" * 60))
    assert rec.got == []


def test_client_side_reads_unmasked_frames_and_refuses_masked_ones() -> None:
    rec = Recorder(masked=False)
    wire = server_frame(Opcode.TEXT, b"x" * 200) + server_frame(Opcode.PING, b"")
    assert rec.feed(wire[:3], wire[3:]) == [("text", b"x" * 200), ("ping", b"")]
    with pytest.raises(ProtocolViolation, match="must not be masked"):
        Recorder(masked=False).feed(cf(Opcode.TEXT, b"hi"))


def test_builders() -> None:
    assert frame_header(Opcode.TEXT, 5) == b"\x81\x05"
    assert frame_header(Opcode.TEXT, 300) == b"\x81\x7e\x01\x2c"
    assert frame_header(Opcode.BINARY, 70000, fin=False) == b"\x02\x7f" + (70000).to_bytes(8, "big")
    assert frame_header(Opcode.CLOSE, 2, masked=True) == b"\x88\x82"
    assert server_frame(Opcode.PONG, b"ab") == b"\x8a\x02ab"
    masked = client_frame(Opcode.TEXT, b"abcd", MASK)
    assert masked[:6] == b"\x81\x84" + MASK
    assert bytes(a ^ b for a, b in zip(masked[6:], MASK, strict=True)) == b"abcd"
    assert len(client_frame(Opcode.TEXT, b"x")) == 2 + 4 + 1  # a random mask


def test_close_payload_and_parse_close() -> None:
    assert close_payload(1000) == b"\x03\xe8"
    assert close_payload(CloseCode.NO_STATUS, "ignored") == b""
    body = close_payload(1008, "é" * 100)  # cut to 123 bytes on a character boundary
    assert len(body) == 2 + 122
    assert parse_close(body) == (1008, "é" * 61)
    assert parse_close(b"") == (1005, "")
    assert parse_close(b"\x0f\xa0x") == (4000, "x")
    for code in (0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535):
        with pytest.raises(ProtocolViolation):
            parse_close(code.to_bytes(2, "big"))
    with pytest.raises(ProtocolViolation):
        parse_close(b"\x03")  # a 1-byte body
    with pytest.raises(ProtocolViolation) as exc:
        parse_close(b"\x03\xe8\xff")  # a reason that is not UTF-8: 1002 (§7.4)
    assert exc.value.code == 1002


def test_a_flood_of_empty_continuation_frames_is_refused() -> None:
    got: list[Any] = []
    reader = FrameReader(
        on_text=got.append,
        on_binary=got.append,
        on_close=lambda c, r: None,
        masked=True,
        max_fragments=100,
    )
    reader.feed(client_frame(Opcode.TEXT, b"a", MASK, fin=False))
    empty = client_frame(Opcode.CONTINUATION, b"", MASK, fin=False)
    with pytest.raises(MessageTooBig):
        reader.feed(empty * 1000)
    assert reader.done and got == []
    ok = FrameReader(
        on_text=got.append,
        on_binary=got.append,
        on_close=lambda c, r: None,
        masked=True,
        max_fragments=100,
    )
    ok.feed(client_frame(Opcode.TEXT, b"a", MASK, fin=False) + empty * 98)
    ok.feed(client_frame(Opcode.CONTINUATION, b"b", MASK))
    assert got == [b"ab"]


@settings(max_examples=400, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=300), max_size=8),
    masked=st.booleans(),
    max_size=st.one_of(st.none(), st.integers(0, 300)),
)
def test_arbitrary_bytes_raise_only_the_codecs_error(
    chunks: list[bytes], masked: bool, max_size: int | None
) -> None:
    rec = Recorder(masked=masked, max_size=max_size)
    for c in chunks:
        try:
            rec.reader.feed(c)
        except WebSocketError as exc:
            assert exc.code in (1002, 1007, 1009)
            assert rec.reader.done
    for kind, data in rec.got:
        if kind in ("text", "binary"):
            assert max_size is None or len(data) <= max_size


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.tuples(st.booleans(), st.binary(max_size=400)), max_size=6),
    cuts=st.lists(st.integers(0, 3000), max_size=6),
)
def test_any_split_of_valid_frames_gives_the_same_messages(
    messages: list[tuple[bool, bytes]], cuts: list[int]
) -> None:
    wire = b"".join(cf(Opcode.TEXT if text else Opcode.BINARY, p) for text, p in messages)
    points = sorted({min(c, len(wire)) for c in cuts})
    pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    got = Recorder(max_size=None).feed(*pieces)
    assert got == [("text" if text else "binary", p) for text, p in messages]
