"""The live state of one simulated call leg, and why calls end.

:class:`CallRuntime` is what every part of the simulator hangs on a :class:`~.store.Call`
while it runs: the callee's timeline (what they say, what they hear), the streams and
recordings running on it, the conference or multiparty call it sits in, and the events its
waiters use. It also carries the few operations every part needs: start the callee's
voice, ask for the end of the call (the first cause wins), and hang up and wait.

Hangup causes the emulator reports (name, code, source): the reference's
``Normal Hangup`` 4000, ``End Of XML Instructions`` 4010, ``Canceled`` 1000 and
``Invalid Destination Address`` 2000; Plivo's ``Destination Out Of Service`` 2010; and,
in Plivo's numbering, ``Busy Line`` 3000, ``Rejected`` 3010, ``Ring Timeout Reached`` 6010,
``Machine Detected`` 6020, ``Invalid Answer XML`` 8011, ``Answer URL Unreachable`` 8001,
``Scheduled Hangup`` 5010 and ``Time Limit Reached`` 5020 (``docs/emulator.md`` has the
table). A call that never answers gets the CallStatus of :data:`UNANSWERED_STATUS`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..audio import PCM
from .media import RATE
from .outcomes import InputAnswer
from .store import Call, Conference, ConferenceMember, MultiPartyCall, Participant, Stream

__all__ = [
    "ANSWER_URL_FAILED",
    "BUSY",
    "CANCELED",
    "DIAL_LOST",
    "END_OF_XML",
    "INVALID_DESTINATION",
    "INVALID_XML",
    "MACHINE_DETECTED",
    "NORMAL_API",
    "NORMAL_CALLEE",
    "NORMAL_CALLER",
    "NORMAL_PLIVO",
    "NORMAL_XML",
    "OUT_OF_SERVICE",
    "REJECTED",
    "RING_TIMEOUT",
    "SCHEDULED",
    "SHUTDOWN",
    "STOP_TIMEOUT_S",
    "TIME_LIMIT",
    "UNANSWERED",
    "UNANSWERED_STATUS",
    "Action",
    "CallRecording",
    "CallRuntime",
    "Cursor",
    "Fetch",
    "Hangup",
    "HangupCause",
    "JoinMpc",
    "Segment",
]

#: How long hanging up or stopping waits for the cleanup to finish.
STOP_TIMEOUT_S = 10.0


class HangupCause(NamedTuple):
    """Why a call ended, as its CDR and hangup callback report it."""

    name: str
    code: int
    source: str


NORMAL_CALLEE = HangupCause("Normal Hangup", 4000, "Callee")
NORMAL_API = HangupCause("Normal Hangup", 4000, "API Request")
NORMAL_XML = HangupCause("Normal Hangup", 4000, "Answer XML")
NORMAL_PLIVO = HangupCause("Normal Hangup", 4000, "Plivo")
END_OF_XML = HangupCause("End Of XML Instructions", 4010, "Plivo")
CANCELED = HangupCause("Canceled", 1000, "API Request")
INVALID_DESTINATION = HangupCause("Invalid Destination Address", 2000, "Plivo")
INVALID_XML = HangupCause("Invalid Answer XML", 8011, "Plivo")
ANSWER_URL_FAILED = HangupCause("Answer URL Unreachable", 8001, "Plivo")
SCHEDULED = HangupCause("Scheduled Hangup", 5010, "Answer XML")
TIME_LIMIT = HangupCause("Time Limit Reached", 5020, "Plivo")
SHUTDOWN = HangupCause("Normal Hangup", 4000, "Plivo")
#: The other side of a bridge hung up (a ``<Dial>`` leg whose caller left).
NORMAL_CALLER = HangupCause("Normal Hangup", 4000, "Caller")
BUSY = HangupCause("Busy Line", 3000, "Callee")
REJECTED = HangupCause("Rejected", 3010, "Callee")
OUT_OF_SERVICE = HangupCause("Destination Out Of Service", 2010, "Carrier")
RING_TIMEOUT = HangupCause("Ring Timeout Reached", 6010, "Plivo")
MACHINE_DETECTED = HangupCause("Machine Detected", 6020, "Plivo")
#: A ``<Dial>`` leg still ringing when another one answered.
DIAL_LOST = HangupCause("Canceled", 1000, "Plivo")

#: Outcomes (:data:`.outcomes.OUTCOMES`) that never answer, and the cause each ends with.
UNANSWERED: dict[str, HangupCause] = {
    "busy": BUSY,
    "rejected": REJECTED,
    "no-answer": RING_TIMEOUT,
    "failed": OUT_OF_SERVICE,
}
#: CallStatus of a call that ended unanswered with this cause (else "failed").
UNANSWERED_STATUS: dict[HangupCause, str] = {
    BUSY: "busy",
    REJECTED: "busy",
    RING_TIMEOUT: "no-answer",
    CANCELED: "cancel",
    DIAL_LOST: "cancel",
}


class Hangup(Exception):
    """Raised inside a call's XML run to end the call with ``cause``."""

    def __init__(self, cause: HangupCause) -> None:
        super().__init__(cause.name)
        self.cause = cause


@dataclass
class Fetch:
    """Fetch a document and run it (answer URL, Redirect, Record action, transfer)."""

    url: str
    method: str
    event: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class JoinMpc:
    """Join a multiparty call directly (participants added through the API)."""

    mpc: MultiPartyCall
    options: dict[str, Any]


#: What a call does next: run a document, or sit in a multiparty call.
Action = Fetch | JoinMpc


@dataclass
class Segment:
    """Audio the far end hears from ``start`` (samples since answer); truncated on stop."""

    start: int
    pcm: PCM


@dataclass
class Cursor:
    """Where a sequence of prompts has played up to (samples on the callee's timeline)."""

    end: int = 0


@dataclass
class CallRecording:
    """A recording of one call in progress (Record API, ``recordSession``, MPC member)."""

    recording_id: str
    url: str
    file_format: str
    stereo: bool
    start_pos: int
    start_wall: float
    callback_url: str
    callback_method: str
    mpc: MultiPartyCall | None = None
    timer: asyncio.TimerHandle | None = None
    done: bool = False


class CallRuntime:
    """The live state of one call leg.

    ``hangup_after_audio_s`` is when the callee hangs up after their audio ends (negative:
    never).
    """

    def __init__(self, call: Call, dispatch_at: float, hangup_after_audio_s: float) -> None:
        self.call = call
        self.dispatch_at = dispatch_at
        self.hangup_after_audio_s = hangup_after_audio_s
        self.task: asyncio.Task[None] | None = None
        self.xml_task: asyncio.Task[Action | None] | None = None
        self.initial: Action | None = None
        self.interrupt: Action | None = None
        self.end: HangupCause | None = None
        #: Loop time of sample 0 of the callee's audio (see :meth:`begin_voice`).
        self.voice_t0: float | None = None
        self.caller: PCM = np.zeros(0, dtype=np.int16)
        self.hangup_pos: int | None = None
        self.outbound: list[Segment] = []
        self.xml_cursor = Cursor()
        self.streams: dict[str, Stream] = {}
        self.recordings: list[CallRecording] = []
        self.timers: list[asyncio.TimerHandle] = []
        self.api_play: asyncio.Task[None] | None = None
        self.api_speak: asyncio.Task[None] | None = None
        self.conference: tuple[Conference, ConferenceMember] | None = None
        self.mpc: tuple[MultiPartyCall, Participant] | None = None
        self.leave = asyncio.Event()
        self.leave_cause = ""
        self.digits_sent: list[str] = []
        #: How this leg goes (:data:`.outcomes.OUTCOMES`), set when it is dialled.
        self.outcome = "answer"
        #: What the callee still has to enter at input elements, in order.
        self.inputs: deque[InputAnswer] = deque()
        #: Machine detection's verdict once given (None: not run, or not yet).
        self.machine: bool | None = None
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()

    # --- the callee's timeline ----------------------------------------------------------

    def position(self) -> int:
        """Samples of the callee's timeline elapsed (0 before they start talking)."""
        if self.voice_t0 is None:
            return 0
        return max(0, int((asyncio.get_running_loop().time() - self.voice_t0) * RATE))

    def loop_time_of(self, pos: int) -> float:
        """Loop time at which sample ``pos`` of the callee's timeline sounds."""
        assert self.voice_t0 is not None
        return self.voice_t0 + pos / RATE

    def caller_slice(self, start: int, end: int) -> PCM:
        """What the far end says in ``[start, end)``, silence past their audio."""
        out = np.zeros(max(0, end - start), dtype=np.int16)
        src = self.caller[start:end]
        out[: src.shape[0]] = src
        return out

    def outbound_slice(self, start: int, end: int) -> PCM:
        """What the far end hears in ``[start, end)`` from Play/Speak, mixed."""
        mix = np.zeros(max(0, end - start), dtype=np.int32)
        for seg in self.outbound:
            a, b = max(start, seg.start), min(end, seg.start + seg.pcm.shape[0])
            if a < b:
                mix[a - start : b - start] += seg.pcm[a - seg.start : b - seg.start]
        return np.clip(mix, -32768, 32767).astype(np.int16)

    def begin_voice(self) -> None:
        """The callee starts talking: sample 0 of their audio is now.

        That is when the first answer XML starts to run, so a ``<Stream>`` at its top
        carries the callee's audio from its very first sample (deterministic for tests),
        however long the answer URL took.
        """
        if self.voice_t0 is not None:
            return
        self.voice_t0 = asyncio.get_running_loop().time()
        after = self.hangup_after_audio_s
        if after >= 0:
            self.hangup_pos = self.caller.shape[0] + int(after * RATE)
            self.end_after(self.hangup_pos / RATE, NORMAL_CALLEE)

    def switch_to(self, action: Action) -> None:
        """Stop the running document; the call goes on with ``action`` (a transfer, joining
        a multiparty call)."""
        self.interrupt = action
        if self.xml_task is not None and not self.xml_task.done():
            self.xml_task.cancel()

    # --- ending -------------------------------------------------------------------------

    def end_after(self, delay_s: float, cause: HangupCause) -> None:
        """End the call with ``cause`` in ``delay_s`` seconds (unless it ends first)."""
        handle = asyncio.get_running_loop().call_later(delay_s, self.request_end, cause)
        self.timers.append(handle)

    def request_end(self, cause: HangupCause) -> None:
        """Ask for the end of the call (idempotent; the first cause wins)."""
        if self.call.ended or self.end is not None:
            return
        self.end = cause
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    async def hang_up(self, cause: HangupCause) -> None:
        """End the call with ``cause`` and wait (bounded) until its cleanup is done."""
        self.request_end(cause)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), STOP_TIMEOUT_S)
