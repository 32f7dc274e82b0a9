"""The connection's state machine, and the connection driven with bytes: no sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import plivo_frames as pf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamserver.metrics import Metrics
from streamserver.net.batching import ReadBatcher, WriteCoalescer
from streamserver.net.connection import Connection
from streamserver.net.gate import Accept, Gate
from streamserver.net.limits import ConnectionLimits
from streamserver.net.state import TRANSITIONS, ConnState, Event, StateError, transition
from streamserver.protocol.websocket import FrameReader, Opcode, client_frame, close_payload
from streamserver.session import Route, Session, SessionLimits

S, E = ConnState, Event
MASK = b"\x0a\x0b\x0c\x0d"
REQUEST = (
    b"GET /stream?x=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


# -- the table ---------------------------------------------------------------------------------


def test_transitions_table() -> None:
    assert transition(S.HANDSHAKE, E.ACCEPT) is S.OPEN
    assert transition(S.HANDSHAKE, E.REJECT) is S.CLOSING
    assert transition(S.OPEN, E.CLOSE) is S.CLOSING
    assert transition(S.OPEN, E.PEER_CLOSE) is S.CLOSING
    assert transition(S.CLOSING, E.PEER_CLOSE) is S.CLOSING
    for state in S:
        expected = S.CLOSED if state is not S.CLOSED else None
        assert TRANSITIONS[state].get(E.LOST) is expected
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.HANDSHAKE, E.CLOSE),
        (S.HANDSHAKE, E.PEER_CLOSE),
        (S.OPEN, E.ACCEPT),
        (S.CLOSING, E.CLOSE),
        (S.CLOSING, E.ACCEPT),
        (S.CLOSED, E.LOST),
    ],
)
def test_events_a_state_does_not_expect_fail_loudly(state: ConnState, event: Event) -> None:
    with pytest.raises(StateError, match=f"{event.name} is not allowed in state {state.name}"):
        transition(state, event)


# -- a connection, fed bytes -----------------------------------------------------------------


class Transport:
    """What a connection needs of a transport; everything written is kept."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False
        self.aborted = False
        self.eof = False
        self.writes = 0

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.out += data
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def frames(self) -> list[tuple[str, Any]]:
        """The server's frames after the HTTP response head."""
        body = bytes(self.out).partition(b"\r\n\r\n")[2]
        got: list[tuple[str, Any]] = []
        reader = FrameReader(
            on_text=lambda d: got.append(("text", d)),
            on_binary=lambda d: got.append(("binary", d)),
            on_ping=lambda d: got.append(("ping", d)),
            on_pong=lambda d: got.append(("pong", d)),
            on_close=lambda c, r: got.append(("close", c)),
            masked=False,
        )
        reader.feed(body)
        return got


class Owner:
    """A ConnectionOwner for one connection, recording what it is told."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.limits = SessionLimits()
        self.gate = Gate({"/stream": Route("/stream", ())}, self.metrics, max_streams=10)
        self.reads = ReadBatcher(self.metrics, frames=2, min_streams=0)
        self.writes = WriteCoalescer(frames=1, min_streams=0, delay_s=0.03)
        self.max_message_bytes = 4096
        self.conn_limits = ConnectionLimits()
        self.told: list[str] = []

    def connection_made(self, conn: Connection) -> None:
        self.told.append("made")

    def open_session(self, conn: Connection, accept: Accept) -> Session:
        return Session(
            conn, accept.route, self.metrics, path=accept.path, query=accept.query, peer=conn.peer
        )

    def stream_opened(self, conn: Connection) -> None:
        self.told.append("opened")

    def connection_lost(self, conn: Connection) -> None:
        self.told.append("lost")


def connect() -> tuple[Connection, Transport, Owner]:
    owner = Owner()
    conn = Connection(owner)
    tr = Transport()
    conn.connection_made(tr)  # type: ignore[arg-type]
    return conn, tr, owner


def text(s: str) -> bytes:
    return client_frame(Opcode.TEXT, s.encode(), MASK)


async def test_health_check_replies_and_closes() -> None:
    conn, tr, owner = connect()
    assert conn.state is S.HANDSHAKE
    conn.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert tr.out.startswith(b"HTTP/1.1 200") and tr.out.endswith(b"ok\n")
    assert tr.closed and conn.state is S.CLOSING and conn.session is None
    conn.connection_lost(None)
    assert conn.state is S.CLOSED
    assert owner.told == ["made", "lost"]


async def test_request_head_too_large_is_431() -> None:
    conn, tr, _ = connect()
    conn.data_received(b"GET / HTTP/1.1\r\nX: " + b"a" * 20000)
    assert tr.out.startswith(b"HTTP/1.1 431") and tr.closed
    assert conn.state is S.CLOSING


async def test_plain_get_on_a_route_is_a_bad_upgrade() -> None:
    conn, tr, owner = connect()
    conn.data_received(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    assert tr.out.startswith(b"HTTP/1.1 426") and conn.state is S.CLOSING
    assert owner.metrics.connections_rejected == {"bad_upgrade": 1}


async def test_upgrade_then_frames_then_peer_close() -> None:
    conn, tr, owner = connect()
    # The request and the first frames in one read, the rest split across reads.
    wire = text(pf.start()) + text(pf.media(b"\xff" * 160, 1))
    conn.data_received(REQUEST + wire[:10])
    assert conn.state is S.OPEN and owner.told == ["made", "opened"]
    assert tr.out.startswith(b"HTTP/1.1 101")
    session = conn.session
    assert session is not None and session.query == {"x": "1"}
    conn.data_received(wire[10:])
    conn.data_received(text(pf.media(b"\xff" * 160, 2)))  # one whole frame: the fast path
    assert (session.started, session.media_frames) == (True, 2)
    conn.data_received(client_frame(Opcode.PING, b"hi", MASK))
    conn.data_received(client_frame(Opcode.CLOSE, close_payload(1000), MASK))
    # The peer closed first: we echo its code and end TCP (RFC 6455 §5.5.1, §7.1.1).
    assert tr.frames() == [("pong", b"hi"), ("close", 1000)]
    assert tr.closed and conn.state is S.CLOSING and session.ended
    conn.connection_lost(None)
    assert conn.state is S.CLOSED and conn.close_code == 1000
    assert owner.told == ["made", "opened", "lost"]


async def test_session_close_starts_the_handshake_and_the_reader_waits_for_the_reply() -> None:
    conn, tr, _ = connect()
    conn.data_received(REQUEST)
    conn.data_received(text(pf.media(b"\xff" * 160, 1)))  # media before start: 1008
    assert conn.state is S.CLOSING and conn.close_code == 1008
    assert not tr.closed
    conn.data_received(text(pf.start()) + client_frame(Opcode.PING, b"", MASK))  # ignored now
    conn.send_text(b"{}")  # nothing is sent once closing
    assert tr.frames() == [("close", 1008)]
    conn.data_received(client_frame(Opcode.CLOSE, close_payload(1008), MASK))
    assert tr.closed  # the handshake is complete
    conn.connection_lost(None)
    assert conn.state is S.CLOSED


async def test_protocol_error_fails_the_connection() -> None:
    conn, tr, owner = connect()
    conn.data_received(REQUEST + text(pf.start()))
    conn.data_received(b"\x81\x02hi")  # unmasked
    assert tr.frames() == [("close", 1002)]
    assert tr.eof and conn.state is S.CLOSING  # half-closed: §7.1.7
    assert owner.metrics.frames_invalid["websocket"] == 1
    assert conn.session is not None and conn.session.ended
    conn.data_received(client_frame(Opcode.CLOSE, close_payload(1000), MASK))  # not read
    conn.connection_lost(None)
    assert conn.close_code == 1002


async def test_oversize_message_fails_with_1009() -> None:
    conn, tr, _ = connect()
    conn.data_received(REQUEST + text(pf.start()))
    conn.data_received(text("x" * 5000)[:100])
    assert tr.frames() == [("close", 1009)]


async def test_lost_without_close_is_1006() -> None:
    conn, _, owner = connect()
    conn.data_received(REQUEST + text(pf.start()))
    conn.connection_lost(None)
    assert conn.close_code == 1006 and conn.state is S.CLOSED
    assert owner.told == ["made", "opened", "lost"]
    assert conn.session is not None and conn.session.stop_reason is not None
    assert conn.session.stop_reason.value == "error"


async def test_send_text_writes_server_frames() -> None:
    conn, tr, _ = connect()
    conn.data_received(REQUEST + text(pf.start()))
    conn.send_text(b"x" * 10)
    conn.send_text(b"y" * 300, urgent=False)  # audio: at the end of this pass
    conn.send_text(b"z" * 200, urgent=False)  # ... in the same write
    assert tr.frames() == [("text", b"x" * 10)]
    await asyncio.sleep(0)
    assert tr.frames() == [("text", b"x" * 10), ("text", b"y" * 300), ("text", b"z" * 200)]
    assert tr.writes == 3  # the 101, the urgent one, then both audio frames together
    conn.send_binary(b"b" * 320, urgent=False)
    conn.send_text(b"u" * 10)  # urgent: the queued audio goes first, in order
    assert tr.frames()[3:] == [("binary", b"b" * 320), ("text", b"u" * 10)]
    assert conn.interactive


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(0, 5000), max_size=12))
def test_fast_path_and_reader_agree_on_any_split(cuts: list[int]) -> None:
    # Whole frames take the inlined one-frame path, split and batched ones the reader:
    # the session sees the same messages, in order, whatever the reads look like.
    import asyncio

    async def run() -> None:
        conn, _, _ = connect()
        conn.data_received(REQUEST)
        msgs = [pf.start()] + [pf.media(bytes([i]) * 160, i + 1) for i in range(8)]
        wire = b"".join(text(m) for m in msgs)
        points = sorted({min(c, len(wire)) for c in cuts})
        for a, b in zip([0, *points], [*points, len(wire)], strict=True):
            if b > a:
                conn.data_received(wire[a:b])
        s = conn.session
        assert s is not None and s.media_frames == 8 and s.frames == 9
        assert s.bytes_received == sum(len(m) for m in msgs)

    asyncio.run(run())
