"""Audio streams on live calls (``Call/{call_uuid}/Stream/``).

Starting a stream is not retried (a repeat to the same URL answers 400 "already active",
hiding the first success); listing, reading and stopping are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from . import _request as r
from . import _validate as v
from ._ops import AsyncResource, SyncResource, aop, op
from ._request import Request
from .models import Page, Stream, StreamStarted

__all__ = ["AsyncStreams", "Streams"]

ContentType = Literal["audio/x-l16;rate=8000", "audio/x-l16;rate=16000", "audio/x-mulaw;rate=8000"]


def _start(
    call_uuid: str,
    service_url: str,
    *,
    bidirectional: bool | None = None,
    audio_track: Literal["inbound", "outbound", "both"] | None = None,
    stream_timeout: int | None = None,
    status_callback_url: str | None = None,
    status_callback_method: Literal["GET", "POST"] | None = None,
    content_type: ContentType | None = None,
    extra_headers: Mapping[str, str] | str | None = None,
) -> Request[StreamStarted]:
    """Stream a live call's audio to the WebSocket ``service_url`` (``ws://``/``wss://``).

    A ``bidirectional`` stream carries only the ``inbound`` track and lets the server play
    audio back. ``extra_headers`` (``{"k": "v"}`` or ``"k=v,k2=v2"``, [A-Za-z0-9] only,
    at most 512 bytes) come back in the stream's ``start`` message.
    """
    v.ws_url("service_url", service_url)
    v.stream_options(
        bidirectional=bidirectional,
        audio_track=audio_track,
        content_type=content_type,
        names=("bidirectional", "audio_track", "content_type"),
    )
    return r.post(
        r.path("Call", ("call_uuid", call_uuid), "Stream"),
        r.model(StreamStarted),
        {
            "service_url": service_url,
            "bidirectional": bidirectional,
            "audio_track": audio_track,
            "stream_timeout": None
            if stream_timeout is None
            else v.integer("stream_timeout", stream_timeout, 1),
            "status_callback_url": None
            if status_callback_url is None
            else v.url("status_callback_url", status_callback_url),
            "status_callback_method": None
            if status_callback_method is None
            else v.method("status_callback_method", status_callback_method),
            "content_type": content_type,
            "extra_headers": None
            if extra_headers is None
            else v.extra_headers("extra_headers", extra_headers),
        },
    )


def _list(call_uuid: str) -> Request[Page[Stream]]:
    """The streams of a call."""
    return r.get(r.path("Call", ("call_uuid", call_uuid), "Stream"), r.page(Stream))


def _get(call_uuid: str, stream_id: str) -> Request[Stream]:
    """One stream of a call."""
    return r.get(
        r.path("Call", ("call_uuid", call_uuid), "Stream", ("stream_id", stream_id)),
        r.model(Stream),
    )


def _stop(call_uuid: str, stream_id: str) -> Request[None]:
    """Stop one stream. One that is not active gives :class:`BadRequestError`."""
    return r.delete(r.path("Call", ("call_uuid", call_uuid), "Stream", ("stream_id", stream_id)))


def _stop_all(call_uuid: str) -> Request[None]:
    """Stop every stream of a call."""
    return r.delete(r.path("Call", ("call_uuid", call_uuid), "Stream"))


class Streams(SyncResource):
    """``client.streams``: audio streams of live calls."""

    __slots__ = ()
    start = op(_start)
    list = op(_list)
    get = op(_get)
    stop = op(_stop)
    stop_all = op(_stop_all)


class AsyncStreams(AsyncResource):
    """``client.streams``: audio streams of live calls."""

    __slots__ = ()
    start = aop(_start)
    list = aop(_list)
    get = aop(_get)
    stop = aop(_stop)
    stop_all = aop(_stop_all)
