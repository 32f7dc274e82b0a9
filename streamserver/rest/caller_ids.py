"""Verified caller ids (``VerifiedCallerId/``): numbers the account may show as caller id.

Verification takes two steps: :meth:`initiate` sends a code by SMS or call, :meth:`verify`
confirms it. Neither is repeated on failure (a repeat sends another code, or spends the
first). Reads, deletes and alias updates are retry-safe.
"""

from __future__ import annotations

from typing import Literal

from . import _request as r
from . import _validate as v
from ._ops import AsyncResource, SyncResource, aop, apager, op, pager
from ._request import Request
from .models import Page, VerificationStarted, VerifiedCallerId

__all__ = ["AsyncVerifiedCallerIds", "VerifiedCallerIds"]


def _initiate(
    phone_number: str,
    *,
    alias: str | None = None,
    channel: Literal["sms", "call"] | None = None,
    subaccount: str | None = None,
) -> Request[VerificationStarted]:
    """Send a verification code to ``phone_number`` (valid for 15 minutes)."""
    if channel is not None:
        v.choice("channel", channel, ("sms", "call"))
    return r.post(
        r.path("VerifiedCallerId"),
        r.model(VerificationStarted),
        {
            "phone_number": v.text("phone_number", phone_number),
            "alias": alias,
            "channel": channel,
            "subaccount": subaccount,
        },
    )


def _verify(verification_uuid: str, otp: str) -> Request[VerifiedCallerId]:
    """Confirm the code that :meth:`initiate` sent."""
    return r.post(
        r.path("VerifiedCallerId", "Verification", ("verification_uuid", verification_uuid)),
        r.model(VerifiedCallerId),
        {"otp": v.text("otp", otp)},
    )


def _list(
    *,
    country: str | None = None,
    alias: str | None = None,
    subaccount: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> Request[Page[VerifiedCallerId]]:
    """Verified caller ids, filtered by ISO country code, alias or subaccount."""
    params = {
        "country": country,
        "alias": alias,
        "subaccount": subaccount,
        **r.page_args(limit, offset),
    }
    return r.get(r.path("VerifiedCallerId"), r.page(VerifiedCallerId), params)


def _get(phone_number: str) -> Request[VerifiedCallerId]:
    """One verified caller id."""
    return r.get(
        r.path("VerifiedCallerId", ("phone_number", phone_number)), r.model(VerifiedCallerId)
    )


def _update(
    phone_number: str, *, alias: str | None = None, subaccount: str | None = None
) -> Request[VerifiedCallerId]:
    """Change a verified caller id's alias or subaccount."""
    if alias is None and subaccount is None:
        raise ValueError("give at least one of alias, subaccount")
    return r.post(
        r.path("VerifiedCallerId", ("phone_number", phone_number)),
        r.model(VerifiedCallerId),
        {"alias": alias, "subaccount": subaccount},
        idempotent=True,
    )


def _delete(phone_number: str) -> Request[None]:
    """Remove a verified caller id."""
    return r.delete(r.path("VerifiedCallerId", ("phone_number", phone_number)))


class VerifiedCallerIds(SyncResource):
    """``client.verified_caller_ids``: numbers verified for use as caller id."""

    __slots__ = ()
    initiate = op(_initiate)
    verify = op(_verify)
    list = op(_list)
    iter = pager(_list)
    get = op(_get)
    update = op(_update)
    delete = op(_delete)


class AsyncVerifiedCallerIds(AsyncResource):
    """``client.verified_caller_ids``: numbers verified for use as caller id."""

    __slots__ = ()
    initiate = aop(_initiate)
    verify = aop(_verify)
    list = aop(_list)
    iter = apager(_list)
    get = aop(_get)
    update = aop(_update)
    delete = aop(_delete)
