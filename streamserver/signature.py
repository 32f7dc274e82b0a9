"""Provider request signatures: Plivo V3 (and legacy V2) and Twilio's ``X-Twilio-Signature``,
compute and verify, plus WebSocket upgrade checks.

Pure functions over strings (no I/O, no asyncio) shared by the stream server (WebSocket
upgrades), the control app (webhooks) and the emulator (which signs what it sends).

Signature V3 (``X-Plivo-Signature-V3``, keyed with the auth token):

1. ``base`` is the called URL without query or fragment: ``scheme://host[:port]/path``.
2. GET: the URL's query and any extra parameters are merged, keys sorted, the values of a
   repeated key sorted, joined as ``k=v&k=v`` *unencoded*; the string is ``base`` or
   ``base?sorted``.
3. POST with body parameters: sorted ``keyvaluekeyvalue`` with no separators; the string is
   ``base?concat`` or, when the URL has a query, ``base?sorted_query.concat``. An empty body
   is signed like a GET.
4. ``.`` + nonce is appended, HMAC-SHA256, base64. The header may carry several
   comma-separated signatures; one match is enough. ``X-Plivo-Signature-Ma-V3`` is the same
   computed with the main account's token.

Where the official SDKs disagree (query percent-decoding, a key present both in the URL and
in the parameters) this follows the Python and Node SDKs: query values are percent-decoded
and all values of a key are kept.

Twilio (``X-Twilio-Signature``, keyed with the auth token;
https://www.twilio.com/docs/usage/security#validating-requests):

1. The string is the full URL Twilio called, query included, exactly as configured.
2. For a form POST, each parameter's name and value are appended, names sorted (values of a
   repeated name sorted too), with no separators. A JSON body is not signed as parameters:
   its hex SHA-256 is in the URL's ``bodySHA256`` query parameter, which is checked.
3. HMAC-SHA1, base64.

URL rules users trip over: a WebSocket upgrade (Media Streams) is signed over the ``wss://``
URL of the TwiML ``<Stream url>``, while the server behind a TLS proxy sees ``https``/
``http``; and Twilio may or may not have included the default port (``:443``). The
verifiers below try the URL with and without the default port, and the upgrade verifier the
``wss://`` form first, then ``https://``. There is no nonce: a captured request can be
replayed, so keep TLS on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "HEADER_MA_V3",
    "HEADER_NONCE_V2",
    "HEADER_NONCE_V3",
    "HEADER_TWILIO",
    "HEADER_V2",
    "HEADER_V3",
    "NonceCache",
    "Params",
    "TwilioUpgradeVerifier",
    "UpgradeVerifier",
    "VerifyResult",
    "compute_twilio",
    "compute_v2",
    "compute_v3",
    "sign_headers",
    "twilio_url_candidates",
    "twilio_url_variants",
    "verify_twilio",
    "verify_v2",
    "verify_v3",
    "websocket_url_candidates",
]

HEADER_V3 = "X-Plivo-Signature-V3"
HEADER_MA_V3 = "X-Plivo-Signature-Ma-V3"
HEADER_NONCE_V3 = "X-Plivo-Signature-V3-Nonce"
HEADER_V2 = "X-Plivo-Signature-V2"
HEADER_NONCE_V2 = "X-Plivo-Signature-V2-Nonce"
HEADER_TWILIO = "X-Twilio-Signature"

Params = Mapping[str, str | Sequence[str]]
"""Request parameters: one value or several values per key."""


# ---------------------------------------------------------------------------------------------
# V3


def _base_url(url: str) -> tuple[str, str]:
    """Split ``url`` into ``scheme://netloc/path`` and the raw query (fragment dropped)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parts.query


def _values(value: str | Sequence[str]) -> list[str]:
    # A str is itself a Sequence[str]; it must count as one value, not as its characters.
    return [value] if isinstance(value, str) else list(value)


def _group(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def _param_pairs(params: Params | None) -> list[tuple[str, str]]:
    if not params:
        return []
    return [(key, value) for key, values in params.items() for value in _values(values)]


def _sorted_query(grouped: Mapping[str, list[str]]) -> str:
    return "&".join(f"{key}={value}" for key in sorted(grouped) for value in sorted(grouped[key]))


def _sorted_concat(grouped: Mapping[str, list[str]]) -> str:
    return "".join(f"{key}{value}" for key in sorted(grouped) for value in sorted(grouped[key]))


def _query_pairs(query: str) -> list[tuple[str, str]]:
    # Percent-decoded, blank values kept: "a=&b" signs as "a=&b=".
    return parse_qsl(query, keep_blank_values=True)


def _v3_string(url: str, params: Params | None, method: str) -> str:
    """The exact string that V3 signs, before ``.nonce`` is appended."""
    verb = method.upper()
    if verb not in ("GET", "POST"):
        raise ValueError(f"signature V3 covers GET and POST requests, not {method!r}")
    base, query = _base_url(url)
    extra = _param_pairs(params)
    if verb == "GET" or not extra:
        merged = _sorted_query(_group([*_query_pairs(query), *extra]))
        return f"{base}?{merged}" if merged else base
    body = _sorted_concat(_group(extra))
    url_query = _sorted_query(_group(_query_pairs(query)))
    return f"{base}?{url_query}.{body}" if url_query else f"{base}?{body}"


def _hmac_b64(auth_token: str, message: str) -> str:
    digest = hmac.new(auth_token.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def compute_v3(
    url: str,
    nonce: str,
    auth_token: str,
    params: Params | None = None,
    method: str = "POST",
) -> str:
    """Return the base64 V3 signature Plivo puts in ``X-Plivo-Signature-V3``.

    ``url`` is the full URL that was called (query included); ``params`` are the form body
    parameters for a POST, or extra query parameters for a GET.
    """
    return _hmac_b64(auth_token, f"{_v3_string(url, params, method)}.{nonce}")


def _split_header(signature_header: str) -> list[bytes]:
    return [
        part.strip().encode("utf-8", "replace")
        for part in signature_header.split(",")
        if part.strip()
    ]


def _tokens(auth_tokens: Sequence[str] | str) -> list[str]:
    # Accept a lone token too: iterating a str would try each character as a key.
    return [auth_tokens] if isinstance(auth_tokens, str) else [t for t in auth_tokens if t]


def _matches(expected: str, offered: Sequence[bytes]) -> bool:
    wanted = expected.encode("ascii")
    found = False
    for candidate in offered:
        # No early exit: the time taken does not depend on which offered value matched.
        found |= hmac.compare_digest(wanted, candidate)
    return found


def verify_v3(
    url: str,
    nonce: str,
    signature_header: str,
    auth_tokens: Sequence[str],
    params: Params | None = None,
    method: str = "POST",
) -> bool:
    """True if any comma-separated signature in the header matches any of ``auth_tokens``.

    Several tokens allow rotation (old and new token both valid for a while). Comparison is
    constant-time.
    """
    offered = _split_header(signature_header)
    if not offered or not nonce:
        return False
    message = f"{_v3_string(url, params, method)}.{nonce}"
    return any(_matches(_hmac_b64(token, message), offered) for token in _tokens(auth_tokens))


def _new_nonce() -> str:
    # Plivo's nonces are 20 decimal digits.
    return f"{secrets.randbelow(10**20):020d}"


def sign_headers(
    url: str,
    auth_token: str,
    params: Params | None = None,
    method: str = "POST",
    nonce: str | None = None,
    main_account_token: str | None = None,
) -> dict[str, str]:
    """Return the signature headers Plivo would send for this request.

    ``X-Plivo-Signature-Ma-V3`` uses ``main_account_token``; for a main account (no
    sub-account) it is the account's own token, as Plivo sends it. A fresh random nonce is
    drawn when ``nonce`` is None.
    """
    nonce = _new_nonce() if nonce is None else nonce
    main = auth_token if main_account_token is None else main_account_token
    return {
        HEADER_V3: compute_v3(url, nonce, auth_token, params, method),
        HEADER_NONCE_V3: nonce,
        HEADER_MA_V3: compute_v3(url, nonce, main, params, method),
    }


# ---------------------------------------------------------------------------------------------
# V2 (legacy): the URL without its query, then the nonce; parameters are not covered.


def compute_v2(url: str, nonce: str, auth_token: str) -> str:
    """Return the legacy V2 signature: HMAC-SHA256 of ``scheme://host[:port]/path`` + nonce."""
    base, _query = _base_url(url)
    return _hmac_b64(auth_token, base + nonce)


def verify_v2(url: str, nonce: str, signature_header: str, auth_tokens: Sequence[str]) -> bool:
    """True if any comma-separated V2 signature in the header matches any of ``auth_tokens``."""
    offered = _split_header(signature_header)
    if not offered or not nonce:
        return False
    return any(_matches(compute_v2(url, nonce, token), offered) for token in _tokens(auth_tokens))


# ---------------------------------------------------------------------------------------------
# WebSocket upgrades


_SCHEMES = ("wss", "https", "http", "ws")


def _public_parts(public_url: str) -> tuple[str, str]:
    """Validate the configured public URL; return its ``host[:port]`` and path prefix."""
    parts = urlsplit(public_url)
    if parts.scheme.lower() not in _SCHEMES or not parts.netloc:
        raise ValueError(
            f"public URL must be ws://, wss://, http:// or https:// with a host: {public_url!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"public URL must not carry a query or fragment: {public_url!r}")
    return parts.netloc, parts.path.rstrip("/")


def _candidates(netloc: str, prefix: str, path_and_query: str) -> list[str]:
    target = path_and_query if path_and_query.startswith("/") else "/" + path_and_query
    path, sep, query = target.partition("?")
    full_path = prefix + path
    suffix = f"?{query}" if sep else ""
    forms = [f"{scheme}://{netloc}{full_path}{suffix}" for scheme in _SCHEMES]
    # The Python SDK rewrites ws/wss to http:// and appends "/websocket" to the path.
    forms.append(f"http://{netloc}{full_path.rstrip('/')}/websocket{suffix}")
    return list(dict.fromkeys(forms))


def websocket_url_candidates(public_url: str, path_and_query: str) -> list[str]:
    """Return the URLs a WebSocket upgrade may have been signed over, most likely first.

    ``public_url`` is how the outside world reaches this server's root (e.g.
    ``wss://media.example.com`` or ``https://media.example.com:8443/prefix``);
    ``path_and_query`` is the request target the server saw (``/stream?x=1``), appended to
    the public path prefix. Plivo and its SDKs disagree on which form is signed, so the
    result holds the ``wss://``, ``https://``, ``http://`` and ``ws://`` forms and the
    Python SDK's ``http://…/websocket`` form, port and query kept, duplicates removed.
    """
    netloc, prefix = _public_parts(public_url)
    return _candidates(netloc, prefix, path_and_query)


class NonceCache:
    """Remembers nonces for ``ttl_s`` seconds so a captured signed request cannot be replayed.

    Bounded to ``max_items`` (the oldest entries are evicted first) so a flood of signed
    requests cannot grow memory without limit. Not thread-safe; one per event loop.
    """

    def __init__(
        self,
        ttl_s: float = 300.0,
        max_items: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        self._ttl_s = ttl_s
        self._max_items = max_items
        self._clock = clock
        # nonce -> expiry time; insertion order is expiry order because the TTL is constant
        # and the clock never goes back, so expired entries are always at the front.
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, nonce: str) -> bool:
        """True if ``nonce`` was already recorded within the TTL (a replay); else record it."""
        now = self._clock()
        self._expire(now)
        if nonce in self._expiry:
            return True
        self._expiry[nonce] = now + self._ttl_s
        while len(self._expiry) > self._max_items:
            self._expiry.popitem(last=False)
        return False

    @property
    def ttl_s(self) -> float:
        """How long a nonce is remembered, in seconds of ``clock``."""
        return self._ttl_s

    def now(self) -> float:
        """The cache's clock."""
        return self._clock()

    def remember(self, nonce: str, expires_at: float) -> None:
        """Record ``nonce`` until ``expires_at`` (a cache restored from elsewhere); an
        entry already past its expiry is ignored."""
        if expires_at > self._clock() and nonce not in self._expiry:
            self._expiry[nonce] = expires_at
            while len(self._expiry) > self._max_items:
                self._expiry.popitem(last=False)

    def live(self) -> list[tuple[str, float]]:
        """The nonces still remembered, with their expiry, oldest first."""
        self._expire(self._clock())
        return list(self._expiry.items())

    def _expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry:
            nonce, expires_at = next(iter(expiry.items()))
            if expires_at > now:
                break
            del expiry[nonce]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of an upgrade check: ``ok``, a short ``reason`` fit for a log line, and on
    success which URL form and which header (``X-Plivo-Signature-V3`` or ``-Ma-V3``) matched.
    """

    ok: bool
    reason: str
    matched_url: str | None = None
    header: str | None = None


def _get_header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup; repeated headers are joined with commas (RFC 9110 5.3)."""
    # websockets' Headers and the stdlib's email Message have get_all; Starlette's getlist.
    get_all = getattr(headers, "get_all", None) or getattr(headers, "getlist", None)
    if callable(get_all):
        values = [str(v) for v in get_all(name) or ()]
    else:
        wanted = name.lower()
        values = [v for k, v in headers.items() if k.lower() == wanted]
    return ",".join(values) if values else None


class UpgradeVerifier:
    """Verifies a WebSocket upgrade request's Plivo signature headers.

    An upgrade is a GET with no body, signed over one of the URL forms from
    :func:`websocket_url_candidates`. ``X-Plivo-Signature-V3`` and
    ``X-Plivo-Signature-Ma-V3`` are both accepted, with any of ``auth_tokens``. A nonce is
    recorded only once the signature is valid, so unsigned requests cannot fill the cache.
    """

    def __init__(
        self,
        auth_tokens: Sequence[str],
        public_url: str,
        nonce_cache: NonceCache | None = None,
    ) -> None:
        self._tokens = _tokens(auth_tokens)
        if not self._tokens:
            raise ValueError("at least one auth token is needed to verify signatures")
        self._netloc, self._prefix = _public_parts(public_url)
        self._nonces = nonce_cache

    def verify(self, path_and_query: str, headers: Mapping[str, str]) -> VerifyResult:
        """Check the signature headers of an upgrade to ``path_and_query``."""
        offered_by_header = [
            (name, _split_header(value))
            for name in (HEADER_V3, HEADER_MA_V3)
            if (value := _get_header(headers, name))
        ]
        offered_by_header = [(name, sigs) for name, sigs in offered_by_header if sigs]
        if not offered_by_header:
            return VerifyResult(False, f"missing {HEADER_V3} header")
        nonce = (_get_header(headers, HEADER_NONCE_V3) or "").strip()
        if not nonce:
            return VerifyResult(False, "missing nonce")
        for url in _candidates(self._netloc, self._prefix, path_and_query):
            message = f"{_v3_string(url, None, 'GET')}.{nonce}"
            expected = [_hmac_b64(token, message) for token in self._tokens]
            for name, offered in offered_by_header:
                if any(_matches(sig, offered) for sig in expected):
                    if self._nonces is not None and self._nonces.seen(nonce):
                        return VerifyResult(False, "replayed nonce", url, name)
                    return VerifyResult(True, "valid", url, name)
        return VerifyResult(False, "signature mismatch")


# ---------------------------------------------------------------------------------------------
# Twilio: HMAC-SHA1 over the URL (+ sorted form parameters), base64.


def compute_twilio(url: str, auth_token: str, params: Params | None = None) -> str:
    """Return the base64 signature Twilio puts in ``X-Twilio-Signature``.

    ``url`` is the full URL (query included) exactly as Twilio called it; ``params`` the
    form body of a POST (none for a GET, a JSON POST or a WebSocket upgrade).
    """
    grouped = _group(_param_pairs(params))
    message = url + "".join(
        f"{key}{value}" for key in sorted(grouped) for value in sorted(grouped[key])
    )
    digest = hmac.new(auth_token.encode("utf-8"), message.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}


def twilio_url_variants(url: str) -> list[str]:
    """``url`` as given, then with the scheme's default port added and removed (Twilio's SDKs
    accept both: whether ``:443`` is signed depends on how the URL was written), or, for
    another port, without it (what older SDKs signed)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return [url]
    bare = parts.netloc[: -len(f":{port}")] if port is not None else parts.netloc
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    forms = [url]
    if port is None or port == default:
        if default is not None:
            forms.append(parts._replace(netloc=f"{bare}:{default}").geturl())
    forms.append(parts._replace(netloc=bare).geturl())
    return list(dict.fromkeys(forms))


def _body_hash_ok(url: str, body: bytes | str | None) -> bool:
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    if "bodySHA256" not in query:
        return body is None or not body
    if body is None:
        return False
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return hmac.compare_digest(hashlib.sha256(raw).hexdigest(), query["bodySHA256"].lower())


def verify_twilio(
    url: str,
    signature_header: str,
    auth_tokens: Sequence[str] | str,
    params: Params | None = None,
    body: bytes | str | None = None,
) -> bool:
    """True if ``signature_header`` is Twilio's signature of this request with any token.

    ``params`` is a form POST's body; a JSON POST passes its raw ``body`` instead, which
    must match the URL's ``bodySHA256``. The URL is tried with and without its default
    port. Comparison is constant-time.
    """
    offered = _split_header(signature_header)
    if not offered or not _body_hash_ok(url, body):
        return False
    tokens = _tokens(auth_tokens)
    found = False
    for candidate in twilio_url_variants(url):
        for token in tokens:
            found |= _matches(compute_twilio(candidate, token, params), offered)
    return found


def twilio_url_candidates(public_url: str, path_and_query: str) -> list[str]:
    """URLs a Media Streams upgrade to ``path_and_query`` may have been signed over.

    Twilio signs the ``wss://`` URL of ``<Stream url>``; this server, behind a proxy, may be
    configured with an ``https://`` (or ``ws://``/``http://``) public URL. The ``wss://``
    form comes first (``ws://`` for a plain ``http``/``ws`` public URL), then the
    ``https://`` (``http://``) one, query kept.
    """
    netloc, prefix = _public_parts(public_url)
    secure = urlsplit(public_url).scheme.lower() in ("wss", "https")
    target = path_and_query if path_and_query.startswith("/") else "/" + path_and_query
    schemes = ("wss", "https") if secure else ("ws", "http")
    return [f"{scheme}://{netloc}{prefix}{target}" for scheme in schemes]


class TwilioUpgradeVerifier:
    """Verifies a Media Streams WebSocket upgrade's ``X-Twilio-Signature``.

    Same shape as :class:`UpgradeVerifier`: ``verify(path_and_query, headers)`` returns a
    :class:`VerifyResult` naming the URL form that matched. An upgrade has no body.
    """

    def __init__(self, auth_tokens: Sequence[str], public_url: str) -> None:
        self._tokens = _tokens(auth_tokens)
        if not self._tokens:
            raise ValueError("at least one auth token is needed to verify signatures")
        _public_parts(public_url)  # validate now, not on the first call
        self._public_url = public_url

    def verify(self, path_and_query: str, headers: Mapping[str, str]) -> VerifyResult:
        """Check the ``X-Twilio-Signature`` of an upgrade to ``path_and_query``."""
        offered = _split_header(_get_header(headers, HEADER_TWILIO) or "")
        if not offered:
            return VerifyResult(False, f"missing {HEADER_TWILIO} header")
        for url in twilio_url_candidates(self._public_url, path_and_query):
            for variant in twilio_url_variants(url):
                expected = [compute_twilio(variant, token) for token in self._tokens]
                if any(_matches(sig, offered) for sig in expected):
                    return VerifyResult(True, "valid", variant, HEADER_TWILIO)
        return VerifyResult(False, "signature mismatch")
