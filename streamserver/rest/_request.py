"""The sans-I/O half of the client: a described request, and how to read its answer.

Resource modules turn arguments into a :class:`Request`; the sync and async clients send
it, retry it and hand the decoded body to ``Request.parse``. Nothing here does I/O, so the
same resource code serves :class:`~streamserver.rest.PlivoClient` and
:class:`~streamserver.rest.AsyncPlivoClient`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import msgspec

from . import _validate as v
from .models import RAW_KEY, Model, Page

T = TypeVar("T")
M = TypeVar("M", bound=Model)

HttpMethod = Literal["GET", "POST", "DELETE"]
Parser = Callable[[Any], T]


@dataclass(frozen=True, slots=True)
class Request(Generic[T]):
    """One API call, described: method, path below the account root, query or JSON body.

    ``idempotent`` says whether sending it twice has the effect of sending it once — only
    then is it retried after a 5xx, a 429 or a transport error. ``retry`` (per call) wins
    over everything; ``creates_call`` marks ``POST Call/``, governed by
    ``RetryPolicy.retry_on_post_call``.
    """

    method: HttpMethod
    path: str
    parse: Parser[T]
    params: dict[str, str] = field(default_factory=dict)
    json: dict[str, Any] | None = None
    idempotent: bool = False
    retry: bool | None = None
    creates_call: bool = False


def path(*segments: tuple[str, str | int] | str) -> str:
    """Join path segments, each followed by ``/``; ``(name, value)`` pairs are ids to check
    and percent-encode, bare strings are literal resource names."""
    out = []
    for seg in segments:
        if isinstance(seg, tuple):
            name, value = seg
            # '+' stays literal (VerifiedCallerId/+1415.../), and ',' (Member/1,2/).
            out.append(quote(v.segment(name, value), safe="+@:,"))
        else:
            out.append(seg)
    return "".join(f"{s}/" for s in out)


def _query_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        raise TypeError("format datetimes with _validate.filter_time first")
    return str(value)


def query(values: Mapping[str, object]) -> dict[str, str]:
    """Query parameters: ``None`` dropped, booleans as ``true``/``false``."""
    return {k: _query_value(val) for k, val in values.items() if val is not None}


def body(values: Mapping[str, object], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A JSON body: ``None`` dropped; ``extra`` adds parameters this client does not name
    (it cannot override the named ones)."""
    out = {k: val for k, val in values.items() if val is not None}
    if extra:
        clash = sorted(set(extra) & set(out))
        if clash:
            raise ValueError(f"extra repeats named parameters: {', '.join(clash)}")
        out.update(extra)
    return out


def get(p: str, parse: Parser[T], params: Mapping[str, object] | None = None) -> Request[T]:
    """A GET: always safe to repeat."""
    return Request("GET", p, parse, params=query(params or {}), idempotent=True)


def delete(p: str, json: Mapping[str, object] | None = None) -> Request[None]:
    """A DELETE: safe to repeat (a repeat may answer 404). The answer body is ignored."""
    data = body(json or {})
    return Request("DELETE", p, none, json=data or None, idempotent=True)


def post(
    p: str,
    parse: Parser[T],
    json: Mapping[str, object] | None = None,
    *,
    idempotent: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Request[T]:
    """A POST; ``idempotent=True`` only for POSTs that set a state (mute, update ...)."""
    return Request("POST", p, parse, json=body(json or {}, extra), idempotent=idempotent)


# Parsers ---------------------------------------------------------------------------------


def none(data: Any) -> None:
    """Ignore the body: deletes answer 204, or a body nobody needs."""
    return None


def _with_raw(data: Any) -> Any:
    if isinstance(data, dict):
        return {**data, RAW_KEY: data}
    return data


def model(cls: type[M]) -> Parser[M]:
    """Decode a JSON object into ``cls``; an empty body gives an object with no fields set."""

    def parse(data: Any) -> M:
        if data is None:
            data = {}
        return msgspec.convert(_with_raw(data), cls, strict=False)

    return parse


def model_with_list(cls: type[M], key: str) -> Parser[M]:
    """Like :func:`model`, also keeping ``raw`` on the objects in the list ``data[key]``."""

    def parse(data: Any) -> M:
        if data is None:
            data = {}
        if isinstance(data, dict) and isinstance(data.get(key), list):
            # The outer raw stays the JSON as received, without the inner markers.
            data = {**data, key: [_with_raw(o) for o in data[key]], RAW_KEY: data}
            return msgspec.convert(data, cls, strict=False)
        return msgspec.convert(_with_raw(data), cls, strict=False)

    return parse


def page(cls: type[M]) -> Parser[Page[M]]:
    """Decode a paginated list of ``cls``."""
    # ``Page[cls]`` is built at run time, so the checker sees only ``Any`` here.
    target: Any = Page[cls]  # type: ignore[valid-type]
    parse: Parser[Page[M]] = model_with_list(target, "objects")
    return parse


def next_page(req: Request[Page[M]], current: Page[M]) -> Request[Page[M]] | None:
    """The request for the page after ``current``, or ``None`` at the end.

    ``meta.next`` is a relative URL. Only its query is used, merged over the original
    parameters and sent to the same path: that keeps the filters even if the API leaves them
    out of ``next``, and works whatever path prefix the base URL has. A page that is empty or
    does not move the offset ends the iteration, so a misbehaving server cannot loop it.
    """
    if not current.meta.next or not current.objects:
        return None
    params = dict(req.params)
    params.update(parse_qsl(urlsplit(current.meta.next).query, keep_blank_values=True))
    if params == req.params:
        return None
    return dataclasses.replace(req, params=params)


# Argument conversions shared by resource modules -----------------------------------------


def joined(name: str, value: str | Iterable[str], sep: str) -> str:
    """A list parameter Plivo takes as one string (``to`` with ``<``, ``urls`` with ``,``)."""
    if isinstance(value, str):
        return v.text(name, value)
    items = [v.text(name, item) for item in value]
    if not items:
        raise ValueError(f"{name} must not be empty")
    return sep.join(items)


def ids(name: str, value: str | int | Iterable[str | int]) -> str:
    """Member ids for a path: one id, ``"all"``, or several joined by ``,``."""
    if isinstance(value, str | int):
        return v.segment(name, value)
    items = [v.segment(name, item) for item in value]
    if not items:
        raise ValueError(f"{name} must not be empty")
    return ",".join(items)


def page_args(limit: int | None, offset: int | None) -> dict[str, object]:
    """``limit`` (1–20) and ``offset`` (>= 0), checked here rather than by a 400."""
    return {
        "limit": None if limit is None else v.integer("limit", limit, 1, 20),
        "offset": None if offset is None else v.integer("offset", offset, 0),
    }


def time_filters(name: str, values: Mapping[str, str | datetime | None]) -> dict[str, object]:
    """``end_time__gt=...`` style filters, each a string or an aware datetime."""
    return {
        f"{name}{suffix}": None if val is None else v.filter_time(f"{name}{suffix}", val)
        for suffix, val in values.items()
    }


def number_filters(
    name: str, values: Mapping[str, int | float | Decimal | None]
) -> dict[str, object]:
    """``bill_duration__gte=...`` style numeric filters."""
    out: dict[str, object] = {}
    for suffix, val in values.items():
        if val is not None and (
            isinstance(val, bool) or not isinstance(val, int | float | Decimal)
        ):
            raise ValueError(f"{name}{suffix} must be a number, got {val!r}")
        out[f"{name}{suffix}"] = val
    return out


def mpc_id(uuid: str | None, friendly_name: str | None) -> tuple[str, str]:
    """The ``uuid_<id>`` / ``name_<friendly_name>`` path segment of a multiparty call."""
    if (uuid is None) == (friendly_name is None):
        raise ValueError("give exactly one of uuid and friendly_name")
    if uuid is not None:
        return ("uuid", "uuid_" + v.segment("uuid", uuid))
    assert friendly_name is not None
    return ("friendly_name", "name_" + v.segment("friendly_name", friendly_name))
