"""RFC 6455 framing for both sides of a WebSocket (sans-I/O): close codes, frame building
and reading, shared by the stream server and the Plivo-side clients (emulator, load tester).
"""

from __future__ import annotations

import enum

__all__ = ["OK_CLOSE_CODES", "CloseCode"]


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
