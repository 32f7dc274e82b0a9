"""SIP endpoints (``Endpoint/``): create, list, read, update, delete.

Retry-safe: reads, deletes and updates (an update sets fields). Creating is not repeated:
a repeat would make a second endpoint.
"""

from __future__ import annotations

import re

from . import _request as r
from . import _validate as v
from ._ops import AsyncResource, SyncResource, aop, apager, op, pager
from ._request import Request
from .models import ApiResponse, Endpoint, EndpointCreated, Page

__all__ = ["AsyncEndpoints", "Endpoints"]

_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,24}")


def _password(value: str) -> str:
    # Never echo a password back in an error message.
    if not isinstance(value, str) or len(value) < 5:
        raise ValueError("password must be a string of at least 5 characters")
    return value


def _create(
    username: str, password: str, alias: str, *, app_id: str | None = None
) -> Request[EndpointCreated]:
    """Create a SIP endpoint; Plivo appends 12 digits to ``username`` (letter first, then
    letters and digits, 1–25 characters)."""
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise ValueError(
            f"username must be 1-25 letters and digits starting with a letter, got {username!r}"
        )
    return r.post(
        r.path("Endpoint"),
        r.model(EndpointCreated),
        {
            "username": username,
            "password": _password(password),
            "alias": v.text("alias", alias),
            "app_id": app_id,
        },
    )


def _list(*, limit: int | None = None, offset: int | None = None) -> Request[Page[Endpoint]]:
    """SIP endpoints of the account."""
    return r.get(r.path("Endpoint"), r.page(Endpoint), r.page_args(limit, offset))


def _get(endpoint_id: str) -> Request[Endpoint]:
    """One SIP endpoint."""
    return r.get(r.path("Endpoint", ("endpoint_id", endpoint_id)), r.model(Endpoint))


def _update(
    endpoint_id: str,
    *,
    password: str | None = None,
    alias: str | None = None,
    app_id: str | None = None,
) -> Request[ApiResponse]:
    """Change an endpoint's password, alias or application."""
    if password is None and alias is None and app_id is None:
        raise ValueError("give at least one of password, alias, app_id")
    return r.post(
        r.path("Endpoint", ("endpoint_id", endpoint_id)),
        r.model(ApiResponse),
        {
            "password": None if password is None else _password(password),
            "alias": None if alias is None else v.text("alias", alias),
            "app_id": app_id,
        },
        idempotent=True,
    )


def _delete(endpoint_id: str) -> Request[None]:
    """Delete a SIP endpoint."""
    return r.delete(r.path("Endpoint", ("endpoint_id", endpoint_id)))


class Endpoints(SyncResource):
    """``client.endpoints``: SIP endpoints."""

    __slots__ = ()
    create = op(_create)
    list = op(_list)
    iter = pager(_list)
    get = op(_get)
    update = op(_update)
    delete = op(_delete)


class AsyncEndpoints(AsyncResource):
    """``client.endpoints``: SIP endpoints."""

    __slots__ = ()
    create = aop(_create)
    list = aop(_list)
    iter = apager(_list)
    get = aop(_get)
    update = aop(_update)
    delete = aop(_delete)
