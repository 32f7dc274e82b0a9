"""What an HTTP request head must be before it can be an upgrade (RFC 9110, RFC 9112).

Pure: bytes in, a :class:`Refusal` (status, counter label, reason) or None out, once per
connection and never per frame. The stream port speaks just enough HTTP/1.1 for health
checks, ``/metrics`` and the WebSocket opening handshake (RFC 6455 §4.2.1: an HTTP/1.1 GET
with no body), and answers everything else with a status line instead of dropping it:

- :func:`check_request_line`, as soon as the first line is in: no version at all is
  HTTP/0.9 and a major version other than 1 is not ours (505, RFC 9110 §15.6.6); a line that
  is not ``method SP target SP HTTP/d.d`` is 400 (RFC 9112 §3).
- :func:`check_head`, on the whole head: a method other than GET is 405 with
  ``Allow: GET`` (RFC 9110 §15.5.6); an HTTP/1.1 request without exactly one valid ``Host``
  is 400 (RFC 9112 §3.2), and so is any request with two; a body (``Content-Length`` other
  than 0, any ``Transfer-Encoding``, chunked included) is 400 — a GET's body has no meaning
  and none of our endpoints reads one (RFC 9110 §9.3.1); a header line that is not
  ``name: value`` (whitespace before the colon, obsolete line folding) is 400
  (RFC 9112 §5.1, §5.2).
- An HTTP/1.0 request is served for the health endpoints (load balancers probe with it),
  but it cannot upgrade — RFC 9110 §7.8 has a server ignore ``Upgrade`` in HTTP/1.0 — so on
  a stream route it is 400, the answer RFC 6455 §4.2.1 gives an invalid handshake
  (:func:`http10_upgrade`). A higher minor version is read as 1.1 (RFC 9110 §2.5):
  :func:`as_http11` rewrites the line for the handshake parser.

Counter labels (``streamserver_connections_rejected_total{reason}``): ``bad_request``,
``http_version``, ``method``, ``host``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Refusal", "as_http11", "check_head", "check_request_line", "http10_upgrade"]

# RFC 9110 §5.6.2: a token (methods, field names).
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
# RFC 3986 host [":" port]: reg-name, IPv4 or an IP-literal in brackets; may be empty.
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.v]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Answer ``status`` with ``reason`` (one line of text) and close; count it as ``label``.
    ``allow`` is the ``Allow`` header a 405 carries."""

    status: int
    label: str
    reason: str
    allow: str = ""


def check_request_line(line: bytes) -> Refusal | None:
    """The first line of a request (without its line ending), checked before the rest."""
    line = line.removesuffix(b"\r")
    parts = line.split(b" ")
    if len(parts) == 2 and _TOKEN.fullmatch(parts[0]) and parts[1].startswith(b"/"):
        return Refusal(505, "http_version", "HTTP/0.9 is not supported; use HTTP/1.1")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        return Refusal(400, "bad_request", "malformed request line")
    version = _VERSION.fullmatch(parts[2])
    if version is None:
        return Refusal(400, "bad_request", "malformed HTTP version")
    if version.group(1) != b"1":
        name = parts[2].decode("ascii")
        return Refusal(505, "http_version", f"{name} is not supported; use HTTP/1.1")
    return None


def check_head(head: bytes) -> Refusal | None:
    """A whole request head (request line and header lines, CRLF-separated)."""
    lines = head.split(b"\r\n")
    method, _, rest = lines[0].partition(b" ")
    version = rest.rpartition(b" ")[2]
    hosts = 0
    host_ok = True
    body = ""
    for raw in lines[1:]:
        if not raw:
            continue
        if raw[:1] in (b" ", b"\t"):
            return Refusal(400, "bad_request", "obsolete line folding in a header")
        name, colon, value = raw.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            return Refusal(400, "bad_request", "malformed header line")
        key = name.lower()
        value = value.strip(b" \t")
        if key == b"host":
            hosts += 1
            host_ok = host_ok and _HOST.fullmatch(value) is not None
        elif key == b"transfer-encoding":
            body = "Transfer-Encoding"
        elif key == b"content-length" and value != b"0":
            body = body or "Content-Length"
    if method != b"GET":
        return Refusal(405, "method", "only GET is served on this port", allow="GET")
    if body:
        return Refusal(400, "bad_request", f"a request body ({body}) is not accepted")
    if hosts > 1 or not host_ok:
        return Refusal(400, "host", "more than one Host header, or an invalid one")
    if hosts == 0 and version != b"HTTP/1.0":
        return Refusal(400, "host", "an HTTP/1.1 request needs a Host header")
    return None


def http10_upgrade() -> Refusal:
    """An HTTP/1.0 request for a stream route: it cannot upgrade (see the module docs)."""
    return Refusal(400, "http_version", "a WebSocket upgrade needs HTTP/1.1")


def as_http11(head: bytes) -> bytes:
    """``head`` with an ``HTTP/1.x`` (x ≥ 2) request line read as HTTP/1.1."""
    end = head.find(b"\r\n")
    line = head[:end]
    if line.endswith(b"HTTP/1.1") or line.endswith(b"HTTP/1.0"):
        return head
    return line[: line.rfind(b" ") + 1] + b"HTTP/1.1" + head[end:]
