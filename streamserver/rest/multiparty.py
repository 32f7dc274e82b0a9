"""Multiparty calls (``MultiPartyCall/``) and their participants.

A multiparty call is addressed by exactly one of ``uuid=`` or ``friendly_name=`` (keyword
arguments on every method). Retry-safe: reads, ends, kicks, and the POSTs that set a state
(start, pause/resume recording, update a participant). Adding a participant dials out and
starting a recording starts a file: neither is repeated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import msgspec

from . import _request as r
from . import _validate as v
from ._ops import AsyncResource, SyncResource, aop, apager, op, pager
from ._request import Request
from .models import (
    RAW_KEY,
    MultiPartyCall,
    Page,
    Participant,
    ParticipantAdded,
    ParticipantUpdated,
    RecordingStarted,
)

__all__ = ["AsyncMultiPartyCalls", "MultiPartyCalls"]

Method = Literal["GET", "POST"]
TimeFilter = str | datetime | None
ROLES = ("agent", "supervisor", "customer", "ai-agent")


def _parse_updated(data: Any) -> ParticipantUpdated:
    """The status lines of an update, whether top level or nested under ``message``."""
    if not isinstance(data, dict):
        return r.model(ParticipantUpdated)(data)
    flat = {**data["message"], **data} if isinstance(data.get("message"), dict) else data
    return msgspec.convert({**flat, RAW_KEY: data}, ParticipantUpdated, strict=False)


def _mpc(uuid: str | None, friendly_name: str | None, *tail: tuple[str, str | int] | str) -> str:
    return r.path("MultiPartyCall", r.mpc_id(uuid, friendly_name), *tail)


def _list(
    *,
    friendly_name: str | None = None,
    status: Literal["initialized", "active", "ended"] | None = None,
    termination_cause_code: int | None = None,
    end_time__gt: TimeFilter = None,
    end_time__gte: TimeFilter = None,
    end_time__lt: TimeFilter = None,
    end_time__lte: TimeFilter = None,
    creation_time__gt: TimeFilter = None,
    creation_time__gte: TimeFilter = None,
    creation_time__lt: TimeFilter = None,
    creation_time__lte: TimeFilter = None,
    limit: int | None = None,
    offset: int | None = None,
) -> Request[Page[MultiPartyCall]]:
    """Multiparty calls, filtered (times in UTC)."""
    if status is not None:
        v.choice("status", status.lower(), ("initialized", "active", "ended"))
    params: dict[str, object] = {
        "friendly_name": friendly_name,
        "status": None if status is None else status.lower(),
        "termination_cause_code": termination_cause_code,
        **r.time_filters(
            "end_time",
            {
                "__gt": end_time__gt,
                "__gte": end_time__gte,
                "__lt": end_time__lt,
                "__lte": end_time__lte,
            },
        ),
        **r.time_filters(
            "creation_time",
            {
                "__gt": creation_time__gt,
                "__gte": creation_time__gte,
                "__lt": creation_time__lt,
                "__lte": creation_time__lte,
            },
        ),
        **r.page_args(limit, offset),
    }
    return r.get(r.path("MultiPartyCall"), r.page(MultiPartyCall), params)


def _get(*, uuid: str | None = None, friendly_name: str | None = None) -> Request[MultiPartyCall]:
    """One multiparty call."""
    return r.get(_mpc(uuid, friendly_name), r.model(MultiPartyCall))


def _add_participant(
    role: Literal["Agent", "Supervisor", "Customer", "agent", "supervisor", "customer"],
    *,
    uuid: str | None = None,
    friendly_name: str | None = None,
    from_: str | None = None,
    to: str | Iterable[str] | None = None,
    call_uuid: str | None = None,
    caller_name: str | None = None,
    call_status_callback_url: str | None = None,
    call_status_callback_method: Method | None = None,
    sip_headers: str | None = None,
    confirm_key: str | None = None,
    confirm_key_sound_url: str | None = None,
    dial_music: str | None = None,
    ring_timeout: int | None = None,
    max_duration: int | None = None,
    max_participants: int | None = None,
    wait_music_url: str | None = None,
    agent_hold_music_url: str | None = None,
    customer_hold_music_url: str | None = None,
    recording_callback_url: str | None = None,
    status_callback_url: str | None = None,
    status_callback_events: str | None = None,
    record: bool | None = None,
    record_file_format: Literal["mp3", "wav"] | None = None,
    stay_alone: bool | None = None,
    coach_mode: bool | None = None,
    mute: bool | None = None,
    hold: bool | None = None,
    start_mpc_on_enter: bool | None = None,
    end_mpc_on_exit: bool | None = None,
    relay_dtmf_inputs: bool | None = None,
    enter_sound: str | None = None,
    exit_sound: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Request[ParticipantAdded]:
    """Dial ``to`` from ``from_`` into the multiparty call — or move the live call
    ``call_uuid`` into it. The multiparty call is created when needed.

    ``extra`` passes parameters this method does not name (Plivo has dozens).
    """
    v.choice("role", role.lower(), ROLES)
    if call_uuid is not None and (from_ is not None or to is not None):
        raise ValueError("give either call_uuid or from_ and to, not both")
    if call_uuid is None and (from_ is None or to is None):
        raise ValueError("from_ and to are required when call_uuid is not given")
    to_s = None if to is None else r.joined("to", to, "<")
    if to_s is not None and "<" in to_s and role.lower() != "agent":
        raise ValueError("to may hold several destinations only for role 'agent'")
    if max_participants is not None:
        v.integer("max_participants", max_participants, 2, 10)
    if max_duration is not None:
        v.integer("max_duration", max_duration, 300, 28800)
    if record_file_format is not None:
        v.choice("record_file_format", record_file_format, ("mp3", "wav"))
    return r.post(
        _mpc(uuid, friendly_name, "Participant"),
        r.model(ParticipantAdded),
        {
            "role": role,
            "from": from_,
            "to": to_s,
            "call_uuid": call_uuid,
            "caller_name": None
            if caller_name is None
            else v.text("caller_name", caller_name, max_len=50),
            "call_status_callback_url": call_status_callback_url,
            "call_status_callback_method": call_status_callback_method,
            "sip_headers": sip_headers,
            "confirm_key": confirm_key,
            "confirm_key_sound_url": confirm_key_sound_url,
            "dial_music": dial_music,
            "ring_timeout": ring_timeout,
            "max_duration": max_duration,
            "max_participants": max_participants,
            "wait_music_url": wait_music_url,
            "agent_hold_music_url": agent_hold_music_url,
            "customer_hold_music_url": customer_hold_music_url,
            "recording_callback_url": recording_callback_url,
            "status_callback_url": status_callback_url,
            "status_callback_events": status_callback_events,
            "record": record,
            "record_file_format": record_file_format,
            "stay_alone": stay_alone,
            "coach_mode": coach_mode,
            "mute": mute,
            "hold": hold,
            "start_mpc_on_enter": start_mpc_on_enter,
            "end_mpc_on_exit": end_mpc_on_exit,
            "relay_dtmf_inputs": relay_dtmf_inputs,
            "enter_sound": enter_sound,
            "exit_sound": exit_sound,
        },
        extra=extra,
    )


def _start(*, uuid: str | None = None, friendly_name: str | None = None) -> Request[None]:
    """Start a multiparty call that is waiting for its first participants."""
    return r.post(_mpc(uuid, friendly_name), r.none, {"status": "active"}, idempotent=True)


def _end(*, uuid: str | None = None, friendly_name: str | None = None) -> Request[None]:
    """End a multiparty call, hanging up every participant."""
    return r.delete(_mpc(uuid, friendly_name))


def _record_start(
    *,
    uuid: str | None = None,
    friendly_name: str | None = None,
    file_format: Literal["mp3", "wav"] | None = None,
    recording_callback_url: str | None = None,
    recording_callback_method: Method | None = None,
) -> Request[RecordingStarted]:
    """Start recording a multiparty call."""
    if file_format is not None:
        v.choice("file_format", file_format, ("mp3", "wav"))
    return r.post(
        _mpc(uuid, friendly_name, "Record"),
        r.model(RecordingStarted),
        {
            "file_format": file_format,
            "recording_callback_url": None
            if recording_callback_url is None
            else v.url("recording_callback_url", recording_callback_url),
            "recording_callback_method": None
            if recording_callback_method is None
            else v.method("recording_callback_method", recording_callback_method),
        },
    )


def _record_stop(*, uuid: str | None = None, friendly_name: str | None = None) -> Request[None]:
    """Stop recording a multiparty call."""
    return r.delete(_mpc(uuid, friendly_name, "Record"))


def _record_pause(*, uuid: str | None = None, friendly_name: str | None = None) -> Request[None]:
    """Pause the recording of a multiparty call."""
    return r.post(_mpc(uuid, friendly_name, "Record", "Pause"), r.none, idempotent=True)


def _record_resume(*, uuid: str | None = None, friendly_name: str | None = None) -> Request[None]:
    """Resume a paused recording."""
    return r.post(_mpc(uuid, friendly_name, "Record", "Resume"), r.none, idempotent=True)


def _list_participants(
    *,
    uuid: str | None = None,
    friendly_name: str | None = None,
    call_uuid: str | None = None,
) -> Request[Page[Participant]]:
    """Participants of a multiparty call (only the one on ``call_uuid``, if given)."""
    return r.get(
        _mpc(uuid, friendly_name, "Participant"), r.page(Participant), {"call_uuid": call_uuid}
    )


def _get_participant(
    participant_id: str | int, *, uuid: str | None = None, friendly_name: str | None = None
) -> Request[Participant]:
    """One participant (``participant_id`` is its ``member_id``)."""
    return r.get(
        _mpc(uuid, friendly_name, "Participant", ("participant_id", participant_id)),
        r.model(Participant),
    )


def _update_participant(
    participant_id: str | int,
    *,
    uuid: str | None = None,
    friendly_name: str | None = None,
    coach_mode: bool | None = None,
    mute: bool | None = None,
    hold: bool | None = None,
) -> Request[ParticipantUpdated]:
    """Mute, hold or coach a participant (``participant_id="all"``: everyone; not for
    ``coach_mode``)."""
    if coach_mode is None and mute is None and hold is None:
        raise ValueError("give at least one of coach_mode, mute, hold")
    if str(participant_id).lower() == "all" and coach_mode is not None:
        raise ValueError("coach_mode cannot be set for participant_id 'all'")
    return r.post(
        _mpc(uuid, friendly_name, "Participant", ("participant_id", participant_id)),
        _parse_updated,
        {
            "coach_mode": None if coach_mode is None else v.boolean("coach_mode", coach_mode),
            "mute": None if mute is None else v.boolean("mute", mute),
            "hold": None if hold is None else v.boolean("hold", hold),
        },
        idempotent=True,
    )


def _kick_participant(
    participant_id: str | int, *, uuid: str | None = None, friendly_name: str | None = None
) -> Request[None]:
    """Remove a participant from the multiparty call."""
    return r.delete(_mpc(uuid, friendly_name, "Participant", ("participant_id", participant_id)))


class MultiPartyCalls(SyncResource):
    """``client.multiparty_calls``: multiparty calls and their participants."""

    __slots__ = ()
    list = op(_list)
    iter = pager(_list)
    get = op(_get)
    add_participant = op(_add_participant)
    start = op(_start)
    end = op(_end)
    record_start = op(_record_start)
    record_stop = op(_record_stop)
    record_pause = op(_record_pause)
    record_resume = op(_record_resume)
    list_participants = op(_list_participants)
    get_participant = op(_get_participant)
    update_participant = op(_update_participant)
    kick_participant = op(_kick_participant)


class AsyncMultiPartyCalls(AsyncResource):
    """``client.multiparty_calls``: multiparty calls and their participants."""

    __slots__ = ()
    list = aop(_list)
    iter = apager(_list)
    get = aop(_get)
    add_participant = aop(_add_participant)
    start = aop(_start)
    end = aop(_end)
    record_start = aop(_record_start)
    record_stop = aop(_record_stop)
    record_pause = aop(_record_pause)
    record_resume = aop(_record_resume)
    list_participants = aop(_list_participants)
    get_participant = aop(_get_participant)
    update_participant = aop(_update_participant)
    kick_participant = aop(_kick_participant)
