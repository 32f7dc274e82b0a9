"""Hostile and broken peers against the real server on loopback: what one of them may cost.

Raw sockets, so a test can be the client a library would never be: one that never reads,
floods pings, or breaks the handshake.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import plivo_frames as pf

from streamserver.net.limits import ConnectionLimits
from streamserver.protocol.websocket import FrameReader, Opcode, client_frame

T = 10.0  # generous timeout unit
MASK = b"\x01\x02\x03\x04"
UPGRADE = (
    b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def wait_for(pred: Any, timeout: float = T) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def open_raw(port: int, rcvbuf: int = 0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


async def upgraded(port: int, rcvbuf: int = 0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await open_raw(port, rcvbuf)
    w.write(UPGRADE)
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), T)
    assert head.startswith(b"HTTP/1.1 101")
    return r, w


async def test_a_ping_flood_from_a_peer_that_never_reads_stays_bounded(serve: Any) -> None:
    limit = 256 * 1024
    async with serve(max_send_buffer_bytes=limit, max_pings_per_s=10**9) as server:
        server.conn_limits = ConnectionLimits(
            max_send_buffer_bytes=limit, send_grace_s=0.5, max_pings_per_s=10**9
        )
        _, w = await upgraded(server.port, rcvbuf=4096)
        conn = next(iter(server.connections))
        ping = client_frame(Opcode.PING, b"p" * 125, MASK) * 1000
        peak = 0
        try:
            for _ in range(400):  # up to 52 MB of pings, unless the server stops reading
                w.write(ping)
                await asyncio.wait_for(w.drain(), 0.2)
                if conn.transport is not None:
                    peak = max(peak, conn.transport.get_write_buffer_size())
        except (TimeoutError, ConnectionError):
            pass  # the server stopped reading (or closed): the flood is held off
        assert server.metrics.send_buffer_overflows == 1
        assert peak <= limit + 64 * 1024
        await wait_for(lambda: conn not in server.connections)  # closed after the grace
        assert conn.close_code == 1008
        w.transport.abort()


async def test_pings_are_rate_limited_per_connection(serve: Any) -> None:
    async with serve(max_pings_per_s=5) as server:
        r, w = await upgraded(server.port)
        w.write(client_frame(Opcode.PING, b"x", MASK) * 50)
        w.write(client_frame(Opcode.TEXT, pf.start().encode(), MASK))
        await wait_for(lambda: server.metrics.pings_unanswered >= 44)
        pongs: list[bytes] = []
        reader = FrameReader(
            on_text=lambda d: None,
            on_binary=lambda d: None,
            on_close=lambda c, m: None,
            on_pong=pongs.append,
            masked=False,
        )
        w.write(client_frame(Opcode.CLOSE, b"\x03\xe8", MASK))
        reader.feed(await asyncio.wait_for(r.read(), T))
        assert 5 <= len(pongs) <= 6
        w.close()


async def http_get(port: int, path: str) -> bytes:
    r, w = await open_raw(port)
    w.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        return await asyncio.wait_for(r.read(), T)
    except ConnectionError:
        return b""
    finally:
        w.close()


async def test_idle_sockets_are_capped_and_health_checks_still_answer(serve: Any) -> None:
    # Issue 16, defect 2: idle sockets took every fd; health checks were reset.
    async with serve(max_pending_connections=3) as server:
        idle = [await open_raw(server.port) for _ in range(3)]
        await wait_for(lambda: len(server.connections) == 3)
        assert (await http_get(server.port, "/healthz")).startswith(b"HTTP/1.1 200")
        r, w = await open_raw(server.port)
        w.write(UPGRADE)
        assert (await asyncio.wait_for(r.read(), T)).startswith(b"HTTP/1.1 503")
        more = [await open_raw(server.port) for _ in range(20)]  # past the reserve
        await wait_for(lambda: server.metrics.connections_rejected["pending"] >= 21)
        assert len(server.connections) <= 3 + 16
        for _, w in idle + more:
            w.close()
        text = (await http_get(server.port, "/metrics")).decode()
        assert 'connections_rejected_total{reason="pending"}' in text
        assert "streamserver_accept_errors_total 0" in text


async def test_the_header_timeout_holds_when_start_timeout_is_off(serve: Any) -> None:
    async with serve(start_timeout_s=0, header_timeout_s=0.3) as server:
        server.conn_limits = ConnectionLimits(header_timeout_s=0.3)
        r, w = await open_raw(server.port)
        w.write(b"GET /stream HTTP/1.1\r\n")  # and never the rest
        assert await asyncio.wait_for(r.read(), T) == b""  # dropped by the ticker
        w.close()


def test_the_fd_limit_is_raised_to_the_hard_limit() -> None:
    import resource

    from streamserver.net.limits import raise_fd_limit

    soft, hard = raise_fd_limit(10)
    assert (soft, hard) == resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == hard or hard == resource.RLIM_INFINITY


async def test_client_chosen_close_codes_are_a_bounded_label_set(serve: Any) -> None:
    async with serve() as server:
        for code in (1000, 4321, 4999):
            r, w = await upgraded(server.port)
            w.write(client_frame(Opcode.CLOSE, code.to_bytes(2, "big"), MASK))
            await asyncio.wait_for(r.read(), T)
            w.close()
        await wait_for(lambda: sum(server.metrics.close_codes.values()) == 3)
        assert dict(server.metrics.close_codes) == {1000: 1, "other": 2}
