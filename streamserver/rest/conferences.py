"""Conferences, addressed by name (``Conference/``), and their members.

``member_id`` is one id, several (a list, sent as ``1,2``) or ``"all"``. Retry-safe:
reads, hang-ups, stops, and the POSTs that set a state (mute, deaf, kick). Play, speak and
record are not repeated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from . import _request as r
from . import _validate as v
from ._ops import AsyncResource, SyncResource, aop, op
from ._request import Request
from .models import ApiResponse, Conference, ConferenceNames, RecordingStarted

__all__ = ["AsyncConferences", "Conferences"]

MemberIds = str | int | Iterable[str | int]
Method = Literal["GET", "POST"]


def _conf(name: str) -> tuple[str, str]:
    return ("conference_name", name)


def _member(conference_name: str, member_id: MemberIds, *tail: str) -> str:
    # ids() already checked and joined the ids; the comma stays literal in the path.
    return r.path("Conference", _conf(conference_name), "Member") + r.path(
        ("member_id", r.ids("member_id", member_id)), *tail
    )


def _list() -> Request[ConferenceNames]:
    """Names of the conferences running now."""
    return r.get(r.path("Conference"), r.model(ConferenceNames))


def _get(conference_name: str) -> Request[Conference]:
    """A running conference and its members."""
    return r.get(
        r.path("Conference", _conf(conference_name)), r.model_with_list(Conference, "members")
    )


def _hangup(conference_name: str) -> Request[None]:
    """End a conference, hanging up every member."""
    return r.delete(r.path("Conference", _conf(conference_name)))


def _hangup_all() -> Request[None]:
    """End every conference of the account."""
    return r.delete(r.path("Conference"))


def _member_hangup(conference_name: str, member_id: MemberIds) -> Request[None]:
    """Hang up members' calls."""
    return r.delete(_member(conference_name, member_id))


def _member_kick(conference_name: str, member_id: MemberIds) -> Request[ApiResponse]:
    """Remove members from the conference; their calls go on with the next XML."""
    return r.post(
        _member(conference_name, member_id, "Kick"), r.model(ApiResponse), idempotent=True
    )


def _member_mute(conference_name: str, member_id: MemberIds) -> Request[ApiResponse]:
    """Mute members: the others stop hearing them."""
    return r.post(
        _member(conference_name, member_id, "Mute"), r.model(ApiResponse), idempotent=True
    )


def _member_unmute(conference_name: str, member_id: MemberIds) -> Request[None]:
    """Undo :meth:`member_mute`."""
    return r.delete(_member(conference_name, member_id, "Mute"))


def _member_deaf(conference_name: str, member_id: MemberIds) -> Request[ApiResponse]:
    """Make members deaf: they stop hearing the conference."""
    return r.post(
        _member(conference_name, member_id, "Deaf"), r.model(ApiResponse), idempotent=True
    )


def _member_undeaf(conference_name: str, member_id: MemberIds) -> Request[None]:
    """Undo :meth:`member_deaf`."""
    return r.delete(_member(conference_name, member_id, "Deaf"))


def _member_play(conference_name: str, member_id: MemberIds, url: str) -> Request[ApiResponse]:
    """Play an audio file to members."""
    return r.post(
        _member(conference_name, member_id, "Play"),
        r.model(ApiResponse),
        {"url": v.url("url", url)},
    )


def _member_stop_play(conference_name: str, member_id: MemberIds) -> Request[None]:
    """Stop what :meth:`member_play` plays."""
    return r.delete(_member(conference_name, member_id, "Play"))


def _member_speak(
    conference_name: str,
    member_id: MemberIds,
    text: str,
    *,
    voice: str | None = None,
    language: str | None = None,
) -> Request[ApiResponse]:
    """Speak ``text`` to members."""
    return r.post(
        _member(conference_name, member_id, "Speak"),
        r.model(ApiResponse),
        {"text": v.text("text", text), "voice": voice, "language": language},
    )


def _member_stop_speak(conference_name: str, member_id: MemberIds) -> Request[None]:
    """Stop what :meth:`member_speak` says."""
    return r.delete(_member(conference_name, member_id, "Speak"))


def _record(
    conference_name: str,
    *,
    file_format: Literal["mp3", "wav"] | None = None,
    transcription_type: Literal["auto"] | None = None,
    transcription_url: str | None = None,
    transcription_method: Method | None = None,
    callback_url: str | None = None,
    callback_method: Method | None = None,
) -> Request[RecordingStarted]:
    """Start recording a conference."""
    if file_format is not None:
        v.choice("file_format", file_format, ("mp3", "wav"))
    return r.post(
        r.path("Conference", _conf(conference_name), "Record"),
        r.model(RecordingStarted),
        {
            "file_format": file_format,
            "transcription_type": transcription_type,
            "transcription_url": None
            if transcription_url is None
            else v.url("transcription_url", transcription_url),
            "transcription_method": None
            if transcription_method is None
            else v.method("transcription_method", transcription_method),
            "callback_url": None if callback_url is None else v.url("callback_url", callback_url),
            "callback_method": None
            if callback_method is None
            else v.method("callback_method", callback_method),
        },
    )


def _stop_record(conference_name: str) -> Request[None]:
    """Stop recording a conference."""
    return r.delete(r.path("Conference", _conf(conference_name), "Record"))


class Conferences(SyncResource):
    """``client.conferences``: running conferences and their members."""

    __slots__ = ()
    list = op(_list)
    get = op(_get)
    hangup = op(_hangup)
    hangup_all = op(_hangup_all)
    member_hangup = op(_member_hangup)
    member_kick = op(_member_kick)
    member_mute = op(_member_mute)
    member_unmute = op(_member_unmute)
    member_deaf = op(_member_deaf)
    member_undeaf = op(_member_undeaf)
    member_play = op(_member_play)
    member_stop_play = op(_member_stop_play)
    member_speak = op(_member_speak)
    member_stop_speak = op(_member_stop_speak)
    record = op(_record)
    stop_record = op(_stop_record)


class AsyncConferences(AsyncResource):
    """``client.conferences``: running conferences and their members."""

    __slots__ = ()
    list = aop(_list)
    get = aop(_get)
    hangup = aop(_hangup)
    hangup_all = aop(_hangup_all)
    member_hangup = aop(_member_hangup)
    member_kick = aop(_member_kick)
    member_mute = aop(_member_mute)
    member_unmute = aop(_member_unmute)
    member_deaf = aop(_member_deaf)
    member_undeaf = aop(_member_undeaf)
    member_play = aop(_member_play)
    member_stop_play = aop(_member_stop_play)
    member_speak = aop(_member_speak)
    member_stop_speak = aop(_member_stop_speak)
    record = aop(_record)
    stop_record = aop(_stop_record)
