"""streamserver.rest client behaviour: errors, retries and backoff, rate limiting, logging,
pagination, downloads, credentials and argument checks. Time is injected: nothing sleeps."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamserver.rest import (
    AsyncPlivoClient,
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    InvalidResponseError,
    MethodNotAllowedError,
    NotFoundError,
    PlivoAPIError,
    PlivoClient,
    PlivoError,
    PlivoTimeoutError,
    PlivoTransportError,
    RateLimit,
    RateLimitError,
    RetryPolicy,
    ServerError,
)
from streamserver.rest._policy import TokenBucket, parse_retry_after
from streamserver.rest.models import Recording

AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
TOKEN = "s3cr3t-t0ken-value-0123456789"
BASE = "https://api.test/"
ROOT = f"/v1/Account/{AUTH_ID}/"

Reply = httpx.Response | Exception


class Script:
    """A MockTransport handler that answers from a script and records what it saw."""

    def __init__(self, *replies: Reply | Callable[[httpx.Request], Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.replies:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        reply = self.replies.pop(0)
        if callable(reply) and not isinstance(reply, httpx.Response | Exception):
            reply = reply(request)
        if isinstance(reply, Exception):
            raise reply
        return reply


class FakeTime:
    """A clock and sleep functions that only move when told to."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def sync_client(script: Script, t: FakeTime | None = None, **kw: Any) -> PlivoClient:
    t = t or FakeTime()
    kw.setdefault("jitter", lambda: 1.0)
    return PlivoClient(
        AUTH_ID,
        TOKEN,
        base_url=BASE,
        transport=httpx.MockTransport(script),
        sleep=t.sleep,
        clock=t.clock,
        **kw,
    )


def async_client(script: Script, t: FakeTime | None = None, **kw: Any) -> AsyncPlivoClient:
    t = t or FakeTime()
    kw.setdefault("jitter", lambda: 1.0)
    return AsyncPlivoClient(
        AUTH_ID,
        TOKEN,
        base_url=BASE,
        transport=httpx.MockTransport(script),
        sleep=t.asleep,
        clock=t.clock,
        **kw,
    )


def ok(body: dict[str, Any] | None = None, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body if body is not None else {"api_id": "a-ok"})


# Errors ------------------------------------------------------------------------------

ERROR_CASES = [
    (
        400,
        {"api_id": "a-400", "error": "invalid answer_url"},
        BadRequestError,
        "invalid answer_url",
        "a-400",
    ),
    (401, {"error": "authentication failed"}, AuthenticationError, "authentication failed", None),
    (
        403,
        {"api_id": "a-403", "error": "geo permission"},
        ForbiddenError,
        "geo permission",
        "a-403",
    ),
    (404, {}, NotFoundError, "Not Found", None),
    (
        405,
        {"api_id": "a-405", "error": "method not allowed"},
        MethodNotAllowedError,
        "method not allowed",
        "a-405",
    ),
    (
        429,
        {"api_id": "a-429", "error": "too many requests"},
        RateLimitError,
        "too many requests",
        "a-429",
    ),
    (
        500,
        {"api_id": "a-500", "error": "unexpected error"},
        ServerError,
        "unexpected error",
        "a-500",
    ),
    (503, {"api_id": "a-503", "error": "unavailable"}, ServerError, "unavailable", "a-503"),
    (418, {"api_id": "a-418", "error": "teapot"}, PlivoAPIError, "teapot", "a-418"),
]


@pytest.mark.parametrize(("status", "body", "cls", "message", "api_id"), ERROR_CASES)
def test_error_status_maps_to_exception(
    status: int, body: dict[str, Any], cls: type[PlivoAPIError], message: str, api_id: str | None
) -> None:
    script = Script(httpx.Response(status, json=body))
    with sync_client(script, retry=None) as c, pytest.raises(cls) as info:
        c.calls.get("c-1")
    err = info.value
    assert type(err) is cls and isinstance(err, PlivoAPIError) and isinstance(err, PlivoError)
    assert err.status_code == status
    assert err.api_id == api_id
    assert err.error == message
    assert err.method == "GET"
    assert err.url == f"https://api.test{ROOT}Call/c-1/"
    assert err.body == body
    assert str(status) in str(err) and message in str(err)


@pytest.mark.parametrize(("status", "body", "cls", "message", "api_id"), ERROR_CASES)
async def test_error_status_maps_to_exception_async(
    status: int, body: dict[str, Any], cls: type[PlivoAPIError], message: str, api_id: str | None
) -> None:
    script = Script(httpx.Response(status, json=body))
    async with async_client(script, retry=None) as c:
        with pytest.raises(cls) as info:
            await c.streams.stop("c-1", "s-1")
    assert type(info.value) is cls
    assert (info.value.status_code, info.value.api_id, info.value.method) == (
        status,
        api_id,
        "DELETE",
    )


def test_rate_limit_error_carries_retry_after() -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "slow down"}))
    with sync_client(script, retry=None) as c, pytest.raises(RateLimitError) as info:
        c.recordings.list()
    assert info.value.retry_after == 7.0


def test_error_bodies_that_are_not_plain() -> None:
    html = httpx.Response(502, text="<html><body>Bad gateway</body></html>")
    field_errors = httpx.Response(400, json={"api_id": "a-1", "error": {"to": ["required"]}})
    with sync_client(Script(html, field_errors), retry=None) as c:
        with pytest.raises(ServerError) as info:
            c.calls.get("c-1")
        assert info.value.status_code == 502 and "Bad gateway" in info.value.error
        assert info.value.body is None and info.value.api_id is None
        with pytest.raises(BadRequestError) as bad:
            c.calls.get("c-1")
        assert bad.value.error == '{"to":["required"]}' and bad.value.api_id == "a-1"


def test_invalid_success_bodies() -> None:
    not_json = httpx.Response(200, text="<Response/>")
    wrong_shape = httpx.Response(200, json={"bill_duration": "twelve"})
    with sync_client(Script(not_json, wrong_shape), retry=None) as c:
        with pytest.raises(InvalidResponseError, match="not JSON") as info:
            c.calls.get("c-1")
        assert info.value.status_code == 200
        with pytest.raises(InvalidResponseError, match="bill_duration"):
            c.calls.get("c-1")


def test_empty_success_body_gives_empty_object_and_delete_ignores_body() -> None:
    script = Script(httpx.Response(200), httpx.Response(200, text="not json at all"))
    with sync_client(script) as c:
        res = c.calls.get("c-1")
        assert res.call_uuid is None and res.raw == {}
        assert c.calls.hangup("c-1") is None


def test_transport_and_timeout_errors_are_wrapped() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"))
    with sync_client(script, retry=None) as c:
        with pytest.raises(PlivoTransportError) as info:
            c.calls.get("c-1")
        assert not isinstance(info.value, PlivoTimeoutError)
        assert isinstance(info.value.__cause__, httpx.ConnectError)
        assert info.value.method == "GET" and info.value.url.endswith("/Call/c-1/")
        with pytest.raises(PlivoTimeoutError) as timeout:
            c.calls.get("c-1")
        assert isinstance(timeout.value, PlivoTransportError)
        assert isinstance(timeout.value.__cause__, httpx.ReadTimeout)


async def test_transport_errors_are_wrapped_async() -> None:
    script = Script(httpx.ConnectTimeout("slow"))
    async with async_client(script, retry=None) as c:
        with pytest.raises(PlivoTimeoutError) as info:
            await c.calls.get("c-1")
    assert isinstance(info.value.__cause__, httpx.ConnectTimeout)


# Retries -----------------------------------------------------------------------------


def test_get_retries_5xx_with_exponential_backoff() -> None:
    t = FakeTime()
    script = Script(httpx.Response(503), httpx.Response(500), ok({"call_uuid": "c-1"}))
    with sync_client(script, t) as c:
        assert c.calls.get("c-1").call_uuid == "c-1"
    assert len(script.requests) == 3
    assert t.sleeps == [0.5, 1.0]


def test_retries_give_up_after_max_retries() -> None:
    t = FakeTime()
    script = Script(*(httpx.Response(502) for _ in range(4)))
    with sync_client(script, t) as c, pytest.raises(ServerError) as info:
        c.recordings.delete("rec-1")
    assert info.value.status_code == 502
    assert len(script.requests) == 4
    assert t.sleeps == [0.5, 1.0, 2.0]


def test_backoff_is_full_jitter_and_capped() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=8)
    assert policy.backoff_s(0, 1.0) == 0.5
    assert policy.backoff_s(3, 0.5) == 2.0
    assert policy.backoff_s(10, 1.0) == 8.0
    assert policy.backoff_s(10_000, 0.25) == 2.0
    assert policy.backoff_s(2, 0.0) == 0.0
    draws = iter([0.9, 0.1, 0.3])
    t = FakeTime()
    script = Script(*(httpx.Response(500) for _ in range(3)), ok())
    with sync_client(script, t, jitter=lambda: next(draws)) as c:
        c.calls.get("c-1")
    assert t.sleeps == pytest.approx([0.5 * 0.9, 1.0 * 0.1, 2.0 * 0.3])


def test_retry_after_is_honoured_seconds_and_date() -> None:
    t = FakeTime()
    when = datetime.now(UTC) + timedelta(seconds=30)
    script = Script(
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(503, headers={"Retry-After": format_datetime(when, usegmt=True)}),
        ok(),
    )
    with sync_client(script, t) as c:
        c.calls.get("c-1")
    assert t.sleeps[0] == 3.0
    assert 25.0 < t.sleeps[1] <= 30.0


def test_retry_after_beyond_the_limit_raises_at_once() -> None:
    t = FakeTime()
    script = Script(httpx.Response(429, headers={"Retry-After": "3600"}))
    with sync_client(script, t) as c, pytest.raises(RateLimitError) as info:
        c.calls.get("c-1")
    assert info.value.retry_after == 3600.0 and t.sleeps == []


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", now) == 10.0
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("-5", now) == 0.0


def test_call_create_is_never_retried_by_default() -> None:
    for failure in (httpx.Response(500), httpx.Response(429), httpx.ReadTimeout("lost")):
        t = FakeTime()
        script = Script(failure)
        with sync_client(script, t) as c, pytest.raises(PlivoError):
            c.calls.make("14155550100", "14155550123", "https://app.test/answer")
        assert len(script.requests) == 1 and t.sleeps == []


def test_call_create_retries_when_opted_in_per_call() -> None:
    t = FakeTime()
    script = Script(httpx.Response(503), ok({"message": "call fired", "request_uuid": "r-1"}, 201))
    with sync_client(script, t) as c:
        res = c.calls.make("14155550100", "14155550123", "https://app.test/answer", retry=True)
    assert res.request_uuid == "r-1" and len(script.requests) == 2 and t.sleeps == [0.5]


async def test_call_create_retries_when_the_policy_says_so() -> None:
    t = FakeTime()
    script = Script(httpx.ConnectError("refused"), ok({"message": "call fired"}, 201))
    async with async_client(script, t, retry=RetryPolicy(retry_on_post_call=True)) as c:
        res = await c.calls.make("14155550100", "14155550123", "https://app.test/answer")
    assert res.message == "call fired" and len(script.requests) == 2
    # ... and retry=False on the call still wins over the policy.
    script = Script(httpx.Response(503))
    async with async_client(script, t, retry=RetryPolicy(retry_on_post_call=True)) as c:
        with pytest.raises(ServerError):
            await c.calls.make("14155550100", "14155550123", "https://app.test/answer", retry=False)
    assert len(script.requests) == 1


def test_only_state_setting_posts_are_retried() -> None:
    t = FakeTime()
    script = Script(httpx.Response(503), ok())
    with sync_client(script, t) as c:
        c.conferences.member_mute("room", 1)  # sets a state: retried
    assert len(script.requests) == 2
    script = Script(httpx.Response(503))
    with sync_client(script, t) as c, pytest.raises(ServerError):
        c.calls.play("c-1", "https://s.test/a.mp3")  # would play twice: not retried
    assert len(script.requests) == 1


def test_client_errors_and_unsafe_transport_errors_are_not_retried() -> None:
    t = FakeTime()
    script = Script(httpx.Response(400, json={"error": "bad"}))
    with sync_client(script, t) as c, pytest.raises(BadRequestError):
        c.calls.get("c-1")
    script = Script(httpx.UnsupportedProtocol("gopher"))
    with sync_client(script, t) as c, pytest.raises(PlivoTransportError):
        c.calls.get("c-1")
    assert len(script.requests) == 1 and t.sleeps == []


async def test_async_retries_transport_errors_then_succeeds() -> None:
    t = FakeTime()
    script = Script(
        httpx.ReadError("reset"), httpx.RemoteProtocolError("eof"), ok({"calls": ["c-1"]})
    )
    async with async_client(script, t) as c:
        res = await c.calls.list_live()
    assert res.calls == ["c-1"] and t.sleeps == [0.5, 1.0]


def test_retry_none_disables_retries() -> None:
    t = FakeTime()
    script = Script(httpx.Response(503))
    with sync_client(script, t, retry=None) as c, pytest.raises(ServerError):
        c.calls.get("c-1")
    assert len(script.requests) == 1 and c.retry_policy.max_retries == 0


def test_retry_policy_checks_its_values() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(backoff_base_s=-1)


# Rate limiting -----------------------------------------------------------------------


def test_token_bucket_spaces_requests_beyond_the_budget() -> None:
    t = FakeTime()
    bucket = TokenBucket(RateLimit(), t.clock)
    assert [bucket.reserve() for _ in range(300)] == [0.0] * 300
    assert bucket.reserve() == pytest.approx(5 / 300)
    assert bucket.reserve() == pytest.approx(2 * 5 / 300)
    t.now += 5.0  # refills 300 tokens, pays the debt of 2
    assert bucket.reserve() == 0.0
    waits = [bucket.reserve() for _ in range(298)]
    assert waits[:297] == [0.0] * 297 and waits[297] == pytest.approx(5 / 300)


def test_rate_limit_checks_its_values() -> None:
    with pytest.raises(ValueError, match="requests"):
        RateLimit(requests=0)
    with pytest.raises(ValueError, match="per_s"):
        RateLimit(per_s=0)


def test_sync_client_rate_limit_waits_for_tokens() -> None:
    t = FakeTime()
    script = Script(*(ok() for _ in range(4)))
    with sync_client(script, t, rate_limit=RateLimit(requests=2, per_s=1.0)) as c:
        for _ in range(4):
            c.calls.get("c-1")
    assert t.sleeps == pytest.approx([0.5, 0.5])


async def test_async_client_rate_limit_waits_for_tokens() -> None:
    t = FakeTime()
    script = Script(*(ok() for _ in range(3)))
    async with async_client(script, t, rate_limit=RateLimit(requests=1, per_s=2.0)) as c:
        for _ in range(3):
            await c.calls.get("c-1")
    assert t.sleeps == pytest.approx([2.0, 2.0])


def test_rate_limit_is_off_by_default() -> None:
    t = FakeTime()
    script = Script(*(ok() for _ in range(400)))
    with sync_client(script, t) as c:
        for _ in range(400):
            c.calls.get("c-1")
    assert t.sleeps == []


# Logging -----------------------------------------------------------------------------


def _secret_forms() -> list[str]:
    return [TOKEN, base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()]


def test_one_info_line_per_request_and_no_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    t = FakeTime()
    script = Script(httpx.Response(503), ok(), httpx.Response(404, json={}))
    with sync_client(script, t) as c:
        c.calls.get("c-1")
        with pytest.raises(NotFoundError) as info:
            c.calls.hangup("c-2")
    ours = [
        r for r in caplog.records if r.name == "streamserver.rest" and r.levelno == logging.INFO
    ]
    assert [r.getMessage().split(" in ")[0] for r in ours] == [
        "GET Call/c-1/ -> 503",
        "GET Call/c-1/ -> 200",
        "DELETE Call/c-2/ -> 404",
    ]
    assert [r.__dict__["attempt"] for r in ours] == [1, 2, 1]
    assert all(r.getMessage().endswith(f"(attempt {r.__dict__['attempt']})") for r in ours)
    assert all(isinstance(r.__dict__["duration_ms"], float) for r in ours)
    assert [r.__dict__["http_status"] for r in ours] == [503, 200, 404]
    everything = " ".join(
        [r.getMessage() + repr(r.__dict__) for r in caplog.records] + [str(info.value), repr(c)]
    )
    for secret in _secret_forms():
        assert secret not in everything


async def test_async_logs_transport_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streamserver.rest")
    script = Script(httpx.ConnectError("refused"), ok())
    async with async_client(script) as c:
        await c.calls.get("c-1")
    ours = [r.getMessage() for r in caplog.records if r.name == "streamserver.rest"]
    assert len(ours) == 2
    assert ours[0].startswith("GET Call/c-1/ -> ConnectError in ")
    assert ours[1].startswith("GET Call/c-1/ -> 200 in ") and ours[1].endswith("(attempt 2)")


# Pagination --------------------------------------------------------------------------


def _recording_pages() -> list[httpx.Response]:
    # ``next`` deliberately drops the filter and uses another path prefix: only its query
    # counts, merged over the original parameters.
    return [
        ok(
            {
                "api_id": "p1",
                "meta": {
                    "limit": 2,
                    "offset": 0,
                    "total_count": 3,
                    "next": f"/elsewhere/v1/Account/{AUTH_ID}/Recording/?limit=2&offset=2",
                    "previous": None,
                },
                "objects": [{"recording_id": "r1"}, {"recording_id": "r2"}],
            }
        ),
        ok(
            {
                "api_id": "p2",
                "meta": {"limit": 2, "offset": 2, "total_count": 3, "next": None},
                "objects": [{"recording_id": "r3"}],
            }
        ),
    ]


def _check_page_requests(script: Script) -> None:
    assert [dict(r.url.params) for r in script.requests] == [
        {"call_uuid": "c-1", "limit": "2"},
        {"call_uuid": "c-1", "limit": "2", "offset": "2"},
    ]
    assert all(r.url.path == f"{ROOT}Recording/" for r in script.requests)


def test_sync_iter_walks_every_page() -> None:
    script = Script(*_recording_pages())
    with sync_client(script) as c:
        it = c.recordings.iter(call_uuid="c-1", limit=2)
        assert isinstance(it, Iterator)
        assert script.requests == []  # lazy: nothing fetched yet
        ids = [rec.recording_id for rec in it]
    assert ids == ["r1", "r2", "r3"]
    _check_page_requests(script)


async def test_async_iter_walks_every_page() -> None:
    script = Script(*_recording_pages())
    async with async_client(script) as c:
        it = c.recordings.iter(call_uuid="c-1", limit=2)
        assert isinstance(it, AsyncIterator)
        ids = [rec.recording_id async for rec in it]
    assert ids == ["r1", "r2", "r3"]
    _check_page_requests(script)


def test_iter_stops_on_a_next_that_does_not_move() -> None:
    stuck = {
        "meta": {"next": f"{ROOT}Endpoint/?limit=20&offset=0", "offset": 0},
        "objects": [{"endpoint_id": "e1"}],
    }
    script = Script(ok(stuck), ok(stuck))
    with sync_client(script) as c:
        got = [e.endpoint_id for e in c.endpoints.iter(limit=20, offset=0)]
    assert got == ["e1"] and len(script.requests) == 1


def test_page_exposes_meta_and_objects() -> None:
    script = Script(*_recording_pages())
    with sync_client(script) as c:
        page = c.recordings.list(call_uuid="c-1", limit=2)
    assert page.meta.next is not None and page.meta.limit == 2 and page.meta.total == 3
    assert [r.recording_id for r in page.objects] == ["r1", "r2"]
    assert page.api_id == "p1" and page.raw["meta"]["total_count"] == 3


# Downloads ---------------------------------------------------------------------------

AUDIO = bytes(range(256)) * 200  # 51,200 bytes


class BrokenStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that breaks off after the first chunk, like a reset connection."""

    def __iter__(self) -> Iterator[bytes]:
        yield AUDIO[:1000]
        raise httpx.ReadError("connection reset")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield AUDIO[:1000]
        raise httpx.ReadError("connection reset")


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def test_download_by_id_streams_to_file(tmp_path: Path) -> None:
    file_url = f"https://api.test{ROOT}Recording/rec-1.mp3"
    script = Script(
        ok({"recording_id": "rec-1", "recording_url": file_url}), httpx.Response(200, content=AUDIO)
    )
    dest = tmp_path / "out.mp3"
    with sync_client(script) as c:
        assert c.recordings.download("rec-1", dest, chunk_size=4096) == dest
    assert dest.read_bytes() == AUDIO
    assert _leftovers(tmp_path) == []
    assert [r.url.path for r in script.requests] == [
        f"{ROOT}Recording/rec-1/",
        f"{ROOT}Recording/rec-1.mp3",
    ]
    # Same origin as the API: the credentials go along.
    assert script.requests[1].headers["authorization"].startswith("Basic ")


async def test_async_download_from_other_host_without_credentials(tmp_path: Path) -> None:
    rec = Recording(recording_id="rec-1", recording_url="https://media.test/rec-1.mp3")
    script = Script(httpx.Response(200, content=AUDIO))
    dest = tmp_path / "out.mp3"
    async with async_client(script) as c:
        assert await c.recordings.download(rec, str(dest), chunk_size=1000) == dest
    assert dest.read_bytes() == AUDIO and _leftovers(tmp_path) == []
    assert "authorization" not in script.requests[0].headers


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_download_retries_a_broken_body(tmp_path: Path, mode: str) -> None:
    t = FakeTime()
    script = Script(httpx.Response(200, stream=BrokenStream()), httpx.Response(200, content=AUDIO))
    dest = tmp_path / "out.wav"
    url = "https://media.test/x.wav"
    if mode == "sync":
        with sync_client(script, t) as c:
            c.recordings.download(url, dest)
    else:
        async with async_client(script, t) as ac:
            await ac.recordings.download(url, dest)
    assert dest.read_bytes() == AUDIO and _leftovers(tmp_path) == []
    assert len(script.requests) == 2 and t.sleeps == [0.5]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_failed_download_leaves_dest_untouched(tmp_path: Path, mode: str) -> None:
    dest = tmp_path / "keep.mp3"
    dest.write_bytes(b"old")
    script = Script(httpx.Response(404, json={"api_id": "a-1", "error": "not found"}))
    if mode == "sync":
        with sync_client(script) as c, pytest.raises(NotFoundError) as info:
            c.recordings.download("https://media.test/gone.mp3", dest)
    else:
        async with async_client(script) as ac:
            with pytest.raises(NotFoundError) as info:
                await ac.recordings.download("https://media.test/gone.mp3", dest)
    assert info.value.api_id == "a-1"
    assert dest.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_download_checks_its_arguments(tmp_path: Path) -> None:
    with sync_client(Script()) as c:
        with pytest.raises(ValueError, match="directory"):
            c.recordings.download("https://media.test/a.mp3", tmp_path)
        with pytest.raises(ValueError, match="does not exist"):
            c.recordings.download("https://media.test/a.mp3", tmp_path / "no" / "a.mp3")
        with pytest.raises(ValueError, match="recording_url"):
            c.recordings.download(Recording(recording_id="r"), tmp_path / "a.mp3")
        with pytest.raises(ValueError, match="recording"):
            c.recordings.download("ftp://media.test/a.mp3", tmp_path / "a.mp3")


# Construction and arguments ----------------------------------------------------------


def test_credentials_come_from_the_environment_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PLIVO_AUTH_ID", raising=False)
    monkeypatch.delenv("PLIVO_AUTH_TOKEN", raising=False)
    with pytest.raises(ValueError, match="PLIVO_AUTH_ID"):
        PlivoClient()
    monkeypatch.setenv("PLIVO_AUTH_ID", "SAYYYYYYYYYYYYYYYYYY")
    with pytest.raises(ValueError, match="PLIVO_AUTH_TOKEN"):
        PlivoClient()
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", "env-token")
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    with PlivoClient(transport=httpx.MockTransport(handle)) as c:
        assert c.auth_id == "SAYYYYYYYYYYYYYYYYYY" and c.base_url == "https://api.plivo.com/"
        c.calls.hangup("c-1")
    assert str(seen[0].url) == "https://api.plivo.com/v1/Account/SAYYYYYYYYYYYYYYYYYY/Call/c-1/"
    expected = base64.b64encode(b"SAYYYYYYYYYYYYYYYYYY:env-token").decode()
    assert seen[0].headers["authorization"] == f"Basic {expected}"


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="auth_id"):
        PlivoClient("MA/../x", TOKEN)
    with pytest.raises(ValueError, match="base_url"):
        PlivoClient(AUTH_ID, TOKEN, base_url="ftp://api.test/")
    with pytest.raises(ValueError, match="base_url"):
        PlivoClient(AUTH_ID, TOKEN, base_url="https://api.test/?x=1")
    c = PlivoClient(AUTH_ID, TOKEN)
    assert TOKEN not in repr(c) and AUTH_ID in repr(c)
    c.close()


async def test_context_managers_close_the_pool() -> None:
    with PlivoClient(AUTH_ID, TOKEN) as c:
        pass
    assert c._http.is_closed
    async with AsyncPlivoClient(AUTH_ID, TOKEN) as ac:
        pass
    assert ac._http.is_closed
    ac2 = AsyncPlivoClient(AUTH_ID, TOKEN)
    await ac2.aclose()
    assert ac2._http.is_closed


BAD_ARGUMENTS: list[tuple[str, Callable[[Any], Any], str]] = [
    ("limit too big", lambda c: c.recordings.list(limit=21), "limit must be >= 1 and <= 20"),
    ("negative offset", lambda c: c.calls.list(offset=-1), "offset"),
    ("empty id", lambda c: c.calls.hangup(""), "call_uuid"),
    ("slash in id", lambda c: c.recordings.delete("../Call"), "recording_id"),
    ("naive datetime", lambda c: c.calls.list(end_time__gt=datetime(2026, 1, 1)), "timezone-aware"),
    ("stream url scheme", lambda c: c.streams.start("c-1", "https://x.test/s"), "service_url"),
    (
        "bidirectional needs inbound",
        lambda c: c.streams.start("c-1", "wss://x.test/s", bidirectional=True, audio_track="both"),
        "audio_track must be 'inbound'",
    ),
    (
        "content type",
        lambda c: c.streams.start("c-1", "wss://x.test/s", content_type="audio/x-l16;rate=44100"),
        "content_type",
    ),
    (
        "extra headers",
        lambda c: c.streams.start("c-1", "wss://x.test/s", extra_headers={"a-b": "1"}),
        "extra_headers",
    ),
    ("mpc id", lambda c: c.multiparty_calls.get(uuid="u", friendly_name="n"), "exactly one"),
    ("transfer url", lambda c: c.calls.transfer("c-1", legs="aleg"), "aleg_url"),
    ("to is from", lambda c: c.calls.make("1415", "1415", "https://a.test/x"), "from_"),
    ("answer url", lambda c: c.calls.make("1415", "1416", "answer.xml"), "answer_url"),
    (
        "caller name",
        lambda c: c.calls.make("1415", "1416", "https://a.test/x", caller_name="x" * 51),
        "caller_name",
    ),
    ("endpoint username", lambda c: c.endpoints.create("9lives", "secret", "a"), "username"),
    ("endpoint password", lambda c: c.endpoints.create("bob", "abc", "a"), "password"),
    (
        "participant target",
        lambda c: c.multiparty_calls.add_participant("Agent", friendly_name="x"),
        "from_",
    ),
    (
        "participant role",
        lambda c: c.multiparty_calls.add_participant("Boss", friendly_name="x", call_uuid="c"),
        "role",
    ),
    (
        "update nothing",
        lambda c: c.multiparty_calls.update_participant("1", uuid="u"),
        "at least one",
    ),
    (
        "extra clash",
        lambda c: c.calls.make("1415", "1416", "https://a.test/x", extra={"to": "1"}),
        "extra",
    ),
]


@pytest.mark.parametrize(
    ("name", "call", "message"), BAD_ARGUMENTS, ids=[b[0] for b in BAD_ARGUMENTS]
)
def test_bad_arguments_raise_before_any_request(
    name: str, call: Callable[[Any], Any], message: str
) -> None:
    script = Script()
    with sync_client(script) as c, pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call(c)
    assert script.requests == []


async def test_async_bad_arguments_raise_at_the_call_not_the_await() -> None:
    script = Script()
    async with async_client(script) as c:
        with pytest.raises(ValueError, match="limit"):
            c.recordings.list(limit=0)  # no await needed to see the error
        with pytest.raises(ValueError, match="call_uuid"):
            c.calls.get("")
        with pytest.raises(ValueError, match="limit"):
            c.calls.iter(limit=99)
    assert script.requests == []


def test_models_keep_raw_and_print_briefly() -> None:
    script = Script(ok({"call_uuid": "c-1", "brand_new_field": {"x": 1}, "raw": "not ours"}))
    with sync_client(script) as c:
        cdr = c.calls.get("c-1")
    assert cdr.raw["brand_new_field"] == {"x": 1} and cdr.raw["raw"] == "not ours"
    assert repr(cdr) == "Call(call_uuid='c-1')"
    body = json.loads(script.requests[0].content or b"null")
    assert body is None
