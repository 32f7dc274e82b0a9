"""The upgrade decision: what an HTTP request on the stream port gets, before any socket work.

Pure: no sockets, no event loop. The connection parses the request and hands its target
and headers to :meth:`Gate.decide`, which answers :class:`Accept` (open a stream on this
route) or :class:`Reply` (an HTTP response instead). Health and metrics live on the same
port: ``GET /healthz`` (200 while the process runs), ``GET /readyz`` (503 while draining
or while a readiness check reports a problem, such as a full record dir), ``GET /metrics``
(Prometheus text). WebSocket paths are the configured routes; anything
else is a 404.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from ..logs import LogBudget, clean
from ..metrics import Metrics
from ..session import Route
from ..signature import HEADER_TWILIO, TwilioUpgradeVerifier, UpgradeVerifier, VerifyResult
from .http_rules import Refusal, check_head, check_request_line, http10_upgrade

__all__ = ["TEXT_PLAIN", "Accept", "Gate", "Reply"]

log = logging.getLogger("streamserver.net")

TEXT_PLAIN = "text/plain; charset=utf-8"
_PROMETHEUS = "text/plain; version=0.0.4"


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the request with this HTTP response (and close), no upgrade.

    ``headers`` are added to the response (``Allow`` on a 405); ``linger``: the request may
    carry a body still on its way, so the reply half-closes the connection and lets the
    peer end it, instead of a close that could reset it before the reply is read.
    """

    status: int
    body: str
    content_type: str = TEXT_PLAIN
    headers: tuple[tuple[str, str], ...] = ()
    linger: bool = False


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
    checked; ``draining`` is set by the server's drain; ``readiness`` holds checks asked on
    ``GET /readyz`` (each returns why the server is not ready, or None; they answer from
    memory).

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
        #: one WARNING per rejection kind a minute, then a count (floods of upgrades)
        self._logs = LogBudget(1, 60.0, counter=metrics.log_suppressed)
        self.readiness: list[Callable[[], str | None]] = []
        #: Paths served by an HTTP app on this port (the control app's, with
        #: ``[control] port = "same"``): the connection hands such requests over.
        self.http_paths: frozenset[str] = frozenset()
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
            return self._ready()
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
            self._logs.log(
                log,
                logging.WARNING,
                "rejected_max_streams",
                "rejecting connection from %s: max_streams (%d) reached",
                peer,
                self.max_streams,
            )
            return Reply(503, "too many streams on this server\n")
        if self.verifier is not None or self.twilio_verifier is not None:
            result = self._check(route.dialect, target, headers)
            if result is None:
                return Accept(route, path, dict(parse_qsl(qs, keep_blank_values=True)))
            m.signature_checks["ok" if result.ok else result.reason] += 1
            if not result.ok:
                m.connections_rejected["signature"] += 1
                self._logs.log(
                    log,
                    logging.WARNING,
                    "rejected_signature",
                    "rejecting connection from %s to %s: signature check failed (%s)",
                    peer,
                    clean(path),
                    result.reason,
                )
                return Reply(403, f"signature check failed: {result.reason}\n")
            self._note_signature_form(result.matched_url, result.header)
        return Accept(route, path, dict(parse_qsl(qs, keep_blank_values=True)))

    def screen_line(self, line: bytes, peer: str = "") -> Reply | None:
        """The request line, as soon as it is in (``http_rules.check_request_line``): a
        reply for HTTP/0.9, another major version or a malformed line, else None."""
        refusal = check_request_line(line)
        return None if refusal is None else self._refuse(refusal, peer)

    def screen(self, head: bytes, peer: str = "") -> Reply | None:
        """The whole request head (``http_rules.check_head``): a reply for a method other
        than GET (405), a body, a missing or doubled Host (400), or an HTTP/1.0 request
        for a stream route (400); None when it may go on to :meth:`decide`."""
        refusal = check_head(head)
        if refusal is None:
            line = head[: head.find(b"\r\n")]
            if line.endswith(b" HTTP/1.0"):
                target = line.split(b" ")[1].partition(b"?")[0].decode("latin-1")
                if target in self.routes:
                    refusal = http10_upgrade()
        return None if refusal is None else self._refuse(refusal, peer)

    def _refuse(self, refusal: Refusal, peer: str) -> Reply:
        self.metrics.connections_rejected[refusal.label] += 1
        self._logs.log(
            log,
            logging.WARNING,
            f"rejected_{refusal.label}",
            "rejecting request from %s: %d %s",
            peer,
            refusal.status,
            refusal.reason,
        )
        headers = (("Allow", refusal.allow),) if refusal.allow else ()
        return Reply(refusal.status, f"{refusal.reason}\n", headers=headers, linger=True)

    def for_app(self, head: bytes | bytearray) -> bool:
        """Whether a request head (``METHOD target HTTP/1.1\\r\\n...``) is for the HTTP app
        served on this port: its path is one of :attr:`http_paths` (never a stream route)."""
        line = bytes(head[: head.find(b"\r\n")]).split(b" ")
        if len(line) != 3:
            return False
        return line[1].partition(b"?")[0].decode("latin-1") in self.http_paths

    def _ready(self) -> Reply:
        if self.draining:
            return Reply(503, "draining\n")
        problems = [p for p in (check() for check in self.readiness) if p]
        if problems:
            return Reply(503, "".join(f"not ready: {p}\n" for p in problems))
        return Reply(200, "ready\n")

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
            log.info("signature verified: %s matched URL form %s", header, clean(url, 300))
        else:
            log.debug("signature verified: %s matched URL form %s", header, clean(url, 300))
