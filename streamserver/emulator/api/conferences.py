"""Conferences (by name): list, get, hang up; members: hang up, kick, mute, deaf, play,
speak; conference recordings."""

from __future__ import annotations

from ..store import Conference
from .common import NOT_FOUND, ApiError, Ctx, Reply, resource

__all__ = ["RESOURCES"]


def _conference(ctx: Ctx, name: str) -> Conference:
    conf = ctx.store.conferences.get(name)
    if conf is None:
        raise ApiError(404, NOT_FOUND)
    return conf


def _members(conf: Conference, member: str) -> list[str]:
    if member == "all":
        ids = list(conf.members)
    else:
        ids = [m.strip() for m in member.split(",") if m.strip()]
        if not ids or any(m not in conf.members for m in ids):
            raise ApiError(404, NOT_FOUND)
    return ids


async def list_conferences(ctx: Ctx) -> Reply:
    """``GET Conference/``"""
    return 200, {"conferences": sorted(ctx.store.conferences)}


async def get_conference(ctx: Ctx) -> Reply:
    """``GET Conference/{name}/``"""
    return 200, _conference(ctx, ctx.path["name"]).to_json()


async def hangup_conference(ctx: Ctx) -> Reply:
    """``DELETE Conference/{name}/``"""
    await ctx.sim.conferences.hangup(_conference(ctx, ctx.path["name"]))
    return 204, None


async def hangup_all_conferences(ctx: Ctx) -> Reply:
    """``DELETE Conference/``"""
    for conf in list(ctx.store.conferences.values()):
        await ctx.sim.conferences.hangup(conf)
    return 204, None


async def member_hangup(ctx: Ctx) -> Reply:
    """``DELETE Conference/{name}/Member/{member}/``"""
    conf = _conference(ctx, ctx.path["name"])
    await ctx.sim.conferences.member_hangup(conf, _members(conf, ctx.path["member"]))
    return 204, None


async def member_kick(ctx: Ctx) -> Reply:
    """``POST Conference/{name}/Member/{member}/Kick/``"""
    conf = _conference(ctx, ctx.path["name"])
    ids = _members(conf, ctx.path["member"])
    ctx.sim.conferences.member_kick(conf, ids)
    return 202, {"message": "kicked", "member_id": ctx.path["member"]}


async def _member_flag(ctx: Ctx, attr: str, value: bool, message: str) -> Reply:
    conf = _conference(ctx, ctx.path["name"])
    for member_id in _members(conf, ctx.path["member"]):
        setattr(conf.members[member_id], attr, value)
    if value:
        return 202, {"message": message, "member_id": ctx.path["member"]}
    return 204, None


async def member_mute(ctx: Ctx) -> Reply:
    """``POST Conference/{name}/Member/{member}/Mute/``"""
    return await _member_flag(ctx, "muted", True, "muted")


async def member_unmute(ctx: Ctx) -> Reply:
    """``DELETE Conference/{name}/Member/{member}/Mute/``"""
    return await _member_flag(ctx, "muted", False, "")


async def member_deaf(ctx: Ctx) -> Reply:
    """``POST Conference/{name}/Member/{member}/Deaf/``"""
    return await _member_flag(ctx, "deaf", True, "deaf")


async def member_undeaf(ctx: Ctx) -> Reply:
    """``DELETE Conference/{name}/Member/{member}/Deaf/``"""
    return await _member_flag(ctx, "deaf", False, "")


async def member_play(ctx: Ctx) -> Reply:
    """``POST Conference/{name}/Member/{member}/Play/``"""
    conf = _conference(ctx, ctx.path["name"])
    ids = _members(conf, ctx.path["member"])
    url = ctx.params.url("url", required=True)
    for member_id in ids:
        ctx.sim.prompts.play_to_call(conf.members[member_id].call_uuid, [url])
    return 202, {"message": "play queued into conference", "member_id": ctx.path["member"]}


async def member_stop_play(ctx: Ctx) -> Reply:
    """``DELETE Conference/{name}/Member/{member}/Play/``"""
    conf = _conference(ctx, ctx.path["name"])
    for member_id in _members(conf, ctx.path["member"]):
        ctx.sim.prompts.stop_play_to_call(conf.members[member_id].call_uuid)
    return 204, None


async def member_speak(ctx: Ctx) -> Reply:
    """``POST Conference/{name}/Member/{member}/Speak/``"""
    p = ctx.params
    conf = _conference(ctx, ctx.path["name"])
    ids = _members(conf, ctx.path["member"])
    text = p.text("text", required=True)
    voice = p.choice("voice", "WOMAN", ("WOMAN", "MAN"))
    language = p.text("language", "en-US")
    for member_id in ids:
        ctx.sim.prompts.speak_to_call(conf.members[member_id].call_uuid, text, voice, language)
    return 202, {"message": "speak queued into conference", "member_id": ctx.path["member"]}


async def member_stop_speak(ctx: Ctx) -> Reply:
    """``DELETE Conference/{name}/Member/{member}/Speak/``"""
    conf = _conference(ctx, ctx.path["name"])
    for member_id in _members(conf, ctx.path["member"]):
        ctx.sim.prompts.stop_speak_to_call(conf.members[member_id].call_uuid)
    return 204, None


async def record_conference(ctx: Ctx) -> Reply:
    """``POST Conference/{name}/Record/``"""
    p = ctx.params
    conf = _conference(ctx, ctx.path["name"])
    file_format = p.choice("file_format", "mp3", ("mp3", "wav"))
    recording_id, url = ctx.sim.recordings.start_group_recording(
        conf,
        file_format=file_format,
        callback_url=p.url("callback_url"),
        callback_method=p.method("callback_method"),
    )
    return 202, {
        "message": "conference recording started",
        "recording_id": recording_id,
        "url": url,
    }


async def stop_record_conference(ctx: Ctx) -> Reply:
    """``DELETE Conference/{name}/Record/``"""
    conf = _conference(ctx, ctx.path["name"])
    await ctx.sim.recordings.stop_group_recording(conf)
    return 204, None


_MEMBER = "Conference/{name}/Member/{member}/"

RESOURCES = [
    resource("Conference/", get=list_conferences, delete=hangup_all_conferences),
    resource("Conference/{name}/", get=get_conference, delete=hangup_conference),
    resource("Conference/{name}/Record/", async_ok=False, post=record_conference,
             delete=stop_record_conference),
    resource(_MEMBER, delete=member_hangup),
    resource(_MEMBER + "Kick/", post=member_kick),
    resource(_MEMBER + "Mute/", post=member_mute, delete=member_unmute),
    resource(_MEMBER + "Deaf/", post=member_deaf, delete=member_undeaf),
    resource(_MEMBER + "Play/", post=member_play, delete=member_stop_play),
    resource(_MEMBER + "Speak/", post=member_speak, delete=member_stop_speak),
]  # fmt: skip
