"""Issue 16: ``streamserver emulate`` with the largest allowed fan-out and many live calls
exits promptly on SIGTERM (it used to spin at 100 % CPU instead).

The command runs as a real process; the application (answer URLs, callbacks) and a stream
server run here. 1,000 calls wait in ``<Wait>`` and 100 stream audio to the server when the
signal comes: every one of them hangs up at once, each with a hangup callback. Before the
fix the answer fetches alone queued up in httpx's pool, whose bookkeeping is quadratic in
its queue (the calls were never answered in time), and SIGTERM took 84 s at 100 % CPU. The
bound on the exit only catches a hang (it is not a timing measurement).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
from emulator_support import Hooks
from starlette.applications import Starlette
from starlette.routing import Route

from streamserver.asgi import AsgiServer
from streamserver.emulator.api.calls import MAX_DESTINATIONS
from streamserver.net import StreamServer
from streamserver.settings import RouteSettings, load_settings

T = 120.0  # generous: getting 1,100 calls answered on a loaded machine
EXIT_BOUND_S = 15.0
WAITING_REQUESTS = 10  # x 100 destinations
AUTH_ID = "MAEMULATORSIGTERM001"
AUTH_TOKEN = "sigterm-test-token"


async def wait_until(cond, what: str) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + T
    while not cond():
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_sigterm_with_a_full_fan_out_and_many_live_calls_exits_promptly(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        None,
        environ={},
        overrides={"server.host": "127.0.0.1", "server.port": 0, "server.gc_freeze": False},
    )
    settings.server.nonce_dir = ""
    settings.routes = {"/stream": RouteSettings(handlers=["echo"])}
    server = StreamServer(settings)
    await server.start()
    hooks = Hooks()
    hooks.xml["/wait"] = '<Response><Wait length="300"/></Response>'
    hooks.xml["/stream"] = (
        '<Response><Stream bidirectional="true" keepCallAlive="true">'
        f"ws://127.0.0.1:{server.port}/stream</Stream></Response>"
    )
    config = tmp_path / "emulator.toml"
    config.write_text(
        f"""[emulator]
auth_id = "{AUTH_ID}"
auth_token = "{AUTH_TOKEN}"
calls_per_second = 0
ring_s = 0.0
caller_hangup_after_audio_s = -1.0
http_timeout_s = 30.0
"""
    )
    app = Starlette(routes=[Route("/{path:path}", hooks.handle, methods=["GET", "POST"])])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "STREAMSERVER_"))}
    async with AsgiServer(app) as web:
        hooks.base_url = web.base_url
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "streamserver", "emulate", "--port", "0"],
            *["--config", str(config), "--no-env-file", "--log-level", "ERROR"],
            stdout=asyncio.subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        try:
            assert proc.stdout is not None
            first = (await asyncio.wait_for(proc.stdout.readline(), T)).decode()
            assert first.startswith("Plivo emulator listening on http://"), first
            api = f"{first.split()[-1]}/v1/Account/{AUTH_ID}/"
            to = "<".join(f"1415556{i:04d}" for i in range(MAX_DESTINATIONS))
            async with httpx.AsyncClient(base_url=api, auth=(AUTH_ID, AUTH_TOKEN), timeout=T) as h:
                for path in ["/stream"] + ["/wait"] * WAITING_REQUESTS:
                    body = {
                        "from": "14155550100",
                        "to": to,
                        "answer_url": hooks.url(path),
                        "hangup_url": hooks.url("/hangup"),
                    }
                    r = await h.post("Call/", json=body)
                    assert r.status_code == 201, r.text
            waiting = WAITING_REQUESTS * MAX_DESTINATIONS
            await wait_until(
                lambda: sum(hit.path == "/wait" for hit in hooks.hits) >= waiting,
                "the waiting calls to be answered",
            )
            await wait_until(
                lambda: server.metrics.streams_active >= MAX_DESTINATIONS, "the streams"
            )
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), EXIT_BOUND_S)
            assert code == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await server.shutdown()
