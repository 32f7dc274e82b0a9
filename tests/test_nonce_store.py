"""Replay protection across restarts (issue 16, defect 6)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from streamserver.net import StreamServer
from streamserver.nonce_store import FILE_NAME, PersistentNonceCache
from streamserver.signature import UpgradeVerifier, sign_headers

PUBLIC = "wss://media.example.com"


def test_a_nonce_seen_before_a_restart_is_refused_after_it(tmp_path: Path) -> None:
    first = PersistentNonceCache(tmp_path, ttl_s=60.0)
    assert not first.seen("nonce-1") and first.seen("nonce-1")
    first.close()
    again = PersistentNonceCache(tmp_path, ttl_s=60.0)  # the restarted process
    assert again.seen("nonce-1") and not again.seen("nonce-2")
    # Stored as digests: nothing the network chose ends up in the file.
    text = (tmp_path / FILE_NAME).read_text()
    assert "nonce-1" not in text and len(text.splitlines()) == 2


def test_the_file_is_compacted_and_tolerates_torn_and_expired_lines(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    past, future = time.time() - 10, time.time() + 600
    path.write_text(f"{past:.0f} {'a' * 32}\n{future:.0f} {'b' * 32}\ngarbage\n{future:.0f}")
    cache = PersistentNonceCache(tmp_path, ttl_s=600.0)
    assert len(cache) == 1
    assert path.read_text() == f"{future:.0f} {'b' * 32}\n"
    for i in range(3000):  # compacted on the way: never more than twice the live lines
        cache.seen(f"n{i}")
    assert len(path.read_text().splitlines()) <= 2 * len(cache) + 1


def test_an_unwritable_directory_falls_back_to_memory(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    cache = PersistentNonceCache(blocked / "sub", ttl_s=60.0)
    assert not cache.seen("x") and cache.seen("x")


def test_verifier_with_a_persistent_cache_refuses_a_replay_after_restart(tmp_path: Path) -> None:
    headers = sign_headers(f"{PUBLIC}/stream", "tok", method="GET")
    assert (
        UpgradeVerifier(["tok"], PUBLIC, PersistentNonceCache(tmp_path))
        .verify("/stream", headers)
        .ok
    )
    replay = UpgradeVerifier(["tok"], PUBLIC, PersistentNonceCache(tmp_path)).verify(
        "/stream", headers
    )
    assert replay.reason == "replayed nonce"


async def _status(port: int, headers: dict[str, str]) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        (
            "GET /stream HTTP/1.1\r\nHost: media.example.com\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        ).encode()
    )
    line = await asyncio.wait_for(reader.readline(), 10.0)
    writer.close()
    return line


async def test_a_captured_upgrade_replayed_after_a_server_restart_gets_403(
    make_settings: Any, tmp_path: Path
) -> None:
    settings = make_settings(
        verify_signatures=True, public_url=PUBLIC, nonce_dir=str(tmp_path / "state")
    )
    settings.plivo.auth_token = "tok"
    captured = sign_headers(f"{PUBLIC}/stream", "tok", method="GET")
    lines = []
    for _ in range(2):  # the server, then the same server restarted
        server = StreamServer(settings)
        await server.start()
        try:
            lines.append(await _status(server.port, captured))
        finally:
            await server.shutdown()
    assert lines[0].startswith(b"HTTP/1.1 101") and lines[1].startswith(b"HTTP/1.1 403")
    assert os.path.exists(tmp_path / "state" / FILE_NAME)
