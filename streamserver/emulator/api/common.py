"""What every resource of the emulated REST API shares: the request gate (Basic auth, the
account in the path, the rate limit), parameters, replies and errors, pagination and list
filters, Plivo's async mode, and the lookups several resources need.

Filters (``end_time__gt`` ...) take UTC ``YYYY-MM-DD HH:MM[:ss[.uuuuuu]]``.

A resource module declares its paths as :class:`Resource` rows (path template, one handler
per method); :class:`Dispatcher` turns each row into a Starlette route. A handler takes a
:class:`Ctx` and returns ``(status, body)``: the body is sent as JSON with the request's
``api_id`` added, ``(204, None)`` as an empty reply; it raises :class:`ApiError` for a
Plivo error reply.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ..settings import EmulatorSettings
from ..simulator import Simulator
from ..store import Call, Store
from ..values import new_api_id

__all__ = [
    "METHODS",
    "NOT_FOUND",
    "NUMBER_RE",
    "SIP_RE",
    "URL_RE",
    "ApiError",
    "Body",
    "Ctx",
    "Dispatcher",
    "Handler",
    "Params",
    "RateLimiter",
    "Reply",
    "Resource",
    "answered_call",
    "error",
    "live_call",
    "paginate",
    "parse_filter_time",
    "parse_number_filter",
    "range_filters",
    "range_keys",
    "resource",
]

log = logging.getLogger("streamserver.emulator.api")

T = TypeVar("T")
Body = dict[str, Any] | None
Reply = tuple[int, Body]
Handler = Callable[["Ctx"], Awaitable[Reply]]

NUMBER_RE = re.compile(r"^\+?\d{2,18}$")
SIP_RE = re.compile(r"^sip:[^@\s]+@[^@\s]+$")
URL_RE = re.compile(r"^https?://[^\s/]+")
NOT_FOUND = "not found"
#: Every method a route takes: the handler answers 405 itself, after the gate.
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


class ApiError(Exception):
    """An API error reply: HTTP ``status_code`` and Plivo's ``error`` text."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


_FILTER_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")


def parse_filter_time(key: str, value: str) -> float:
    """Parse a filter time (UTC ``YYYY-MM-DD HH:MM[:ss[.uuuuuu]]``) into a timestamp."""
    if not _FILTER_TIME.match(value):
        raise ApiError(400, f"{key} should be in the format YYYY-MM-DD HH:MM[:ss[.uuuuuu]] (UTC)")
    fmt = "%Y-%m-%d %H:%M"
    if value.count(":") == 2:
        fmt += ":%S.%f" if "." in value else ":%S"
    try:
        return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise ApiError(400, f"{key} is not a valid date and time") from None


def _int_param(params: Mapping[str, Any], key: str, default: int) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise ApiError(400, f"{key} must be an integer")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ApiError(400, f"{key} must be an integer") from None


def paginate(
    items: Sequence[T],
    params: Mapping[str, Any],
    path: str,
    *,
    count_key: str = "total_count",
    keep: Iterable[str] = (),
) -> tuple[list[T], dict[str, Any]]:
    """Slice ``items`` by ``limit`` (1-20, default 20) and ``offset`` (>= 0).

    Returns the page and Plivo's ``meta`` with relative ``next``/``previous`` URLs on
    ``path``; query keys named in ``keep`` (the filters in use) ride along in those URLs.
    """
    limit = _int_param(params, "limit", 20)
    offset = _int_param(params, "offset", 0)
    if not 1 <= limit <= 20:
        raise ApiError(400, "limit should be between 1 and 20")
    if offset < 0:
        raise ApiError(400, "offset should be 0 or more")
    extra = "".join(
        f"&{k}={quote(str(params[k]), safe='')}" for k in keep if params.get(k) not in (None, "")
    )
    total = len(items)
    nxt = f"{path}?limit={limit}&offset={offset + limit}{extra}" if offset + limit < total else None
    prev = f"{path}?limit={limit}&offset={max(0, offset - limit)}{extra}" if offset > 0 else None
    meta = {
        count_key: total,
        "limit": limit,
        "next": nxt,
        "offset": offset,
        "previous": prev,
    }
    return list(items[offset : offset + limit]), meta


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "": lambda a, b: bool(a == b),
    "__gt": lambda a, b: bool(a > b),
    "__gte": lambda a, b: bool(a >= b),
    "__lt": lambda a, b: bool(a < b),
    "__lte": lambda a, b: bool(a <= b),
}


def range_filters(
    params: Mapping[str, Any],
    name: str,
    value_of: Callable[[Any], float | None],
    parse: Callable[[str, str], float],
) -> list[Callable[[Any], bool]]:
    """Predicates for ``name``, ``name__gt``, ``__gte``, ``__lt``, ``__lte`` found in params."""
    preds: list[Callable[[Any], bool]] = []
    for suffix, op in _OPS.items():
        key = name + suffix
        raw = params.get(key)
        if raw is None or raw == "":
            continue
        wanted = parse(key, str(raw))

        def pred(item: Any, op: Callable[[Any, Any], bool] = op, wanted: float = wanted) -> bool:
            value = value_of(item)
            return value is not None and op(value, wanted)

        preds.append(pred)
    return preds


def parse_number_filter(key: str, raw: str) -> float:
    """A numeric filter value, or a 400 naming the key."""
    try:
        return float(raw)
    except ValueError:
        raise ApiError(400, f"{key} must be a number") from None


def range_keys(name: str) -> list[str]:
    """``name`` and its four comparison variants (for ``paginate(keep=...)``)."""
    return [name + suffix for suffix in _OPS]


class Params:
    """Typed access to request parameters (query, JSON or form); raises 400 ApiErrors."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = dict(data)

    def has(self, key: str) -> bool:
        return self.data.get(key) not in (None, "")

    def raw(self, key: str) -> Any:
        value = self.data.get(key)
        # The official SDK sends some values as one-item lists (MPC ``status``).
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        return value

    def text(self, key: str, default: str = "", *, required: bool = False) -> str:
        value = self.raw(key)
        if value is None or value == "":
            if required:
                raise ApiError(400, f"{key} parameter is required")
            return default
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value).strip()
        raise ApiError(400, f"{key} must be a string")

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ApiError(400, f"{key} must be true or false")

    def integer(
        self, key: str, default: int, low: int | None = None, high: int | None = None
    ) -> int:
        value = self.raw(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise ApiError(400, f"{key} must be an integer")
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ApiError(400, f"{key} must be an integer") from None
        if (low is not None and number < low) or (high is not None and number > high):
            if high is None:
                raise ApiError(400, f"{key} must be at least {low}")
            raise ApiError(400, f"{key} must be between {low} and {high}")
        return number

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key)
        if not value:
            return default
        for c in choices:
            if value.lower() == c.lower():
                return c
        raise ApiError(400, f"{key} must be one of {', '.join(choices)}")

    def method(self, key: str, default: str = "POST") -> str:
        return self.choice(key, default, ("GET", "POST"))

    def url(self, key: str, *, required: bool = False) -> str:
        value = self.text(key, required=required)
        if value and not URL_RE.match(value):
            raise ApiError(400, f"invalid {key}: must be an http(s) URL")
        return value


@dataclass
class Ctx:
    """One request: parameters, path values, what it acts on, and its ``api_id``."""

    request: Request
    params: Params
    path: dict[str, str]
    sim: Simulator
    store: Store
    settings: EmulatorSettings
    api_id: str = field(default_factory=new_api_id)


@dataclass(frozen=True)
class Resource:
    """One path under ``/v1/Account/{auth_id}/`` and its handler per HTTP method."""

    path: str
    methods: Mapping[str, Handler]
    #: A ``callback_url`` makes these requests asynchronous (not where it names a
    #: recording callback, as on the Record endpoints).
    async_ok: bool = True
    #: Methods outside the rate limit (making calls is paced by CPS instead).
    unmetered: frozenset[str] = frozenset()


def resource(
    path: str, *, async_ok: bool = True, unmetered: tuple[str, ...] = (), **methods: Handler
) -> Resource:
    """``resource("Call/{call_uuid}/", get=..., delete=...)``: a :class:`Resource` row."""
    return Resource(
        path, {m.upper(): h for m, h in methods.items()}, async_ok, frozenset(unmetered)
    )


class RateLimiter:
    """Sliding-window request counter: at most ``limit`` requests per ``window_s``."""

    def __init__(self, limit: int, window_s: float) -> None:
        self._limit = limit
        self._window_s = window_s
        self._times: deque[float] = deque()

    def check(self, now: float) -> float | None:
        """Record a request; return None if allowed, else seconds until one would be."""
        if self._limit <= 0:
            return None
        times = self._times
        while times and times[0] <= now - self._window_s:
            times.popleft()
        if len(times) >= self._limit:
            return times[0] + self._window_s - now
        times.append(now)
        return None


def error(status: int, message: str, api_id: str | None = None) -> JSONResponse:
    """Plivo's error reply: ``{"api_id", "error"}``."""
    return JSONResponse({"api_id": api_id or new_api_id(), "error": message}, status_code=status)


def live_call(ctx: Ctx, call_uuid: str) -> Call:
    """The call, if it has not ended; else 404."""
    call = ctx.store.calls.get(call_uuid)
    if call is None or call.ended:
        raise ApiError(404, NOT_FOUND)
    return call


def answered_call(ctx: Ctx, call_uuid: str) -> Call:
    """The call, if it is in progress (answered, not ended); else 404."""
    call = live_call(ctx, call_uuid)
    if call.status != "in-progress":
        raise ApiError(404, NOT_FOUND)
    return call


class Dispatcher:
    """Runs requests under ``/v1/Account/{auth_id}/`` through the gate to their handler.

    The order of checks is Plivo's: credentials (401), the account in the path (404), the
    rate limit (429), the path (404), the method (405), the parameters (400), then the
    handler, synchronously or in Plivo's async mode.
    """

    def __init__(self, settings: EmulatorSettings, simulator: Simulator) -> None:
        self.settings = settings
        self.sim = simulator
        self.auth_id = settings.auth_id
        self.limiter = RateLimiter(settings.rate_limit_requests, settings.rate_limit_window_s)

    def routes(self, resources: list[Resource]) -> list[BaseRoute]:
        """A route per resource, with and without its trailing slash (both are accepted)."""
        out: list[BaseRoute] = []
        for res in resources:
            endpoint = self._endpoint(res)
            path = "/" + res.path
            out.append(Route(path, endpoint, methods=METHODS))
            out.append(Route(path.rstrip("/"), endpoint, methods=METHODS))
        return out

    async def unknown(self, request: Request) -> Response:
        """A path under the account that names no resource: the gate, then 404."""
        return self._gate(request, metered=True) or error(404, NOT_FOUND)

    async def unknown_path(self, scope: Scope, receive: Receive, send: Send) -> None:
        """:meth:`unknown` as the account router's default (an ASGI app)."""
        response = await self.unknown(Request(scope, receive))
        await response(scope, receive, send)

    def _endpoint(self, res: Resource) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            method = request.method.upper()
            refused = self._gate(request, metered=method not in res.unmetered)
            if refused is not None:
                return refused
            handler = res.methods.get(method)
            if handler is None:
                return error(405, f"method {method} not allowed on this resource")
            try:
                params = Params(await _read_params(request))
            except ApiError as exc:
                return error(exc.status_code, exc.message)
            path = {k: str(v) for k, v in request.path_params.items() if k != "auth_id"}
            ctx = Ctx(request, params, path, self.sim, self.sim.store, self.settings)
            if res.async_ok and params.has("callback_url"):
                return await self._spawn_async(ctx, handler)
            response = await self._run(ctx, handler)
            log.debug("emulator API: %s %s -> %d", method, request.url.path, response.status_code)
            return response

        return endpoint

    def _gate(self, request: Request, *, metered: bool) -> Response | None:
        if not self._authorized(request):
            return JSONResponse(
                {"api_id": new_api_id(), "error": "authentication failed"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="Plivo emulator"'},
            )
        if request.path_params.get("auth_id") != self.auth_id:
            return error(404, NOT_FOUND)
        if metered:
            wait = self.limiter.check(time.monotonic())
            if wait is not None:
                return JSONResponse(
                    {"api_id": new_api_id(), "error": "too many requests"},
                    status_code=429,
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
        return None

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        ok_user = hmac.compare_digest(user.encode(), self.auth_id.encode())
        ok_password = hmac.compare_digest(password.encode(), self.settings.auth_token.encode())
        return bool(sep) and ok_user and ok_password

    async def _run(self, ctx: Ctx, handler: Handler) -> Response:
        try:
            status, body = await handler(ctx)
        except ApiError as exc:
            return error(exc.status_code, exc.message, ctx.api_id)
        except Exception:
            log.exception("emulator API: %s %s failed", ctx.request.method, ctx.request.url.path)
            return error(500, "internal server error", ctx.api_id)
        if status == 204 or body is None:
            return Response(status_code=status)
        return JSONResponse({"api_id": ctx.api_id, **body}, status_code=status)

    async def _spawn_async(self, ctx: Ctx, handler: Handler) -> Response:
        """Ack now; run the request and POST its reply to ``callback_url`` (Plivo's async mode)."""
        try:
            callback_url = ctx.params.url("callback_url")
            callback_method = ctx.params.method("callback_method")
        except ApiError as exc:
            return error(exc.status_code, exc.message, ctx.api_id)

        async def run_and_post() -> None:
            response = await self._run(ctx, handler)
            payload: dict[str, Any] = {"api_id": ctx.api_id}
            if response.body:
                payload = json.loads(bytes(response.body))
            payload["status_code"] = response.status_code
            await self.sim.post_json(callback_url, callback_method, payload)

        self.sim.spawn(run_and_post(), "async API reply")
        return JSONResponse({"api_id": ctx.api_id, "message": "async api spawned"}, status_code=200)


async def _read_params(request: Request) -> dict[str, Any]:
    """Query parameters, merged with a JSON or form body (POST, DELETE and PUT)."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method in ("POST", "DELETE", "PUT"):
        body = await request.body()
        if body.strip():
            ctype = request.headers.get("content-type", "").lower()
            if "json" in ctype or body.lstrip()[:1] in (b"{", b"["):
                try:
                    data = json.loads(body)
                except ValueError:
                    raise ApiError(400, "invalid JSON in request body") from None
                if not isinstance(data, dict):
                    raise ApiError(400, "the JSON request body must be an object")
                params.update(data)
            elif "multipart/" in ctype:
                raise ApiError(400, "send JSON or form-encoded parameters")
            else:
                params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params
