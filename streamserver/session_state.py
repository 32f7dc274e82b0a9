"""The states of a stream session and every transition between them, in one table.

As in h11's ``_state.py``, everything that changes a session's state is here::

    AWAIT_START --START--> STREAMING --END--> ENDED
         └───────────────────END────────────────┘

- ``AWAIT_START``: after the upgrade. Only ``start`` (and unknown events, ignored) is
  accepted; anything else closes with 1008, and so does no ``start`` in time.
- ``STREAMING``: a valid ``start`` arrived. Media is ordered and delivered, events are
  fanned out to the handlers, playback works.
- ``ENDED``: a ``stop`` event, a close, a timeout, a violation or the transport's end.
  Input is ignored, nothing is sent, every handler's ``on_stop`` runs. Final.

The session (:mod:`streamserver.session`) applies :func:`next_state` in its one transition
method and derives from the result the plain flags its per-frame path reads.
"""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "SessionState", "SessionStateError", "Trigger", "next_state"]


class SessionState(enum.Enum):
    """Where a stream is in its life."""

    AWAIT_START = "await_start"
    STREAMING = "streaming"
    ENDED = "ended"


class Trigger(enum.Enum):
    """What moves a session from one state to the next."""

    START = "start"  # a valid `start` event
    END = "end"  # `stop`, a close, a timeout, a violation, the transport lost


#: Every state change of a session; a trigger missing for a state is not allowed there.
TRANSITIONS: dict[SessionState, dict[Trigger, SessionState]] = {
    SessionState.AWAIT_START: {
        Trigger.START: SessionState.STREAMING,
        Trigger.END: SessionState.ENDED,
    },
    SessionState.STREAMING: {
        Trigger.END: SessionState.ENDED,
    },
    SessionState.ENDED: {},
}


class SessionStateError(RuntimeError):
    """A trigger the current state does not allow (a bug in the caller, not bad input)."""

    def __init__(self, state: SessionState, trigger: Trigger) -> None:
        super().__init__(f"{trigger.name} is not allowed in {state.name}")
        self.state = state
        self.trigger = trigger


def next_state(state: SessionState, trigger: Trigger) -> SessionState:
    """The state ``trigger`` leads to from ``state``; :class:`SessionStateError` if none."""
    try:
        return TRANSITIONS[state][trigger]
    except KeyError:
        raise SessionStateError(state, trigger) from None
