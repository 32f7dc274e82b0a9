"""Every resource method of streamserver.rest: exact method, path, query and JSON body, and
the typed result — run through both the sync and the async client (they share the code)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from streamserver.rest import AsyncPlivoClient, PlivoClient
from streamserver.rest import models as m

AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
TOKEN = "s3cr3t-t0ken-value-0123456789"
BASE = "https://api.test/"
ROOT = f"/v1/Account/{AUTH_ID}/"
ACK = {"api_id": "a-1", "message": "ok"}


@dataclass
class Case:
    id: str
    call: Callable[[Any], Any]
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    status: int = 200
    response: dict[str, Any] | None = None
    check: Callable[[Any], object] | None = None


def page_of(*objects: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "api_id": "a-page",
        "meta": {"limit": 20, "next": None, "offset": 0, "previous": None, **meta},
        "objects": list(objects),
    }


def _check_created(res: m.CallCreated) -> None:
    assert isinstance(res, m.CallCreated)
    assert (res.message, res.request_uuid, res.api_id) == ("call fired", "r-1", "a-1")


def _check_cdr(res: m.Call) -> None:
    assert res.call_uuid == "c-1"
    assert res.total_amount == Decimal("0.00850")
    assert res.bill_duration == 12
    assert res.hangup_cause_code == 4000
    assert res.raw["stir_verification"] == "Verified"


def _check_live(res: m.LiveCall) -> None:
    assert (res.from_number, res.to_number, res.call_status) == ("1415", "1416", "in-progress")


def _check_conference(res: m.Conference) -> None:
    assert res.conference_member_count == 1 and res.conference_run_time == 590
    (member,) = res.members
    assert member.member_id == "17" and member.muted is False and member.from_number == "1456"
    assert member.raw["caller_name"] == "John"


def _check_endpoint(res: m.Endpoint) -> None:
    assert res.sip_registered is True and res.username == "zumba123"


def _check_recordings(res: m.Page[m.Recording]) -> None:
    assert res.meta.total == 1
    (rec,) = res.objects
    assert rec.recording_duration_ms == 7560.0 and rec.raw["recording_id"] == "rec-1"


def _check_mpc_page(res: m.Page[m.MultiPartyCall]) -> None:
    assert res.meta.total == 6 and res.meta.total_count is None
    assert res.objects[0].termination_cause_code == 1000


CDR = {
    "call_uuid": "c-1",
    "total_amount": "0.00850",
    "bill_duration": 12,
    "hangup_cause_code": 4000,
    "stir_verification": "Verified",
}
LIVE = {"call_uuid": "c-1", "call_status": "in-progress", "from": "1415", "to": "1416"}

CASES = [
    # Calls -----------------------------------------------------------------------------
    Case(
        "calls.make",
        lambda c: c.calls.make(
            "14155550100",
            ["14155550123", "sip:bob@phone.plivo.com"],
            "https://app.test/answer",
            answer_method="GET",
            hangup_url="https://app.test/hangup",
            caller_name="Alice",
            time_limit=600,
            machine_detection=True,
            sip_headers={"a": "1", "b": "2"},
            ring_timeout=30,
            extra={"send_on_preanswer": False},
        ),
        "POST",
        "Call/",
        body={
            "from": "14155550100",
            "to": "14155550123<sip:bob@phone.plivo.com",
            "answer_url": "https://app.test/answer",
            "answer_method": "GET",
            "hangup_url": "https://app.test/hangup",
            "caller_name": "Alice",
            "time_limit": 600,
            "machine_detection": "true",
            "sip_headers": "a=1,b=2",
            "ring_timeout": 30,
            "send_on_preanswer": False,
        },
        status=201,
        response={"message": "call fired", "request_uuid": "r-1", "api_id": "a-1"},
        check=_check_created,
    ),
    Case(
        "calls.get",
        lambda c: c.calls.get("c-1"),
        "GET",
        "Call/c-1/",
        response=CDR,
        check=_check_cdr,
    ),
    Case(
        "calls.list",
        lambda c: c.calls.list(
            call_direction="outbound",
            bill_duration__gt=10,
            end_time__gte=datetime(
                2026, 1, 2, 8, 34, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))
            ),
            end_time__lt="2026-01-03 00:00",
            hangup_cause_code=4000,
            limit=5,
            offset=10,
        ),
        "GET",
        "Call/",
        query={
            "call_direction": "outbound",
            "bill_duration__gt": "10",
            "end_time__gte": "2026-01-02 03:04:05",
            "end_time__lt": "2026-01-03 00:00",
            "hangup_cause_code": "4000",
            "limit": "5",
            "offset": "10",
        },
        response=page_of(CDR, total_count=1),
        check=lambda res: _check_cdr(res.objects[0]),
    ),
    Case(
        "calls.list_live",
        lambda c: c.calls.list_live(call_direction="inbound"),
        "GET",
        "Call/",
        query={"status": "live", "call_direction": "inbound"},
        response={"api_id": "a-1", "calls": ["c-1", "c-2"]},
        check=lambda res: res.calls == ["c-1", "c-2"],
    ),
    Case(
        "calls.get_live",
        lambda c: c.calls.get_live("c-1"),
        "GET",
        "Call/c-1/",
        query={"status": "live"},
        response=LIVE,
        check=_check_live,
    ),
    Case(
        "calls.list_queued",
        lambda c: c.calls.list_queued(limit=2),
        "GET",
        "Call/",
        query={"status": "queued", "limit": "2"},
        response={"api_id": "a-1", "calls": ["q-1"]},
        check=lambda res: res.calls == ["q-1"],
    ),
    Case(
        "calls.get_queued",
        lambda c: c.calls.get_queued("q-1"),
        "GET",
        "Call/q-1/",
        query={"status": "queued"},
        response={**LIVE, "call_status": "queued"},
        check=lambda res: res.call_status == "queued",
    ),
    Case("calls.hangup", lambda c: c.calls.hangup("c-1"), "DELETE", "Call/c-1/", status=204),
    Case("calls.cancel", lambda c: c.calls.cancel("r-1"), "DELETE", "Request/r-1/", status=204),
    Case(
        "calls.transfer",
        lambda c: c.calls.transfer(
            "c-1", legs="aleg", aleg_url="https://app.test/next", aleg_method="get"
        ),
        "POST",
        "Call/c-1/",
        body={"legs": "aleg", "aleg_url": "https://app.test/next", "aleg_method": "GET"},
        status=202,
        response={"message": "call transferred", "api_id": "a-1"},
        check=lambda res: res.message == "call transferred",
    ),
    Case(
        "calls.play",
        lambda c: c.calls.play(
            "c-1", ["https://s.test/a.mp3", "https://s.test/b.wav"], legs="both", loop=True
        ),
        "POST",
        "Call/c-1/Play/",
        body={"urls": "https://s.test/a.mp3,https://s.test/b.wav", "legs": "both", "loop": True},
        status=202,
        response={"message": "play started", "api_id": "a-1"},
        check=lambda res: res.message == "play started",
    ),
    Case(
        "calls.stop_play",
        lambda c: c.calls.stop_play("c-1"),
        "DELETE",
        "Call/c-1/Play/",
        status=204,
    ),
    Case(
        "calls.speak",
        lambda c: c.calls.speak("c-1", "Hello", voice="MAN", language="en-GB", mix=False),
        "POST",
        "Call/c-1/Speak/",
        body={"text": "Hello", "voice": "MAN", "language": "en-GB", "mix": False},
        status=202,
        response={"message": "speak started", "api_id": "a-1"},
    ),
    Case(
        "calls.stop_speak",
        lambda c: c.calls.stop_speak("c-1"),
        "DELETE",
        "Call/c-1/Speak/",
        status=204,
    ),
    Case(
        "calls.send_digits",
        lambda c: c.calls.send_digits("c-1", "12#", leg="bleg"),
        "POST",
        "Call/c-1/DTMF/",
        body={"digits": "12#", "leg": "bleg"},
        status=202,
        response={"message": "digits sent", "api_id": "a-1"},
    ),
    Case(
        "calls.record",
        lambda c: c.calls.record(
            "c-1",
            time_limit=120,
            file_format="wav",
            callback_url="https://app.test/rec",
            record_channel_type="stereo",
        ),
        "POST",
        "Call/c-1/Record/",
        body={
            "time_limit": 120,
            "file_format": "wav",
            "callback_url": "https://app.test/rec",
            "record_channel_type": "stereo",
        },
        status=202,
        response={
            "url": "https://media.test/r.wav",
            "message": "call recording started",
            "recording_id": "rec-1",
            "api_id": "a-1",
        },
        check=lambda res: (res.recording_id, res.url) == ("rec-1", "https://media.test/r.wav"),
    ),
    Case(
        "calls.stop_record (one)",
        lambda c: c.calls.stop_record("c-1", url="https://media.test/r.wav"),
        "DELETE",
        "Call/c-1/Record/",
        body={"URL": "https://media.test/r.wav"},
        status=204,
    ),
    Case(
        "calls.stop_record (all)",
        lambda c: c.calls.stop_record("c-1"),
        "DELETE",
        "Call/c-1/Record/",
        status=204,
    ),
    # Streams ---------------------------------------------------------------------------
    Case(
        "streams.start",
        lambda c: c.streams.start(
            "c-1",
            "wss://media.test/stream",
            bidirectional=True,
            audio_track="inbound",
            stream_timeout=600,
            status_callback_url="https://app.test/stream-status",
            status_callback_method="POST",
            content_type="audio/x-l16;rate=16000",
            extra_headers={"tenant": "acme", "run": "7"},
        ),
        "POST",
        "Call/c-1/Stream/",
        body={
            "service_url": "wss://media.test/stream",
            "bidirectional": True,
            "audio_track": "inbound",
            "stream_timeout": 600,
            "status_callback_url": "https://app.test/stream-status",
            "status_callback_method": "POST",
            "content_type": "audio/x-l16;rate=16000",
            "extra_headers": "tenant=acme,run=7",
        },
        status=201,
        response={"api_id": "a-1", "message": "audio streaming started", "stream_id": "s-1"},
        check=lambda res: res.stream_id == "s-1",
    ),
    Case(
        "streams.list",
        lambda c: c.streams.list("c-1"),
        "GET",
        "Call/c-1/Stream/",
        response=page_of(
            {"stream_id": "s-1", "bidirectional": True, "billed_amount": "0.00300"}, count=1
        ),
        check=lambda res: res.objects[0].billed_amount == Decimal("0.003") and res.meta.total == 1,
    ),
    Case(
        "streams.get",
        lambda c: c.streams.get("c-1", "s-1"),
        "GET",
        "Call/c-1/Stream/s-1/",
        response={"stream_id": "s-1", "audio_track": "inbound", "status": "initiated"},
        check=lambda res: (res.stream_id, res.status) == ("s-1", "initiated"),
    ),
    Case(
        "streams.stop",
        lambda c: c.streams.stop("c-1", "s-1"),
        "DELETE",
        "Call/c-1/Stream/s-1/",
        status=204,
    ),
    Case(
        "streams.stop_all",
        lambda c: c.streams.stop_all("c-1"),
        "DELETE",
        "Call/c-1/Stream/",
        status=204,
    ),
    # Recordings ------------------------------------------------------------------------
    Case(
        "recordings.list",
        lambda c: c.recordings.list(
            call_uuid="c-1",
            add_time__gt=datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC),
            recording_storage_duration__lte=30,
            limit=3,
        ),
        "GET",
        "Recording/",
        query={
            "call_uuid": "c-1",
            "add_time__gt": "2026-03-01 12:00:00.250000",
            "recording_storage_duration__lte": "30",
            "limit": "3",
        },
        response=page_of(
            {"recording_id": "rec-1", "recording_duration_ms": "7560.00000"}, total_count=1
        ),
        check=_check_recordings,
    ),
    Case(
        "recordings.get",
        lambda c: c.recordings.get("rec-1"),
        "GET",
        "Recording/rec-1/",
        response={"recording_id": "rec-1", "recording_format": "mp3", "recording_start_ms": "1.5"},
        check=lambda res: res.recording_start_ms == 1.5,
    ),
    Case(
        "recordings.delete",
        lambda c: c.recordings.delete("rec-1"),
        "DELETE",
        "Recording/rec-1/",
        status=204,
    ),
    # Conferences -----------------------------------------------------------------------
    Case(
        "conferences.list",
        lambda c: c.conferences.list(),
        "GET",
        "Conference/",
        response={"api_id": "a-1", "conferences": ["My Conf"]},
        check=lambda res: res.conferences == ["My Conf"],
    ),
    Case(
        "conferences.get",
        lambda c: c.conferences.get("My Conf"),
        "GET",
        "Conference/My%20Conf/",
        response={
            "conference_name": "My Conf",
            "conference_run_time": "590",
            "conference_member_count": "1",
            "members": [
                {
                    "muted": False,
                    "member_id": "17",
                    "deaf": False,
                    "from": "1456",
                    "to": "1677",
                    "caller_name": "John",
                    "direction": "inbound",
                    "call_uuid": "c-9",
                    "join_time": "590",
                }
            ],
        },
        check=_check_conference,
    ),
    Case(
        "conferences.hangup",
        lambda c: c.conferences.hangup("room"),
        "DELETE",
        "Conference/room/",
        status=204,
    ),
    Case(
        "conferences.hangup_all",
        lambda c: c.conferences.hangup_all(),
        "DELETE",
        "Conference/",
        status=204,
    ),
    Case(
        "conferences.member_hangup",
        lambda c: c.conferences.member_hangup("room", [10, "11"]),
        "DELETE",
        "Conference/room/Member/10,11/",
        status=204,
    ),
    Case(
        "conferences.member_kick",
        lambda c: c.conferences.member_kick("room", "all"),
        "POST",
        "Conference/room/Member/all/Kick/",
        body={},
        status=202,
        response={"message": "kicked", "member_id": "10", "api_id": "a-1"},
        check=lambda res: res.message == "kicked" and res.raw["member_id"] == "10",
    ),
    Case(
        "conferences.member_mute",
        lambda c: c.conferences.member_mute("room", 10),
        "POST",
        "Conference/room/Member/10/Mute/",
        body={},
        status=202,
        response={"message": "muted", "api_id": "a-1"},
    ),
    Case(
        "conferences.member_unmute",
        lambda c: c.conferences.member_unmute("room", 10),
        "DELETE",
        "Conference/room/Member/10/Mute/",
        status=204,
    ),
    Case(
        "conferences.member_deaf",
        lambda c: c.conferences.member_deaf("room", 10),
        "POST",
        "Conference/room/Member/10/Deaf/",
        body={},
        status=202,
        response={"message": "deaf", "api_id": "a-1"},
    ),
    Case(
        "conferences.member_undeaf",
        lambda c: c.conferences.member_undeaf("room", 10),
        "DELETE",
        "Conference/room/Member/10/Deaf/",
        status=204,
    ),
    Case(
        "conferences.member_play",
        lambda c: c.conferences.member_play("room", 10, "https://s.test/a.mp3"),
        "POST",
        "Conference/room/Member/10/Play/",
        body={"url": "https://s.test/a.mp3"},
        status=202,
        response={"message": "play queued into conference", "api_id": "a-1"},
    ),
    Case(
        "conferences.member_stop_play",
        lambda c: c.conferences.member_stop_play("room", 10),
        "DELETE",
        "Conference/room/Member/10/Play/",
        status=204,
    ),
    Case(
        "conferences.member_speak",
        lambda c: c.conferences.member_speak("room", "all", "Welcome", voice="WOMAN"),
        "POST",
        "Conference/room/Member/all/Speak/",
        body={"text": "Welcome", "voice": "WOMAN"},
        status=202,
        response={"message": "speak queued into conference", "api_id": "a-1"},
    ),
    Case(
        "conferences.member_stop_speak",
        lambda c: c.conferences.member_stop_speak("room", 10),
        "DELETE",
        "Conference/room/Member/10/Speak/",
        status=204,
    ),
    Case(
        "conferences.record",
        lambda c: c.conferences.record(
            "room", file_format="mp3", callback_url="https://app.test/r"
        ),
        "POST",
        "Conference/room/Record/",
        body={"file_format": "mp3", "callback_url": "https://app.test/r"},
        status=202,
        response={
            "api_id": "a-1",
            "message": "conference recording started",
            "recording_id": "rec-2",
            "url": "https://media.test/rec-2.mp3",
        },
        check=lambda res: res.recording_id == "rec-2",
    ),
    Case(
        "conferences.stop_record",
        lambda c: c.conferences.stop_record("room"),
        "DELETE",
        "Conference/room/Record/",
        status=204,
    ),
    # Multiparty calls ------------------------------------------------------------------
    Case(
        "multiparty_calls.list",
        lambda c: c.multiparty_calls.list(status="active", friendly_name="Sales", limit=20),
        "GET",
        "MultiPartyCall/",
        query={"status": "active", "friendly_name": "Sales", "limit": "20"},
        response=page_of(
            {"mpc_uuid": "m-1", "termination_cause_code": 1000, "billed_amount": "0.005"}, count=6
        ),
        check=_check_mpc_page,
    ),
    Case(
        "multiparty_calls.get (uuid)",
        lambda c: c.multiparty_calls.get(uuid="m-1"),
        "GET",
        "MultiPartyCall/uuid_m-1/",
        response={"mpc_uuid": "m-1", "status": "Active", "stay_alone": False},
        check=lambda res: (res.mpc_uuid, res.status, res.stay_alone) == ("m-1", "Active", False),
    ),
    Case(
        "multiparty_calls.get (name)",
        lambda c: c.multiparty_calls.get(friendly_name="Sales"),
        "GET",
        "MultiPartyCall/name_Sales/",
        response={"mpc_uuid": "m-1"},
    ),
    Case(
        "multiparty_calls.add_participant",
        lambda c: c.multiparty_calls.add_participant(
            "Agent",
            friendly_name="Sales",
            from_="14155550100",
            to="14155550123",
            coach_mode=False,
            max_participants=5,
            extra={"wait_music_method": "GET"},
        ),
        "POST",
        "MultiPartyCall/name_Sales/Participant/",
        body={
            "role": "Agent",
            "from": "14155550100",
            "to": "14155550123",
            "coach_mode": False,
            "max_participants": 5,
            "wait_music_method": "GET",
        },
        status=201,
        response={
            "api_id": "a-1",
            "calls": [{"to": "14155550123", "from": "14155550100", "call_uuid": "c-5"}],
            "message": "add participant action initiated",
            "request_uuid": "r-5",
        },
        check=lambda res: res.calls[0]["call_uuid"] == "c-5" and res.request_uuid == "r-5",
    ),
    Case(
        "multiparty_calls.start",
        lambda c: c.multiparty_calls.start(friendly_name="Sales"),
        "POST",
        "MultiPartyCall/name_Sales/",
        body={"status": "active"},
        status=204,
    ),
    Case(
        "multiparty_calls.end",
        lambda c: c.multiparty_calls.end(uuid="m-1"),
        "DELETE",
        "MultiPartyCall/uuid_m-1/",
        status=204,
    ),
    Case(
        "multiparty_calls.record_start",
        lambda c: c.multiparty_calls.record_start(
            friendly_name="Sales", file_format="wav", recording_callback_url="https://app.test/r"
        ),
        "POST",
        "MultiPartyCall/name_Sales/Record/",
        body={"file_format": "wav", "recording_callback_url": "https://app.test/r"},
        status=200,
        response={
            "api_id": "a-1",
            "message": "MPC: Sales record started",
            "recording_id": "rec-3",
            "recording_url": "https://media.test/rec-3.wav",
        },
        check=lambda res: res.recording_url == "https://media.test/rec-3.wav",
    ),
    Case(
        "multiparty_calls.record_stop",
        lambda c: c.multiparty_calls.record_stop(friendly_name="Sales"),
        "DELETE",
        "MultiPartyCall/name_Sales/Record/",
        status=204,
    ),
    Case(
        "multiparty_calls.record_pause",
        lambda c: c.multiparty_calls.record_pause(friendly_name="Sales"),
        "POST",
        "MultiPartyCall/name_Sales/Record/Pause/",
        body={},
        status=204,
    ),
    Case(
        "multiparty_calls.record_resume",
        lambda c: c.multiparty_calls.record_resume(friendly_name="Sales"),
        "POST",
        "MultiPartyCall/name_Sales/Record/Resume/",
        body={},
        status=204,
    ),
    Case(
        "multiparty_calls.list_participants",
        lambda c: c.multiparty_calls.list_participants(uuid="m-1", call_uuid="c-5"),
        "GET",
        "MultiPartyCall/uuid_m-1/Participant/",
        query={"call_uuid": "c-5"},
        response=page_of({"member_id": "2132", "role": "agent", "mute": False}, count=1),
        check=lambda res: res.objects[0].member_id == "2132" and res.objects[0].mute is False,
    ),
    Case(
        "multiparty_calls.get_participant",
        lambda c: c.multiparty_calls.get_participant(2132, uuid="m-1"),
        "GET",
        "MultiPartyCall/uuid_m-1/Participant/2132/",
        response={"member_id": "2132", "coach_mode": False, "hold": False},
        check=lambda res: res.coach_mode is False,
    ),
    Case(
        "multiparty_calls.update_participant",
        lambda c: c.multiparty_calls.update_participant(
            "10", friendly_name="Sales", mute=True, hold=False
        ),
        "POST",
        "MultiPartyCall/name_Sales/Participant/10/",
        body={"mute": True, "hold": False},
        status=202,
        response={"api_id": "a-1", "mute": "MPC: Sales mute/unmute member(s) succeded"},
        check=lambda res: res.mute == "MPC: Sales mute/unmute member(s) succeded",
    ),
    Case(
        "multiparty_calls.kick_participant",
        lambda c: c.multiparty_calls.kick_participant("10", friendly_name="Sales"),
        "DELETE",
        "MultiPartyCall/name_Sales/Participant/10/",
        status=204,
    ),
    # Endpoints -------------------------------------------------------------------------
    Case(
        "endpoints.create",
        lambda c: c.endpoints.create("zumba", "pa55word", "Zumba", app_id="app-1"),
        "POST",
        "Endpoint/",
        body={"username": "zumba", "password": "pa55word", "alias": "Zumba", "app_id": "app-1"},
        status=201,
        response={
            "username": "zumba131031145958",
            "alias": "Zumba",
            "message": "created",
            "endpoint_id": "e-1",
            "api_id": "a-1",
        },
        check=lambda res: (res.endpoint_id, res.username) == ("e-1", "zumba131031145958"),
    ),
    Case(
        "endpoints.list",
        lambda c: c.endpoints.list(limit=1, offset=0),
        "GET",
        "Endpoint/",
        query={"limit": "1", "offset": "0"},
        response=page_of({"endpoint_id": "e-1", "sip_registered": "false"}, total_count=1),
        check=lambda res: res.objects[0].sip_registered is False,
    ),
    Case(
        "endpoints.get",
        lambda c: c.endpoints.get("e-1"),
        "GET",
        "Endpoint/e-1/",
        response={"endpoint_id": "e-1", "username": "zumba123", "sip_registered": "true"},
        check=_check_endpoint,
    ),
    Case(
        "endpoints.update",
        lambda c: c.endpoints.update("e-1", alias="New"),
        "POST",
        "Endpoint/e-1/",
        body={"alias": "New"},
        status=202,
        response={"message": "changed", "api_id": "a-1"},
        check=lambda res: res.message == "changed",
    ),
    Case(
        "endpoints.delete",
        lambda c: c.endpoints.delete("e-1"),
        "DELETE",
        "Endpoint/e-1/",
        status=204,
    ),
    # Verified caller ids ---------------------------------------------------------------
    Case(
        "verified_caller_ids.initiate",
        lambda c: c.verified_caller_ids.initiate("+14155550100", alias="Office", channel="sms"),
        "POST",
        "VerifiedCallerId/",
        body={"phone_number": "+14155550100", "alias": "Office", "channel": "sms"},
        response={
            "api_id": "a-1",
            "message": "Verification code is sent",
            "verification_uuid": "v-1",
        },
        check=lambda res: res.verification_uuid == "v-1",
    ),
    Case(
        "verified_caller_ids.verify",
        lambda c: c.verified_caller_ids.verify("v-1", "123456"),
        "POST",
        "VerifiedCallerId/Verification/v-1/",
        body={"otp": "123456"},
        response={
            "phone_number": "+14155550100",
            "alias": "Office",
            "country": "US",
            "channel": "sms",
        },
        check=lambda res: (res.phone_number, res.country) == ("+14155550100", "US"),
    ),
    Case(
        "verified_caller_ids.list",
        lambda c: c.verified_caller_ids.list(country="US", limit=10),
        "GET",
        "VerifiedCallerId/",
        query={"country": "US", "limit": "10"},
        response=page_of({"phone_number": "+14155550100"}, total_count=1),
        check=lambda res: res.objects[0].phone_number == "+14155550100",
    ),
    Case(
        "verified_caller_ids.get",
        lambda c: c.verified_caller_ids.get("+14155550100"),
        "GET",
        "VerifiedCallerId/+14155550100/",
        response={"phone_number": "+14155550100", "alias": "Office"},
        check=lambda res: res.alias == "Office",
    ),
    Case(
        "verified_caller_ids.update",
        lambda c: c.verified_caller_ids.update("+14155550100", alias="Desk"),
        "POST",
        "VerifiedCallerId/+14155550100/",
        body={"alias": "Desk"},
        response={"phone_number": "+14155550100", "alias": "Desk"},
        check=lambda res: res.alias == "Desk",
    ),
    Case(
        "verified_caller_ids.delete",
        lambda c: c.verified_caller_ids.delete("+14155550100"),
        "DELETE",
        "VerifiedCallerId/+14155550100/",
        status=204,
    ),
]


def _responder(case: Case, seen: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if case.response is None:
            return httpx.Response(case.status)
        return httpx.Response(case.status, json=case.response)

    return handle


def _assert_request(case: Case, seen: list[httpx.Request], result: Any) -> None:
    assert len(seen) == 1, "exactly one request, no retries"
    (req,) = seen
    assert req.method == case.method
    raw_path, _, _ = req.url.raw_path.partition(b"?")
    assert raw_path.decode() == ROOT + case.path
    assert req.url.host == "api.test" and req.url.scheme == "https"
    assert dict(req.url.params) == case.query
    if case.body is None:
        assert req.content == b""
    else:
        assert req.headers["content-type"] == "application/json"
        assert json.loads(req.content) == case.body
    expected_auth = base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()
    assert req.headers["authorization"] == f"Basic {expected_auth}"
    assert req.headers["user-agent"].startswith("streamserver/")
    if case.status == 204 or case.response is None:
        assert result is None
    else:
        assert isinstance(result, m.Model)
        assert result.raw == case.response
    if case.check is not None:
        outcome = case.check(result)
        assert outcome is None or outcome is True


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sync_request(case: Case) -> None:
    seen: list[httpx.Request] = []
    with PlivoClient(
        AUTH_ID, TOKEN, base_url=BASE, transport=httpx.MockTransport(_responder(case, seen))
    ) as c:
        result = case.call(c)
    _assert_request(case, seen, result)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_async_request(case: Case) -> None:
    seen: list[httpx.Request] = []
    async with AsyncPlivoClient(
        AUTH_ID, TOKEN, base_url=BASE, transport=httpx.MockTransport(_responder(case, seen))
    ) as c:
        result = await case.call(c)
    _assert_request(case, seen, result)


def test_every_resource_method_has_a_case() -> None:
    """The table above covers each public method of each resource."""
    with PlivoClient(AUTH_ID, TOKEN, base_url=BASE) as c:
        resources = {
            "calls": c.calls,
            "streams": c.streams,
            "recordings": c.recordings,
            "conferences": c.conferences,
            "multiparty_calls": c.multiparty_calls,
            "endpoints": c.endpoints,
            "verified_caller_ids": c.verified_caller_ids,
        }
        covered = {case.id.split(" ")[0] for case in CASES}
        # iter and download have their own tests (pagination, files).
        own_tests = {"iter", "download"}
        for name, res in resources.items():
            methods = {
                attr
                for attr in dir(type(res))
                if not attr.startswith("_") and attr not in own_tests
            }
            missing = {f"{name}.{meth}" for meth in methods} - covered
            assert not missing, missing


def test_base_url_prefix_and_no_trailing_slash() -> None:
    """A base URL with a path prefix (a proxy, an emulator mount) is kept."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    with PlivoClient(
        AUTH_ID,
        TOKEN,
        base_url="http://127.0.0.1:8123/plivo",
        transport=httpx.MockTransport(handle),
    ) as c:
        assert c.base_url == "http://127.0.0.1:8123/plivo/"
        c.calls.hangup("c-1")
    assert str(seen[0].url) == f"http://127.0.0.1:8123/plivo/v1/Account/{AUTH_ID}/Call/c-1/"
