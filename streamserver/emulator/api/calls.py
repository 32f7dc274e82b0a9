"""Calls: make, list (CDRs, live and queued ids), get, hang up, cancel, transfer, and the
actions on a live call: Play, Speak, DTMF, Record."""

from __future__ import annotations

from collections.abc import Callable

from ..outcomes import input_for, outcome_for
from ..store import Call
from ..values import digits
from ..xml import DIGITS_RE
from .common import (
    NOT_FOUND,
    NUMBER_RE,
    SIP_RE,
    URL_RE,
    ApiError,
    Ctx,
    Params,
    Reply,
    answered_call,
    live_call,
    paginate,
    parse_filter_time,
    parse_number_filter,
    range_filters,
    range_keys,
    resource,
)

__all__ = ["RESOURCES"]


def _number_is(attr: str, wanted: str) -> Callable[[Call], bool]:
    def pred(call: Call) -> bool:
        return digits(getattr(call, attr)) == wanted

    return pred


#: Destinations in one ``to`` (``a<b<c``). Our reference documents no limit for Plivo's bulk
#: calls; one request creating thousands of calls is a mistake (or an attack) locally.
MAX_DESTINATIONS = 100


async def make_call(ctx: Ctx) -> Reply:
    """``POST Call/``"""
    p = ctx.params
    from_number = p.text("from", required=True)
    to = p.text("to", required=True)
    answer_url = p.url("answer_url", required=True)
    if not (NUMBER_RE.match(from_number) or SIP_RE.match(from_number)):
        raise ApiError(400, "invalid from number")
    if to.count("<") >= MAX_DESTINATIONS:
        raise ApiError(400, f"too many destinations: at most {MAX_DESTINATIONS} per request")
    destinations = [d.strip() for d in to.split("<")]
    if any(not d for d in destinations):
        raise ApiError(400, "invalid to: empty destination")
    if digits(from_number) in {digits(d) for d in destinations}:
        raise ApiError(400, "src and destination cannot overlap")
    caller_name = p.text("caller_name")
    if len(caller_name) > 50:
        raise ApiError(400, "caller_name must be at most 50 characters")
    machine_detection = p.choice("machine_detection", "", ("true", "hangup"))
    send_digits = p.text("send_digits")
    if send_digits and not DIGITS_RE.fullmatch(send_digits):
        raise ApiError(400, "invalid send_digits")
    sip_headers: dict[str, str] = {}
    for pair in filter(None, (x.strip() for x in p.text("sip_headers").split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ApiError(400, "sip_headers must be key=value pairs separated by commas")
        sip_headers[key] = value
    try:
        outcome_for(destinations[0], sip_headers, {})
        input_for(sip_headers, [])
    except ValueError as exc:
        raise ApiError(400, f"invalid sip_headers: {exc}") from None
    parent = p.text("parent_call_uuid")
    if parent and p.flag("error_if_parent_not_found", False) and parent not in ctx.store.calls:
        raise ApiError(400, "parent call not found")
    template = Call(
        auth_id=ctx.settings.auth_id,
        call_uuid="",
        request_uuid="",
        from_number=from_number,
        to_number="",
        caller_name=caller_name,
        parent_call_uuid=parent or None,
        answer_url=answer_url,
        answer_method=p.method("answer_method"),
        ring_url=p.url("ring_url"),
        ring_method=p.method("ring_method"),
        hangup_url=p.url("hangup_url"),
        hangup_method=p.method("hangup_method"),
        fallback_url=p.url("fallback_url"),
        fallback_method=p.method("fallback_method"),
        time_limit_s=p.integer("time_limit", 14400, 1),
        ring_timeout_s=p.integer("ring_timeout", 120, 1),
        sip_headers=sip_headers,
        send_digits=send_digits,
        machine_detection=machine_detection,
        machine_detection_time_ms=p.integer("machine_detection_time", 5000, 2000, 10000),
        machine_detection_url=p.url("machine_detection_url"),
        machine_detection_method=p.method("machine_detection_method"),
    )
    calls = ctx.sim.calls.make_calls(template, destinations)
    queued = any(c.is_queued for c in calls)
    if len(calls) == 1:
        message = "call queued" if queued else "call fired"
        return 201, {"message": message, "request_uuid": calls[0].request_uuid}
    message = "calls queued" if queued else "calls fired"
    return 201, {"message": message, "request_uuid": [c.request_uuid for c in calls]}


async def list_calls(ctx: Ctx) -> Reply:
    """``GET Call/``"""
    p = ctx.params
    status = p.text("status")
    if status in ("live", "queued"):
        wanted = [
            c
            for c in ctx.store.calls.values()
            if (c.is_live if status == "live" else c.is_queued) and _live_filters(p, c)
        ]
        page, _meta = paginate(wanted, p.data, "")
        return 200, {"calls": [c.call_uuid for c in page]}
    if status:
        raise ApiError(400, "status must be live or queued")
    calls = [c for c in ctx.store.calls.values() if c.ended]
    preds: list[Callable[[Call], bool]] = []
    direction = p.choice("call_direction", "", ("inbound", "outbound"))
    if direction:
        preds.append(lambda c: c.direction == direction)
    for attr in ("from_number", "to_number"):
        if p.has(attr):
            preds.append(_number_is(attr, digits(p.text(attr))))
    if p.has("parent_call_uuid"):
        parent = p.text("parent_call_uuid")
        preds.append(lambda c: c.parent_call_uuid == parent)
    if p.has("hangup_cause_code"):
        code = p.integer("hangup_cause_code", 0)
        preds.append(lambda c: c.hangup_cause_code == code)
    if p.has("hangup_source"):
        source = p.text("hangup_source").lower()
        preds.append(lambda c: c.hangup_source.lower() == source)
    preds += range_filters(p.data, "bill_duration", lambda c: c.duration_s, parse_number_filter)
    preds += range_filters(p.data, "end_time", lambda c: c.end_time, parse_filter_time)
    calls = [c for c in calls if all(pred(c) for pred in preds)]
    calls.sort(key=lambda c: c.end_time or 0.0, reverse=True)
    keep = [
        "call_direction", "from_number", "to_number", "parent_call_uuid",
        "hangup_cause_code", "hangup_source", *range_keys("bill_duration"),
        *range_keys("end_time"),
    ]  # fmt: skip
    page, meta = paginate(calls, p.data, ctx.store.uri("Call"), keep=keep)
    return 200, {"meta": meta, "objects": [c.cdr_json() for c in page]}


def _live_filters(p: Params, call: Call) -> bool:
    if p.has("call_direction") and call.direction != p.text("call_direction"):
        return False
    if p.has("from_number") and digits(call.from_number) != digits(p.text("from_number")):
        return False
    return not (p.has("to_number") and digits(call.to_number) != digits(p.text("to_number")))


async def get_call(ctx: Ctx) -> Reply:
    """``GET Call/{call_uuid}/``"""
    call = ctx.store.calls.get(ctx.path["call_uuid"])
    status = ctx.params.text("status")
    if status == "live":
        if call is None or not call.is_live:
            raise ApiError(404, NOT_FOUND)
        return 200, call.live_json()
    if status == "queued":
        if call is None or not call.is_queued:
            raise ApiError(404, NOT_FOUND)
        return 200, call.live_json()
    if status:
        raise ApiError(400, "status must be live or queued")
    # A CDR exists once the call has ended.
    if call is None or not call.ended:
        raise ApiError(404, NOT_FOUND)
    return 200, call.cdr_json()


async def hangup_call(ctx: Ctx) -> Reply:
    """``DELETE Call/{call_uuid}/``"""
    call = live_call(ctx, ctx.path["call_uuid"])
    await ctx.sim.calls.hangup(call)
    return 204, None


async def cancel_request(ctx: Ctx) -> Reply:
    """``DELETE Request/{request_uuid}/``"""
    if not await ctx.sim.calls.cancel_request(ctx.path["request_uuid"]):
        raise ApiError(404, NOT_FOUND)
    return 204, None


async def transfer_call(ctx: Ctx) -> Reply:
    """``POST Call/{call_uuid}/``"""
    p = ctx.params
    call = answered_call(ctx, ctx.path["call_uuid"])
    legs = p.choice("legs", "", ("aleg", "bleg", "both"))
    if not legs:
        raise ApiError(400, "legs parameter is required")
    if legs == "bleg":
        raise ApiError(400, "this call has no bleg to transfer")
    url = p.url("aleg_url")
    if not url:
        raise ApiError(400, "aleg_url parameter is required")
    p.url("bleg_url")
    await ctx.sim.calls.transfer(call, url, p.method("aleg_method"))
    return 202, {"message": "call transferred"}


async def play(ctx: Ctx) -> Reply:
    """``POST Call/{call_uuid}/Play/``"""
    p = ctx.params
    call = answered_call(ctx, ctx.path["call_uuid"])
    urls = [u.strip() for u in p.text("urls", required=True).split(",") if u.strip()]
    for u in urls:
        if not URL_RE.match(u):
            raise ApiError(400, "invalid urls: each must be an http(s) URL")
    length = p.integer("length", 0, 1) or None
    p.choice("legs", "aleg", ("aleg", "bleg", "both"))
    loop = p.flag("loop", False)
    p.flag("mix", True)
    ctx.sim.prompts.play(call, urls, length, loop)
    return 202, {"message": "play started"}


async def stop_play(ctx: Ctx) -> Reply:
    """``DELETE Call/{call_uuid}/Play/``"""
    call = answered_call(ctx, ctx.path["call_uuid"])
    ctx.sim.prompts.stop_play(call)
    return 204, None


async def speak(ctx: Ctx) -> Reply:
    """``POST Call/{call_uuid}/Speak/``"""
    p = ctx.params
    call = answered_call(ctx, ctx.path["call_uuid"])
    text = p.text("text", required=True)
    voice = p.choice("voice", "WOMAN", ("WOMAN", "MAN"))
    language = p.text("language", "en-US")
    p.choice("legs", "aleg", ("aleg", "bleg", "both"))
    loop = p.flag("loop", False)
    p.flag("mix", True)
    ctx.sim.prompts.speak(call, text, voice, language, loop)
    return 202, {"message": "speak started"}


async def stop_speak(ctx: Ctx) -> Reply:
    """``DELETE Call/{call_uuid}/Speak/``"""
    call = answered_call(ctx, ctx.path["call_uuid"])
    ctx.sim.prompts.stop_speak(call)
    return 204, None


async def send_digits(ctx: Ctx) -> Reply:
    """``POST Call/{call_uuid}/DTMF/``"""
    p = ctx.params
    call = answered_call(ctx, ctx.path["call_uuid"])
    value = p.text("digits", required=True)
    if not DIGITS_RE.fullmatch(value):
        raise ApiError(400, "invalid digits: use 0-9 * # A-D, and w or W to pause")
    leg = p.choice("leg", "aleg", ("aleg", "bleg"))
    ctx.sim.calls.send_digits(call, value, leg)
    return 202, {"message": "digits sent"}


async def record(ctx: Ctx) -> Reply:
    """``POST Call/{call_uuid}/Record/``"""
    p = ctx.params
    call = answered_call(ctx, ctx.path["call_uuid"])
    time_limit = p.integer("time_limit", 60, 1)
    file_format = p.choice("file_format", "mp3", ("mp3", "wav"))
    channels = p.choice("record_channel_type", "mono", ("mono", "stereo"))
    p.choice("transcription_type", "auto", ("auto", "hybrid"))
    p.url("transcription_url")
    callback_url = p.url("callback_url")
    callback_method = p.method("callback_method")
    recording_id, url = ctx.sim.recordings.start_call_recording(
        call,
        time_limit_s=time_limit,
        file_format=file_format,
        stereo=channels == "stereo",
        callback_url=callback_url,
        callback_method=callback_method,
    )
    return 202, {"message": "call recording started", "recording_id": recording_id, "url": url}


async def stop_record(ctx: Ctx) -> Reply:
    """``DELETE Call/{call_uuid}/Record/``"""
    call = answered_call(ctx, ctx.path["call_uuid"])
    url = ctx.params.text("URL") or ctx.params.text("url")
    await ctx.sim.recordings.stop_call_recording(call, url or None)
    return 204, None


RESOURCES = [
    resource("Call/", unmetered=("POST",), post=make_call, get=list_calls),
    resource("Call/{call_uuid}/", get=get_call, delete=hangup_call, post=transfer_call),
    resource("Request/{request_uuid}/", delete=cancel_request),
    resource("Call/{call_uuid}/Play/", post=play, delete=stop_play),
    resource("Call/{call_uuid}/Speak/", post=speak, delete=stop_speak),
    resource("Call/{call_uuid}/DTMF/", post=send_digits),
    resource("Call/{call_uuid}/Record/", async_ok=False, post=record, delete=stop_record),
]
