"""RFC 6455 framing for both sides of a WebSocket (sans-I/O): close codes, frame reading and
building, shared by the stream server (reading masked client frames) and the load tester
(reading unmasked server frames).

Nothing here does I/O: :class:`FrameReader` takes bytes as they arrive and calls back once
per message; the builders return bytes for the caller to write. The opening handshake is
HTTP and lives with each side's connection, not here.

Errors (each carries the :class:`CloseCode` to fail the connection with, RFC 6455 §7.1.7)::

    WebSocketError            code, reason
    ├── ProtocolViolation     1002: a frame breaks RFC 6455 §5, or a close frame §7.4
    ├── InvalidData           1007: text that is not UTF-8 (§8.1; raised by consumers)
    └── MessageTooBig         1009: a message longer than the reader's max_size, or in
                              more than its max_fragments
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable

from websockets.speedups import apply_mask

__all__ = [
    "OK_CLOSE_CODES",
    "CloseCode",
    "FrameReader",
    "InvalidData",
    "MessageTooBig",
    "Opcode",
    "ProtocolViolation",
    "WebSocketError",
    "client_frame",
    "close_payload",
    "frame_header",
    "parse_close",
    "server_frame",
]


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 §7.4.1) that this project sends or interprets."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005  # never sent: the close frame carried no code
    ABNORMAL = 1006  # never sent: the TCP connection ended without a close frame
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


#: Codes that mean "the stream ended normally" to Plivo's side and to ours.
OK_CLOSE_CODES = frozenset({CloseCode.NORMAL, CloseCode.GOING_AWAY, CloseCode.NO_STATUS})

#: Codes a peer may put in a close frame (§7.4.1, §7.4.2): the registered ones that are not
#: reserved for "no frame" situations, plus 3000-4999 (libraries and applications).
_PEER_CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

#: A close reason fits in a control frame's 125 bytes after the 2-byte code (§5.5).
MAX_CLOSE_REASON = 123


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 §5.2); 0x8 and above are control frames (§5.5)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class WebSocketError(Exception):
    """The peer broke the framing rules: fail the connection with :attr:`code`."""

    code: CloseCode = CloseCode.PROTOCOL_ERROR

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProtocolViolation(WebSocketError):
    """A frame breaks RFC 6455 §5 (masking, reserved bits, opcodes, control frames)."""

    code = CloseCode.PROTOCOL_ERROR


class InvalidData(WebSocketError):
    """A text message that is not valid UTF-8 (§8.1)."""

    code = CloseCode.INVALID_DATA


class MessageTooBig(WebSocketError):
    """A message (a frame, or the fragments of one message together) over ``max_size``."""

    code = CloseCode.MESSAGE_TOO_BIG


def _ignore(payload: bytes) -> None:
    pass


class FrameReader:
    """Reads frames from a byte stream and calls back once per message (RFC 6455 §5).

    ``masked=True`` reads a client's frames (a server: every frame must be masked, §5.1);
    ``masked=False`` reads a server's (a client: no frame may be masked). Text and binary
    messages are reassembled from their fragments (§5.4) and handed on whole; text is not
    checked for UTF-8 here (the consumer's JSON decoder does that). Control frames are
    checked on their header: one claiming more than 125 bytes, or fragmented, is refused
    before anything is buffered (§5.5). ``max_size`` bounds a message (None: no bound);
    its frame header is enough to refuse it. ``max_fragments`` bounds the frames of one
    fragmented message (None: no bound), so a flood of empty continuation frames is refused.

    :meth:`feed` raises a :class:`WebSocketError` when the peer breaks the rules; after
    that, and after a close frame (handed to ``on_close`` as ``(code, reason)``), the
    reader is finished and ignores whatever follows. :meth:`expect_close` (called once we
    sent our close) makes it skip everything but the peer's close frame (§5.5.1).

    The steady state of a media stream is one whole text frame per read: while nothing is
    pending (:attr:`idle`), such a read is recognised on its first four bytes and handed
    on without buffering; several frames in one read are parsed where they lie.
    """

    __slots__ = (
        "_buf",
        "_closing",
        "_done",
        "_fast",
        "_fast_max",
        "_frag",
        "_frag_binary",
        "_frag_limit",
        "_frag_size",
        "_limit",
        "_masked",
        "_need",
        "_plain",
        "on_binary",
        "on_close",
        "on_ping",
        "on_pong",
        "on_text",
    )

    def __init__(
        self,
        *,
        on_text: Callable[[bytes], None],
        on_binary: Callable[[bytes], None],
        on_close: Callable[[int, str], None],
        on_ping: Callable[[bytes], None] = _ignore,
        on_pong: Callable[[bytes], None] = _ignore,
        masked: bool,
        # Limits
        max_size: int | None = 2**20,
        max_fragments: int | None = None,
    ) -> None:
        self.on_text = on_text
        self.on_binary = on_binary
        self.on_close = on_close
        self.on_ping = on_ping
        self.on_pong = on_pong
        self._masked = masked
        self._limit = max_size if max_size is not None else 1 << 63  # (lengths are < 2^63)
        # Bytes of a frame that is not complete yet (empty in the steady state), and how
        # long they must grow before they may hold a whole frame.
        self._buf = bytearray()
        self._need = 0
        self._frag: list[bytes] | None = None  # the fragments of a message so far
        self._frag_binary = False
        self._frag_size = 0
        # Empty continuation frames cost nothing in bytes: their number is bounded too.
        self._frag_limit = max_fragments if max_fragments is not None else 1 << 63
        self._closing = False
        self._done = False
        # No fragmented message open and not closing: a text frame is a message to hand on.
        self._plain = True
        # True while nothing is pending: a read may be one whole frame (see feed). The
        # longest such frame: a 16-bit length (and the limit), the header, the mask key.
        self._fast = True
        self._fast_max = min(65535, self._limit) + (8 if masked else 4)

    @property
    def idle(self) -> bool:
        """Between messages: nothing buffered, no fragmented message open, not closing."""
        return self._fast

    @property
    def done(self) -> bool:
        """A close frame was read, or the peer broke the rules: nothing more is read."""
        return self._done

    def expect_close(self) -> None:
        """We sent a close frame: from now on only the peer's close matters (§5.5.1)."""
        self._closing = True
        self._plain = self._fast = False

    def feed(self, data: bytes) -> None:
        """Consume ``data``: call back for every complete message, keep an incomplete tail."""
        if self._fast:
            # The usual read: exactly one final text frame with a 16-bit length.
            n = len(data)
            if 130 <= n <= self._fast_max and data[0] == 0x81:
                if self._masked:
                    if n >= 134 and data[1] == 0xFE and ((data[2] << 8) | data[3]) + 8 == n:
                        self.on_text(apply_mask(data[8:], data[4:8]))
                        return
                elif data[1] == 0x7E and ((data[2] << 8) | data[3]) + 4 == n:
                    self.on_text(data[4:])
                    return
        elif self._done:
            return
        elif self._buf:
            buf = self._buf
            buf += data
            if len(buf) < self._need:
                return  # the frame is not complete yet: no need to look again
            data = bytes(buf)
            buf.clear()
        # Whole frames from the start of a read (a batched read), or what is buffered.
        pos = 0
        n = len(data)
        masked = self._masked
        limit = self._limit
        on_text = self.on_text
        # The usual frame, final text with a 16-bit length, is recognised on two bytes;
        # not when the limit is lower than such lengths (then every frame is checked).
        quick = (0xFE if masked else 0x7E) if limit >= 65535 else -1
        quick_head = 8 if masked else 4
        key_len = 4 if masked else 0
        mask_bit = 0x80 if masked else 0
        while True:
            if n - pos >= 4 and data[pos] == 0x81 and data[pos + 1] == quick:
                end = pos + quick_head + ((data[pos + 2] << 8) | data[pos + 3])
                if end > n:
                    need = end - pos
                    break
                if masked:
                    payload = apply_mask(data[pos + 8 : end], data[pos + 4 : pos + 8])
                else:
                    payload = data[pos + 4 : end]
                pos = end
                if self._plain:
                    on_text(payload)
                    continue
                b0 = 0x81
            else:
                if n - pos < 2:
                    need = 2
                    break
                b0 = data[pos]
                b1 = data[pos + 1]
                length = b1 & 0x7F
                head = pos + 2
                if length == 126:
                    if n - pos < 4:
                        need = 4
                        break
                    length = (data[pos + 2] << 8) | data[pos + 3]
                    head = pos + 4
                elif length == 127:
                    if n - pos < 10:
                        need = 10
                        break
                    length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                    head = pos + 10
                    if length >> 63:  # §5.2: the most significant bit must be 0
                        raise self._stop(ProtocolViolation("64-bit length with the top bit set"))
                self._check_header(b0, b1 & 0x80 == mask_bit, length)
                end = head + key_len + length
                if end > n:
                    need = end - pos
                    break
                if masked:
                    payload = apply_mask(data[head + 4 : end], data[head : head + 4])
                else:
                    payload = data[head:end]
                pos = end
                if b0 == 0x81 and self._plain:
                    on_text(payload)
                    continue
            self._other(b0, payload)
            if self._done:
                return
        if pos < n:
            self._need = need
            self._buf += memoryview(data)[pos:]
            self._fast = False
        else:
            self._fast = self._plain

    def _check_header(self, b0: int, mask_ok: bool, length: int) -> None:
        """The rules a frame header must follow (§5.1, §5.2, §5.5)."""
        if not mask_ok:
            side = "client frames must be" if self._masked else "server frames must not be"
            raise self._stop(ProtocolViolation(f"{side} masked"))
        if b0 & 0x70:
            raise self._stop(ProtocolViolation("reserved bits set (no extension negotiated)"))
        if b0 & 0x08:
            # A control frame, checked on its header: one claiming a huge length must not
            # make us buffer it first (§5.5: at most 125 bytes, never fragmented).
            if not b0 & 0x80 or length > 125:
                raise self._stop(ProtocolViolation("invalid control frame"))
        elif length > self._limit:
            raise self._stop(MessageTooBig(f"message of {length} bytes exceeds {self._limit}"))

    def _other(self, b0: int, payload: bytes) -> None:
        """Every frame but a whole text message: fragments, binary, control frames."""
        opcode = b0 & 0x0F
        if self._closing and opcode != 0x8:
            return  # we sent our close: only the peer's close frame matters now
        fin = b0 & 0x80
        if opcode == 0x1 or opcode == 0x2:
            if self._frag is not None:
                raise self._stop(ProtocolViolation("new message inside a fragmented one"))
            if not fin:
                self._plain = False
                self._frag = [payload]
                self._frag_binary = opcode == 0x2
                self._frag_size = len(payload)
            elif opcode == 0x2:
                self.on_binary(payload)
            else:
                self.on_text(payload)
        elif opcode == 0x0:
            frag = self._frag
            if frag is None:
                raise self._stop(ProtocolViolation("continuation frame without a message"))
            frag.append(payload)
            self._frag_size += len(payload)
            if self._frag_size > self._limit:
                raise self._stop(MessageTooBig(f"message exceeds {self._limit} bytes"))
            if len(frag) > self._frag_limit:
                raise self._stop(MessageTooBig(f"message in over {self._frag_limit} fragments"))
            if fin:
                self._frag = None
                self._plain = not self._closing
                message = b"".join(frag)
                if self._frag_binary:
                    self.on_binary(message)
                else:
                    self.on_text(message)
        elif opcode == 0x9:
            self.on_ping(payload)
        elif opcode == 0xA:
            self.on_pong(payload)
        elif opcode == 0x8:
            try:
                code, reason = parse_close(payload)
            except WebSocketError as exc:
                raise self._stop(exc) from None
            self._finish()  # nothing is read after a close frame
            self.on_close(code, reason)
        else:
            raise self._stop(ProtocolViolation(f"unknown opcode {opcode}"))

    def _finish(self) -> None:
        self._done = True
        self._plain = self._fast = False
        self._buf.clear()
        self._frag = None

    def _stop(self, exc: WebSocketError) -> WebSocketError:
        self._finish()
        return exc


# -- building frames -------------------------------------------------------------------------


def frame_header(opcode: int, n: int, *, fin: bool = True, masked: bool = False) -> bytes:
    """The header of a frame with an ``n``-byte payload, up to (not including) a mask key."""
    b0 = opcode | 0x80 if fin else opcode
    m = 0x80 if masked else 0
    if n < 126:
        return bytes((b0, m | n))
    if n < 65536:
        return bytes((b0, m | 126)) + n.to_bytes(2, "big")
    return bytes((b0, m | 127)) + n.to_bytes(8, "big")


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One frame as a server sends it: never masked (§5.1)."""
    return frame_header(opcode, len(payload), fin=fin) + payload


def client_frame(
    opcode: int, payload: bytes, mask: bytes | None = None, *, fin: bool = True
) -> bytes:
    """One frame as a client sends it: masked (§5.3) with ``mask`` (4 bytes; random if None)."""
    if mask is None:
        mask = os.urandom(4)
    return (
        frame_header(opcode, len(payload), fin=fin, masked=True) + mask + apply_mask(payload, mask)
    )


def close_payload(code: int, reason: str = "") -> bytes:
    """The body of a close frame (§5.5.1): the code, then the reason cut to fit, as UTF-8.

    1005 means "no code" and is never sent: its body is empty.
    """
    if code == CloseCode.NO_STATUS:
        return b""
    raw = reason.encode("utf-8")
    if len(raw) > MAX_CLOSE_REASON:  # cut on a character boundary
        raw = raw[:MAX_CLOSE_REASON].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + raw


def parse_close(payload: bytes) -> tuple[int, str]:
    """``(code, reason)`` of a close frame's body; ``(1005, "")`` when it is empty (§7.1.5).

    Raises :class:`ProtocolViolation` for a 1-byte body, a code a peer may not send
    (§7.4: 0-999, 1004-1006, 1015, 1016-2999, 5000 and up) or a reason that is not UTF-8
    (§5.5.1): a malformed close frame is a protocol error, answered with 1002.
    """
    if not payload:
        return CloseCode.NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolViolation("close frame with a 1-byte body")
    code = int.from_bytes(payload[:2], "big")
    if code not in _PEER_CLOSE_CODES and not 3000 <= code < 5000:
        raise ProtocolViolation(f"invalid close code {code}")
    try:
        reason = bytes(payload[2:]).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation("close reason is not valid UTF-8") from None
    return code, reason
