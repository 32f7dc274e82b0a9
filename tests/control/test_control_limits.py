"""The control app's bounds: body size, header/body deadlines, connection cap, and the safe
default without a token (issue 16, defects 2 and 8)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from test_control import CALL, control_app

from streamserver.settings import Settings

TIMEOUT = 10.0


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        try:
            return await asyncio.wait_for(reader.read(), TIMEOUT)
        except ConnectionResetError:  # closed with our unread bytes in its buffer
            return b"RESET"
    finally:
        writer.close()


def _head(path: str, headers: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode()


async def test_a_huge_body_is_refused_by_content_length_and_while_streaming(
    make_settings: Callable[..., Settings],
) -> None:
    async with control_app(make_settings, token=None) as (server, app):
        form = "content-type: application/x-www-form-urlencoded\r\n"
        # 200 MB announced, nothing sent: 413 at once, nothing read.
        reply = await _exchange(
            app.port, _head("/callbacks/stream", form + "content-length: 209715200\r\n")
        )
        assert reply.startswith(b"HTTP/1.1 413")
        # Chunked, no length: cut as soon as 64 KB have arrived.
        chunk = b"a=" + b"x" * 16382
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(8)) + b"0\r\n\r\n"
        reply = await _exchange(
            app.port, _head("/callbacks/stream", form + "transfer-encoding: chunked\r\n") + body
        )
        assert reply.startswith(b"HTTP/1.1 413") or reply == b"RESET"
        assert server.metrics.control_rejected["body_too_large"] == 2


async def test_slow_heads_and_bodies_are_cut_and_connections_capped(
    make_settings: Callable[..., Settings],
) -> None:
    limits = {"header_timeout_s": 0.3, "body_timeout_s": 0.3, "max_connections": 3}
    async with control_app(make_settings, token=None, control=limits) as (server, app):
        started = time.monotonic()
        reply = await _exchange(app.port, b"POST /callbacks/stream HTTP/1.1\r\nHost: x\r\n")
        assert reply.startswith(b"HTTP/1.1 408")
        reply = await _exchange(
            app.port,
            _head("/callbacks/stream", "content-length: 100\r\n") + b"CallUUID=1",
        )
        assert reply.startswith(b"HTTP/1.1 408") or reply == b""
        assert time.monotonic() - started < TIMEOUT
        idle = [await asyncio.open_connection("127.0.0.1", app.port) for _ in range(3)]
        try:
            reply = await _exchange(app.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 503")
        finally:
            for _, w in idle:
                w.close()
        m = server.metrics.control_rejected
        assert (m["header_timeout"], m["body_timeout"], m["max_connections"]) == (1, 1, 1)
        assert 'streamserver_control_rejected_total{reason="body_timeout"} 1' in (
            server.metrics.render()
        )


async def test_without_a_token_a_public_app_refuses_unsigned_requests(
    make_settings: Callable[..., Settings],
) -> None:
    public = {"public_url": "https://app.example.com"}
    async with control_app(make_settings, token=None, control=public) as (server, app):
        assert app.exposed
        async with httpx.AsyncClient() as http:
            local = f"http://127.0.0.1:{app.port}"
            r = await http.post(f"{local}/callbacks/stream", data={"CallUUID": CALL})
            assert r.status_code == 403 and "PLIVO_AUTH_TOKEN" in r.text
            assert (await http.post(f"{local}/answer")).status_code == 403
            # /streams still answers this machine
            assert (await http.get(f"{local}/streams")).status_code == 200
        assert server.metrics.control_rejected["unsigned"] == 2
    opened = {**public, "open_access": True}
    async with control_app(make_settings, token=None, control=opened) as (_, app):
        assert not app.exposed
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"http://127.0.0.1:{app.port}/callbacks/stream", data={"CallUUID": CALL}
            )
            assert r.status_code == 200
