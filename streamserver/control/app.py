"""The control app: a Starlette app serving answer XML, Plivo's signed callbacks and ``/streams``
(the endpoints and the signature rules are in the package docstring)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..asgi import AsgiHandoff, AsgiServer, is_loopback, url_host
from ..logs import LogBudget, clean
from ..rest import xml
from ..signature import HEADER_MA_V3, HEADER_NONCE_V3, HEADER_V3, NonceCache, verify_v3
from .local import CALLBACK_TOPIC, Callback, CallbackKind, deliver_callback, stream_rows
from .settings import ControlSettings

if TYPE_CHECKING:
    from ..net import StreamServer

__all__ = ["CALLBACK_TOPIC", "Callback", "CallbackKind", "ControlApp", "WorkerPeers"]

log = logging.getLogger("streamserver.control")

_MAX_BODY_BYTES = 65536  # Plivo's callbacks are a few hundred bytes of form fields
_FORM = "application/x-www-form-urlencoded"


class WorkerPeers(Protocol):
    """The other workers of this host (:class:`streamserver.worker_peers.Peers`)."""

    worker: str

    async def streams(self) -> list[dict[str, Any]]: ...

    async def deliver(self, cb: Callback) -> int: ...


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        # An unread body is not waited for: close the connection after the reply.
        close = {"connection": "close"} if self.status == 413 else None
        return PlainTextResponse(self.message + "\n", self.status, headers=close)


def _first(params: Mapping[str, str], *names: str) -> str:
    for n in names:
        value = params.get(n)
        if value:
            return value
    return ""


async def _read_body(request: Request, limit: int, rejected: MutableMapping[str, int]) -> bytes:
    """The body, refused with 413 by its ``Content-Length`` before a byte is read, or as
    soon as what arrives passes ``limit`` (never more than ``limit`` + one chunk held)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
        rejected["body_too_large"] += 1
        raise _BadRequest(413, f"request body over {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            rejected["body_too_large"] += 1
            raise _BadRequest(413, f"request body over {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


class ControlApp:
    """The control app of one :class:`~streamserver.net.StreamServer`.

    ``await start()`` binds ``settings.host:port`` (0: any free port) and serves in the
    running loop; ``await aclose()`` stops it. Credentials and metrics are the server's.
    ``add_listener(fn)`` calls ``fn(callback)`` for every verified callback (the demo and
    tests use it to know when Plivo has reported something).
    """

    def __init__(self, server: StreamServer, settings: ControlSettings) -> None:
        self.server = server
        self.settings = settings
        self.metrics = server.metrics
        plivo = server.settings.plivo
        tokens = [t for t in [plivo.auth_token, *plivo.extra_auth_tokens] if t]
        self._tokens = tokens if settings.verify_signatures else []
        # The server's replay cache: with [server] nonce_dir, a callback replayed after a
        # restart is refused too.
        self._nonces: NonceCache | None = server.nonces() if self._tokens else None
        self._logs = LogBudget()  # a flood of refused requests: a few lines and a summary
        self._listeners: list[Callable[[Callback], None]] = []
        #: The host's other workers (``serve --workers N``): /streams lists their streams
        #: too and callbacks reach their streams. None: this process is the host.
        self.peers: WorkerPeers | None = None
        self._http: AsgiServer | None = None
        self.port = 0
        routes = [
            Route("/answer", self._answer, methods=["GET", "POST"]),
            Route("/callbacks/stream", self._stream_cb, methods=["GET", "POST"]),
            Route("/callbacks/hangup", self._hangup_cb, methods=["GET", "POST"]),
            Route("/callbacks/recording", self._recording_cb, methods=["GET", "POST"]),
            Route("/healthz", self._healthz, methods=["GET"]),
        ]
        if settings.streams_endpoint:
            routes.append(Route("/streams", self._streams, methods=["GET"]))
        self.app = Starlette(routes=routes)
        self._handoff: AsgiHandoff | None = None
        if settings.shared:  # served on the stream server's port: it hands these paths over
            self._handoff = AsgiHandoff(
                self.app, limits=settings.http_limits, rejected=self.metrics.control_rejected
            )
            server.http_app = self._handoff
            server.gate.http_paths = frozenset(r.path for r in routes if r.path != "/healthz")

    # -- URLs ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://host:port`` as bound (after :meth:`start`); on a shared port, the
        stream server's (``https://`` with its TLS)."""
        if self.settings.shared:
            scheme = "https" if self.server.tls is not None else "http"
            return f"{scheme}://{url_host(self.server.settings.server.host)}:{self.server.port}"
        return f"http://{url_host(self.settings.host)}:{self.port}"

    @property
    def public_url(self) -> str:
        """How Plivo reaches this app: ``[control] public_url``, else :attr:`base_url`."""
        return (self.settings.public_url or self.base_url).rstrip("/")

    @property
    def exposed(self) -> bool:
        """Whether others than this machine may reach the app: its address (or the
        server's, on a shared port) or its public URL is not loopback, and
        ``open_access`` is off."""
        if self.settings.open_access:
            return False
        host = self.server.settings.server.host if self.settings.shared else self.settings.host
        public = urlsplit(self.public_url).hostname or ""
        return not (is_loopback(host) and is_loopback(public))

    @property
    def answer_url(self) -> str:
        """The answer URL to give Plivo when making a call."""
        return f"{self.public_url}/answer"

    def callback_url(self, kind: CallbackKind) -> str:
        """Where Plivo should send ``kind`` callbacks (e.g. a call's ``hangup_url``)."""
        return f"{self.public_url}/callbacks/{kind}"

    @property
    def stream_url(self) -> str:
        """The WebSocket URL the answer XML streams to (server public URL + route)."""
        public = self.server.settings.server.public_url
        route = self.settings.route
        if not public:
            host = url_host(self.server.settings.server.host)
            scheme = "wss" if self.server.tls is not None else "ws"
            return f"{scheme}://{host}:{self.server.port}{route}"
        parts = urlsplit(public)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}{route}"

    def answer_xml(self, stream_url: str | None = None) -> str:
        """The answer document: one ``<Stream>`` to ``stream_url`` (default
        :attr:`stream_url`). Raises ValueError for a URL Plivo would not accept."""
        status = self.callback_url("stream") if self.settings.status_callback else None
        verb = self.settings.stream_verb(stream_url or self.stream_url, status)
        return xml.Response(verb).to_xml(declaration=True)

    def add_listener(self, fn: Callable[[Callback], None]) -> None:
        """Call ``fn`` for every verified callback, after the streams were notified."""
        self._listeners.append(fn)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and serve (raises OSError when the port cannot be bound); on a shared port,
        the stream server (started first) already serves it."""
        s = self.settings
        if s.shared:
            self.port = self.server.port
        else:
            http = AsgiServer(
                self.app,
                s.host,
                int(s.port),
                limits=s.http_limits,
                rejected=self.metrics.control_rejected,
            )
            await http.start()  # raises OSError when the port cannot be bound
            self._http = http
            self.port = http.port
        if self._tokens:
            check = "signatures verified"
        elif s.verify_signatures:
            check = "signatures NOT verified: no plivo.auth_token / PLIVO_AUTH_TOKEN"
        else:
            check = "signatures NOT verified: verify_signatures = false"
        log.info(
            "control app on %s (answer URL %s -> %s; %s)",
            self.base_url,
            self.answer_url,
            self.stream_url,
            check,
        )
        if not self._tokens and self.exposed:
            log.warning(
                "control app: %s is not loopback and no signature is checked: unsigned "
                "callbacks and /answer get 403 and /streams answers loopback clients only; "
                "set plivo.auth_token (PLIVO_AUTH_TOKEN), or control.open_access = true to "
                "accept them from anyone",
                self.public_url,
            )
        elif not self._tokens:
            log.warning("control app: callbacks are accepted without checking who sent them")
        host = self.server.settings.server.host if s.shared else s.host
        if not self.server.settings.server.public_url and host != "127.0.0.1":
            log.warning(
                "control app: server.public_url is not set; the answer XML streams to %s, "
                "which only works on this machine",
                self.stream_url,
            )

    async def aclose(self) -> None:
        """Finish in-flight requests (2 s at most) and stop serving."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._handoff is not None:
            await self._handoff.aclose()

    async def __aenter__(self) -> ControlApp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- requests --------------------------------------------------------------------------

    async def _params(self, request: Request) -> dict[str, list[str]]:
        """The request's parameters: the query for GET, the form body for POST."""
        if request.method == "GET":
            return {}
        body = await _read_body(request, _MAX_BODY_BYTES, self.metrics.control_rejected)
        if not body.strip():
            return {}
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != _FORM:
            raise _BadRequest(415, f"expected a {_FORM} body, got {ctype or 'no content type'}")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _BadRequest(400, "the form body is not UTF-8") from None
        grouped: dict[str, list[str]] = {}
        for key, value in parse_qsl(text, keep_blank_values=True):
            grouped.setdefault(key, []).append(value)
        return grouped

    def _verify(self, request: Request, body: Mapping[str, list[str]]) -> str | None:
        """Why the request's signature is not acceptable, or None when it is (or unchecked)."""
        if not self._tokens:
            if self.exposed:
                self.metrics.control_rejected["unsigned"] += 1
                return (
                    "unsigned request refused on a public address (set plivo.auth_token / "
                    "PLIVO_AUTH_TOKEN, or control.open_access = true)"
                )
            return None
        headers = request.headers
        offered = [v for v in (headers.get(HEADER_V3), headers.get(HEADER_MA_V3)) if v]
        if not offered:
            return f"missing {HEADER_V3} header"
        nonce = (headers.get(HEADER_NONCE_V3) or "").strip()
        if not nonce:
            return f"missing {HEADER_NONCE_V3} header"
        # Plivo signs the URL it called: ours as configured, plus the query it carried.
        url = self.public_url + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        method = request.method
        if not any(verify_v3(url, nonce, sig, self._tokens, body, method) for sig in offered):
            log.debug("signature checked over %s %s", method, url)
            return "signature mismatch"
        if self._nonces is not None and self._nonces.seen(nonce):
            return "replayed nonce"
        return None

    async def _read(self, request: Request) -> dict[str, str]:
        """Parameters of a verified request (last value of a repeated key); raises
        :class:`_BadRequest` for a bad body or signature."""
        body = await self._params(request)
        problem = self._verify(request, body)
        if problem is not None:
            self.metrics.callbacks["rejected"] += 1
            self._logs.log(
                log,
                logging.WARNING,
                "rejected",
                "rejected %s %s from %s: %s%s",
                clean(request.method, 16),
                clean(request.url.path),
                request.client.host if request.client else "?",
                problem,
                f" (checked over {self.public_url}{clean(request.url.path)}: is control.public_url "
                "the URL Plivo calls?)"
                if problem == "signature mismatch"
                else "",
            )
            raise _BadRequest(403, f"signature check failed: {problem}")
        params = dict(request.query_params)
        params.update({k: v[-1] for k, v in body.items()})
        return params

    async def _answer(self, request: Request) -> Response:
        try:
            params = await self._read(request)
        except _BadRequest as exc:
            return exc.response()
        if params.get("Event") == "Hangup":
            # Without a hangup_url, Plivo sends the hangup callback to the answer URL.
            return await self._deliver("hangup", params)
        override = request.query_params.get("stream_url")
        try:
            document = self.answer_xml(override or None)
        except ValueError as exc:
            return PlainTextResponse(f"stream_url: {exc}\n", 400)
        self.metrics.callbacks["answer"] += 1
        log.info(
            "answer for call %s (%s -> %s): stream to %s",
            clean(params.get("CallUUID")),
            clean(params.get("From"), 40),
            clean(params.get("To"), 40),
            clean(override or self.stream_url, 300),
        )
        return Response(document, media_type="application/xml")

    async def _stream_cb(self, request: Request) -> Response:
        return await self._callback(request, "stream")

    async def _hangup_cb(self, request: Request) -> Response:
        return await self._callback(request, "hangup")

    async def _recording_cb(self, request: Request) -> Response:
        return await self._callback(request, "recording")

    async def _callback(self, request: Request, kind: CallbackKind) -> Response:
        try:
            params = await self._read(request)
        except _BadRequest as exc:
            return exc.response()
        return await self._deliver(kind, params)

    async def _deliver(self, kind: CallbackKind, params: dict[str, str]) -> Response:
        call_uuid = _first(params, "CallUUID", "call_uuid", "ALegUUID")
        stream_id = _first(params, "StreamID", "stream_id", "StreamId")
        event = params.get("Event", "")
        if kind == "stream" and not (call_uuid or stream_id):
            return PlainTextResponse("missing CallUUID or StreamID\n", 400)
        if kind == "hangup" and not call_uuid:
            return PlainTextResponse("missing CallUUID\n", 400)
        if kind == "recording" and not _first(params, "recording_id", "RecordingID"):
            return PlainTextResponse("missing recording_id\n", 400)
        self.metrics.callbacks[kind] += 1
        self._log(kind, event, call_uuid, stream_id, params)
        cb = Callback(kind, event, call_uuid, stream_id, params, 0, time.time())
        delivered = deliver_callback(self.server, cb)
        if self.peers is not None:
            delivered += await self.peers.deliver(cb)
        cb = Callback(kind, event, call_uuid, stream_id, params, delivered, cb.received_at)
        for fn in list(self._listeners):
            try:
                fn(cb)
            except Exception:
                log.exception("callback listener failed")
        return JSONResponse({"ok": True, "delivered": delivered})

    def _log(
        self,
        kind: CallbackKind,
        event: str,
        call_uuid: str,
        stream_id: str,
        params: Mapping[str, str],
    ) -> None:
        if kind == "stream":
            error = params.get("Error")
            log.info(
                "stream %s of call %s: %s%s",
                clean(stream_id or None),
                clean(call_uuid or None),
                clean(event or "status", 40),
                f" ({clean(error, 300)})" if error else "",
            )
        elif kind == "hangup":
            log.info(
                "call %s ended: %s (%s, %s) after %s s",
                clean(call_uuid),
                clean(params.get("HangupCauseName") or params.get("HangupCause"), 64),
                clean(params.get("HangupCauseCode"), 16),
                clean(params.get("HangupSource"), 32),
                clean(params.get("Duration"), 16),
            )
        else:
            log.info(
                "recording %s of call %s ready: %s (%s ms)",
                clean(_first(params, "recording_id", "RecordingID")),
                clean(call_uuid or None),
                clean(_first(params, "record_url", "RecordUrl") or None, 300),
                clean(_first(params, "recording_duration_ms", "RecordingDurationMs") or None, 16),
            )

    async def _streams(self, request: Request) -> Response:
        client = request.client.host if request.client else ""
        if self.exposed and not is_loopback(client):
            self.metrics.control_rejected["streams_not_local"] += 1
            return PlainTextResponse(
                "GET /streams answers loopback clients only on a public address "
                "(control.open_access = true serves it to anyone)\n",
                403,
            )
        rows = stream_rows(self.server)
        if self.peers is not None:
            for row in rows:
                row["worker"] = self.peers.worker
            rows.extend(await self.peers.streams())
        rows.sort(key=lambda r: r.get("started_at") or 0.0)
        body = json.dumps({"count": len(rows), "streams": rows}, indent=2)
        return Response(body + "\n", media_type="application/json")

    async def _healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")
