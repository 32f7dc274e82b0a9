"""Recordings: list, get, delete; and their files, served without credentials at their
``recording_url`` (``/v1/Account/{auth_id}/Recording/{id}.mp3|wav``) like Plivo's media URLs."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from ..store import Store
from ..values import digits
from .common import (
    NOT_FOUND,
    ApiError,
    Ctx,
    Reply,
    error,
    paginate,
    parse_filter_time,
    parse_number_filter,
    range_filters,
    range_keys,
    resource,
)

__all__ = ["RESOURCES", "file_routes"]

_ID_RE = re.compile(r"^[A-Za-z0-9-]+$")
_MEDIA_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}


class _FileRoute(Route):
    """Matches recording file names only (``{id}.mp3|wav``): anything else under
    ``Recording/`` falls through to the API and its gate."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            params = child["path_params"]
            if not _ID_RE.match(params["recording_id"]) or params["ext"] not in _MEDIA_TYPES:
                return Match.NONE, {}
        return match, child


async def list_recordings(ctx: Ctx) -> Reply:
    """``GET Recording/``"""
    p = ctx.params
    recs = list(ctx.store.recordings.values())
    for key in ("call_uuid", "conference_name", "mpc_name", "mpc_uuid"):
        if p.has(key):
            value = p.text(key)
            recs = [r for r in recs if getattr(r, key) == value]
    for key in ("from_number", "to_number"):
        if p.has(key):
            number = digits(p.text(key))
            recs = [r for r in recs if digits(getattr(r, key)) == number]
    preds = range_filters(p.data, "add_time", lambda r: r.add_time, parse_filter_time)
    preds += range_filters(
        p.data, "recording_storage_duration", lambda r: r.storage_days, parse_number_filter
    )
    recs = [r for r in recs if all(pred(r) for pred in preds)]
    recs.sort(key=lambda r: r.add_time, reverse=True)
    keep = [
        "call_uuid", "conference_name", "mpc_name", "mpc_uuid", "from_number", "to_number",
        *range_keys("add_time"), *range_keys("recording_storage_duration"),
    ]  # fmt: skip
    page, meta = paginate(recs, p.data, ctx.store.uri("Recording"), keep=keep)
    return 200, {"meta": meta, "objects": [r.to_json() for r in page]}


async def get_recording(ctx: Ctx) -> Reply:
    """``GET Recording/{recording_id}/``"""
    rec = ctx.store.recordings.get(ctx.path["recording_id"])
    if rec is None:
        raise ApiError(404, NOT_FOUND)
    return 200, rec.to_json()


async def delete_recording(ctx: Ctx) -> Reply:
    """``DELETE Recording/{recording_id}/``"""
    rec = ctx.store.recordings.pop(ctx.path["recording_id"], None)
    if rec is None:
        raise ApiError(404, NOT_FOUND)
    await asyncio.to_thread(Path(rec.path).unlink, missing_ok=True)
    return 204, None


RESOURCES = [
    resource("Recording/", get=list_recordings),
    resource("Recording/{recording_id}/", get=get_recording, delete=delete_recording),
]


def file_routes(store: Store, auth_id: str) -> list[BaseRoute]:
    """``GET /v1/Account/{auth_id}/Recording/{id}.mp3|wav``: the file, no credentials."""

    async def recording_file(request: Request) -> Response:
        rec = store.recordings.get(request.path_params["recording_id"])
        ext = request.path_params["ext"]
        if request.path_params["auth_id"] != auth_id or rec is None or rec.recording_format != ext:
            return error(404, NOT_FOUND)
        if not await asyncio.to_thread(Path(rec.path).is_file):
            return error(404, NOT_FOUND)
        return FileResponse(rec.path, media_type=_MEDIA_TYPES[ext])

    path = "/v1/Account/{auth_id}/Recording/{recording_id}.{ext}"
    return [_FileRoute(path, recording_file, methods=["GET", "HEAD"])]
