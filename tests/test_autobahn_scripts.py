"""``make autobahn``'s parts without Python 2: the echo server (our wire layer) echoes what
it gets and fails bad text with 1007, and the runner's summary fails any case that is not
OK, NON-STRICT or INFORMATIONAL. The suite itself runs with ``make autobahn``."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import sys
from pathlib import Path
from types import ModuleType

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

ROOT = Path(__file__).resolve().parent.parent
T = 10.0


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "scripts" / "autobahn" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_echo_server_echoes_and_fails_bad_text() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "autobahn" / "echo_server.py"),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), T)).decode()
        url = f"ws://127.0.0.1:{int(line.split()[-1])}/echo"
        async with connect(url, max_size=None, compression=None) as ws:
            for message in ("hi", "é" * 70000, b"\x00\xff" * 5, b"x" * (3 << 20)):
                await ws.send(message)
                assert await asyncio.wait_for(ws.recv(), T) == message
            await ws.send([b"frag", b"ments"])  # a fragmented binary message
            assert await asyncio.wait_for(ws.recv(), T) == b"fragments"
        async with connect(url, compression=None) as ws:
            # Text that is not UTF-8: the client library would refuse to send it, so the
            # frame is written raw (FIN, text, masked with a zero key).
            ws.transport.write(b"\x81\x82\x00\x00\x00\x00\xc3\x28")
            with pytest.raises(ConnectionClosedError) as info:
                await asyncio.wait_for(ws.recv(), T)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1007
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), T) == 0


def test_the_summary_counts_behaviours_and_fails_the_rest() -> None:
    run = load("run")
    index = {
        "streamserver": {
            "1.1.1": {"behavior": "OK", "behaviorClose": "OK"},
            "6.4.1": {"behavior": "NON-STRICT", "behaviorClose": "OK"},
            "7.13.1": {"behavior": "INFORMATIONAL", "behaviorClose": "INFORMATIONAL"},
            "10.1.1": {"behavior": "OK", "behaviorClose": "OK"},
        }
    }
    table, bad = run.summarize(index)
    assert bad == []
    assert "| 1.x | 0 | 0 | 1 | 1 |" in table and "| all | 1 | 1 | 2 | 4 |" in table
    index["streamserver"]["2.1"] = {"behavior": "FAILED", "behaviorClose": "OK"}
    index["streamserver"]["5.1"] = {"behavior": "OK", "behaviorClose": "UNCLEAN"}
    assert run.summarize(index)[1] == ["2.1: FAILED (close: OK)", "5.1: OK (close: UNCLEAN)"]
