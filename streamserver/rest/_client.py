"""The two clients: :class:`PlivoClient` (blocking) and :class:`AsyncPlivoClient`.

Everything that does not touch the network — credentials, URLs, turning an answer into a
result or an exception, the retry decision, the log line — lives in :class:`_BaseClient`
and is shared. Each client only adds its own send/sleep loop, a few mirrored lines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import httpx
import msgspec

from .. import __version__
from ._policy import RateLimit, RetryPolicy, TokenBucket, parse_retry_after
from ._request import Request, none
from .caller_ids import AsyncVerifiedCallerIds, VerifiedCallerIds
from .calls import AsyncCalls, Calls
from .conferences import AsyncConferences, Conferences
from .endpoints import AsyncEndpoints, Endpoints
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
from .multiparty import AsyncMultiPartyCalls, MultiPartyCalls
from .recordings import AsyncRecordings, Recordings
from .streams import AsyncStreams, Streams

__all__ = ["DEFAULT_BASE_URL", "AsyncPlivoClient", "PlivoClient"]

T = TypeVar("T")

log = logging.getLogger("streamserver.rest")

DEFAULT_BASE_URL = "https://api.plivo.com/"
_AUTH_ID = re.compile(r"[A-Za-z0-9_-]+")
_STATUS_ERRORS: dict[int, type[PlivoAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    429: RateLimitError,
}
# 501 (not implemented) and 505 will not get better by asking again.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Failures where the request may simply not have arrived, or the answer got lost. A bad
# URL scheme or a malformed request (UnsupportedProtocol, LocalProtocolError) would fail
# the same way every time.
_RETRY_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


class _BaseClient:
    """Configuration and the I/O-free half of a request, shared by both clients."""

    def __init__(
        self,
        auth_id: str | None,
        auth_token: str | None,
        *,
        base_url: str,
        timeout_s: float | None,
        connect_timeout_s: float | None,
        retry: RetryPolicy | None,
        rate_limit: RateLimit | None,
        user_agent: str | None,
        clock: Callable[[], float],
        jitter: Callable[[], float],
    ) -> None:
        # Read the environment now, never at import: a process may set it after importing.
        auth_id = auth_id if auth_id is not None else os.environ.get("PLIVO_AUTH_ID")
        auth_token = auth_token if auth_token is not None else os.environ.get("PLIVO_AUTH_TOKEN")
        if not auth_id:
            raise ValueError("auth_id is required (pass it, or set PLIVO_AUTH_ID)")
        if not auth_token:
            raise ValueError("auth_token is required (pass it, or set PLIVO_AUTH_TOKEN)")
        if not _AUTH_ID.fullmatch(auth_id):
            raise ValueError(f"auth_id must be letters and digits, got {auth_id!r}")
        base = httpx.URL(base_url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        if base.query or base.fragment:
            raise ValueError(f"base_url must not have a query or fragment, got {base_url!r}")
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._base = httpx.URL(self._base_url)
        self._auth_id = auth_id
        self._auth = httpx.BasicAuth(auth_id, auth_token)
        self._root = f"{self._base_url}v1/Account/{auth_id}/"
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._retry = retry if retry is not None else RetryPolicy(max_retries=0)
        self._bucket = TokenBucket(rate_limit, clock) if rate_limit is not None else None
        self._jitter = jitter
        self._headers = {
            "User-Agent": user_agent or f"streamserver/{__version__}",
            "Accept": "application/json",
        }

    @property
    def auth_id(self) -> str:
        """The account's Auth ID (the token is never exposed)."""
        return self._auth_id

    @property
    def base_url(self) -> str:
        """Where requests go, ending with ``/``; the account root is ``v1/Account/{id}/``."""
        return self._base_url

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy in force (``max_retries=0`` when retries were turned off)."""
        return self._retry

    def __repr__(self) -> str:
        return f"{type(self).__name__}(auth_id={self._auth_id!r}, base_url={self._base_url!r})"

    # Requests --------------------------------------------------------------------------

    def _url(self, req: Request[Any]) -> str:
        return self._root + req.path

    def _same_origin(self, url: httpx.URL) -> bool:
        """Whether credentials may go to ``url``: only ever to the API's own origin."""
        base = self._base
        return (url.scheme, url.host, _port(url)) == (base.scheme, base.host, _port(base))

    def _log_path(self, url: httpx.URL) -> str:
        path = url.path
        prefix = self._base.path + f"v1/Account/{self._auth_id}/"
        if path.startswith(prefix):
            return path[len(prefix) :]
        return path.replace(self._auth_id, "{auth_id}")

    def _log(self, method: str, path: str, status: int | str, started: float, attempt: int) -> None:
        duration_ms = (time.perf_counter() - started) * 1000.0
        log.info(
            "%s %s -> %s in %.1f ms (attempt %d)",
            method,
            path,
            status,
            duration_ms,
            attempt,
            extra={
                "http_method": method,
                "http_path": path,
                "http_status": status,
                "duration_ms": round(duration_ms, 1),
                "attempt": attempt,
            },
        )

    # Answers ---------------------------------------------------------------------------

    def _handle(self, req: Request[T], response: httpx.Response) -> T:
        """The parsed result of a 2xx answer; the matching exception for anything else."""
        status = response.status_code
        if not 200 <= status < 300:
            raise self._api_error(req.method, response)
        if req.parse is none or status == 204 or not response.content.strip():
            return req.parse(None)
        try:
            data = msgspec.json.decode(response.content)
        except msgspec.DecodeError as exc:
            raise self._invalid(req.method, response, "response body is not JSON") from exc
        try:
            return req.parse(data)
        except msgspec.ValidationError as exc:
            raise self._invalid(req.method, response, f"unexpected response: {exc}") from exc

    @staticmethod
    def _invalid(method: str, response: httpx.Response, why: str) -> InvalidResponseError:
        return InvalidResponseError(
            why, status_code=response.status_code, method=method, url=str(response.url)
        )

    @staticmethod
    def _api_error(method: str, response: httpx.Response) -> PlivoAPIError:
        """Build the exception for an error answer, keeping everything the API said."""
        status = response.status_code
        body: object = None
        try:
            body = msgspec.json.decode(response.content) if response.content.strip() else None
        except msgspec.DecodeError:
            body = None
        api_id: str | None = None
        message = ""
        if isinstance(body, dict):
            if isinstance(body.get("api_id"), str):
                api_id = body["api_id"]
            err = body.get("error", body.get("message"))
            if isinstance(err, str):
                message = err
            elif err:
                # Field errors come as {"field": ["why"]}: keep them readable.
                message = msgspec.json.encode(err).decode()
        if not message:
            text = response.content[:300].decode("utf-8", "replace").strip()
            message = text if body is None and text else response.reason_phrase or str(status)
        cls = _STATUS_ERRORS.get(status) or (ServerError if status >= 500 else PlivoAPIError)
        return cls(
            message,
            status_code=status,
            method=method,
            url=str(response.url),
            api_id=api_id,
            body=body,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    @staticmethod
    def _transport_error(exc: httpx.RequestError, method: str, url: str) -> PlivoTransportError:
        cls = PlivoTimeoutError if isinstance(exc, httpx.TimeoutException) else PlivoTransportError
        detail = str(exc) or "no detail"
        return cls(f"{type(exc).__name__}: {detail}", method=method, url=url)

    # Retries ---------------------------------------------------------------------------

    def _may_retry(self, req: Request[Any]) -> bool:
        if req.retry is not None:
            return req.retry
        if req.creates_call:
            return self._retry.retry_on_post_call
        return req.idempotent

    def _retry_delay(self, req: Request[Any], err: PlivoError, retries_done: int) -> float | None:
        """Seconds to wait before repeating ``req`` after ``err``, or ``None`` to give up."""
        if retries_done >= self._retry.max_retries or not self._may_retry(req):
            return None
        if isinstance(err, PlivoAPIError) and err.status_code in _RETRY_STATUSES:
            hinted = err.retry_after
        elif isinstance(err, PlivoTransportError) and isinstance(err.__cause__, _RETRY_TRANSPORT):
            hinted = None
        else:
            return None
        if hinted is not None:
            return hinted if hinted <= self._retry.max_retry_after_s else None
        return self._retry.backoff_s(retries_done, self._jitter())

    def _log_retry(self, req: Request[Any], err: PlivoError, delay: float) -> None:
        log.debug("retrying %s %s in %.3f s after: %s", req.method, req.path, delay, err)


def _temp_path(dest: Path) -> Path:
    # Hidden, unique, and in the same directory so the final rename is atomic.
    return dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")


def _sync_and_close(f: IO[bytes]) -> None:
    try:
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()


class PlivoClient(_BaseClient):
    """Blocking client of the Plivo Voice API.

    ``auth_id``/``auth_token`` default to ``PLIVO_AUTH_ID``/``PLIVO_AUTH_TOKEN``, read when
    the client is made. ``base_url`` points it at the real API or a local emulator.
    Requests that are safe to repeat are retried per ``retry`` (``None``: never);
    ``rate_limit`` (off by default) spaces requests out client-side. ``transport`` replaces
    the network (``httpx.MockTransport`` in tests); ``sleep``, ``clock`` and ``jitter``
    replace time and randomness, so tests need not wait.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        auth_id: str | None = None,
        auth_token: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        # Timeouts
        timeout_s: float | None = 10.0,
        connect_timeout_s: float | None = 5.0,
        # Retries and limits
        retry: RetryPolicy | None = RetryPolicy(),  # noqa: B008 - frozen, shared safely
        rate_limit: RateLimit | None = None,
        # Plumbing
        transport: httpx.BaseTransport | None = None,
        user_agent: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(
            auth_id,
            auth_token,
            base_url=base_url,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            retry=retry,
            rate_limit=rate_limit,
            user_agent=user_agent,
            clock=clock,
            jitter=jitter,
        )
        self._http = httpx.Client(transport=transport, timeout=self._timeout, headers=self._headers)
        self._sleep = sleep
        self._bucket_lock = threading.Lock()
        self.calls = Calls(self)
        self.streams = Streams(self)
        self.recordings = Recordings(self)
        self.conferences = Conferences(self)
        self.multiparty_calls = MultiPartyCalls(self)
        self.endpoints = Endpoints(self)
        self.verified_caller_ids = VerifiedCallerIds(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _throttle(self) -> None:
        if self._bucket is not None:
            with self._bucket_lock:
                delay = self._bucket.reserve()
            if delay > 0:
                self._sleep(delay)

    def _with_retries(self, req: Request[Any], attempt: Callable[[int], T]) -> T:
        retries = 0
        while True:
            self._throttle()
            try:
                return attempt(retries + 1)
            except PlivoError as err:
                delay = self._retry_delay(req, err, retries)
                if delay is None:
                    raise
                self._log_retry(req, err, delay)
            self._sleep(delay)
            retries += 1

    def _execute(self, req: Request[T]) -> T:
        def attempt(n: int) -> T:
            request = self._http.build_request(
                req.method, self._url(req), params=req.params, json=req.json
            )
            started = time.perf_counter()
            try:
                response = self._http.send(request, auth=self._auth)
            except httpx.RequestError as exc:
                self._log(req.method, req.path, type(exc).__name__, started, n)
                raise self._transport_error(exc, req.method, str(request.url)) from exc
            self._log(req.method, req.path, response.status_code, started, n)
            return self._handle(req, response)

        return self._with_retries(req, attempt)

    def _download(self, url: str, dest: Path, chunk_size: int) -> Path:
        req = Request("GET", url, none, idempotent=True)

        def attempt(n: int) -> Path:
            request = self._http.build_request("GET", url)
            auth = self._auth if self._same_origin(request.url) else None
            path = self._log_path(request.url)
            started = time.perf_counter()
            tmp = _temp_path(dest)
            try:
                with self._http.stream("GET", url, auth=auth, follow_redirects=True) as response:
                    if not response.is_success:
                        response.read()
                        self._log("GET", path, response.status_code, started, n)
                        raise self._api_error("GET", response)
                    with tmp.open("wb") as f:
                        for chunk in response.iter_bytes(chunk_size):
                            f.write(chunk)
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(tmp, dest)
            except httpx.RequestError as exc:
                self._log("GET", path, type(exc).__name__, started, n)
                raise self._transport_error(exc, "GET", str(request.url)) from exc
            finally:
                tmp.unlink(missing_ok=True)
            self._log("GET", path, response.status_code, started, n)
            return dest

        return self._with_retries(req, attempt)


class AsyncPlivoClient(_BaseClient):
    """Asyncio client of the Plivo Voice API; the same API as :class:`PlivoClient`, awaited.

    ``auth_id``/``auth_token`` default to ``PLIVO_AUTH_ID``/``PLIVO_AUTH_TOKEN``, read when
    the client is made. ``base_url`` points it at the real API or a local emulator.
    Requests that are safe to repeat are retried per ``retry`` (``None``: never);
    ``rate_limit`` (off by default) spaces requests out client-side. ``transport`` replaces
    the network (``httpx.MockTransport`` in tests); ``sleep``, ``clock`` and ``jitter``
    replace time and randomness, so tests need not wait.

    Use as ``async with``, or await :meth:`aclose`.
    """

    def __init__(
        self,
        auth_id: str | None = None,
        auth_token: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        # Timeouts
        timeout_s: float | None = 10.0,
        connect_timeout_s: float | None = 5.0,
        # Retries and limits
        retry: RetryPolicy | None = RetryPolicy(),  # noqa: B008 - frozen, shared safely
        rate_limit: RateLimit | None = None,
        # Plumbing
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(
            auth_id,
            auth_token,
            base_url=base_url,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            retry=retry,
            rate_limit=rate_limit,
            user_agent=user_agent,
            clock=clock,
            jitter=jitter,
        )
        self._http = httpx.AsyncClient(
            transport=transport, timeout=self._timeout, headers=self._headers
        )
        self._sleep = sleep
        self.calls = AsyncCalls(self)
        self.streams = AsyncStreams(self)
        self.recordings = AsyncRecordings(self)
        self.conferences = AsyncConferences(self)
        self.multiparty_calls = AsyncMultiPartyCalls(self)
        self.endpoints = AsyncEndpoints(self)
        self.verified_caller_ids = AsyncVerifiedCallerIds(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _throttle(self) -> None:
        # One event loop, no await inside reserve(): no lock needed.
        if self._bucket is not None:
            delay = self._bucket.reserve()
            if delay > 0:
                await self._sleep(delay)

    async def _with_retries(self, req: Request[Any], attempt: Callable[[int], Awaitable[T]]) -> T:
        retries = 0
        while True:
            await self._throttle()
            try:
                return await attempt(retries + 1)
            except PlivoError as err:
                delay = self._retry_delay(req, err, retries)
                if delay is None:
                    raise
                self._log_retry(req, err, delay)
            await self._sleep(delay)
            retries += 1

    async def _execute(self, req: Request[T]) -> T:
        async def attempt(n: int) -> T:
            request = self._http.build_request(
                req.method, self._url(req), params=req.params, json=req.json
            )
            started = time.perf_counter()
            try:
                response = await self._http.send(request, auth=self._auth)
            except httpx.RequestError as exc:
                self._log(req.method, req.path, type(exc).__name__, started, n)
                raise self._transport_error(exc, req.method, str(request.url)) from exc
            self._log(req.method, req.path, response.status_code, started, n)
            return self._handle(req, response)

        return await self._with_retries(req, attempt)

    async def _download(self, url: str, dest: Path, chunk_size: int) -> Path:
        req = Request("GET", url, none, idempotent=True)

        async def attempt(n: int) -> Path:
            request = self._http.build_request("GET", url)
            auth = self._auth if self._same_origin(request.url) else None
            path = self._log_path(request.url)
            started = time.perf_counter()
            tmp = _temp_path(dest)
            try:
                async with self._http.stream(
                    "GET", url, auth=auth, follow_redirects=True
                ) as response:
                    if not response.is_success:
                        await response.aread()
                        self._log("GET", path, response.status_code, started, n)
                        raise self._api_error("GET", response)
                    # File work runs in a thread: the event loop never waits on the disk.
                    f = await asyncio.to_thread(tmp.open, "wb")
                    try:
                        async for chunk in response.aiter_bytes(chunk_size):
                            await asyncio.to_thread(f.write, chunk)
                    finally:
                        await asyncio.to_thread(_sync_and_close, f)
                    await asyncio.to_thread(os.replace, tmp, dest)
            except httpx.RequestError as exc:
                self._log("GET", path, type(exc).__name__, started, n)
                raise self._transport_error(exc, "GET", str(request.url)) from exc
            finally:
                await asyncio.to_thread(tmp.unlink, missing_ok=True)
            self._log("GET", path, response.status_code, started, n)
            return dest

        return await self._with_retries(req, attempt)
