"""Multiparty calls: list, get, start, end; recording (pause, resume); participants:
add, list, get, update, kick, record, play."""

from __future__ import annotations

from ..store import MultiPartyCall, Participant
from ..values import new_uuid
from .common import (
    NOT_FOUND,
    NUMBER_RE,
    SIP_RE,
    ApiError,
    Ctx,
    Reply,
    paginate,
    parse_filter_time,
    range_filters,
    range_keys,
    resource,
)

__all__ = ["RESOURCES"]


def _mpc(ctx: Ctx, mpc_id: str) -> MultiPartyCall:
    if not mpc_id.startswith(("uuid_", "name_")):
        raise ApiError(400, "the multiparty call must be given as uuid_<uuid> or name_<name>")
    mpc = ctx.store.find_mpc(mpc_id)
    if mpc is None:
        raise ApiError(404, NOT_FOUND)
    return mpc


def _participants(mpc: MultiPartyCall, member: str) -> list[Participant]:
    if member.lower() == "all":
        return mpc.active_participants()
    found = mpc.participants.get(member)
    if found is None or found.exit_time is not None:
        raise ApiError(404, NOT_FOUND)
    return [found]


async def list_mpcs(ctx: Ctx) -> Reply:
    """``GET MultiPartyCall/``"""
    p = ctx.params
    mpcs = list(ctx.store.mpcs.values())
    if p.has("friendly_name"):
        name = p.text("friendly_name")
        mpcs = [m for m in mpcs if m.friendly_name == name]
    if p.has("status"):
        status = p.choice("status", "", ("Active", "Initialized", "Ended"))
        mpcs = [m for m in mpcs if m.status == status]
    if p.has("termination_cause_code"):
        code = p.integer("termination_cause_code", 0)
        mpcs = [m for m in mpcs if m.termination_cause_code == code]
    preds = range_filters(p.data, "end_time", lambda m: m.end_time, parse_filter_time)
    preds += range_filters(p.data, "creation_time", lambda m: m.creation_time, parse_filter_time)
    mpcs = [m for m in mpcs if all(pred(m) for pred in preds)]
    mpcs.sort(key=lambda m: m.creation_time, reverse=True)
    keep = ["friendly_name", "status", "termination_cause_code",
            *range_keys("end_time"), *range_keys("creation_time")]  # fmt: skip
    page, meta = paginate(
        mpcs, p.data, ctx.store.uri("MultiPartyCall"), count_key="count", keep=keep
    )
    return 200, {"meta": meta, "objects": [m.to_json() for m in page]}


async def get_mpc(ctx: Ctx) -> Reply:
    """``GET MultiPartyCall/{mpc}/``"""
    return 200, _mpc(ctx, ctx.path["mpc"]).to_json()


async def start_mpc(ctx: Ctx) -> Reply:
    """``POST MultiPartyCall/{mpc}/``"""
    mpc = _mpc(ctx, ctx.path["mpc"])
    if ctx.params.text("status", required=True).lower() != "active":
        raise ApiError(400, "status must be active")
    if mpc.ended:
        raise ApiError(400, "the multiparty call has already ended")
    ctx.sim.multiparty.start(mpc)
    return 204, None


async def end_mpc(ctx: Ctx) -> Reply:
    """``DELETE MultiPartyCall/{mpc}/``"""
    mpc = _mpc(ctx, ctx.path["mpc"])
    if mpc.ended:
        raise ApiError(404, NOT_FOUND)
    await ctx.sim.multiparty.end(mpc, "Hangup API Triggered", 3000)
    return 204, None


async def mpc_record(ctx: Ctx) -> Reply:
    """``POST MultiPartyCall/{mpc}/Record/``"""
    p = ctx.params
    mpc = _mpc(ctx, ctx.path["mpc"])
    if mpc.status != "Active":
        raise ApiError(400, "the multiparty call is not active")
    if mpc.recording != "not-recording":
        raise ApiError(400, "the multiparty call is already being recorded")
    file_format = p.choice("file_format", "mp3", ("mp3", "wav"))
    recording_id, url = ctx.sim.recordings.start_group_recording(
        mpc,
        file_format=file_format,
        callback_url=p.url("recording_callback_url"),
        callback_method=p.method("recording_callback_method"),
    )
    return 200, {
        "message": f"MPC: {mpc.friendly_name} started recording",
        "recording_id": recording_id,
        "recording_url": url,
        "request_uuid": new_uuid(),
    }


async def mpc_stop_record(ctx: Ctx) -> Reply:
    """``DELETE MultiPartyCall/{mpc}/Record/``"""
    mpc = _mpc(ctx, ctx.path["mpc"])
    if mpc.recording == "not-recording":
        raise ApiError(400, "the multiparty call is not being recorded")
    await ctx.sim.recordings.stop_group_recording(mpc)
    return 204, None


async def mpc_pause_record(ctx: Ctx) -> Reply:
    """``POST MultiPartyCall/{mpc}/Record/Pause/``"""
    mpc = _mpc(ctx, ctx.path["mpc"])
    if mpc.recording != "recording":
        raise ApiError(400, "the multiparty call is not being recorded")
    ctx.sim.recordings.pause_group_recording(mpc, True)
    return 204, None


async def mpc_resume_record(ctx: Ctx) -> Reply:
    """``POST MultiPartyCall/{mpc}/Record/Resume/``"""
    mpc = _mpc(ctx, ctx.path["mpc"])
    if mpc.recording != "paused":
        raise ApiError(400, "the multiparty call recording is not paused")
    ctx.sim.recordings.pause_group_recording(mpc, False)
    return 204, None


async def mpc_add_participant(ctx: Ctx) -> Reply:
    """``POST MultiPartyCall/{mpc}/Participant/``"""
    p = ctx.params
    mpc_id = ctx.path["mpc"]
    if not mpc_id.startswith(("uuid_", "name_")):
        raise ApiError(400, "the multiparty call must be given as uuid_<uuid> or name_<name>")
    role = p.choice("role", "", ("Agent", "Supervisor", "Customer"))
    if not role:
        raise ApiError(400, "role parameter is required")
    from_number, to, call_uuid = p.text("from"), p.text("to"), p.text("call_uuid")
    if call_uuid and (from_number or to):
        raise ApiError(400, "cannot specify call_uuid when (from, to) is provided")
    if not call_uuid and not (from_number and to):
        raise ApiError(400, "specify either call_uuid or (from, to)")
    destinations = [d.strip() for d in to.split("<")] if to else []
    if len(destinations) > 1 and role != "Agent":
        raise ApiError(400, f"Multiple to values given for role {role}")
    if from_number and not (NUMBER_RE.match(from_number) or SIP_RE.match(from_number)):
        raise ApiError(400, "invalid from number")
    existing = ctx.store.find_mpc(mpc_id)
    if mpc_id.startswith("uuid_") and existing is None:
        raise ApiError(404, NOT_FOUND)
    if existing is not None and existing.ended and mpc_id.startswith("uuid_"):
        raise ApiError(400, "the multiparty call has already ended")
    options = {
        "role": role.lower(),
        "coach_mode": p.flag("coach_mode", True),
        "mute": p.flag("mute", False),
        "hold": p.flag("hold", False),
        "start_mpc_on_enter": p.flag("start_mpc_on_enter", True),
        "end_mpc_on_exit": p.flag("end_mpc_on_exit", False),
        "stay_alone": p.flag("stay_alone", False),
        "max_participants": p.integer("max_participants", 10, 2, 10),
        "ring_timeout_s": p.integer("ring_timeout", 45, 1),
        "max_duration_s": p.integer("max_duration", 14400, 300, 28800),
        "caller_name": p.text("caller_name"),
        "call_status_callback_url": p.url("call_status_callback_url"),
        "call_status_callback_method": p.method("call_status_callback_method"),
    }
    if call_uuid:
        call = ctx.store.calls.get(call_uuid)
        if call is None or call.status != "in-progress":
            raise ApiError(404, NOT_FOUND)
    _mpc, calls, request_uuid = await ctx.sim.calls.add_to_mpc(
        mpc_id, options, from_number, destinations, call_uuid or None
    )
    return 201, {
        "calls": [
            {"call_uuid": c.call_uuid, "from": c.from_number, "to": c.to_number} for c in calls
        ],
        "message": "add participant action initiated",
        "request_uuid": request_uuid,
    }


async def mpc_list_participants(ctx: Ctx) -> Reply:
    """``GET MultiPartyCall/{mpc}/Participant/``"""
    mpc = _mpc(ctx, ctx.path["mpc"])
    parts = list(mpc.participants.values())
    if ctx.params.has("call_uuid"):
        wanted = ctx.params.text("call_uuid")
        parts = [x for x in parts if x.call_uuid == wanted]
    path = ctx.store.uri("MultiPartyCall", f"uuid_{mpc.mpc_uuid}", "Participant")
    page, meta = paginate(parts, ctx.params.data, path, count_key="count", keep=["call_uuid"])
    return 200, {"meta": meta, "objects": [x.to_json() for x in page]}


async def mpc_get_participant(ctx: Ctx) -> Reply:
    """``GET MultiPartyCall/{mpc}/Participant/{member}/``"""
    mpc = _mpc(ctx, ctx.path["mpc"])
    found = mpc.participants.get(ctx.path["member"])
    if found is None:
        raise ApiError(404, NOT_FOUND)
    return 200, found.to_json()


async def mpc_update_participant(ctx: Ctx) -> Reply:
    """``POST MultiPartyCall/{mpc}/Participant/{member}/``"""
    p = ctx.params
    mpc = _mpc(ctx, ctx.path["mpc"])
    member = ctx.path["member"]
    changes = {k: p.flag(k, False) for k in ("coach_mode", "mute", "hold") if p.has(k)}
    if not changes:
        raise ApiError(400, "update at least one of coach_mode, mute or hold")
    if member.lower() == "all" and "coach_mode" in changes:
        raise ApiError(400, "cannot specify coach_mode when updating all participants")
    for part in _participants(mpc, member):
        for key, value in changes.items():
            setattr(part, key, value)
    texts = {
        "coach_mode": "coach_mode enable/disable",
        "mute": "mute/unmute member(s)",
        "hold": "hold/unhold member(s)",
    }
    message = {k: f"MPC: {mpc.friendly_name} {texts[k]} succeeded" for k in changes}
    return 202, {"message": message, "request_uuid": new_uuid()}


async def mpc_kick(ctx: Ctx) -> Reply:
    """``DELETE MultiPartyCall/{mpc}/Participant/{member}/``"""
    mpc = _mpc(ctx, ctx.path["mpc"])
    parts = _participants(mpc, ctx.path["member"])
    await ctx.sim.multiparty.kick(mpc, parts)
    return 204, None


async def mpc_member_record(ctx: Ctx) -> Reply:
    """``POST MultiPartyCall/{mpc}/Participant/{member}/Record/``"""
    p = ctx.params
    mpc = _mpc(ctx, ctx.path["mpc"])
    parts = _participants(mpc, ctx.path["member"])
    file_format = p.choice("file_format", "mp3", ("mp3", "wav"))
    recording_id, url = ctx.sim.recordings.start_call_recording(
        ctx.store.calls[parts[0].call_uuid],
        time_limit_s=p.integer("max_duration", 14400, 1),
        file_format=file_format,
        stereo=False,
        callback_url=p.url("recording_callback_url"),
        callback_method=p.method("recording_callback_method"),
        mpc=mpc,
    )
    return 200, {
        "message": f"MPC: {mpc.friendly_name} participant recording started",
        "recording_id": recording_id,
        "recording_url": url,
        "request_uuid": new_uuid(),
    }


async def mpc_member_stop_record(ctx: Ctx) -> Reply:
    """``DELETE MultiPartyCall/{mpc}/Participant/{member}/Record/``"""
    mpc = _mpc(ctx, ctx.path["mpc"])
    for part in _participants(mpc, ctx.path["member"]):
        call = ctx.store.calls.get(part.call_uuid)
        if call is not None and not call.ended:
            await ctx.sim.recordings.stop_call_recording(call, None)
    return 204, None


async def mpc_member_record_noop(ctx: Ctx) -> Reply:
    """``POST MultiPartyCall/{mpc}/Participant/{member}/Record/Pause/`` and ``.../Resume/``:
    accepted, nothing to do (member recordings are not paused)."""
    mpc = _mpc(ctx, ctx.path["mpc"])
    _participants(mpc, ctx.path["member"])
    return 204, None


async def mpc_member_play(ctx: Ctx) -> Reply:
    """``POST MultiPartyCall/{mpc}/Member/{member}/Play/``"""
    mpc = _mpc(ctx, ctx.path["mpc"])
    parts = _participants(mpc, ctx.path["member"])
    url = ctx.params.url("url", required=True)
    for part in parts:
        ctx.sim.prompts.play_to_call(part.call_uuid, [url])
    return 202, {
        "message": "play queued into MPC",
        "mpcMemberId": [x.member_id for x in parts],
        "mpcName": mpc.friendly_name,
    }


async def mpc_member_stop_play(ctx: Ctx) -> Reply:
    """``DELETE MultiPartyCall/{mpc}/Member/{member}/Play/``"""
    mpc = _mpc(ctx, ctx.path["mpc"])
    for part in _participants(mpc, ctx.path["member"]):
        ctx.sim.prompts.stop_play_to_call(part.call_uuid)
    return 204, None


_MPC = "MultiPartyCall/{mpc}/"
_PARTICIPANT = _MPC + "Participant/{member}/"

RESOURCES = [
    resource("MultiPartyCall/", get=list_mpcs),
    resource(_MPC, get=get_mpc, post=start_mpc, delete=end_mpc),
    resource(_MPC + "Record/", post=mpc_record, delete=mpc_stop_record),
    resource(_MPC + "Record/Pause/", post=mpc_pause_record),
    resource(_MPC + "Record/Resume/", post=mpc_resume_record),
    resource(_MPC + "Participant/", post=mpc_add_participant, get=mpc_list_participants),
    resource(_PARTICIPANT, get=mpc_get_participant, post=mpc_update_participant,
             delete=mpc_kick),
    resource(_PARTICIPANT + "Record/", post=mpc_member_record, delete=mpc_member_stop_record),
    resource(_PARTICIPANT + "Record/Pause/", post=mpc_member_record_noop),
    resource(_PARTICIPANT + "Record/Resume/", post=mpc_member_record_noop),
    resource(_MPC + "Member/{member}/Play/", post=mpc_member_play,
             delete=mpc_member_stop_play),
]  # fmt: skip
