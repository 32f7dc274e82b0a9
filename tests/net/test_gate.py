"""The upgrade decision, without sockets: a request target and headers in, a decision out."""

from __future__ import annotations

from streamserver.metrics import Metrics
from streamserver.net.gate import Accept, Gate, Reply
from streamserver.session import Route
from streamserver.signature import NonceCache, UpgradeVerifier, sign_headers

TOKEN = "test-auth-token"
PUBLIC = "wss://media.example.com"


def make_gate(*, max_streams: int = 10, verifier: UpgradeVerifier | None = None) -> Gate:
    routes = {"/stream": Route("/stream", ()), "/bot": Route("/bot", (), True)}
    return Gate(routes, Metrics(), max_streams=max_streams, verifier=verifier)


def status(decision: Accept | Reply) -> int:
    return decision.status if isinstance(decision, Reply) else 101


def test_health_ready_and_metrics() -> None:
    gate = make_gate()
    assert gate.decide("/healthz", {}) == Reply(200, "ok\n")
    assert gate.decide("/readyz", {}) == Reply(200, "ready\n")
    m = gate.decide("/metrics", {})
    assert isinstance(m, Reply) and m.status == 200
    assert m.content_type.startswith("text/plain; version=0.0.4")
    assert "streamserver_streams_active 0" in m.body
    gate.draining = True
    assert gate.decide("/readyz", {}) == Reply(503, "draining\n")
    assert status(gate.decide("/healthz", {})) == 200


def test_accept_with_route_path_and_query() -> None:
    gate = make_gate()
    d = gate.decide("/bot?a=1&b=&a=2", {})
    assert isinstance(d, Accept)
    assert d.route is gate.routes["/bot"]
    assert (d.path, d.query) == ("/bot", {"a": "2", "b": ""})
    assert not gate.metrics.connections_rejected


def test_unknown_route_is_404_naming_the_routes() -> None:
    gate = make_gate()
    d = gate.decide("/nope?x=1", {})
    assert isinstance(d, Reply) and d.status == 404
    assert "/nope" in d.body and "/bot, /stream" in d.body
    assert gate.metrics.connections_rejected == {"not_found": 1}


def test_routes_are_shared_and_may_change_while_serving() -> None:
    gate = make_gate()
    gate.routes["/late"] = Route("/late", ())
    assert isinstance(gate.decide("/late", {}), Accept)


def test_draining_and_max_streams_are_503() -> None:
    gate = make_gate(max_streams=2)
    gate.metrics.streams_active = 2
    d = gate.decide("/stream", {})
    assert isinstance(d, Reply) and d.status == 503 and "too many" in d.body
    gate.draining = True
    d = gate.decide("/stream", {})
    assert isinstance(d, Reply) and d.status == 503 and "draining" in d.body
    assert gate.metrics.connections_rejected == {"max_streams": 1, "draining": 1}
    # Health checks are never limited.
    assert status(gate.decide("/healthz", {})) == 200


def test_signature_checked_when_a_verifier_is_set() -> None:
    gate = make_gate(verifier=UpgradeVerifier([TOKEN], PUBLIC, NonceCache()))
    d = gate.decide("/stream", {})
    assert isinstance(d, Reply) and d.status == 403 and "signature" in d.body
    headers = sign_headers(f"{PUBLIC.replace('wss', 'https')}/stream?x=1", TOKEN, method="GET")
    assert isinstance(gate.decide("/stream?x=1", headers), Accept)
    replay = gate.decide("/stream?x=1", headers)
    assert isinstance(replay, Reply) and replay.status == 403 and "replayed" in replay.body
    m = gate.metrics
    assert m.connections_rejected == {"signature": 2}
    assert m.signature_checks["ok"] == 1 and m.signature_checks["replayed nonce"] == 1


def test_a_404_comes_before_the_signature_check() -> None:
    gate = make_gate(verifier=UpgradeVerifier([TOKEN], PUBLIC, NonceCache()))
    assert status(gate.decide("/nope", {})) == 404
    assert not gate.metrics.signature_checks


def test_request_heads_are_screened_and_counted() -> None:
    gate = make_gate()
    assert gate.screen_line(b"GET /stream HTTP/1.1\r") is None
    r = gate.screen_line(b"GET /stream")
    assert isinstance(r, Reply) and r.status == 505 and "HTTP/0.9" in r.body
    r = gate.screen(b"POST /stream HTTP/1.1\r\nHost: a")
    assert isinstance(r, Reply) and r.status == 405 and r.headers == (("Allow", "GET"),)
    assert r.linger  # a body may follow: half-close
    # HTTP/1.0: health checks yes, upgrades no
    assert gate.screen(b"GET /readyz HTTP/1.0") is None
    r = gate.screen(b"GET /stream?x=1 HTTP/1.0\r\nHost: a")
    assert isinstance(r, Reply) and r.status == 400 and "HTTP/1.1" in r.body
    assert gate.metrics.connections_rejected == {"http_version": 2, "method": 1}
