"""In-memory state of the emulated account, and the JSON shapes Plivo gives it.

Records are plain dataclasses; each has a ``to_json()`` producing exactly the object the
Plivo API returns (field names, string-typed numbers, time formats). The REST app reads and
writes them; the call simulator owns the live parts (tasks, audio) through ``runtime``
fields that never reach JSON.

Values (ids, times, money) are written by :mod:`.values`; pagination and list filters are
the REST API's (:mod:`.api.common`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from .values import (
    CALL_RATE,
    STREAM_RATE,
    add_time,
    amount,
    billed_seconds,
    cdr_time,
    digits,
    resource_uri,
    session_time,
)

__all__ = [
    "Call",
    "Conference",
    "ConferenceMember",
    "Endpoint",
    "MultiPartyCall",
    "Participant",
    "Recording",
    "Store",
    "Stream",
    "Verification",
    "VerifiedCallerId",
    "country_of",
]

# --- records ------------------------------------------------------------------------------


@dataclass
class Call:
    """One call leg placed through the API (or by a multiparty call)."""

    auth_id: str
    call_uuid: str
    request_uuid: str
    from_number: str
    to_number: str
    caller_name: str = ""
    direction: str = "outbound"
    parent_call_uuid: str | None = None
    answer_url: str = ""
    answer_method: str = "POST"
    ring_url: str = ""
    ring_method: str = "POST"
    hangup_url: str = ""
    hangup_method: str = "POST"
    fallback_url: str = ""
    fallback_method: str = "POST"
    time_limit_s: int = 14400
    ring_timeout_s: int = 120
    sip_headers: dict[str, str] = field(default_factory=dict)
    #: DTMF sent to the far end once it answers.
    send_digits: str = ""
    #: Answering-machine detection: "" (off), "true" (report) or "hangup" (report, hang up).
    machine_detection: str = ""
    machine_detection_time_ms: int = 5000
    machine_detection_url: str = ""
    machine_detection_method: str = "POST"
    #: queued, ringing, in-progress, completed, cancel, no-answer, busy, timeout
    status: str = "queued"
    initiation_time: float = field(default_factory=time.time)
    answer_time: float | None = None
    end_time: float | None = None
    hangup_cause_name: str = ""
    hangup_cause_code: int = 0
    hangup_source: str = ""
    #: Set by the simulator: its live state for this call (never serialized).
    runtime: Any = field(default=None, repr=False, compare=False)

    @property
    def is_live(self) -> bool:
        return self.status in ("ringing", "in-progress")

    @property
    def is_queued(self) -> bool:
        return self.status == "queued"

    @property
    def ended(self) -> bool:
        return self.end_time is not None

    @property
    def duration_s(self) -> int:
        if self.answer_time is None:
            return 0
        end = self.end_time if self.end_time is not None else time.time()
        return max(0, round(end - self.answer_time))

    def cdr_json(self) -> dict[str, Any]:
        """The object of ``GET Call/{uuid}/`` and ``GET Call/`` (ended calls)."""
        duration = self.duration_s
        billed = billed_seconds(duration)
        return {
            "answer_time": cdr_time(self.answer_time),
            "bill_duration": duration,
            "billed_duration": billed,
            "call_direction": self.direction,
            "call_duration": duration,
            "call_uuid": self.call_uuid,
            "end_time": cdr_time(self.end_time),
            "from_number": self.from_number,
            "hangup_cause_code": self.hangup_cause_code,
            "hangup_cause_name": self.hangup_cause_name,
            "hangup_source": self.hangup_source,
            "initiation_time": cdr_time(self.initiation_time),
            "parent_call_uuid": self.parent_call_uuid,
            "resource_uri": resource_uri(self.auth_id, "Call", self.call_uuid),
            "to_number": self.to_number,
            "total_amount": amount(duration, CALL_RATE),
            "total_rate": CALL_RATE,
        }

    def live_json(self) -> dict[str, Any]:
        """The object of ``GET Call/{uuid}/?status=live`` (or ``queued``)."""
        return {
            "call_status": self.status,
            "call_uuid": self.call_uuid,
            "caller_name": self.caller_name,
            "direction": self.direction,
            "from": self.from_number,
            "request_uuid": self.request_uuid,
            "session_start": session_time(self.initiation_time),
            "to": self.to_number,
        }


@dataclass
class Stream:
    """One audio stream of a call (started by ``<Stream>`` or the REST API)."""

    auth_id: str
    stream_id: str
    call_uuid: str
    service_url: str
    audio_track: str = "inbound"
    bidirectional: bool = False
    content_type: str = "audio/x-l16;rate=8000"
    stream_timeout_s: int = 86400
    status_callback_url: str = ""
    status_callback_method: str = "POST"
    extra_headers: str = ""
    keep_call_alive: bool = False
    #: initiated, in-progress, stopped, failed
    status: str = "initiated"
    created_at: float = field(default_factory=time.time)
    start_time: float | None = None
    end_time: float | None = None
    runtime: Any = field(default=None, repr=False, compare=False)

    @property
    def active(self) -> bool:
        return self.status in ("initiated", "in-progress")

    def to_json(self) -> dict[str, Any]:
        seconds = 0
        if self.start_time is not None:
            end = self.end_time if self.end_time is not None else time.time()
            seconds = max(0, math.ceil(end - self.start_time - 1e-6))
        return {
            "audio_track": self.audio_track,
            "bidirectional": self.bidirectional,
            "bill_duration": seconds,
            "billed_amount": amount(seconds, STREAM_RATE),
            "call_uuid": self.call_uuid,
            "content_type": self.content_type,
            "created_at": cdr_time(self.created_at),
            "end_time": cdr_time(self.end_time),
            "plivo_auth_id": self.auth_id,
            "resource_uri": resource_uri(
                self.auth_id, "Call", self.call_uuid, "Stream", self.stream_id
            ),
            "rounded_bill_duration": billed_seconds(seconds),
            "service_url": self.service_url,
            "start_time": cdr_time(self.start_time),
            "status": self.status,
            "status_callback_url": self.status_callback_url,
            "stream_id": self.stream_id,
        }


@dataclass
class Recording:
    """A finished recording whose audio file is served at ``recording_url``."""

    auth_id: str
    recording_id: str
    recording_url: str
    path: str
    recording_format: str
    start_ms: int
    end_ms: int
    call_uuid: str = ""
    from_number: str = ""
    to_number: str = ""
    conference_name: str = ""
    mpc_name: str = ""
    mpc_uuid: str = ""
    recording_type: str = "normal"
    add_time: float = field(default_factory=time.time)

    @property
    def duration_ms(self) -> int:
        return max(0, self.end_ms - self.start_ms)

    @property
    def storage_days(self) -> int:
        return int((time.time() - self.add_time) // 86400)

    def to_json(self) -> dict[str, Any]:
        seconds = math.ceil(self.duration_ms / 1000)
        return {
            "add_time": add_time(self.add_time),
            "call_uuid": self.call_uuid,
            "conference_name": self.conference_name,
            "from_number": self.from_number,
            "monthly_recording_storage_amount": 0.0,
            "mpc_name": self.mpc_name,
            "recording_duration_ms": f"{self.duration_ms:.5f}",
            "recording_end_ms": f"{self.end_ms:.5f}",
            "recording_format": self.recording_format,
            "recording_id": self.recording_id,
            "recording_start_ms": f"{self.start_ms:.5f}",
            "recording_storage_duration": self.storage_days,
            "recording_storage_rate": 0.0004,
            "recording_type": self.recording_type,
            "recording_url": self.recording_url,
            "resource_uri": resource_uri(self.auth_id, "Recording", self.recording_id),
            "rounded_recording_duration": billed_seconds(seconds),
            "to_number": self.to_number,
        }


@dataclass
class ConferenceMember:
    """A call in a conference, joined through the ``<Conference>`` verb."""

    member_id: str
    call_uuid: str
    from_number: str
    to_number: str
    caller_name: str
    direction: str
    join_time: float = field(default_factory=time.time)
    muted: bool = False
    deaf: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "call_uuid": self.call_uuid,
            "caller_name": self.caller_name,
            "deaf": self.deaf,
            "direction": self.direction,
            "from": self.from_number,
            "join_time": str(int(time.time() - self.join_time)),
            "member_id": self.member_id,
            "muted": self.muted,
            "to": self.to_number,
        }


@dataclass
class Conference:
    """A named conference; it exists while it has members."""

    name: str
    created: float = field(default_factory=time.time)
    members: dict[str, ConferenceMember] = field(default_factory=dict)
    recording: Any = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "conference_member_count": str(len(self.members)),
            "conference_name": self.name,
            "conference_run_time": str(int(time.time() - self.created)),
            "members": [m.to_json() for m in self.members.values()],
        }


@dataclass
class Participant:
    """A member of a multiparty call."""

    auth_id: str
    mpc_uuid: str
    member_id: str
    call_uuid: str
    role: str
    coach_mode: bool = True
    mute: bool = False
    hold: bool = False
    start_mpc_on_enter: bool = True
    end_mpc_on_exit: bool = False
    join_time: float = field(default_factory=time.time)
    exit_time: float | None = None
    exit_cause: str | None = None

    def to_json(self) -> dict[str, Any]:
        end = self.exit_time if self.exit_time is not None else time.time()
        duration = max(0, math.ceil(end - self.join_time - 1e-6))
        return {
            "billed_amount": float(amount(duration, CALL_RATE)),
            "billed_duration": billed_seconds(duration),
            "call_uuid": self.call_uuid,
            "coach_mode": self.coach_mode,
            "duration": duration,
            "end_mpc_on_exit": self.end_mpc_on_exit,
            "exit_cause": self.exit_cause,
            "exit_time": cdr_time(self.exit_time),
            "hold": self.hold,
            "join_time": cdr_time(self.join_time),
            "member_id": self.member_id,
            "mpc_uuid": self.mpc_uuid,
            "mute": self.mute,
            "resource_uri": resource_uri(
                self.auth_id,
                "MultiPartyCall",
                f"uuid_{self.mpc_uuid}",
                "Participant",
                self.member_id,
            ),
            "role": self.role,
            "start_mpc_on_enter": self.start_mpc_on_enter,
        }


@dataclass
class MultiPartyCall:
    """A multiparty call: Initialized, then Active, then Ended."""

    auth_id: str
    mpc_uuid: str
    friendly_name: str
    status: str = "Initialized"
    creation_time: float = field(default_factory=time.time)
    start_time: float | None = None
    end_time: float | None = None
    stay_alone: bool = False
    #: not-recording, recording, paused
    recording: str = "not-recording"
    termination_cause: str | None = None
    termination_cause_code: int | None = None
    participants: dict[str, Participant] = field(default_factory=dict)
    runtime: Any = field(default=None, repr=False, compare=False)

    @property
    def ended(self) -> bool:
        return self.status == "Ended"

    def active_participants(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.exit_time is None]

    def to_json(self) -> dict[str, Any]:
        duration: int | None = None
        billed: int | None = None
        billed_amount: float | None = None
        if self.start_time is not None and self.end_time is not None:
            duration = max(0, math.ceil(self.end_time - self.start_time - 1e-6))
            billed = billed_seconds(duration)
            billed_amount = float(amount(duration, CALL_RATE))
        base = resource_uri(self.auth_id, "MultiPartyCall", f"uuid_{self.mpc_uuid}")
        return {
            "billed_amount": billed_amount,
            "billed_duration": billed,
            "creation_time": cdr_time(self.creation_time),
            "duration": duration,
            "end_time": cdr_time(self.end_time),
            "friendly_name": self.friendly_name,
            "mpc_uuid": self.mpc_uuid,
            "participants": base + "Participant/",
            "recording": self.recording,
            "resource_uri": base,
            "start_time": cdr_time(self.start_time),
            "status": self.status,
            "stay_alone": self.stay_alone,
            "sub_account": None,
            "termination_cause": self.termination_cause,
            "termination_cause_code": self.termination_cause_code,
        }


@dataclass
class Endpoint:
    """A SIP endpoint (credentials a softphone would register with)."""

    auth_id: str
    endpoint_id: str
    username: str
    password: str
    alias: str
    app_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "application": (
                resource_uri(self.auth_id, "Application", self.app_id) if self.app_id else None
            ),
            "endpoint_id": self.endpoint_id,
            "resource_uri": resource_uri(self.auth_id, "Endpoint", self.endpoint_id),
            "sip_registered": "false",
            "sip_uri": f"sip:{self.username}@phone.plivo.com",
            "sub_account": None,
            "username": self.username,
        }


@dataclass
class Verification:
    """A pending caller-ID verification (an OTP was "sent")."""

    verification_uuid: str
    phone_number: str
    alias: str
    channel: str
    country: str
    subaccount: str
    created: float = field(default_factory=time.time)

    @property
    def expired(self) -> bool:
        return time.time() - self.created > 15 * 60


@dataclass
class VerifiedCallerId:
    """A verified caller ID, keyed by phone number."""

    phone_number: str
    alias: str
    channel: str
    country: str
    subaccount: str
    verification_uuid: str
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "channel": self.channel,
            "country": self.country,
            "created_at": cdr_time(self.created),
            "modified_at": cdr_time(self.modified),
            "phone_number": self.phone_number,
            "subaccount": self.subaccount,
            "verification_uuid": self.verification_uuid,
        }


_COUNTRY_PREFIXES = (
    ("1", "US"), ("44", "GB"), ("91", "IN"), ("61", "AU"), ("49", "DE"), ("33", "FR"),
    ("65", "SG"), ("55", "BR"), ("34", "ES"), ("39", "IT"), ("81", "JP"), ("52", "MX"),
)  # fmt: skip


def country_of(number: str) -> str:
    """ISO country of an E.164 number, for the few prefixes the emulator knows."""
    d = digits(number)
    for prefix, country in sorted(_COUNTRY_PREFIXES, key=lambda p: -len(p[0])):
        if d.startswith(prefix):
            return country
    return ""


class Store:
    """All records of the one emulated account, in memory."""

    def __init__(self, auth_id: str) -> None:
        self.auth_id = auth_id
        self.calls: dict[str, Call] = {}
        self.streams: dict[str, Stream] = {}
        self.recordings: dict[str, Recording] = {}
        self.conferences: dict[str, Conference] = {}
        self.mpcs: dict[str, MultiPartyCall] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.verifications: dict[str, Verification] = {}
        self.caller_ids: dict[str, VerifiedCallerId] = {}
        self._member_seq = 0

    def next_member_id(self) -> str:
        """Conference and multiparty member ids: account-wide increasing numbers."""
        self._member_seq += 1
        return str(self._member_seq)

    def uri(self, *parts: str) -> str:
        """``/v1/Account/{auth_id}/part/.../``."""
        return resource_uri(self.auth_id, *parts)

    def find_mpc(self, mpc_id: str) -> MultiPartyCall | None:
        """Resolve ``uuid_<id>`` or ``name_<friendly_name>`` (the newest not-ended first)."""
        kind, _, value = mpc_id.partition("_")
        if kind == "uuid":
            return self.mpcs.get(value)
        if kind == "name":
            named = [m for m in self.mpcs.values() if m.friendly_name == value]
            named.sort(key=lambda m: (not m.ended, m.creation_time))
            return named[-1] if named else None
        return None
