"""The connection's states and every transition between them, in one table.

In the style of h11's ``_state.py``: everything that moves a connection from one state to
another is an :class:`Event` here, and :data:`TRANSITIONS` says where each event leads.
A connection changes state only through :func:`transition`, so an event in a state that
does not expect it is a bug that fails loudly instead of a flag combination nobody meant.

::

    HANDSHAKE --ACCEPT--> OPEN --CLOSE / PEER_CLOSE--> CLOSING --LOST--> CLOSED
        \\--REJECT--> CLOSING            (HTTP reply)       \\--PEER_CLOSE (handshake done)
        \\--HAND_OFF--> CLOSED          (an HTTP app took the socket)
    any state --LOST--> CLOSED
"""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "ConnState", "Event", "StateError", "transition"]


class ConnState(enum.Enum):
    """Where a connection is in its life."""

    #: Reading the HTTP request: a health check, or a WebSocket upgrade to decide on.
    HANDSHAKE = "handshake"
    #: 101 sent: frames flow both ways, the stream's session is fed.
    OPEN = "open"
    #: A close frame is on its way or an HTTP reply was sent: waiting for the peer's close
    #: frame or for TCP to end (RFC 6455 §7.1.1); no message is delivered or sent any more.
    CLOSING = "closing"
    #: The TCP connection is gone.
    CLOSED = "closed"


class Event(enum.Enum):
    """What happens to a connection."""

    ACCEPT = "upgrade accepted (101 sent)"
    REJECT = "HTTP reply instead of an upgrade (TCP closes after it)"
    HAND_OFF = "the request went to the HTTP app served on this port, which owns the socket now"
    CLOSE = "we sent a close frame (closing handshake or failing the connection)"
    PEER_CLOSE = "the peer's close frame arrived"
    LOST = "the TCP connection ended"


_S = ConnState
_E = Event

#: state -> {event -> next state}; an event missing from a state's row is not allowed there.
TRANSITIONS: dict[ConnState, dict[Event, ConnState]] = {
    _S.HANDSHAKE: {
        _E.ACCEPT: _S.OPEN,
        _E.REJECT: _S.CLOSING,
        _E.HAND_OFF: _S.CLOSED,
        _E.LOST: _S.CLOSED,
    },
    # A peer's close while open: we answer with ours and end TCP (RFC 6455 §5.5.1).
    _S.OPEN: {_E.CLOSE: _S.CLOSING, _E.PEER_CLOSE: _S.CLOSING, _E.LOST: _S.CLOSED},
    # The peer's answer to our close completes the handshake: we end TCP (§7.1.1).
    _S.CLOSING: {_E.PEER_CLOSE: _S.CLOSING, _E.LOST: _S.CLOSED},
    _S.CLOSED: {},
}


class StateError(RuntimeError):
    """An event arrived in a state that does not allow it (a bug, not bad input)."""

    def __init__(self, state: ConnState, event: Event) -> None:
        super().__init__(f"{event.name} is not allowed in state {state.name}")
        self.state = state
        self.event = event


def transition(state: ConnState, event: Event) -> ConnState:
    """The state ``event`` leads to from ``state``; :class:`StateError` if it may not happen."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise StateError(state, event) from None
