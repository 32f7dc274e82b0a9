"""The control app of `serve --workers 2` sees the whole host: /streams lists both workers'
streams and a callback reaches a stream whichever worker holds it (the workers answer each
other on Unix sockets in the supervisor's shared directory). Real processes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import plivo_frames as pf
import pytest
from process_support import keep_reading, stop
from websockets.asyncio.client import ClientConnection, connect

from streamserver.control import Callback

T = 20.0


def test_callback_round_trip() -> None:
    cb = Callback("stream", "StartStream", "c", "s", {"Event": "StartStream"}, 3, 12.5)
    back = Callback.from_dict(cb.to_dict())
    assert back == Callback("stream", "StartStream", "c", "s", {"Event": "StartStream"}, 0, 12.5)
    with pytest.raises(ValueError):
        Callback.from_dict({"kind": "other", "params": {}})


async def test_control_app_sees_every_workers_streams(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(
        "[server]\ngc_freeze = false\n[control]\nenabled = true\nport = 0\n"
        '[plivo]\nauth_token = ""\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "STREAMSERVER_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamserver", "serve", "--config", str(config), "--port", "0",
        "--workers", "2", "--record-dir", str(tmp_path / "rec"),
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    url = control = ""
    while not (url and control):
        line = (await asyncio.wait_for(proc.stderr.readline(), T)).decode()
        assert line, "server exited:\n" + "".join(lines)
        lines.append(line)
        if m := re.search(r"listening on (ws://\S+) \(2 workers\)", line):
            url = m.group(1)
        if line.startswith("control app on "):
            control = line.split()[-1]

    reader = keep_reading(proc, lines)
    socks: list[ClientConnection] = []
    try:
        async with httpx.AsyncClient(timeout=T) as http:
            for n in range(40):
                ws = await connect(f"{url}/stream")
                await ws.send(pf.start(stream_id=f"s-{n}", call_id=f"c-{n}"))
                socks.append(ws)

            async def listing() -> dict[str, object]:
                return dict((await http.get(f"{control}/streams")).json())

            deadline = asyncio.get_running_loop().time() + T
            while (got := await listing())["count"] != 40:
                assert asyncio.get_running_loop().time() < deadline, got
                await asyncio.sleep(0.05)
            rows = got["streams"]
            assert isinstance(rows, list)
            assert {r["call_id"] for r in rows} == {f"c-{n}" for n in range(40)}
            by_worker = {w: sum(r["worker"] == w for r in rows) for w in ("0", "1")}
            assert min(by_worker.values()) > 0, by_worker  # both workers hold some

            # A callback reaches its stream whichever worker holds it.
            for n in range(40):
                params = {"CallUUID": f"c-{n}", "StreamID": f"s-{n}", "Event": "StartStream"}
                r = await http.post(f"{control}/callbacks/stream", data=params)
                assert r.json() == {"ok": True, "delivered": 1}, (n, r.text)
            r = await http.post(f"{control}/callbacks/hangup", data={"CallUUID": "c-7"})
            assert r.json() == {"ok": True, "delivered": 1}
            r = await http.post(f"{control}/callbacks/hangup", data={"CallUUID": "nobody"})
            assert r.json() == {"ok": True, "delivered": 0}

            # Worker 1 killed: the control app (worker 0) still answers, with its own.
            pids = {
                m.group(1): int(m.group(2))
                for ln in lines
                if (m := re.search(r"worker (\d) \(pid (\d+)\) serving", ln))
            }
            os.kill(pids["1"], signal.SIGKILL)
            deadline = asyncio.get_running_loop().time() + T
            while (got := await listing())["count"] != by_worker["0"]:
                assert asyncio.get_running_loop().time() < deadline, got
                await asyncio.sleep(0.05)
            assert {r["worker"] for r in got["streams"]} == {"0"}  # type: ignore[union-attr]
    finally:
        for ws in socks:
            await ws.close()
        await stop(proc, T)
        reader.cancel()
