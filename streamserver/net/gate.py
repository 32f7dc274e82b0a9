"""The upgrade decision: what an HTTP request on the stream port gets, before any socket work.

Pure: no sockets, no event loop. The connection parses the request and hands its target
and headers to :meth:`Gate.decide`, which answers :class:`Accept` (open a stream on this
route) or :class:`Reply` (an HTTP response instead). Health and metrics live on the same
port: ``GET /healthz`` (200 while the process runs), ``GET /readyz`` (503 while draining),
``GET /metrics`` (Prometheus text). WebSocket paths are the configured routes; anything
else is a 404.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from ..metrics import Metrics
from ..session import Route
from ..signature import HEADER_TWILIO, TwilioUpgradeVerifier, UpgradeVerifier, VerifyResult

__all__ = ["TEXT_PLAIN", "Accept", "Gate", "Reply"]

log = logging.getLogger("streamserver.net")

TEXT_PLAIN = "text/plain; charset=utf-8"
_PROMETHEUS = "text/plain; version=0.0.4"


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the request with this HTTP response (and close), no upgrade."""

    status: int
    body: str
    content_type: str = TEXT_PLAIN


@dataclass(frozen=True, slots=True)
class Accept:
    """Upgrade: a stream on ``route``, requested at ``path`` with ``query``."""

    route: Route
    path: str
    query: dict[str, str]


class Gate:
    """Decides each request: health, metrics, 404, 503 (draining, ``max_streams``), 403
    (signature), or accept. Rejections are counted in ``metrics.connections_rejected``.

    ``routes`` is shared with the server (and may be changed while serving); ``verifier``
    (Plivo's) and ``twilio_verifier`` are None when that provider's signatures are not
    checked; ``draining`` is set by the server's drain.

    With either set, every upgrade is checked by its provider's rule: a route pinned to
    Plivo or Twilio by that provider's; an auto-detecting route by the signature header
    the request carries (``X-Twilio-Signature``: Twilio, else Plivo's). Telnyx, Exotel and
    Vonage sign no upgrade: a route pinned to one of them is not checked.
    """

    def __init__(
        self,
        routes: dict[str, Route],
        metrics: Metrics,
        *,
        max_streams: int,
        verifier: UpgradeVerifier | None = None,
        twilio_verifier: TwilioUpgradeVerifier | None = None,
    ) -> None:
        self.routes = routes
        self.metrics = metrics
        self.max_streams = max_streams
        self.verifier = verifier
        self.twilio_verifier = twilio_verifier
        self.draining = False
        #: What ``/metrics`` answers (given ``draining``); a multi-worker host installs one
        #: that shows every worker's series.
        self.render_metrics: Callable[[bool], str] = lambda draining: metrics.render(
            draining=draining
        )
        self._forms_logged: set[tuple[str | None, str | None]] = set()

    def decide(self, target: str, headers: Mapping[str, str], peer: str = "") -> Accept | Reply:
        """What to do with a request for ``target`` (path and query) from ``peer``."""
        path, _, qs = target.partition("?")
        m = self.metrics
        if path == "/healthz":
            return Reply(200, "ok\n")
        if path == "/readyz":
            return Reply(503, "draining\n") if self.draining else Reply(200, "ready\n")
        if path == "/metrics":
            return Reply(200, self.render_metrics(self.draining), _PROMETHEUS)
        route = self.routes.get(path)
        if route is None:
            m.connections_rejected["not_found"] += 1
            known = ", ".join(sorted(self.routes)) or "none"
            return Reply(404, f"no stream route at {path}; configured routes: {known}\n")
        if self.draining:
            m.connections_rejected["draining"] += 1
            return Reply(503, "server is draining; retry on another instance\n")
        if m.streams_active >= self.max_streams:
            m.connections_rejected["max_streams"] += 1
            log.warning(
                "rejecting connection from %s: max_streams (%d) reached", peer, self.max_streams
            )
            return Reply(503, "too many streams on this server\n")
        if self.verifier is not None or self.twilio_verifier is not None:
            result = self._check(route.dialect, target, headers)
            if result is None:
                return Accept(route, path, dict(parse_qsl(qs, keep_blank_values=True)))
            m.signature_checks["ok" if result.ok else result.reason] += 1
            if not result.ok:
                m.connections_rejected["signature"] += 1
                log.warning(
                    "rejecting connection from %s to %s: signature check failed (%s)",
                    peer,
                    path,
                    result.reason,
                )
                return Reply(403, f"signature check failed: {result.reason}\n")
            self._note_signature_form(result.matched_url, result.header)
        return Accept(route, path, dict(parse_qsl(qs, keep_blank_values=True)))

    def _check(
        self, dialect: str | None, target: str, headers: Mapping[str, str]
    ) -> VerifyResult | None:
        """The provider's signature check (None: this provider signs no upgrade)."""
        if dialect is None:
            dialect = "twilio" if headers.get(HEADER_TWILIO) is not None else "plivo"
        if dialect == "twilio":
            tv = self.twilio_verifier
            if tv is None:
                return VerifyResult(False, "no Twilio auth token configured")
            return tv.verify(target, headers)
        if dialect == "plivo":
            pv = self.verifier
            if pv is None:
                return VerifyResult(False, "no Plivo auth token configured")
            return pv.verify(target, headers)
        return None

    def _note_signature_form(self, url: str | None, header: str | None) -> None:
        # Which URL form a deployment's signatures match is worth one INFO line, not one
        # per connection.
        key = (url, header)
        if key not in self._forms_logged:
            self._forms_logged.add(key)
            log.info("signature verified: %s matched URL form %s", header, url)
        else:
            log.debug("signature verified: %s matched URL form %s", header, url)
