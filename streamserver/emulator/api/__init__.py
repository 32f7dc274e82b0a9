"""The emulated Plivo Voice REST API: a Starlette app over the simulator and its store.

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

One module per resource, as in :mod:`streamserver.rest`: :mod:`.calls`, :mod:`.streams`,
:mod:`.recordings`, :mod:`.conferences`, :mod:`.multiparty`, :mod:`.endpoints`,
:mod:`.caller_ids`; :mod:`.common` holds the gate, parameters, replies and errors. Recording
files are served without credentials at their ``recording_url``, and
``GET /emulator/Stream/{stream_id}/heard.wav`` (the emulator's own route) returns what the
caller heard on a bidirectional stream once it has ended.

Behaviour (ringing, audio, streams, recordings) is the
:class:`~streamserver.emulator.simulator.Simulator`'s; this package validates and shapes.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router

from ..settings import EmulatorSettings
from ..simulator import Simulator
from . import caller_ids, calls, conferences, endpoints, multiparty, recordings, streams
from .common import METHODS, NOT_FOUND, Dispatcher, error

__all__ = ["create_app"]

_RESOURCES = [
    *calls.RESOURCES,
    *streams.RESOURCES,
    *recordings.RESOURCES,
    *conferences.RESOURCES,
    *multiparty.RESOURCES,
    *endpoints.RESOURCES,
    *caller_ids.RESOURCES,
]


def create_app(settings: EmulatorSettings, simulator: Simulator) -> Starlette:
    """The emulated Plivo REST API as an ASGI app, acting on ``simulator`` and its store."""
    dispatcher = Dispatcher(settings, simulator)
    auth_id = settings.auth_id

    async def about(request: Request) -> Response:
        return JSONResponse(
            {
                "emulator": "streamserver local Plivo emulator",
                "api_base": f"/v1/Account/{auth_id}/",
                "auth_id": auth_id,
            }
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            return error(405, f"method {request.method} not allowed on this resource")
        return error(404, NOT_FOUND)

    account = Router(
        dispatcher.routes(_RESOURCES), redirect_slashes=False, default=dispatcher.unknown_path
    )
    routes = [
        Route("/", about, methods=METHODS),
        *recordings.file_routes(simulator.store, auth_id),
        *streams.heard_routes(simulator),
        Route("/v1/Account/{auth_id}", dispatcher.unknown, methods=METHODS),
        Mount("/v1/Account/{auth_id}", app=account),
    ]
    handlers: dict[Any, Any] = {HTTPException: http_error}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.router.redirect_slashes = False  # "/x/" and "/x" are the same resource, never a 307
    return app
