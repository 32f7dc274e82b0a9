"""Calls: make, inspect, control and hang up phone calls (``Call/``, ``Request/``).

Retry safety: reads and hang-ups (GET, DELETE) are repeated after a transient failure.
Creating a call is not — a 5xx or a timeout may arrive after Plivo already dialled — unless
``retry=True`` is passed or the client's ``RetryPolicy(retry_on_post_call=True)``. Transfer,
play, speak, DTMF and record are never repeated: a repeat would redo the action.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from . import _request as r
from . import _validate as v
from ._ops import AsyncResource, SyncResource, aop, apager, op, pager
from ._request import Request
from .models import ApiResponse, Call, CallCreated, CallIds, LiveCall, Page, RecordingStarted

__all__ = ["AsyncCalls", "Calls"]

Method = Literal["GET", "POST"]
Legs = Literal["aleg", "bleg", "both"]
TimeFilter = str | datetime | None


def _method(name: str, value: str | None) -> str | None:
    return None if value is None else v.method(name, value)


def _url(name: str, value: str | None) -> str | None:
    return None if value is None else v.url(name, value)


def _sip_headers(value: Mapping[str, str] | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ",".join(f"{k}={val}" for k, val in value.items())


def _make(
    from_: str,
    to: str | Iterable[str],
    answer_url: str,
    *,
    answer_method: Method | None = None,
    ring_url: str | None = None,
    ring_method: Method | None = None,
    hangup_url: str | None = None,
    hangup_method: Method | None = None,
    fallback_url: str | None = None,
    fallback_method: Method | None = None,
    caller_name: str | None = None,
    send_digits: str | None = None,
    send_on_preanswer: bool | None = None,
    time_limit: int | None = None,
    hangup_on_ring: int | None = None,
    machine_detection: Literal["true", "hangup"] | bool | None = None,
    machine_detection_time: int | None = None,
    machine_detection_url: str | None = None,
    machine_detection_method: Method | None = None,
    sip_headers: Mapping[str, str] | str | None = None,
    ring_timeout: int | None = None,
    parent_call_uuid: str | None = None,
    error_if_parent_not_found: bool | None = None,
    extra: Mapping[str, Any] | None = None,
    retry: bool | None = None,
) -> Request[CallCreated]:
    """Place a call from ``from_`` to ``to`` (several destinations: a list, or ``a<b``);
    Plivo fetches ``answer_url`` for the call's XML when it is answered.

    Not retried unless ``retry=True`` (or the policy's ``retry_on_post_call``): a failed
    attempt may still have dialled. ``extra`` passes parameters this method does not name.
    """
    to_s = r.joined("to", to, "<")
    v.text("from_", from_)
    if from_ in to_s.split("<"):
        raise ValueError("to must not contain from_")
    if isinstance(machine_detection, bool):
        md: str | None = "true" if machine_detection else None
    else:
        md = (
            None
            if machine_detection is None
            else v.choice("machine_detection", machine_detection, ("true", "hangup"))
        )
    req = r.post(
        r.path("Call"),
        r.model(CallCreated),
        {
            "from": from_,
            "to": to_s,
            "answer_url": v.url("answer_url", answer_url),
            "answer_method": _method("answer_method", answer_method),
            "ring_url": _url("ring_url", ring_url),
            "ring_method": _method("ring_method", ring_method),
            "hangup_url": _url("hangup_url", hangup_url),
            "hangup_method": _method("hangup_method", hangup_method),
            "fallback_url": _url("fallback_url", fallback_url),
            "fallback_method": _method("fallback_method", fallback_method),
            "caller_name": None
            if caller_name is None
            else v.text("caller_name", caller_name, max_len=50),
            "send_digits": send_digits,
            "send_on_preanswer": send_on_preanswer,
            "time_limit": None if time_limit is None else v.integer("time_limit", time_limit, 1),
            "hangup_on_ring": None
            if hangup_on_ring is None
            else v.integer("hangup_on_ring", hangup_on_ring, 1),
            "machine_detection": md,
            "machine_detection_time": machine_detection_time,
            "machine_detection_url": _url("machine_detection_url", machine_detection_url),
            "machine_detection_method": _method(
                "machine_detection_method", machine_detection_method
            ),
            "sip_headers": _sip_headers(sip_headers),
            "ring_timeout": None
            if ring_timeout is None
            else v.integer("ring_timeout", ring_timeout, 1),
            "parent_call_uuid": parent_call_uuid,
            "error_if_parent_not_found": error_if_parent_not_found,
        },
        extra=extra,
    )
    return Request(req.method, req.path, req.parse, json=req.json, retry=retry, creates_call=True)


def _get(call_uuid: str) -> Request[Call]:
    """The detail record (CDR) of an ended call."""
    return r.get(r.path("Call", ("call_uuid", call_uuid)), r.model(Call))


def _list(
    *,
    call_direction: Literal["inbound", "outbound"] | None = None,
    from_number: str | None = None,
    to_number: str | None = None,
    parent_call_uuid: str | None = None,
    hangup_cause_code: int | None = None,
    hangup_source: str | None = None,
    bill_duration: int | None = None,
    bill_duration__gt: int | None = None,
    bill_duration__gte: int | None = None,
    bill_duration__lt: int | None = None,
    bill_duration__lte: int | None = None,
    end_time: TimeFilter = None,
    end_time__gt: TimeFilter = None,
    end_time__gte: TimeFilter = None,
    end_time__lt: TimeFilter = None,
    end_time__lte: TimeFilter = None,
    limit: int | None = None,
    offset: int | None = None,
) -> Request[Page[Call]]:
    """Detail records of ended calls, newest first, filtered (times in UTC)."""
    if call_direction is not None:
        v.choice("call_direction", call_direction, ("inbound", "outbound"))
    params: dict[str, object] = {
        "call_direction": call_direction,
        "from_number": from_number,
        "to_number": to_number,
        "parent_call_uuid": parent_call_uuid,
        "hangup_cause_code": hangup_cause_code,
        "hangup_source": hangup_source,
        **r.number_filters(
            "bill_duration",
            {
                "": bill_duration,
                "__gt": bill_duration__gt,
                "__gte": bill_duration__gte,
                "__lt": bill_duration__lt,
                "__lte": bill_duration__lte,
            },
        ),
        **r.time_filters(
            "end_time",
            {
                "": end_time,
                "__gt": end_time__gt,
                "__gte": end_time__gte,
                "__lt": end_time__lt,
                "__lte": end_time__lte,
            },
        ),
        **r.page_args(limit, offset),
    }
    return r.get(r.path("Call"), r.page(Call), params)


def _list_live(
    *,
    call_direction: Literal["inbound", "outbound"] | None = None,
    from_number: str | None = None,
    to_number: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> Request[CallIds]:
    """The uuids of calls in progress."""
    if call_direction is not None:
        v.choice("call_direction", call_direction, ("inbound", "outbound"))
    params = {
        "status": "live",
        "call_direction": call_direction,
        "from_number": from_number,
        "to_number": to_number,
        **r.page_args(limit, offset),
    }
    return r.get(r.path("Call"), r.model(CallIds), params)


def _get_live(call_uuid: str) -> Request[LiveCall]:
    """A call in progress."""
    return r.get(r.path("Call", ("call_uuid", call_uuid)), r.model(LiveCall), {"status": "live"})


def _list_queued(*, limit: int | None = None, offset: int | None = None) -> Request[CallIds]:
    """The uuids of calls waiting to be placed (beyond the account's calls per second)."""
    params = {"status": "queued", **r.page_args(limit, offset)}
    return r.get(r.path("Call"), r.model(CallIds), params)


def _get_queued(call_uuid: str) -> Request[LiveCall]:
    """A call waiting to be placed."""
    return r.get(r.path("Call", ("call_uuid", call_uuid)), r.model(LiveCall), {"status": "queued"})


def _hangup(call_uuid: str) -> Request[None]:
    """Hang up a call. A call that already ended gives :class:`NotFoundError`."""
    return r.delete(r.path("Call", ("call_uuid", call_uuid)))


def _cancel(request_uuid: str) -> Request[None]:
    """Cancel a call that is queued or still ringing, by the ``request_uuid`` of make."""
    return r.delete(r.path("Request", ("request_uuid", request_uuid)))


def _transfer(
    call_uuid: str,
    *,
    legs: Legs | None = None,
    aleg_url: str | None = None,
    aleg_method: Method | None = None,
    bleg_url: str | None = None,
    bleg_method: Method | None = None,
) -> Request[ApiResponse]:
    """Move a live call (one or both legs) to new answer XML at ``aleg_url``/``bleg_url``."""
    if legs is not None:
        v.choice("legs", legs, ("aleg", "bleg", "both"))
    if aleg_url is None and bleg_url is None:
        raise ValueError("aleg_url or bleg_url is required")
    if legs in ("aleg", "both") and aleg_url is None:
        raise ValueError(f"aleg_url is required when legs is {legs!r}")
    if legs in ("bleg", "both") and bleg_url is None:
        raise ValueError(f"bleg_url is required when legs is {legs!r}")
    return r.post(
        r.path("Call", ("call_uuid", call_uuid)),
        r.model(ApiResponse),
        {
            "legs": legs,
            "aleg_url": _url("aleg_url", aleg_url),
            "aleg_method": _method("aleg_method", aleg_method),
            "bleg_url": _url("bleg_url", bleg_url),
            "bleg_method": _method("bleg_method", bleg_method),
        },
    )


def _play(
    call_uuid: str,
    urls: str | Iterable[str],
    *,
    length: int | None = None,
    legs: Legs | None = None,
    loop: bool | None = None,
    mix: bool | None = None,
) -> Request[ApiResponse]:
    """Play audio files (mp3/wav URLs) into a live call."""
    if isinstance(urls, str):
        urls = [urls]
    urls_s = ",".join(v.url("urls", u) for u in urls)
    if not urls_s:
        raise ValueError("urls must not be empty")
    if legs is not None:
        v.choice("legs", legs, ("aleg", "bleg", "both"))
    return r.post(
        r.path("Call", ("call_uuid", call_uuid), "Play"),
        r.model(ApiResponse),
        {
            "urls": urls_s,
            "length": None if length is None else v.integer("length", length, 1),
            "legs": legs,
            "loop": None if loop is None else v.boolean("loop", loop),
            "mix": None if mix is None else v.boolean("mix", mix),
        },
    )


def _stop_play(call_uuid: str) -> Request[None]:
    """Stop what :meth:`play` is playing."""
    return r.delete(r.path("Call", ("call_uuid", call_uuid), "Play"))


def _speak(
    call_uuid: str,
    text: str,
    *,
    voice: str | None = None,
    language: str | None = None,
    legs: Legs | None = None,
    loop: bool | None = None,
    mix: bool | None = None,
) -> Request[ApiResponse]:
    """Speak ``text`` into a live call (text to speech)."""
    if legs is not None:
        v.choice("legs", legs, ("aleg", "bleg", "both"))
    return r.post(
        r.path("Call", ("call_uuid", call_uuid), "Speak"),
        r.model(ApiResponse),
        {
            "text": v.text("text", text),
            "voice": voice,
            "language": language,
            "legs": legs,
            "loop": None if loop is None else v.boolean("loop", loop),
            "mix": None if mix is None else v.boolean("mix", mix),
        },
    )


def _stop_speak(call_uuid: str) -> Request[None]:
    """Stop what :meth:`speak` is saying."""
    return r.delete(r.path("Call", ("call_uuid", call_uuid), "Speak"))


def _send_digits(
    call_uuid: str, digits: str, *, leg: Literal["aleg", "bleg"] | None = None
) -> Request[ApiResponse]:
    """Send DTMF ``digits`` on a live call."""
    if leg is not None:
        v.choice("leg", leg, ("aleg", "bleg"))
    return r.post(
        r.path("Call", ("call_uuid", call_uuid), "DTMF"),
        r.model(ApiResponse),
        {"digits": v.text("digits", digits), "leg": leg},
    )


def _record(
    call_uuid: str,
    *,
    time_limit: int | None = None,
    file_format: Literal["mp3", "wav"] | None = None,
    transcription_type: Literal["auto"] | None = None,
    transcription_url: str | None = None,
    transcription_method: Method | None = None,
    callback_url: str | None = None,
    callback_method: Method | None = None,
    record_channel_type: Literal["mono", "stereo"] | None = None,
) -> Request[RecordingStarted]:
    """Start recording a live call; ``callback_url`` is told when the file is ready."""
    if file_format is not None:
        v.choice("file_format", file_format, ("mp3", "wav"))
    if record_channel_type is not None:
        v.choice("record_channel_type", record_channel_type, ("mono", "stereo"))
    return r.post(
        r.path("Call", ("call_uuid", call_uuid), "Record"),
        r.model(RecordingStarted),
        {
            "time_limit": None if time_limit is None else v.integer("time_limit", time_limit, 1),
            "file_format": file_format,
            "transcription_type": transcription_type,
            "transcription_url": _url("transcription_url", transcription_url),
            "transcription_method": _method("transcription_method", transcription_method),
            "callback_url": _url("callback_url", callback_url),
            "callback_method": _method("callback_method", callback_method),
            "record_channel_type": record_channel_type,
        },
    )


def _stop_record(call_uuid: str, *, url: str | None = None) -> Request[None]:
    """Stop recording a call: every recording, or only the one whose URL is ``url``."""
    return r.delete(
        r.path("Call", ("call_uuid", call_uuid), "Record"),
        {"URL": _url("url", url)},
    )


class Calls(SyncResource):
    """``client.calls``: make, inspect, control and hang up calls."""

    __slots__ = ()
    make = op(_make)
    get = op(_get)
    list = op(_list)
    iter = pager(_list)
    list_live = op(_list_live)
    get_live = op(_get_live)
    list_queued = op(_list_queued)
    get_queued = op(_get_queued)
    hangup = op(_hangup)
    cancel = op(_cancel)
    transfer = op(_transfer)
    play = op(_play)
    stop_play = op(_stop_play)
    speak = op(_speak)
    stop_speak = op(_stop_speak)
    send_digits = op(_send_digits)
    record = op(_record)
    stop_record = op(_stop_record)


class AsyncCalls(AsyncResource):
    """``client.calls``: make, inspect, control and hang up calls."""

    __slots__ = ()
    make = aop(_make)
    get = aop(_get)
    list = aop(_list)
    iter = apager(_list)
    list_live = aop(_list_live)
    get_live = aop(_get_live)
    list_queued = aop(_list_queued)
    get_queued = aop(_get_queued)
    hangup = aop(_hangup)
    cancel = aop(_cancel)
    transfer = aop(_transfer)
    play = aop(_play)
    stop_play = aop(_stop_play)
    speak = aop(_speak)
    stop_speak = aop(_stop_speak)
    send_digits = aop(_send_digits)
    record = aop(_record)
    stop_record = aop(_stop_record)
