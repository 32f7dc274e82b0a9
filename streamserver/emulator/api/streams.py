"""Audio streams on a call: start, list, get, stop one or all; and the emulator's own
``GET /emulator/Stream/{stream_id}/heard.wav`` (what the caller heard, once ended)."""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

import soundfile as sf
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..simulator import Simulator
from ..xml import AUDIO_TRACKS, STREAM_CONTENT_TYPES, StreamVerb, XmlError, parse_extra_headers
from .common import (
    METHODS,
    NOT_FOUND,
    ApiError,
    Ctx,
    Reply,
    answered_call,
    error,
    live_call,
    paginate,
    resource,
)

__all__ = ["RESOURCES", "heard_routes"]

_WS_URL_RE = re.compile(r"^wss?://[^\s/]+")


async def start_stream(ctx: Ctx) -> Reply:
    """``POST Call/{call_uuid}/Stream/``"""
    p = ctx.params
    call = answered_call(ctx, ctx.path["call_uuid"])
    service_url = p.text("service_url", required=True)
    if not _WS_URL_RE.match(service_url):
        raise ApiError(400, "invalid service_url: must be a ws:// or wss:// URL")
    bidirectional = p.flag("bidirectional", False)
    track = p.choice("audio_track", "inbound", AUDIO_TRACKS)
    if bidirectional and track != "inbound":
        raise ApiError(400, "audio_track must be inbound when bidirectional is true")
    content_type = p.text("content_type", "audio/x-l16;rate=8000").replace(" ", "")
    if content_type.lower() not in STREAM_CONTENT_TYPES:
        raise ApiError(400, f"content_type must be one of {', '.join(STREAM_CONTENT_TYPES)}")
    extra = p.text("extra_headers")
    try:
        parse_extra_headers(extra, "extra_headers")
    except XmlError as exc:
        raise ApiError(400, f"invalid {exc}") from None
    if any(
        s.active and s.service_url == service_url
        for s in ctx.store.streams.values()
        if s.call_uuid == call.call_uuid
    ):
        raise ApiError(400, "a stream to this service_url is already active on the call")
    spec = StreamVerb(
        url=service_url,
        bidirectional=bidirectional,
        audio_track=track,
        stream_timeout_s=p.integer("stream_timeout", 86400, 1),
        status_callback_url=p.url("status_callback_url"),
        status_callback_method=p.method("status_callback_method"),
        content_type=content_type.lower(),
        extra_headers=extra,
    )
    stream = ctx.sim.streams.start(call, spec)
    return 201, {"message": "audio streaming started", "stream_id": stream.stream_id}


async def list_streams(ctx: Ctx) -> Reply:
    """``GET Call/{call_uuid}/Stream/``"""
    call_uuid = ctx.path["call_uuid"]
    if call_uuid not in ctx.store.calls:
        raise ApiError(404, NOT_FOUND)
    streams = [s for s in ctx.store.streams.values() if s.call_uuid == call_uuid]
    path = ctx.store.uri("Call", call_uuid, "Stream")
    page, meta = paginate(streams, ctx.params.data, path)
    return 200, {"meta": meta, "objects": [s.to_json() for s in page]}


async def get_stream(ctx: Ctx) -> Reply:
    """``GET Call/{call_uuid}/Stream/{stream_id}/``"""
    stream = ctx.store.streams.get(ctx.path["stream_id"])
    if stream is None or stream.call_uuid != ctx.path["call_uuid"]:
        raise ApiError(404, NOT_FOUND)
    return 200, stream.to_json()


async def stop_stream(ctx: Ctx) -> Reply:
    """``DELETE Call/{call_uuid}/Stream/{stream_id}/``"""
    live_call(ctx, ctx.path["call_uuid"])
    stream = ctx.store.streams.get(ctx.path["stream_id"])
    if stream is None or stream.call_uuid != ctx.path["call_uuid"] or not stream.active:
        raise ApiError(400, "No active stream found")
    await ctx.sim.streams.stop(stream)
    return 204, None


async def stop_all_streams(ctx: Ctx) -> Reply:
    """``DELETE Call/{call_uuid}/Stream/``"""
    call = live_call(ctx, ctx.path["call_uuid"])
    streams = [s for s in ctx.store.streams.values() if s.call_uuid == call.call_uuid]
    for stream in streams:
        if stream.active:
            await ctx.sim.streams.stop(stream)
    return 204, None


RESOURCES = [
    resource("Call/{call_uuid}/Stream/", post=start_stream, get=list_streams,
             delete=stop_all_streams),
    resource("Call/{call_uuid}/Stream/{stream_id}/", get=get_stream, delete=stop_stream),
]  # fmt: skip


def _wav_bytes(pcm: Any, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def heard_routes(sim: Simulator) -> list[BaseRoute]:
    """``GET /emulator/Stream/{stream_id}/heard.wav``: what the caller heard on an ended
    bidirectional stream, every socket of it in place (the emulator's own route, no
    credentials)."""

    async def heard(request: Request) -> Response:
        stream_id = request.path_params["stream_id"]
        heard = sim.streams.heard(stream_id)
        stream = sim.store.streams.get(stream_id)
        if request.method not in ("GET", "HEAD") or heard is None or stream is None:
            return error(404, NOT_FOUND)
        if stream.active:
            return error(404, NOT_FOUND)
        data = await asyncio.to_thread(_wav_bytes, *heard)
        return Response(data, media_type="audio/wav")

    return [Route("/emulator/Stream/{stream_id}/heard.wav", heard, methods=METHODS)]
