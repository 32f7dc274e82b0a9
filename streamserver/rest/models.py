"""Typed response objects of the Plivo Voice API.

Every object is a frozen :class:`msgspec.Struct` decoded leniently (digit strings become
ints, ``"true"``/``"false"`` become bools, money strings become :class:`~decimal.Decimal`)
and keeps the decoded JSON it came from in ``raw``, so fields Plivo adds later, or that this
module does not model, are never lost. Every field is optional: the API leaves fields out
(or sends ``null``) more often than its documentation suggests. Fields named ``from`` and
``to`` in the JSON are ``from_number`` and ``to_number`` here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Generic, TypeVar

import msgspec

__all__ = [
    "ApiResponse",
    "Call",
    "CallCreated",
    "CallIds",
    "Conference",
    "ConferenceMember",
    "ConferenceNames",
    "Endpoint",
    "EndpointCreated",
    "LiveCall",
    "Meta",
    "Model",
    "MultiPartyCall",
    "Page",
    "Participant",
    "ParticipantAdded",
    "ParticipantUpdated",
    "Recording",
    "RecordingStarted",
    "Stream",
    "StreamStarted",
    "VerificationStarted",
    "VerifiedCallerId",
]

M = TypeVar("M", bound="Model")

# The decoded JSON rides along under a key no API object uses, so a Plivo field called
# "raw" could never overwrite it.
RAW_KEY = "__raw__"


class Model(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every response object: ``raw`` is the JSON object as received."""

    raw: dict[str, Any] = msgspec.field(default_factory=dict, name=RAW_KEY)

    def __repr__(self) -> str:
        # Leave out ``raw`` and unset fields: the repr of a CDR stays one readable line.
        shown = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name != "raw" and value is not None and value != []:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


class ApiResponse(Model, frozen=True, kw_only=True):
    """Acknowledgement of an action: ``{"api_id", "message"}`` (details stay in ``raw``)."""

    api_id: str | None = None
    message: str | None = None


class CallCreated(ApiResponse, frozen=True, kw_only=True):
    """Answer to making a call. ``message`` is ``"call fired"`` or, past the CPS limit,
    ``"call queued"``; ``request_uuid`` is a list when several destinations were dialled."""

    request_uuid: str | list[str] | None = None


class Call(Model, frozen=True, kw_only=True):
    """A call detail record (ended call)."""

    api_id: str | None = None
    call_uuid: str | None = None
    parent_call_uuid: str | None = None
    call_direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    initiation_time: str | None = None
    answer_time: str | None = None
    end_time: str | None = None
    call_duration: int | None = None
    bill_duration: int | None = None
    billed_duration: int | None = None
    total_amount: Decimal | None = None
    total_rate: Decimal | None = None
    hangup_cause_name: str | None = None
    hangup_cause_code: int | None = None
    hangup_source: str | None = None
    resource_uri: str | None = None


class LiveCall(Model, frozen=True, kw_only=True):
    """A call in progress (``status=live``) or waiting to be placed (``status=queued``)."""

    api_id: str | None = None
    call_uuid: str | None = None
    call_status: str | None = None
    direction: str | None = None
    from_number: str | None = msgspec.field(default=None, name="from")
    to_number: str | None = msgspec.field(default=None, name="to")
    caller_name: str | None = None
    request_uuid: str | None = None
    session_start: str | None = None


class CallIds(Model, frozen=True, kw_only=True):
    """The uuids of live or queued calls."""

    api_id: str | None = None
    calls: list[str] = []


class RecordingStarted(ApiResponse, frozen=True, kw_only=True):
    """A recording began. Calls and conferences answer ``url``; multiparty calls
    ``recording_url``."""

    recording_id: str | None = None
    url: str | None = None
    recording_url: str | None = None


class StreamStarted(ApiResponse, frozen=True, kw_only=True):
    """An audio stream was started on a live call."""

    stream_id: str | None = None


class Stream(Model, frozen=True, kw_only=True):
    """An audio stream of a call."""

    api_id: str | None = None
    stream_id: str | None = None
    call_uuid: str | None = None
    service_url: str | None = None
    status: str | None = None
    audio_track: str | None = None
    bidirectional: bool | None = None
    content_type: str | None = None
    status_callback_url: str | None = None
    created_at: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    bill_duration: int | None = None
    rounded_bill_duration: int | None = None
    billed_amount: Decimal | None = None
    plivo_auth_id: str | None = None
    resource_uri: str | None = None


class Recording(Model, frozen=True, kw_only=True):
    """A stored recording. The ``*_ms`` fields arrive as strings like ``"7560.00000"``."""

    api_id: str | None = None
    recording_id: str | None = None
    recording_url: str | None = None
    recording_format: str | None = None
    recording_type: str | None = None
    recording_duration_ms: float | None = None
    recording_start_ms: float | None = None
    recording_end_ms: float | None = None
    rounded_recording_duration: int | None = None
    recording_storage_duration: int | None = None
    call_uuid: str | None = None
    conference_name: str | None = None
    conference_uuid: str | None = None
    mpc_name: str | None = None
    mpc_uuid: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    add_time: str | None = None
    resource_uri: str | None = None


class ConferenceNames(Model, frozen=True, kw_only=True):
    """Names of the conferences running now."""

    api_id: str | None = None
    conferences: list[str] = []


class ConferenceMember(Model, frozen=True, kw_only=True):
    """One member of a running conference."""

    member_id: str | None = None
    call_uuid: str | None = None
    muted: bool | None = None
    deaf: bool | None = None
    from_number: str | None = msgspec.field(default=None, name="from")
    to_number: str | None = msgspec.field(default=None, name="to")
    caller_name: str | None = None
    direction: str | None = None
    join_time: str | None = None


class Conference(Model, frozen=True, kw_only=True):
    """A running conference and its members."""

    api_id: str | None = None
    conference_name: str | None = None
    conference_run_time: int | None = None
    conference_member_count: int | None = None
    members: list[ConferenceMember] = []


class MultiPartyCall(Model, frozen=True, kw_only=True):
    """A multiparty call (MPC)."""

    api_id: str | None = None
    mpc_uuid: str | None = None
    friendly_name: str | None = None
    status: str | None = None
    creation_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    duration: int | None = None
    billed_duration: int | None = None
    billed_amount: Decimal | None = None
    stay_alone: bool | None = None
    participants: str | None = None
    termination_cause: str | None = None
    termination_cause_code: int | None = None
    resource_uri: str | None = None


class Participant(Model, frozen=True, kw_only=True):
    """A participant of a multiparty call."""

    api_id: str | None = None
    member_id: str | None = None
    mpc_uuid: str | None = None
    call_uuid: str | None = None
    role: str | None = None
    coach_mode: bool | None = None
    mute: bool | None = None
    hold: bool | None = None
    start_mpc_on_enter: bool | None = None
    end_mpc_on_exit: bool | None = None
    join_time: str | None = None
    exit_time: str | None = None
    exit_cause: str | None = None
    duration: int | None = None
    billed_duration: int | None = None
    billed_amount: Decimal | None = None
    resource_uri: str | None = None


class ParticipantAdded(ApiResponse, frozen=True, kw_only=True):
    """A participant is being dialled into (or moved into) a multiparty call.
    ``calls`` holds ``{"to", "from", "call_uuid"}`` per dialled leg."""

    request_uuid: str | None = None
    calls: list[dict[str, Any]] = []


class ParticipantUpdated(Model, frozen=True, kw_only=True):
    """Outcome of muting, holding or coaching a participant: one status line per change
    (``mute``, ``hold``, ``coach_mode``). Some sources nest them under ``message``; they
    are read from there too."""

    api_id: str | None = None
    message: str | dict[str, str] | None = None
    mute: str | None = None
    hold: str | None = None
    coach_mode: str | None = None


class Endpoint(Model, frozen=True, kw_only=True):
    """A SIP endpoint. ``sip_registered`` arrives as the string ``"true"``/``"false"``."""

    api_id: str | None = None
    endpoint_id: str | None = None
    username: str | None = None
    alias: str | None = None
    sip_uri: str | None = None
    sip_registered: bool | None = None
    application: str | None = None
    resource_uri: str | None = None


class EndpointCreated(ApiResponse, frozen=True, kw_only=True):
    """A new SIP endpoint; ``username`` is the one asked for plus 12 digits."""

    endpoint_id: str | None = None
    username: str | None = None
    alias: str | None = None


class VerificationStarted(ApiResponse, frozen=True, kw_only=True):
    """A verification code was sent to the number; confirm it with ``verify``."""

    verification_uuid: str | None = None


class VerifiedCallerId(Model, frozen=True, kw_only=True):
    """A phone number verified for use as caller id."""

    api_id: str | None = None
    phone_number: str | None = None
    alias: str | None = None
    channel: str | None = None
    country: str | None = None
    subaccount: str | None = None
    verification_uuid: str | None = None
    created_at: str | None = None
    modified_at: str | None = None


class Meta(msgspec.Struct, frozen=True, kw_only=True):
    """Pagination data of a list. Multiparty lists count in ``count``, others in
    ``total_count``; :attr:`total` reads whichever was sent."""

    limit: int | None = None
    offset: int | None = None
    next: str | None = None
    previous: str | None = None
    total_count: int | None = None
    count: int | None = None

    @property
    def total(self) -> int | None:
        """Number of objects across all pages, if the API said."""
        return self.total_count if self.total_count is not None else self.count


class Page(Model, Generic[M], frozen=True, kw_only=True):
    """One page of a list: ``meta`` and the decoded ``objects``."""

    api_id: str | None = None
    meta: Meta = Meta()
    objects: list[M] = []
