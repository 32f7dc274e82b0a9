"""The emulated Plivo Voice REST API: a Starlette app over the in-memory :class:`Store`.

Everything lives under ``/v1/Account/{auth_id}/`` with HTTP Basic auth, with the paths,
shapes, status codes and ``message`` strings of Plivo's own API. Conventions it keeps:

- 401 ``{"api_id","error"}`` on bad or missing credentials; 404 for another account's path
  or anything unknown; 405 for a known path with the wrong method.
- JSON bodies on POST *and* DELETE, form bodies tolerated, query parameters merged in,
  unknown keys ignored, the trailing slash optional.
- ``api_id`` on every JSON reply; 204 replies have no body.
- Lists take ``limit`` 1-20 and ``offset`` >= 0 (else 400) and carry ``meta`` with
  relative ``next``/``previous`` URLs.
- More than ``rate_limit_requests`` non-call requests per ``rate_limit_window_s`` get 429
  with ``Retry-After``; making calls is paced by the simulator's CPS instead.
- A ``callback_url`` turns a request asynchronous: the reply is an ack
  (``"async api spawned"``) and the real reply is POSTed, as JSON, to that URL.

Recording files are served without credentials at their ``recording_url``
(``/v1/Account/{auth_id}/Recording/{id}.mp3|wav``), like Plivo's media URLs. One route is
the emulator's own: ``GET /emulator/Stream/{stream_id}/heard.wav`` returns what the caller
heard on a bidirectional stream once it has ended.

Behaviour (ringing, audio, streams, recordings) is the :class:`~.simulator.Simulator`'s;
this module validates and shapes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import io
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import soundfile as sf
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .settings import EmulatorSettings
from .store import (
    ApiError,
    Call,
    Conference,
    Endpoint,
    MultiPartyCall,
    Participant,
    Store,
    Verification,
    VerifiedCallerId,
    country_of,
    digits,
    new_api_id,
    new_uuid,
    paginate,
    parse_filter_time,
    parse_number_filter,
    range_filters,
    range_keys,
)
from .xml import AUDIO_TRACKS, STREAM_CONTENT_TYPES, StreamVerb, XmlError, parse_extra_headers

if TYPE_CHECKING:
    from .simulator import Simulator

__all__ = ["create_app"]

log = logging.getLogger("streamserver.emulator.api")

Body = dict[str, Any] | None
Handler = Callable[["Ctx"], Awaitable[tuple[int, Body]]]

_NUMBER_RE = re.compile(r"^\+?\d{2,18}$")
_SIP_RE = re.compile(r"^sip:[^@\s]+@[^@\s]+$")
_DIGITS_RE = re.compile(r"^[0-9*#A-Da-dwW]+$")
_USERNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,24}$")
_MEDIA_RE = re.compile(r"^/v1/Account/([^/]+)/Recording/([A-Za-z0-9-]+)\.(mp3|wav)$")
_HEARD_RE = re.compile(r"^/emulator/Stream/([A-Za-z0-9-]+)/heard\.wav$")
_NOT_FOUND = "not found"


def _number_is(attr: str, wanted: str) -> Callable[[Call], bool]:
    def pred(call: Call) -> bool:
        return digits(getattr(call, attr)) == wanted

    return pred


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
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ApiError(400, f"invalid {key}: must be an http(s) URL")
        return value


@dataclass
class Ctx:
    """One request: parameters, path values and its ``api_id``."""

    request: Request
    params: Params
    path: dict[str, str]
    api_id: str = field(default_factory=new_api_id)


@dataclass
class _Route:
    pattern: re.Pattern[str]
    methods: dict[str, Handler]
    # A ``callback_url`` makes these requests asynchronous (not where it names a
    # recording callback, as on the Record endpoints).
    async_ok: bool = True


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


def _wav_bytes(pcm: Any, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _pattern(template: str) -> re.Pattern[str]:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return re.compile(f"^{regex}$")


class _Api:
    def __init__(self, settings: EmulatorSettings, simulator: Simulator) -> None:
        self.settings = settings
        self.sim = simulator
        self.store: Store = simulator.store
        self.auth_id = settings.auth_id
        self.limiter = RateLimiter(settings.rate_limit_requests, settings.rate_limit_window_s)
        self.routes: list[_Route] = []
        self._build_routes()

    # --- plumbing -------------------------------------------------------------------------

    def add(self, template: str, async_ok: bool = True, **methods: Handler) -> None:
        self.routes.append(
            _Route(_pattern(template), {m.upper(): h for m, h in methods.items()}, async_ok)
        )

    def _json(self, status: int, body: Mapping[str, Any], api_id: str) -> JSONResponse:
        return JSONResponse({"api_id": api_id, **body}, status_code=status)

    def _error(self, status: int, message: str, api_id: str | None = None) -> JSONResponse:
        return self._json(status, {"error": message}, api_id or new_api_id())

    async def dispatch(self, request: Request) -> Response:
        path = request.url.path
        media = _MEDIA_RE.match(path)
        if media and request.method in ("GET", "HEAD"):
            return self._media(media.group(1), media.group(2), media.group(3))
        heard = _HEARD_RE.match(path)
        if heard and request.method in ("GET", "HEAD"):
            return await self._heard(heard.group(1))
        if path in ("", "/"):
            return JSONResponse(self._about())
        if not path.endswith("/"):
            path += "/"
        prefix = re.match(r"^/v1/Account/([^/]+)/(.*)$", path)
        if prefix is None:
            return self._error(404, _NOT_FOUND)
        if not self._authorized(request):
            return JSONResponse(
                {"api_id": new_api_id(), "error": "authentication failed"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="Plivo emulator"'},
            )
        if prefix.group(1) != self.auth_id:
            return self._error(404, _NOT_FOUND)
        rest = prefix.group(2)
        method = request.method.upper()
        is_make_call = method == "POST" and rest == "Call/"
        if not is_make_call:
            wait = self.limiter.check(time.monotonic())
            if wait is not None:
                return JSONResponse(
                    {"api_id": new_api_id(), "error": "too many requests"},
                    status_code=429,
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
        route, match = self._match(rest)
        if route is None or match is None:
            return self._error(404, _NOT_FOUND)
        handler = route.methods.get(method)
        if handler is None:
            return self._error(405, f"method {method} not allowed on this resource")
        try:
            params = Params(await self._params(request))
        except ApiError as exc:
            return self._error(exc.status_code, exc.message)
        ctx = Ctx(request, params, match.groupdict())
        if route.async_ok and params.has("callback_url"):
            return await self._spawn_async(ctx, handler)
        response = await self._run(ctx, handler)
        log.debug("emulator API: %s %s -> %d", method, path, response.status_code)
        return response

    async def _run(self, ctx: Ctx, handler: Handler) -> Response:
        try:
            status, body = await handler(ctx)
        except ApiError as exc:
            return self._error(exc.status_code, exc.message, ctx.api_id)
        except Exception:
            log.exception("emulator API: %s %s failed", ctx.request.method, ctx.request.url.path)
            return self._error(500, "internal server error", ctx.api_id)
        if status == 204 or body is None:
            return Response(status_code=status)
        return self._json(status, body, ctx.api_id)

    async def _spawn_async(self, ctx: Ctx, handler: Handler) -> Response:
        """Ack now; run the request and POST its reply to ``callback_url`` (Plivo's async mode)."""
        try:
            callback_url = ctx.params.url("callback_url")
            callback_method = ctx.params.method("callback_method")
        except ApiError as exc:
            return self._error(exc.status_code, exc.message, ctx.api_id)

        async def run_and_post() -> None:
            response = await self._run(ctx, handler)
            payload: dict[str, Any] = {"api_id": ctx.api_id}
            if response.body:
                payload = json.loads(bytes(response.body))
            payload["status_code"] = response.status_code
            await self.sim.post_json(callback_url, callback_method, payload)

        self.sim.spawn(run_and_post(), "async API reply")
        return self._json(200, {"message": "async api spawned"}, ctx.api_id)

    def _match(self, rest: str) -> tuple[_Route | None, re.Match[str] | None]:
        for route in self.routes:
            match = route.pattern.match(rest)
            if match:
                return route, match
        return None, None

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

    async def _params(self, request: Request) -> dict[str, Any]:
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
                    params.update(
                        parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
                    )
        return params

    def _media(self, auth_id: str, recording_id: str, ext: str) -> Response:
        rec = self.store.recordings.get(recording_id)
        if auth_id != self.auth_id or rec is None or rec.recording_format != ext:
            return self._error(404, _NOT_FOUND)
        if not Path(rec.path).is_file():
            return self._error(404, _NOT_FOUND)
        media_type = "audio/mpeg" if ext == "mp3" else "audio/wav"
        return FileResponse(rec.path, media_type=media_type)

    async def _heard(self, stream_id: str) -> Response:
        report = self.sim.stream_report(stream_id)
        stream = self.store.streams.get(stream_id)
        if report is None or stream is None or stream.active:
            return self._error(404, _NOT_FOUND)
        data = await asyncio.to_thread(_wav_bytes, report.heard, report.sample_rate)
        return Response(data, media_type="audio/wav")

    def _about(self) -> dict[str, Any]:
        return {
            "emulator": "streamserver local Plivo emulator",
            "api_base": f"/v1/Account/{self.auth_id}/",
            "auth_id": self.auth_id,
        }

    # --- lookups --------------------------------------------------------------------------

    def _live_call(self, call_uuid: str) -> Call:
        call = self.store.calls.get(call_uuid)
        if call is None or call.ended:
            raise ApiError(404, _NOT_FOUND)
        return call

    def _answered_call(self, call_uuid: str) -> Call:
        call = self._live_call(call_uuid)
        if call.status != "in-progress":
            raise ApiError(404, _NOT_FOUND)
        return call

    # --- routes ---------------------------------------------------------------------------

    def _build_routes(self) -> None:
        add = self.add
        add("Call/", post=self.make_call, get=self.list_calls)
        add(
            "Call/{call_uuid}/", get=self.get_call, delete=self.hangup_call, post=self.transfer_call
        )
        add("Request/{request_uuid}/", delete=self.cancel_request)
        add("Call/{call_uuid}/Play/", post=self.play, delete=self.stop_play)
        add("Call/{call_uuid}/Speak/", post=self.speak, delete=self.stop_speak)
        add("Call/{call_uuid}/DTMF/", post=self.send_digits)
        add("Call/{call_uuid}/Record/", async_ok=False, post=self.record, delete=self.stop_record)
        add("Call/{call_uuid}/Stream/", post=self.start_stream, get=self.list_streams,
            delete=self.stop_all_streams)  # fmt: skip
        add("Call/{call_uuid}/Stream/{stream_id}/", get=self.get_stream, delete=self.stop_stream)
        add("Recording/", get=self.list_recordings)
        add("Recording/{recording_id}/", get=self.get_recording, delete=self.delete_recording)
        # Conferences
        add("Conference/", get=self.list_conferences, delete=self.hangup_all_conferences)
        add("Conference/{name}/", get=self.get_conference, delete=self.hangup_conference)
        add("Conference/{name}/Record/", async_ok=False, post=self.record_conference,
            delete=self.stop_record_conference)  # fmt: skip
        add("Conference/{name}/Member/{member}/", delete=self.member_hangup)
        add("Conference/{name}/Member/{member}/Kick/", post=self.member_kick)
        add("Conference/{name}/Member/{member}/Mute/", post=self.member_mute,
            delete=self.member_unmute)  # fmt: skip
        add("Conference/{name}/Member/{member}/Deaf/", post=self.member_deaf,
            delete=self.member_undeaf)  # fmt: skip
        add("Conference/{name}/Member/{member}/Play/", post=self.member_play,
            delete=self.member_stop_play)  # fmt: skip
        add("Conference/{name}/Member/{member}/Speak/", post=self.member_speak,
            delete=self.member_stop_speak)  # fmt: skip
        # Multiparty calls
        add("MultiPartyCall/", get=self.list_mpcs)
        add("MultiPartyCall/{mpc}/", get=self.get_mpc, post=self.start_mpc, delete=self.end_mpc)
        add("MultiPartyCall/{mpc}/Record/", post=self.mpc_record, delete=self.mpc_stop_record)
        add("MultiPartyCall/{mpc}/Record/Pause/", post=self.mpc_pause_record)
        add("MultiPartyCall/{mpc}/Record/Resume/", post=self.mpc_resume_record)
        add("MultiPartyCall/{mpc}/Participant/", post=self.mpc_add_participant,
            get=self.mpc_list_participants)  # fmt: skip
        add("MultiPartyCall/{mpc}/Participant/{member}/", get=self.mpc_get_participant,
            post=self.mpc_update_participant, delete=self.mpc_kick)  # fmt: skip
        add("MultiPartyCall/{mpc}/Participant/{member}/Record/", post=self.mpc_member_record,
            delete=self.mpc_member_stop_record)  # fmt: skip
        add("MultiPartyCall/{mpc}/Participant/{member}/Record/Pause/",
            post=self.mpc_member_record_noop)  # fmt: skip
        add("MultiPartyCall/{mpc}/Participant/{member}/Record/Resume/",
            post=self.mpc_member_record_noop)  # fmt: skip
        add("MultiPartyCall/{mpc}/Member/{member}/Play/", post=self.mpc_member_play,
            delete=self.mpc_member_stop_play)  # fmt: skip
        # Endpoints
        add("Endpoint/", post=self.create_endpoint, get=self.list_endpoints)
        add("Endpoint/{endpoint_id}/", get=self.get_endpoint, post=self.update_endpoint,
            delete=self.delete_endpoint)  # fmt: skip
        # Verified caller IDs
        add("VerifiedCallerId/", async_ok=False, post=self.initiate_verification,
            get=self.list_caller_ids)  # fmt: skip
        add("VerifiedCallerId/Verification/{verification_uuid}/", async_ok=False,
            post=self.verify_caller_id)  # fmt: skip
        add("VerifiedCallerId/{phone_number}/", async_ok=False, get=self.get_caller_id,
            post=self.update_caller_id, delete=self.delete_caller_id)  # fmt: skip

    # --- calls ----------------------------------------------------------------------------

    async def make_call(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        from_number = p.text("from", required=True)
        to = p.text("to", required=True)
        answer_url = p.url("answer_url", required=True)
        if not (_NUMBER_RE.match(from_number) or _SIP_RE.match(from_number)):
            raise ApiError(400, "invalid from number")
        destinations = [d.strip() for d in to.split("<")]
        if any(not d for d in destinations):
            raise ApiError(400, "invalid to: empty destination")
        if digits(from_number) in {digits(d) for d in destinations}:
            raise ApiError(400, "src and destination cannot overlap")
        caller_name = p.text("caller_name")
        if len(caller_name) > 50:
            raise ApiError(400, "caller_name must be at most 50 characters")
        p.choice("machine_detection", "", ("true", "hangup"))
        send_digits = p.text("send_digits")
        if send_digits and not _DIGITS_RE.match(send_digits):
            raise ApiError(400, "invalid send_digits")
        sip_headers: dict[str, str] = {}
        for pair in filter(None, (x.strip() for x in p.text("sip_headers").split(","))):
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ApiError(400, "sip_headers must be key=value pairs separated by commas")
            sip_headers[key] = value
        parent = p.text("parent_call_uuid")
        if parent and p.flag("error_if_parent_not_found", False) and parent not in self.store.calls:
            raise ApiError(400, "parent call not found")
        template = Call(
            auth_id=self.auth_id,
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
        )
        calls = self.sim.make_calls(template, destinations)
        queued = any(c.is_queued for c in calls)
        if len(calls) == 1:
            message = "call queued" if queued else "call fired"
            return 201, {"message": message, "request_uuid": calls[0].request_uuid}
        message = "calls queued" if queued else "calls fired"
        return 201, {"message": message, "request_uuid": [c.request_uuid for c in calls]}

    async def list_calls(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        status = p.text("status")
        if status in ("live", "queued"):
            wanted = [
                c
                for c in self.store.calls.values()
                if (c.is_live if status == "live" else c.is_queued) and self._live_filters(p, c)
            ]
            page, _meta = paginate(wanted, p.data, "")
            return 200, {"calls": [c.call_uuid for c in page]}
        if status:
            raise ApiError(400, "status must be live or queued")
        calls = [c for c in self.store.calls.values() if c.ended]
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
        page, meta = paginate(calls, p.data, self.store.uri("Call"), keep=keep)
        return 200, {"meta": meta, "objects": [c.cdr_json() for c in page]}

    def _live_filters(self, p: Params, call: Call) -> bool:
        if p.has("call_direction") and call.direction != p.text("call_direction"):
            return False
        if p.has("from_number") and digits(call.from_number) != digits(p.text("from_number")):
            return False
        return not (p.has("to_number") and digits(call.to_number) != digits(p.text("to_number")))

    async def get_call(self, ctx: Ctx) -> tuple[int, Body]:
        call = self.store.calls.get(ctx.path["call_uuid"])
        status = ctx.params.text("status")
        if status == "live":
            if call is None or not call.is_live:
                raise ApiError(404, _NOT_FOUND)
            return 200, call.live_json()
        if status == "queued":
            if call is None or not call.is_queued:
                raise ApiError(404, _NOT_FOUND)
            return 200, call.live_json()
        if status:
            raise ApiError(400, "status must be live or queued")
        # A CDR exists once the call has ended.
        if call is None or not call.ended:
            raise ApiError(404, _NOT_FOUND)
        return 200, call.cdr_json()

    async def hangup_call(self, ctx: Ctx) -> tuple[int, Body]:
        call = self._live_call(ctx.path["call_uuid"])
        await self.sim.hangup(call)
        return 204, None

    async def cancel_request(self, ctx: Ctx) -> tuple[int, Body]:
        if not await self.sim.cancel_request(ctx.path["request_uuid"]):
            raise ApiError(404, _NOT_FOUND)
        return 204, None

    async def transfer_call(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        call = self._answered_call(ctx.path["call_uuid"])
        legs = p.choice("legs", "", ("aleg", "bleg", "both"))
        if not legs:
            raise ApiError(400, "legs parameter is required")
        if legs == "bleg":
            raise ApiError(400, "this call has no bleg to transfer")
        url = p.url("aleg_url")
        if not url:
            raise ApiError(400, "aleg_url parameter is required")
        p.url("bleg_url")
        await self.sim.transfer(call, url, p.method("aleg_method"))
        return 202, {"message": "call transferred"}

    async def play(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        call = self._answered_call(ctx.path["call_uuid"])
        urls = [u.strip() for u in p.text("urls", required=True).split(",") if u.strip()]
        for u in urls:
            if not re.match(r"^https?://[^\s/]+", u):
                raise ApiError(400, "invalid urls: each must be an http(s) URL")
        length = p.integer("length", 0, 1) or None
        p.choice("legs", "aleg", ("aleg", "bleg", "both"))
        loop = p.flag("loop", False)
        p.flag("mix", True)
        self.sim.play(call, urls, length, loop)
        return 202, {"message": "play started"}

    async def stop_play(self, ctx: Ctx) -> tuple[int, Body]:
        call = self._answered_call(ctx.path["call_uuid"])
        self.sim.stop_play(call)
        return 204, None

    async def speak(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        call = self._answered_call(ctx.path["call_uuid"])
        text = p.text("text", required=True)
        voice = p.choice("voice", "WOMAN", ("WOMAN", "MAN"))
        language = p.text("language", "en-US")
        p.choice("legs", "aleg", ("aleg", "bleg", "both"))
        loop = p.flag("loop", False)
        p.flag("mix", True)
        self.sim.speak(call, text, voice, language, loop)
        return 202, {"message": "speak started"}

    async def stop_speak(self, ctx: Ctx) -> tuple[int, Body]:
        call = self._answered_call(ctx.path["call_uuid"])
        self.sim.stop_speak(call)
        return 204, None

    async def send_digits(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        call = self._answered_call(ctx.path["call_uuid"])
        value = p.text("digits", required=True)
        if not _DIGITS_RE.match(value):
            raise ApiError(400, "invalid digits: use 0-9 * # A-D, and w or W to pause")
        leg = p.choice("leg", "aleg", ("aleg", "bleg"))
        self.sim.send_digits(call, value, leg)
        return 202, {"message": "digits sent"}

    async def record(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        call = self._answered_call(ctx.path["call_uuid"])
        time_limit = p.integer("time_limit", 60, 1)
        file_format = p.choice("file_format", "mp3", ("mp3", "wav"))
        channels = p.choice("record_channel_type", "mono", ("mono", "stereo"))
        p.choice("transcription_type", "auto", ("auto", "hybrid"))
        p.url("transcription_url")
        callback_url = p.url("callback_url")
        callback_method = p.method("callback_method")
        recording_id, url = self.sim.start_call_recording(
            call,
            time_limit_s=time_limit,
            file_format=file_format,
            stereo=channels == "stereo",
            callback_url=callback_url,
            callback_method=callback_method,
        )
        return 202, {"message": "call recording started", "recording_id": recording_id, "url": url}

    async def stop_record(self, ctx: Ctx) -> tuple[int, Body]:
        call = self._answered_call(ctx.path["call_uuid"])
        url = ctx.params.text("URL") or ctx.params.text("url")
        await self.sim.stop_call_recording(call, url or None)
        return 204, None

    # --- streams --------------------------------------------------------------------------

    async def start_stream(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        call = self._answered_call(ctx.path["call_uuid"])
        service_url = p.text("service_url", required=True)
        if not re.match(r"^wss?://[^\s/]+", service_url):
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
            for s in self.store.streams.values()
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
        stream = self.sim.start_stream(call, spec)
        return 201, {"message": "audio streaming started", "stream_id": stream.stream_id}

    async def list_streams(self, ctx: Ctx) -> tuple[int, Body]:
        call_uuid = ctx.path["call_uuid"]
        if call_uuid not in self.store.calls:
            raise ApiError(404, _NOT_FOUND)
        streams = [s for s in self.store.streams.values() if s.call_uuid == call_uuid]
        path = self.store.uri("Call", call_uuid, "Stream")
        page, meta = paginate(streams, ctx.params.data, path)
        return 200, {"meta": meta, "objects": [s.to_json() for s in page]}

    async def get_stream(self, ctx: Ctx) -> tuple[int, Body]:
        stream = self.store.streams.get(ctx.path["stream_id"])
        if stream is None or stream.call_uuid != ctx.path["call_uuid"]:
            raise ApiError(404, _NOT_FOUND)
        return 200, stream.to_json()

    async def stop_stream(self, ctx: Ctx) -> tuple[int, Body]:
        self._live_call(ctx.path["call_uuid"])
        stream = self.store.streams.get(ctx.path["stream_id"])
        if stream is None or stream.call_uuid != ctx.path["call_uuid"] or not stream.active:
            raise ApiError(400, "No active stream found")
        await self.sim.stop_stream(stream)
        return 204, None

    async def stop_all_streams(self, ctx: Ctx) -> tuple[int, Body]:
        call = self._live_call(ctx.path["call_uuid"])
        streams = [s for s in self.store.streams.values() if s.call_uuid == call.call_uuid]
        for stream in streams:
            if stream.active:
                await self.sim.stop_stream(stream)
        return 204, None

    # --- recordings -----------------------------------------------------------------------

    async def list_recordings(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        recs = list(self.store.recordings.values())
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
        page, meta = paginate(recs, p.data, self.store.uri("Recording"), keep=keep)
        return 200, {"meta": meta, "objects": [r.to_json() for r in page]}

    async def get_recording(self, ctx: Ctx) -> tuple[int, Body]:
        rec = self.store.recordings.get(ctx.path["recording_id"])
        if rec is None:
            raise ApiError(404, _NOT_FOUND)
        return 200, rec.to_json()

    async def delete_recording(self, ctx: Ctx) -> tuple[int, Body]:
        rec = self.store.recordings.pop(ctx.path["recording_id"], None)
        if rec is None:
            raise ApiError(404, _NOT_FOUND)
        await asyncio.to_thread(Path(rec.path).unlink, missing_ok=True)
        return 204, None

    # --- conferences ----------------------------------------------------------------------

    def _conference(self, name: str) -> Conference:
        conf = self.store.conferences.get(name)
        if conf is None:
            raise ApiError(404, _NOT_FOUND)
        return conf

    def _members(self, conf: Conference, member: str) -> list[str]:
        if member == "all":
            ids = list(conf.members)
        else:
            ids = [m.strip() for m in member.split(",") if m.strip()]
            if not ids or any(m not in conf.members for m in ids):
                raise ApiError(404, _NOT_FOUND)
        return ids

    async def list_conferences(self, ctx: Ctx) -> tuple[int, Body]:
        return 200, {"conferences": sorted(self.store.conferences)}

    async def get_conference(self, ctx: Ctx) -> tuple[int, Body]:
        return 200, self._conference(ctx.path["name"]).to_json()

    async def hangup_conference(self, ctx: Ctx) -> tuple[int, Body]:
        await self.sim.conference_hangup(self._conference(ctx.path["name"]))
        return 204, None

    async def hangup_all_conferences(self, ctx: Ctx) -> tuple[int, Body]:
        for conf in list(self.store.conferences.values()):
            await self.sim.conference_hangup(conf)
        return 204, None

    async def member_hangup(self, ctx: Ctx) -> tuple[int, Body]:
        conf = self._conference(ctx.path["name"])
        await self.sim.member_hangup(conf, self._members(conf, ctx.path["member"]))
        return 204, None

    async def member_kick(self, ctx: Ctx) -> tuple[int, Body]:
        conf = self._conference(ctx.path["name"])
        ids = self._members(conf, ctx.path["member"])
        self.sim.member_kick(conf, ids)
        return 202, {"message": "kicked", "member_id": ctx.path["member"]}

    async def _member_flag(
        self, ctx: Ctx, attr: str, value: bool, message: str
    ) -> tuple[int, Body]:
        conf = self._conference(ctx.path["name"])
        for member_id in self._members(conf, ctx.path["member"]):
            setattr(conf.members[member_id], attr, value)
        if value:
            return 202, {"message": message, "member_id": ctx.path["member"]}
        return 204, None

    async def member_mute(self, ctx: Ctx) -> tuple[int, Body]:
        return await self._member_flag(ctx, "muted", True, "muted")

    async def member_unmute(self, ctx: Ctx) -> tuple[int, Body]:
        return await self._member_flag(ctx, "muted", False, "")

    async def member_deaf(self, ctx: Ctx) -> tuple[int, Body]:
        return await self._member_flag(ctx, "deaf", True, "deaf")

    async def member_undeaf(self, ctx: Ctx) -> tuple[int, Body]:
        return await self._member_flag(ctx, "deaf", False, "")

    async def member_play(self, ctx: Ctx) -> tuple[int, Body]:
        conf = self._conference(ctx.path["name"])
        ids = self._members(conf, ctx.path["member"])
        url = ctx.params.url("url", required=True)
        for member_id in ids:
            self.sim.play_to_call(conf.members[member_id].call_uuid, [url])
        return 202, {"message": "play queued into conference", "member_id": ctx.path["member"]}

    async def member_stop_play(self, ctx: Ctx) -> tuple[int, Body]:
        conf = self._conference(ctx.path["name"])
        for member_id in self._members(conf, ctx.path["member"]):
            self.sim.stop_play_to_call(conf.members[member_id].call_uuid)
        return 204, None

    async def member_speak(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        conf = self._conference(ctx.path["name"])
        ids = self._members(conf, ctx.path["member"])
        text = p.text("text", required=True)
        voice = p.choice("voice", "WOMAN", ("WOMAN", "MAN"))
        language = p.text("language", "en-US")
        for member_id in ids:
            self.sim.speak_to_call(conf.members[member_id].call_uuid, text, voice, language)
        return 202, {"message": "speak queued into conference", "member_id": ctx.path["member"]}

    async def member_stop_speak(self, ctx: Ctx) -> tuple[int, Body]:
        conf = self._conference(ctx.path["name"])
        for member_id in self._members(conf, ctx.path["member"]):
            self.sim.stop_speak_to_call(conf.members[member_id].call_uuid)
        return 204, None

    async def record_conference(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        conf = self._conference(ctx.path["name"])
        file_format = p.choice("file_format", "mp3", ("mp3", "wav"))
        recording_id, url = self.sim.start_group_recording(
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

    async def stop_record_conference(self, ctx: Ctx) -> tuple[int, Body]:
        conf = self._conference(ctx.path["name"])
        await self.sim.stop_group_recording(conf)
        return 204, None

    # --- multiparty calls -----------------------------------------------------------------

    def _mpc(self, mpc_id: str) -> MultiPartyCall:
        if not mpc_id.startswith(("uuid_", "name_")):
            raise ApiError(400, "the multiparty call must be given as uuid_<uuid> or name_<name>")
        mpc = self.store.find_mpc(mpc_id)
        if mpc is None:
            raise ApiError(404, _NOT_FOUND)
        return mpc

    def _participants(self, mpc: MultiPartyCall, member: str) -> list[Participant]:
        if member.lower() == "all":
            return mpc.active_participants()
        found = mpc.participants.get(member)
        if found is None or found.exit_time is not None:
            raise ApiError(404, _NOT_FOUND)
        return [found]

    async def list_mpcs(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        mpcs = list(self.store.mpcs.values())
        if p.has("friendly_name"):
            name = p.text("friendly_name")
            mpcs = [m for m in mpcs if m.friendly_name == name]
        if p.has("status"):
            status = p.choice("status", "", ("Active", "Initialized", "Ended"))
            mpcs = [m for m in mpcs if m.status == status]
        if p.has("termination_cause_code"):
            code = p.integer("termination_cause_code", 0)
            mpcs = [m for m in mpcs if m.termination_cause_code == code]
        preds = range_filters(p.data, "end_time", lambda m: m.end_time, parse_filter_time)
        preds += range_filters(
            p.data, "creation_time", lambda m: m.creation_time, parse_filter_time
        )
        mpcs = [m for m in mpcs if all(pred(m) for pred in preds)]
        mpcs.sort(key=lambda m: m.creation_time, reverse=True)
        keep = ["friendly_name", "status", "termination_cause_code",
                *range_keys("end_time"), *range_keys("creation_time")]  # fmt: skip
        page, meta = paginate(
            mpcs, p.data, self.store.uri("MultiPartyCall"), count_key="count", keep=keep
        )
        return 200, {"meta": meta, "objects": [m.to_json() for m in page]}

    async def get_mpc(self, ctx: Ctx) -> tuple[int, Body]:
        return 200, self._mpc(ctx.path["mpc"]).to_json()

    async def start_mpc(self, ctx: Ctx) -> tuple[int, Body]:
        mpc = self._mpc(ctx.path["mpc"])
        if ctx.params.text("status", required=True).lower() != "active":
            raise ApiError(400, "status must be active")
        if mpc.ended:
            raise ApiError(400, "the multiparty call has already ended")
        self.sim.mpc_start(mpc)
        return 204, None

    async def end_mpc(self, ctx: Ctx) -> tuple[int, Body]:
        mpc = self._mpc(ctx.path["mpc"])
        if mpc.ended:
            raise ApiError(404, _NOT_FOUND)
        await self.sim.mpc_end(mpc, "Hangup API Triggered", 3000)
        return 204, None

    async def mpc_record(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        mpc = self._mpc(ctx.path["mpc"])
        if mpc.status != "Active":
            raise ApiError(400, "the multiparty call is not active")
        if mpc.recording != "not-recording":
            raise ApiError(400, "the multiparty call is already being recorded")
        file_format = p.choice("file_format", "mp3", ("mp3", "wav"))
        recording_id, url = self.sim.start_group_recording(
            mpc,
            file_format=file_format,
            callback_url=p.url("recording_callback_url"),
            callback_method=p.method("recording_callback_method"),
        )
        return 200, {
            "message": f"MPC: {mpc.friendly_name} started recording",
            "recording_id": recording_id,
            "recording_url": url,
            "request_uuid": new_uuid(),
        }

    async def mpc_stop_record(self, ctx: Ctx) -> tuple[int, Body]:
        mpc = self._mpc(ctx.path["mpc"])
        if mpc.recording == "not-recording":
            raise ApiError(400, "the multiparty call is not being recorded")
        await self.sim.stop_group_recording(mpc)
        return 204, None

    async def mpc_pause_record(self, ctx: Ctx) -> tuple[int, Body]:
        mpc = self._mpc(ctx.path["mpc"])
        if mpc.recording != "recording":
            raise ApiError(400, "the multiparty call is not being recorded")
        self.sim.pause_group_recording(mpc, True)
        return 204, None

    async def mpc_resume_record(self, ctx: Ctx) -> tuple[int, Body]:
        mpc = self._mpc(ctx.path["mpc"])
        if mpc.recording != "paused":
            raise ApiError(400, "the multiparty call recording is not paused")
        self.sim.pause_group_recording(mpc, False)
        return 204, None

    async def mpc_add_participant(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        mpc_id = ctx.path["mpc"]
        if not mpc_id.startswith(("uuid_", "name_")):
            raise ApiError(400, "the multiparty call must be given as uuid_<uuid> or name_<name>")
        role = p.choice("role", "", ("Agent", "Supervisor", "Customer"))
        if not role:
            raise ApiError(400, "role parameter is required")
        from_number, to, call_uuid = p.text("from"), p.text("to"), p.text("call_uuid")
        if call_uuid and (from_number or to):
            raise ApiError(400, "cannot specify call_uuid when (from, to) is provided")
        if not call_uuid and not (from_number and to):
            raise ApiError(400, "specify either call_uuid or (from, to)")
        destinations = [d.strip() for d in to.split("<")] if to else []
        if len(destinations) > 1 and role != "Agent":
            raise ApiError(400, f"Multiple to values given for role {role}")
        if from_number and not (_NUMBER_RE.match(from_number) or _SIP_RE.match(from_number)):
            raise ApiError(400, "invalid from number")
        existing = self.store.find_mpc(mpc_id)
        if mpc_id.startswith("uuid_") and existing is None:
            raise ApiError(404, _NOT_FOUND)
        if existing is not None and existing.ended and mpc_id.startswith("uuid_"):
            raise ApiError(400, "the multiparty call has already ended")
        options = {
            "role": role.lower(),
            "coach_mode": p.flag("coach_mode", True),
            "mute": p.flag("mute", False),
            "hold": p.flag("hold", False),
            "start_mpc_on_enter": p.flag("start_mpc_on_enter", True),
            "end_mpc_on_exit": p.flag("end_mpc_on_exit", False),
            "stay_alone": p.flag("stay_alone", False),
            "max_participants": p.integer("max_participants", 10, 2, 10),
            "ring_timeout_s": p.integer("ring_timeout", 45, 1),
            "max_duration_s": p.integer("max_duration", 14400, 300, 28800),
            "caller_name": p.text("caller_name"),
            "call_status_callback_url": p.url("call_status_callback_url"),
            "call_status_callback_method": p.method("call_status_callback_method"),
        }
        if call_uuid:
            call = self.store.calls.get(call_uuid)
            if call is None or call.status != "in-progress":
                raise ApiError(404, _NOT_FOUND)
        _mpc, calls, request_uuid = await self.sim.mpc_add_participant(
            mpc_id, options, from_number, destinations, call_uuid or None
        )
        return 201, {
            "calls": [
                {"call_uuid": c.call_uuid, "from": c.from_number, "to": c.to_number} for c in calls
            ],
            "message": "add participant action initiated",
            "request_uuid": request_uuid,
        }

    async def mpc_list_participants(self, ctx: Ctx) -> tuple[int, Body]:
        mpc = self._mpc(ctx.path["mpc"])
        parts = list(mpc.participants.values())
        if ctx.params.has("call_uuid"):
            wanted = ctx.params.text("call_uuid")
            parts = [x for x in parts if x.call_uuid == wanted]
        path = self.store.uri("MultiPartyCall", f"uuid_{mpc.mpc_uuid}", "Participant")
        page, meta = paginate(parts, ctx.params.data, path, count_key="count", keep=["call_uuid"])
        return 200, {"meta": meta, "objects": [x.to_json() for x in page]}

    async def mpc_get_participant(self, ctx: Ctx) -> tuple[int, Body]:
        mpc = self._mpc(ctx.path["mpc"])
        found = mpc.participants.get(ctx.path["member"])
        if found is None:
            raise ApiError(404, _NOT_FOUND)
        return 200, found.to_json()

    async def mpc_update_participant(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        mpc = self._mpc(ctx.path["mpc"])
        member = ctx.path["member"]
        changes = {k: p.flag(k, False) for k in ("coach_mode", "mute", "hold") if p.has(k)}
        if not changes:
            raise ApiError(400, "update at least one of coach_mode, mute or hold")
        if member.lower() == "all" and "coach_mode" in changes:
            raise ApiError(400, "cannot specify coach_mode when updating all participants")
        for part in self._participants(mpc, member):
            for key, value in changes.items():
                setattr(part, key, value)
        texts = {
            "coach_mode": "coach_mode enable/disable",
            "mute": "mute/unmute member(s)",
            "hold": "hold/unhold member(s)",
        }
        message = {k: f"MPC: {mpc.friendly_name} {texts[k]} succeeded" for k in changes}
        return 202, {"message": message, "request_uuid": new_uuid()}

    async def mpc_kick(self, ctx: Ctx) -> tuple[int, Body]:
        mpc = self._mpc(ctx.path["mpc"])
        parts = self._participants(mpc, ctx.path["member"])
        await self.sim.mpc_kick(mpc, parts)
        return 204, None

    async def mpc_member_record(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        mpc = self._mpc(ctx.path["mpc"])
        parts = self._participants(mpc, ctx.path["member"])
        file_format = p.choice("file_format", "mp3", ("mp3", "wav"))
        recording_id, url = self.sim.start_call_recording(
            self.store.calls[parts[0].call_uuid],
            time_limit_s=p.integer("max_duration", 14400, 1),
            file_format=file_format,
            stereo=False,
            callback_url=p.url("recording_callback_url"),
            callback_method=p.method("recording_callback_method"),
            mpc=mpc,
        )
        return 200, {
            "message": f"MPC: {mpc.friendly_name} participant recording started",
            "recording_id": recording_id,
            "recording_url": url,
            "request_uuid": new_uuid(),
        }

    async def mpc_member_stop_record(self, ctx: Ctx) -> tuple[int, Body]:
        mpc = self._mpc(ctx.path["mpc"])
        for part in self._participants(mpc, ctx.path["member"]):
            call = self.store.calls.get(part.call_uuid)
            if call is not None and not call.ended:
                await self.sim.stop_call_recording(call, None)
        return 204, None

    async def mpc_member_record_noop(self, ctx: Ctx) -> tuple[int, Body]:
        mpc = self._mpc(ctx.path["mpc"])
        self._participants(mpc, ctx.path["member"])
        return 204, None

    async def mpc_member_play(self, ctx: Ctx) -> tuple[int, Body]:
        mpc = self._mpc(ctx.path["mpc"])
        parts = self._participants(mpc, ctx.path["member"])
        url = ctx.params.url("url", required=True)
        for part in parts:
            self.sim.play_to_call(part.call_uuid, [url])
        return 202, {
            "message": "play queued into MPC",
            "mpcMemberId": [x.member_id for x in parts],
            "mpcName": mpc.friendly_name,
        }

    async def mpc_member_stop_play(self, ctx: Ctx) -> tuple[int, Body]:
        mpc = self._mpc(ctx.path["mpc"])
        for part in self._participants(mpc, ctx.path["member"]):
            self.sim.stop_play_to_call(part.call_uuid)
        return 204, None

    # --- endpoints ------------------------------------------------------------------------

    def _endpoint(self, endpoint_id: str) -> Endpoint:
        endpoint = self.store.endpoints.get(endpoint_id)
        if endpoint is None:
            raise ApiError(404, _NOT_FOUND)
        return endpoint

    async def create_endpoint(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        username = p.text("username", required=True)
        password = p.text("password", required=True)
        alias = p.text("alias", required=True)
        if not _USERNAME_RE.match(username):
            raise ApiError(
                400, "username must start with a letter and have 1 to 25 letters or digits"
            )
        if len(password) < 5:
            raise ApiError(400, "password must be at least 5 characters")
        # Plivo makes usernames unique by appending 12 digits (the creation time).
        stamp = int(time.time())
        taken = {e.username for e in self.store.endpoints.values()}
        while (full := username + time.strftime("%y%m%d%H%M%S", time.gmtime(stamp))) in taken:
            stamp += 1
        endpoint_id = str(10**13 + len(self.store.endpoints) * 7919 + int(time.time()) % 10**6)
        while endpoint_id in self.store.endpoints:
            endpoint_id = str(int(endpoint_id) + 1)
        endpoint = Endpoint(
            self.auth_id, endpoint_id, full, password, alias, p.text("app_id") or None
        )
        self.store.endpoints[endpoint_id] = endpoint
        return 201, {
            "alias": alias,
            "endpoint_id": endpoint_id,
            "message": "created",
            "username": full,
        }

    async def list_endpoints(self, ctx: Ctx) -> tuple[int, Body]:
        endpoints = list(self.store.endpoints.values())
        page, meta = paginate(endpoints, ctx.params.data, self.store.uri("Endpoint"))
        return 200, {"meta": meta, "objects": [e.to_json() for e in page]}

    async def get_endpoint(self, ctx: Ctx) -> tuple[int, Body]:
        return 200, self._endpoint(ctx.path["endpoint_id"]).to_json()

    async def update_endpoint(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        endpoint = self._endpoint(ctx.path["endpoint_id"])
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

    async def delete_endpoint(self, ctx: Ctx) -> tuple[int, Body]:
        self._endpoint(ctx.path["endpoint_id"])
        del self.store.endpoints[ctx.path["endpoint_id"]]
        return 204, None

    # --- verified caller IDs --------------------------------------------------------------

    async def initiate_verification(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        number = p.text("phone_number", required=True)
        if not _NUMBER_RE.match(number):
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
        self.store.verifications[verification.verification_uuid] = verification
        log.info(
            "emulator: verification code for %s is %s (sent by %s)",
            number, self.settings.verification_otp, channel,
        )  # fmt: skip
        return 201, {
            "message": f"Verification code is sent to number {number} which is valid for "
            "15 minutes",
            "verification_uuid": verification.verification_uuid,
        }

    async def verify_caller_id(self, ctx: Ctx) -> tuple[int, Body]:
        verification = self.store.verifications.get(ctx.path["verification_uuid"])
        if verification is None:
            raise ApiError(404, _NOT_FOUND)
        otp = ctx.params.text("otp", required=True)
        if verification.expired:
            raise ApiError(400, "the verification code has expired")
        if not hmac.compare_digest(otp.encode(), self.settings.verification_otp.encode()):
            raise ApiError(400, "invalid otp")
        del self.store.verifications[verification.verification_uuid]
        verified = VerifiedCallerId(
            phone_number=verification.phone_number,
            alias=verification.alias,
            channel=verification.channel,
            country=verification.country,
            subaccount=verification.subaccount,
            verification_uuid=verification.verification_uuid,
        )
        self.store.caller_ids[digits(verified.phone_number)] = verified
        body = verified.to_json()
        return 201, {k: body[k] for k in (
            "alias", "channel", "country", "created_at", "phone_number", "verification_uuid"
        )}  # fmt: skip

    def _caller_id(self, number: str) -> VerifiedCallerId:
        found = self.store.caller_ids.get(digits(number))
        if found is None:
            raise ApiError(404, _NOT_FOUND)
        return found

    async def get_caller_id(self, ctx: Ctx) -> tuple[int, Body]:
        return 200, self._caller_id(ctx.path["phone_number"]).to_json()

    async def update_caller_id(self, ctx: Ctx) -> tuple[int, Body]:
        found = self._caller_id(ctx.path["phone_number"])
        found.alias = ctx.params.text("alias", required=True)
        if ctx.params.has("subaccount"):
            found.subaccount = ctx.params.text("subaccount")
        found.modified = time.time()
        return 200, found.to_json()

    async def delete_caller_id(self, ctx: Ctx) -> tuple[int, Body]:
        found = self._caller_id(ctx.path["phone_number"])
        del self.store.caller_ids[digits(found.phone_number)]
        return 204, None

    async def list_caller_ids(self, ctx: Ctx) -> tuple[int, Body]:
        p = ctx.params
        items = list(self.store.caller_ids.values())
        for key in ("country", "alias", "subaccount"):
            if p.has(key):
                value = p.text(key)
                items = [i for i in items if getattr(i, key) == value]
        items.sort(key=lambda i: i.created, reverse=True)
        page, meta = paginate(
            items,
            p.data,
            self.store.uri("VerifiedCallerId"),
            keep=["country", "alias", "subaccount"],
        )
        return 200, {"meta": meta, "objects": [i.to_json() for i in page]}


def create_app(settings: EmulatorSettings, simulator: Simulator) -> Starlette:
    """The emulated Plivo REST API as an ASGI app, acting on ``simulator`` and its store."""
    api = _Api(settings, simulator)
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", api.dispatch, methods=methods)])
