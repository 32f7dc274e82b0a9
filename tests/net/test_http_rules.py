"""The request-head rules of the stream port (RFC 9110/9112), without sockets."""

from __future__ import annotations

import pytest

from streamserver.net.http_rules import Refusal, as_http11, check_head, check_request_line


def head(*lines: str) -> bytes:
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize(
    ("line", "status", "label"),
    [
        ("GET /stream", 505, "http_version"),  # HTTP/0.9: no version at all
        ("GET /stream HTTP/2.0", 505, "http_version"),
        ("GET /stream HTTP/3.0\r", 505, "http_version"),
        ("GET /stream http/1.1", 400, "bad_request"),  # the name is case-sensitive
        ("GET /stream HTTP/1", 400, "bad_request"),
        ("GET  /stream HTTP/1.1", 400, "bad_request"),
        ("G(T /stream HTTP/1.1", 400, "bad_request"),
        ("\x16\x03\x01\x02\x00\x01", 400, "bad_request"),  # a TLS hello on a plain port
    ],
)
def test_request_lines_refused_at_once(line: str, status: int, label: str) -> None:
    refusal = check_request_line(line.encode())
    assert refusal is not None and (refusal.status, refusal.label) == (status, label)


@pytest.mark.parametrize("line", ["GET /stream HTTP/1.1", "GET /x HTTP/1.0", "POST /x HTTP/1.9"])
def test_request_lines_that_go_on(line: str) -> None:
    assert check_request_line(line.encode()) is None


def test_methods_other_than_get_are_405_with_allow() -> None:
    for method in ("POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW"):
        r = check_head(head(f"{method} /stream HTTP/1.1", "Host: a", "Content-Length: 3"))
        assert r == Refusal(405, "method", "only GET is served on this port", allow="GET")


@pytest.mark.parametrize(
    "field", ["Transfer-Encoding: chunked", "transfer-encoding: gzip", "Content-Length: 5"]
)
def test_a_body_is_400(field: str) -> None:
    r = check_head(head("GET /stream HTTP/1.1", "Host: a", field))
    assert r is not None and (r.status, r.label) == (400, "bad_request")
    assert "request body" in r.reason


def test_content_length_zero_is_no_body() -> None:
    assert check_head(head("GET /stream HTTP/1.1", "Host: a", "Content-Length: 0")) is None


@pytest.mark.parametrize(
    "lines",
    [
        ("GET /stream HTTP/1.1",),  # no Host (RFC 9112 §3.2)
        ("GET /stream HTTP/1.1", "Host: a", "Host: b"),
        ("GET /stream HTTP/1.0", "Host: a", "Host: b"),
        ("GET /stream HTTP/1.1", "Host: a b"),
        ("GET /stream HTTP/1.1", "Host: a/b"),
    ],
)
def test_host_rules(lines: tuple[str, ...]) -> None:
    r = check_head(head(*lines))
    assert r is not None and (r.status, r.label) == (400, "host")


@pytest.mark.parametrize(
    "host", ["media.example.com", "127.0.0.1:8080", "[::1]:8080", "", "xn--bcher-kva.example"]
)
def test_valid_hosts(host: str) -> None:
    assert check_head(head("GET /stream HTTP/1.1", f"Host: {host}")) is None


def test_http10_needs_no_host() -> None:
    assert check_head(head("GET /readyz HTTP/1.0")) is None


@pytest.mark.parametrize("bad", ["Host : a", " folded", "no colon", "Bad Name: x"])
def test_malformed_header_lines_are_400(bad: str) -> None:
    r = check_head(head("GET /stream HTTP/1.1", "Host: a", bad))
    assert r is not None and (r.status, r.label) == (400, "bad_request")


def test_a_higher_minor_version_is_read_as_http11() -> None:
    assert as_http11(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n") == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    same = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert as_http11(same) is same
