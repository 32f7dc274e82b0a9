"""SIP endpoints: create, list, get, update, delete."""

from __future__ import annotations

import re
import time

from ..store import Endpoint
from .common import NOT_FOUND, ApiError, Ctx, Reply, paginate, resource

__all__ = ["RESOURCES"]

_USERNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,24}$")


def _endpoint(ctx: Ctx, endpoint_id: str) -> Endpoint:
    endpoint = ctx.store.endpoints.get(endpoint_id)
    if endpoint is None:
        raise ApiError(404, NOT_FOUND)
    return endpoint


async def create_endpoint(ctx: Ctx) -> Reply:
    """``POST Endpoint/``"""
    p = ctx.params
    username = p.text("username", required=True)
    password = p.text("password", required=True)
    alias = p.text("alias", required=True)
    if not _USERNAME_RE.match(username):
        raise ApiError(400, "username must start with a letter and have 1 to 25 letters or digits")
    if len(password) < 5:
        raise ApiError(400, "password must be at least 5 characters")
    # Plivo makes usernames unique by appending 12 digits (the creation time).
    stamp = int(time.time())
    taken = {e.username for e in ctx.store.endpoints.values()}
    while (full := username + time.strftime("%y%m%d%H%M%S", time.gmtime(stamp))) in taken:
        stamp += 1
    endpoint_id = str(10**13 + len(ctx.store.endpoints) * 7919 + int(time.time()) % 10**6)
    while endpoint_id in ctx.store.endpoints:
        endpoint_id = str(int(endpoint_id) + 1)
    endpoint = Endpoint(
        ctx.settings.auth_id, endpoint_id, full, password, alias, p.text("app_id") or None
    )
    ctx.store.endpoints[endpoint_id] = endpoint
    return 201, {
        "alias": alias,
        "endpoint_id": endpoint_id,
        "message": "created",
        "username": full,
    }


async def list_endpoints(ctx: Ctx) -> Reply:
    """``GET Endpoint/``"""
    endpoints = list(ctx.store.endpoints.values())
    page, meta = paginate(endpoints, ctx.params.data, ctx.store.uri("Endpoint"))
    return 200, {"meta": meta, "objects": [e.to_json() for e in page]}


async def get_endpoint(ctx: Ctx) -> Reply:
    """``GET Endpoint/{endpoint_id}/``"""
    return 200, _endpoint(ctx, ctx.path["endpoint_id"]).to_json()


async def update_endpoint(ctx: Ctx) -> Reply:
    """``POST Endpoint/{endpoint_id}/``"""
    p = ctx.params
    endpoint = _endpoint(ctx, ctx.path["endpoint_id"])
    if p.has("password"):
        password = p.text("password")
        if len(password) < 5:
            raise ApiError(400, "password must be at least 5 characters")
        endpoint.password = password
    if p.has("alias"):
        endpoint.alias = p.text("alias")
    if p.has("app_id"):
        endpoint.app_id = p.text("app_id")
    return 202, {"message": "changed"}


async def delete_endpoint(ctx: Ctx) -> Reply:
    """``DELETE Endpoint/{endpoint_id}/``"""
    _endpoint(ctx, ctx.path["endpoint_id"])
    del ctx.store.endpoints[ctx.path["endpoint_id"]]
    return 204, None


RESOURCES = [
    resource("Endpoint/", post=create_endpoint, get=list_endpoints),
    resource("Endpoint/{endpoint_id}/", get=get_endpoint, post=update_endpoint,
             delete=delete_endpoint),
]  # fmt: skip
