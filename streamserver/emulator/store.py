"""In-memory state of the emulated account, and the JSON shapes Plivo gives it.

Records are plain dataclasses; each has a ``to_json()`` producing exactly the object the
Plivo API returns (field names, string-typed numbers, time formats). The REST app reads and
writes them; the call simulator owns the live parts (tasks, audio) through ``runtime``
fields that never reach JSON.

Time formats, as Plivo writes them:

- CDR and most objects: ``2017-05-22 17:49:40+05:30`` (Plivo reports in IST);
- recording ``add_time``: the same with microseconds;
- live call ``session_start``: UTC, microseconds, no offset.

Filters (``end_time__gt`` ...) take UTC ``YYYY-MM-DD HH:MM[:ss[.uuuuuu]]``.
"""

from __future__ import annotations

import math
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import quote

__all__ = [
    "IST",
    "ApiError",
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
    "add_time",
    "cdr_time",
    "new_api_id",
    "paginate",
    "parse_filter_time",
]

T = TypeVar("T")

#: Plivo writes CDR times in India Standard Time.
IST = timezone(timedelta(hours=5, minutes=30))

#: Per-minute rates the emulator bills (strings, 5 decimals, as Plivo sends them).
CALL_RATE = "0.00850"
STREAM_RATE = "0.00300"


class ApiError(Exception):
    """An API error reply: HTTP ``status_code`` and Plivo's ``error`` text."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


# --- ids and times ------------------------------------------------------------------------


def new_uuid() -> str:
    """A random UUID string (call, request, stream and recording ids)."""
    return str(uuid.uuid4())


def new_api_id() -> str:
    """A time-based UUID like Plivo's ``api_id`` values, with a random node (no MAC leak)."""
    return str(uuid.uuid1(node=secrets.randbits(48) | 0x010000000000))


def cdr_time(ts: float | None) -> str | None:
    """``2017-05-22 17:49:40+05:30``, or None for a missing time."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, IST).isoformat(sep=" ", timespec="seconds")


def add_time(ts: float) -> str:
    """``2014-08-05 16:15:15.852059+05:30`` (recording ``add_time``)."""
    return datetime.fromtimestamp(ts, IST).isoformat(sep=" ", timespec="microseconds")


def session_time(ts: float) -> str:
    """``2017-05-22 13:17:49.050872`` (UTC, as live calls' ``session_start``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


_FILTER_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")


def parse_filter_time(key: str, value: str) -> float:
    """Parse a filter time (UTC ``YYYY-MM-DD HH:MM[:ss[.uuuuuu]]``) into a timestamp."""
    if not _FILTER_TIME.match(value):
        raise ApiError(400, f"{key} should be in the format YYYY-MM-DD HH:MM[:ss[.uuuuuu]] (UTC)")
    fmt = "%Y-%m-%d %H:%M"
    if value.count(":") == 2:
        fmt += ":%S.%f" if "." in value else ":%S"
    try:
        return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise ApiError(400, f"{key} is not a valid date and time") from None


def amount(seconds: int, rate: str) -> str:
    """Cost of ``seconds`` billed per started minute at ``rate`` per minute, 5 decimals."""
    return f"{math.ceil(seconds / 60) * float(rate):.5f}"


def billed_seconds(seconds: int) -> int:
    """Seconds rounded up to whole minutes, as Plivo bills them."""
    return math.ceil(seconds / 60) * 60


def digits(number: str) -> str:
    """A phone number without its leading ``+``, for comparisons."""
    return number.lstrip("+")


# --- pagination and filters ---------------------------------------------------------------


def _int_param(params: Mapping[str, Any], key: str, default: int) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise ApiError(400, f"{key} must be an integer")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ApiError(400, f"{key} must be an integer") from None


def paginate(
    items: Sequence[T],
    params: Mapping[str, Any],
    path: str,
    *,
    count_key: str = "total_count",
    keep: Iterable[str] = (),
) -> tuple[list[T], dict[str, Any]]:
    """Slice ``items`` by ``limit`` (1-20, default 20) and ``offset`` (>= 0).

    Returns the page and Plivo's ``meta`` with relative ``next``/``previous`` URLs on
    ``path``; query keys named in ``keep`` (the filters in use) ride along in those URLs.
    """
    limit = _int_param(params, "limit", 20)
    offset = _int_param(params, "offset", 0)
    if not 1 <= limit <= 20:
        raise ApiError(400, "limit should be between 1 and 20")
    if offset < 0:
        raise ApiError(400, "offset should be 0 or more")
    extra = "".join(
        f"&{k}={quote(str(params[k]), safe='')}" for k in keep if params.get(k) not in (None, "")
    )
    total = len(items)
    nxt = f"{path}?limit={limit}&offset={offset + limit}{extra}" if offset + limit < total else None
    prev = f"{path}?limit={limit}&offset={max(0, offset - limit)}{extra}" if offset > 0 else None
    meta = {
        count_key: total,
        "limit": limit,
        "next": nxt,
        "offset": offset,
        "previous": prev,
    }
    return list(items[offset : offset + limit]), meta


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "": lambda a, b: bool(a == b),
    "__gt": lambda a, b: bool(a > b),
    "__gte": lambda a, b: bool(a >= b),
    "__lt": lambda a, b: bool(a < b),
    "__lte": lambda a, b: bool(a <= b),
}


def range_filters(
    params: Mapping[str, Any],
    name: str,
    value_of: Callable[[Any], float | None],
    parse: Callable[[str, str], float],
) -> list[Callable[[Any], bool]]:
    """Predicates for ``name``, ``name__gt``, ``__gte``, ``__lt``, ``__lte`` found in params."""
    preds: list[Callable[[Any], bool]] = []
    for suffix, op in _OPS.items():
        key = name + suffix
        raw = params.get(key)
        if raw is None or raw == "":
            continue
        wanted = parse(key, str(raw))

        def pred(item: Any, op: Callable[[Any, Any], bool] = op, wanted: float = wanted) -> bool:
            value = value_of(item)
            return value is not None and op(value, wanted)

        preds.append(pred)
    return preds


def parse_number_filter(key: str, raw: str) -> float:
    """A numeric filter value, or a 400 naming the key."""
    try:
        return float(raw)
    except ValueError:
        raise ApiError(400, f"{key} must be a number") from None


def range_keys(name: str) -> list[str]:
    """``name`` and its four comparison variants (for ``paginate(keep=...)``)."""
    return [name + suffix for suffix in _OPS]


# --- records ------------------------------------------------------------------------------


def _uri(auth_id: str, *parts: str) -> str:
    return "/v1/Account/" + "/".join([auth_id, *parts]) + "/"


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
            "resource_uri": _uri(self.auth_id, "Call", self.call_uuid),
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
            "resource_uri": _uri(self.auth_id, "Call", self.call_uuid, "Stream", self.stream_id),
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
            "resource_uri": _uri(self.auth_id, "Recording", self.recording_id),
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
            "resource_uri": _uri(
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
        base = _uri(self.auth_id, "MultiPartyCall", f"uuid_{self.mpc_uuid}")
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
                _uri(self.auth_id, "Application", self.app_id) if self.app_id else None
            ),
            "endpoint_id": self.endpoint_id,
            "resource_uri": _uri(self.auth_id, "Endpoint", self.endpoint_id),
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
        return _uri(self.auth_id, *parts)

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
