"""One port to expose: ``[control] port = "same"`` serves the control app's routes on the
stream server's port (the stream path untouched), and ``--ssl-certfile/--ssl-keyfile`` put
TLS on the server itself (wss:// and https:// on that one port). Real sockets, a real
emulator call, a real server process with a self-signed certificate made by ``openssl``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import plivo_frames as pf
import pytest
from emulator_support import settings as emulator_settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from streamserver.emulator import Emulator
from streamserver.service import StreamService
from streamserver.settings import ConfigError, Settings, load_settings

T = 20.0


def finished_recordings(rec: Path) -> list[dict[str, object]]:
    docs = [json.loads(p.read_text()) for p in rec.glob("*/*.json")]
    return [d for d in docs if d.get("end_time")]


async def test_emulator_call_through_the_one_port(
    tmp_path: Path, make_settings: Callable[..., Settings], record_dir: Path
) -> None:
    s = make_settings(routes={"/stream": {"handlers": ["recorder"], "bidirectional": True}})
    s.extra["control"] = {"enabled": True, "port": "same"}
    async with StreamService(s) as service, Emulator(emulator_settings(tmp_path)) as emu:
        control = service.control
        assert control is not None
        base = service.url.replace("ws://", "http://")
        assert control.answer_url == f"{base}/answer"
        async with httpx.AsyncClient(timeout=T) as http:
            # health stays the gate's, unknown paths its 404; the app's paths are the app's
            assert (await http.get(f"{base}/readyz")).text == "ready\n"
            assert (await http.get(f"{base}/nope")).status_code == 404
            answer = await http.get(control.answer_url)  # keep-alive: same connection next
            assert f"{service.url}/stream</Stream>" in answer.text
            assert (await http.get(f"{base}/streams")).json()["count"] == 0
            made = await http.post(
                f"{emu.api_base}Call/",
                auth=(emu.auth_id, emu.auth_token),
                json={"from": "14155550100", "to": "14155550101", "answer_url": control.answer_url},
            )
            assert made.status_code == 201, made.text
        for _ in range(int(T / 0.05)):
            if finished_recordings(record_dir):
                break
            await asyncio.sleep(0.05)
        done = finished_recordings(record_dir)
        assert done, "the emulator's call did not stream through the shared port"
        samples = done[0]["samples"]
        assert isinstance(samples, dict) and samples["inbound"] > 0


def test_same_port_refuses_a_route_on_a_control_path(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(routes={"/answer": {"handlers": ["recorder"]}})
    s.extra["control"] = {"enabled": True, "port": "same", "route": "/answer"}
    with pytest.raises(ConfigError, match=r'control\.port: "same" serves /answer'):
        StreamService(s)


def test_bad_port_spelling_names_the_choices() -> None:
    from streamserver.control import load_control_settings

    s = load_settings(environ={"STREAMSERVER_CONTROL__PORT": "shared"})
    with pytest.raises(ConfigError, match=r'control\.port: expected a port number or "same"'):
        load_control_settings(s)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_unloadable_certificate_exits_2(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, _ = certificate
    wrong_key = tmp_path / "wrong.pem"
    wrong_key.write_text("not a key\n")
    proc = subprocess.run(
        [sys.executable, "-m", "streamserver", "serve", "--port", "0",
         "--ssl-certfile", str(cert), "--ssl-keyfile", str(wrong_key)],
        capture_output=True, text=True, timeout=T, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "server.ssl_certfile: cannot load" in proc.stderr


async def test_tls_and_control_on_one_port_as_a_process(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    rec = tmp_path / "rec"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMSERVER_", "PLIVO_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamserver", "serve", "--port", "0", "--record-dir", str(rec),
        "--control", "same", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        url = ""
        while not url:
            line = (await asyncio.wait_for(proc.stderr.readline(), T)).decode()
            assert line, "server exited before listening"
            m = re.search(r"listening on (wss://\S+)", line)
            url = m.group(1) if m else ""
        base = url.replace("wss://", "https://")
        async with httpx.AsyncClient(verify=trust, timeout=T) as http:
            assert (await http.get(f"{base}/readyz")).text == "ready\n"
            answer = (await http.get(f"{base}/answer")).text
            assert f"{url}/stream</Stream>" in answer
            assert f'statusCallbackUrl="{base}/callbacks/stream"' in answer
        async with connect(f"{url}/stream", ssl=trust) as ws:
            await ws.send(pf.start())
            for i in range(50):
                await ws.send(pf.media(b"\x7f" * 160, i + 1))
            await ws.send(pf.stop())
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), T)
            assert ws.close_code == 1000
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), T) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    done = finished_recordings(rec)
    assert done and done[0]["samples"] == {"inbound": 50 * 160}
