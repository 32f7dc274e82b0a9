"""Every request on the stream port gets a status line: methods other than GET (405 with
``Allow: GET``), bodies and chunked requests (400), HTTP/0.9 and other major versions (505),
an HTTP/1.0 upgrade (400), a missing or doubled Host (400) — each with
``Connection: close`` and a counter label. Raw sockets against a real server."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from websockets.asyncio.client import connect

T = 10.0
WS = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"  # noqa: E501


async def exchange(port: int, request: bytes, then: bytes = b"") -> bytes:
    """Send ``request`` (and ``then`` after the reply's status line); all the server said."""
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    r, w = await asyncio.open_connection(sock=sock)
    try:
        w.write(request)
        first = await asyncio.wait_for(r.readuntil(b"\r\n"), T)
        if then:
            w.write(then)  # a body still arriving after the reply
        return first + await asyncio.wait_for(r.read(), T)
    finally:
        w.close()


def parse(reply: bytes) -> tuple[int, dict[str, str], str]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 ")
    fields = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), fields, body.decode()


CASES = [
    # (request, status, label)
    ("POST /stream HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 405, "method"),
    ("PUT /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 405, "method"),
    ("DELETE /nope HTTP/1.1\r\nHost: a\r\n\r\n", 405, "method"),
    (
        f"GET /stream HTTP/1.1\r\nHost: a\r\n{WS}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "bad_request",
    ),
    (f"GET /stream HTTP/1.1\r\nHost: a\r\n{WS}Content-Length: 3\r\n\r\nabc", 400, "bad_request"),
    ("GET /stream\r\n", 505, "http_version"),  # HTTP/0.9: one line, then it waits
    (f"GET /stream HTTP/2.0\r\nHost: a\r\n{WS}\r\n", 505, "http_version"),
    (f"GET /stream HTTP/1.0\r\nHost: a\r\n{WS}\r\n", 400, "http_version"),
    (f"GET /stream HTTP/1.1\r\n{WS}\r\n", 400, "host"),
    (f"GET /stream HTTP/1.1\r\nHost: a\r\nHost: b\r\n{WS}\r\n", 400, "host"),
    ("GET /stream HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400, "bad_request"),
    ("GET /stre\xe4m HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request"),  # not ASCII
]


@pytest.mark.parametrize(("request_text", "status", "label"), CASES)
async def test_refused_requests_get_a_status_line(
    serve: Any, request_text: str, status: int, label: str
) -> None:
    async with serve() as server:
        reply = await exchange(server.port, request_text.encode("latin-1"))
        code, fields, body = parse(reply)
        assert code == status, reply
        assert fields["connection"] == "close"
        assert body.strip()  # says why
        if status == 405:
            assert fields["allow"] == "GET"
        assert server.metrics.connections_rejected[label] == 1
        assert server.metrics.streams_total == 0


async def test_a_body_still_arriving_does_not_reset_the_reply(serve: Any) -> None:
    # Closing with the peer's bytes unread would send a reset, which can destroy the reply
    # before the client reads it: the connection is half-closed instead.
    async with serve() as server:
        body = b"x" * (2 << 20)
        request = b"POST /stream HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
        sock = socket.socket()
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
        r, w = await asyncio.open_connection(sock=sock)
        w.write(request + body)  # all of it at once: most is unread when the reply goes
        reply = await asyncio.wait_for(r.read(), T)
        w.close()
        assert parse(reply)[0] == 405


async def test_http10_health_checks_and_newer_minor_versions_still_work(serve: Any) -> None:
    async with serve() as server:
        # HAProxy's httpchk: HTTP/1.0, no Host
        assert parse(await exchange(server.port, b"GET /readyz HTTP/1.0\r\n\r\n"))[0] == 200
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(f"GET /stream HTTP/1.2\r\nHost: a\r\n{WS}\r\n".encode())
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), T)
        assert head.startswith(b"HTTP/1.1 101")  # read as HTTP/1.1 (RFC 9110 §2.5)
        w.close()
        async with connect(f"ws://127.0.0.1:{server.port}/stream") as ws:
            await ws.ping()
        text = (await exchange(server.port, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")).decode()
        assert "streamserver_connections_rejected_total" in text
        assert not server.metrics.connections_rejected
