"""Client of the Plivo Voice REST API, blocking and asyncio, on httpx.

::

    async with AsyncPlivoClient(base_url=emulator.base_url) as plivo:
        call = await plivo.calls.make("14155550100", "14155550123", "https://example.com/answer")
        async for rec in plivo.recordings.iter(call_uuid="..."):
            await plivo.recordings.download(rec, f"/tmp/{rec.recording_id}.mp3")

:class:`PlivoClient` has the same resources and methods, blocking. Resources:
``calls``, ``streams``, ``recordings``, ``conferences``, ``multiparty_calls``,
``endpoints``, ``verified_caller_ids``. Results are typed objects from
:mod:`streamserver.rest.models` (each keeps its JSON in ``.raw``); lists are
:class:`~streamserver.rest.models.Page` objects and ``iter(...)`` walks every page.
Errors derive from :class:`PlivoError` (see :mod:`streamserver.rest.errors`).

Retries (see :class:`RetryPolicy`) repeat a request after a 429, a 500/502/503/504 or a
transport error only when doing it twice cannot do something twice:

* always: GET, DELETE;
* POSTs that set a state: conference member mute/deaf/kick, multiparty start,
  recording pause/resume and participant update, endpoint update, caller-id update;
* never (unless ``retry=True`` on ``calls.make`` or ``retry_on_post_call``): making a call;
* never: other POSTs (transfer, play, speak, DTMF, record, stream start, add participant,
  endpoint create, caller-id verification) — a repeat would redo the action.

A repeated DELETE may answer 404 if the first one did arrive.

Every HTTP attempt logs one INFO line on the ``streamserver.rest`` logger — method, path
below the account root, status (or the transport error's name), duration in ms, attempt
number — also passed as ``extra`` fields. Credentials never appear in logs, reprs or
exceptions. Bad arguments raise :class:`ValueError` naming the parameter before anything
is sent.

The answer-XML builder is :mod:`streamserver.rest.xml`.
"""

from __future__ import annotations

from ._client import DEFAULT_BASE_URL, AsyncPlivoClient, PlivoClient
from ._policy import RateLimit, RetryPolicy
from .errors import (
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    InvalidResponseError,
    MethodNotAllowedError,
    NotFoundError,
    PlivoAPIError,
    PlivoError,
    PlivoTimeoutError,
    PlivoTransportError,
    RateLimitError,
    ServerError,
)
from .models import Page

__all__ = [
    "DEFAULT_BASE_URL",
    "AsyncPlivoClient",
    "AuthenticationError",
    "BadRequestError",
    "ForbiddenError",
    "InvalidResponseError",
    "MethodNotAllowedError",
    "NotFoundError",
    "Page",
    "PlivoAPIError",
    "PlivoClient",
    "PlivoError",
    "PlivoTimeoutError",
    "PlivoTransportError",
    "RateLimit",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
]
