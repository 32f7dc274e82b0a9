"""Verified caller IDs: start a verification, verify with the OTP, list, get, update,
delete."""

from __future__ import annotations

import hmac
import logging
import time

from ..store import Verification, VerifiedCallerId, country_of
from ..values import digits, new_uuid
from .common import NOT_FOUND, NUMBER_RE, ApiError, Ctx, Reply, paginate, resource

__all__ = ["RESOURCES"]

log = logging.getLogger("streamserver.emulator.api")


async def initiate_verification(ctx: Ctx) -> Reply:
    """``POST VerifiedCallerId/``"""
    p = ctx.params
    number = p.text("phone_number", required=True)
    if not NUMBER_RE.match(number):
        raise ApiError(400, "invalid phone_number")
    channel = p.choice("channel", "sms", ("sms", "call"))
    verification = Verification(
        verification_uuid=new_uuid(),
        phone_number=number,
        alias=p.text("alias"),
        channel=channel,
        country=p.text("country") or country_of(number),
        subaccount=p.text("subaccount"),
    )
    ctx.store.verifications[verification.verification_uuid] = verification
    log.info(
        "emulator: verification code for %s is %s (sent by %s)",
        number, ctx.settings.verification_otp, channel,
    )  # fmt: skip
    return 201, {
        "message": f"Verification code is sent to number {number} which is valid for 15 minutes",
        "verification_uuid": verification.verification_uuid,
    }


async def verify_caller_id(ctx: Ctx) -> Reply:
    """``POST VerifiedCallerId/Verification/{verification_uuid}/``"""
    verification = ctx.store.verifications.get(ctx.path["verification_uuid"])
    if verification is None:
        raise ApiError(404, NOT_FOUND)
    otp = ctx.params.text("otp", required=True)
    if verification.expired:
        raise ApiError(400, "the verification code has expired")
    if not hmac.compare_digest(otp.encode(), ctx.settings.verification_otp.encode()):
        raise ApiError(400, "invalid otp")
    del ctx.store.verifications[verification.verification_uuid]
    verified = VerifiedCallerId(
        phone_number=verification.phone_number,
        alias=verification.alias,
        channel=verification.channel,
        country=verification.country,
        subaccount=verification.subaccount,
        verification_uuid=verification.verification_uuid,
    )
    ctx.store.caller_ids[digits(verified.phone_number)] = verified
    body = verified.to_json()
    return 201, {k: body[k] for k in (
        "alias", "channel", "country", "created_at", "phone_number", "verification_uuid"
    )}  # fmt: skip


def _caller_id(ctx: Ctx, number: str) -> VerifiedCallerId:
    found = ctx.store.caller_ids.get(digits(number))
    if found is None:
        raise ApiError(404, NOT_FOUND)
    return found


async def get_caller_id(ctx: Ctx) -> Reply:
    """``GET VerifiedCallerId/{phone_number}/``"""
    return 200, _caller_id(ctx, ctx.path["phone_number"]).to_json()


async def update_caller_id(ctx: Ctx) -> Reply:
    """``POST VerifiedCallerId/{phone_number}/``"""
    found = _caller_id(ctx, ctx.path["phone_number"])
    found.alias = ctx.params.text("alias", required=True)
    if ctx.params.has("subaccount"):
        found.subaccount = ctx.params.text("subaccount")
    found.modified = time.time()
    return 200, found.to_json()


async def delete_caller_id(ctx: Ctx) -> Reply:
    """``DELETE VerifiedCallerId/{phone_number}/``"""
    found = _caller_id(ctx, ctx.path["phone_number"])
    del ctx.store.caller_ids[digits(found.phone_number)]
    return 204, None


async def list_caller_ids(ctx: Ctx) -> Reply:
    """``GET VerifiedCallerId/``"""
    p = ctx.params
    items = list(ctx.store.caller_ids.values())
    for key in ("country", "alias", "subaccount"):
        if p.has(key):
            value = p.text(key)
            items = [i for i in items if getattr(i, key) == value]
    items.sort(key=lambda i: i.created, reverse=True)
    page, meta = paginate(
        items,
        p.data,
        ctx.store.uri("VerifiedCallerId"),
        keep=["country", "alias", "subaccount"],
    )
    return 200, {"meta": meta, "objects": [i.to_json() for i in page]}


RESOURCES = [
    resource("VerifiedCallerId/", async_ok=False, post=initiate_verification,
             get=list_caller_ids),
    resource("VerifiedCallerId/Verification/{verification_uuid}/", async_ok=False,
             post=verify_caller_id),
    resource("VerifiedCallerId/{phone_number}/", async_ok=False, get=get_caller_id,
             post=update_caller_id, delete=delete_caller_id),
]  # fmt: skip
