"""Exceptions raised by the Plivo REST client.

Every exception derives from :class:`PlivoError`, so one ``except PlivoError`` catches them
all. The tree::

    PlivoError
    ├── PlivoAPIError               the API answered with a status that is not 2xx
    │   ├── BadRequestError         400 bad or missing parameter
    │   ├── AuthenticationError     401 wrong Auth ID / Auth Token
    │   ├── ForbiddenError          403 e.g. geo permissions
    │   ├── NotFoundError           404
    │   ├── MethodNotAllowedError   405
    │   ├── RateLimitError          429 (``retry_after`` from the header, if sent)
    │   ├── ServerError             5xx
    │   └── InvalidResponseError    2xx whose body is not the JSON the client expects
    └── PlivoTransportError         no HTTP answer: connection refused, reset, TLS ...
        └── PlivoTimeoutError       connect, read, write or pool timeout

Transport errors keep the original ``httpx`` exception as ``__cause__``. Bad arguments are
caught before any request is sent and raise plain :class:`ValueError` naming the parameter.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ForbiddenError",
    "InvalidResponseError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PlivoAPIError",
    "PlivoError",
    "PlivoTimeoutError",
    "PlivoTransportError",
    "RateLimitError",
    "ServerError",
]


class PlivoError(Exception):
    """Root of every error the REST client raises."""


class PlivoAPIError(PlivoError):
    """The API answered with an error status.

    ``error`` is the API's own message (the ``error`` field of the body, or the start of a
    non-JSON body); ``api_id`` identifies the request in Plivo's logs and support tickets
    (``None`` when the body has none, as some 401 and 404 answers do); ``body`` is the
    decoded JSON body, or ``None``; ``retry_after`` is the ``Retry-After`` header in
    seconds, when the server sent one (429, 503).
    """

    def __init__(
        self,
        error: str,
        *,
        status_code: int,
        method: str,
        url: str,
        api_id: str | None = None,
        body: object = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status_code = status_code
        self.method = method
        self.url = url
        self.api_id = api_id
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        api = f" (api_id {self.api_id})" if self.api_id else ""
        return f"{self.method} {self.url} -> {self.status_code}: {self.error}{api}"


class BadRequestError(PlivoAPIError):
    """400: a parameter is missing or invalid."""


class AuthenticationError(PlivoAPIError):
    """401: the Auth ID / Auth Token pair was rejected."""


class ForbiddenError(PlivoAPIError):
    """403: the account may not do this (for example geo permissions)."""


class NotFoundError(PlivoAPIError):
    """404: no such resource. Hanging up a call that already ended gives this."""


class MethodNotAllowedError(PlivoAPIError):
    """405: the path exists but not with this HTTP method."""


class RateLimitError(PlivoAPIError):
    """429: too many requests; ``retry_after`` (seconds) comes from the header, if sent."""


class ServerError(PlivoAPIError):
    """5xx: the API failed; retried automatically for requests that are safe to repeat."""


class InvalidResponseError(PlivoAPIError):
    """A 2xx answer whose body is not valid JSON of the expected shape."""


class PlivoTransportError(PlivoError):
    """No HTTP answer at all: the connection failed or broke. ``__cause__`` has the detail."""

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class PlivoTimeoutError(PlivoTransportError):
    """A connect, read, write or pool timeout expired."""
