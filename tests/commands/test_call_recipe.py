"""The emulator banner's recipe works as printed: ``emulate`` writes the env file (the token
never in clear on screen), ``serve --control`` runs the control app, and ``call
--stream-url`` with no config places a call whose audio the server records. Every part runs
as a real process on loopback; only the ports differ from the defaults (others may hold them).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamserver.commands import call
from streamserver.control import ControlSettings
from streamserver.emulator.settings import DEFAULT_AUTH_TOKEN

T = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def read_until(proc: subprocess.Popen[str], pattern: str, stream: str = "stdout") -> list[str]:
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    lines: list[str] = []
    while True:
        line = pipe.readline()
        assert line, f"process exited early: {''.join(lines)}"
        lines.append(line)
        if re.search(pattern, line):
            return lines


@pytest.fixture
def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "STREAMSERVER_"))}


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=T)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def env_file_values(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            out[key] = value
    return out


def test_default_control_url_is_where_serve_control_listens() -> None:
    cs = ControlSettings()
    assert call.DEFAULT_CONTROL_URL == f"http://{cs.host}:{cs.port}"


def test_banner_recipe_places_a_recorded_call(
    tmp_path: Path,
    clean_env: dict[str, str],
    procs: list[subprocess.Popen[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    py = [sys.executable, "-m", "streamserver"]
    emu = subprocess.Popen(
        [*py, "emulate", "--port", "0", "--ring-s", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env,
        cwd=tmp_path,
    )
    procs.append(emu)
    banner = "".join(read_until(emu, r"Press Ctrl\+C"))
    assert DEFAULT_AUTH_TOKEN not in banner
    source = re.search(r"^\s+\. (\S+)", banner, re.M)
    assert source, banner
    env_path = Path(shlex.split(source.group(1))[0])
    assert env_path == tmp_path / "plivo-emulator.env"
    assert env_path.stat().st_mode & 0o077 == 0
    exported = env_file_values(env_path)
    assert set(exported) == {"PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN", "PLIVO_API_URL"}
    assert exported["PLIVO_AUTH_TOKEN"] == DEFAULT_AUTH_TOKEN
    serve_line = re.search(r"streamserver (serve --control .*)$", banner, re.M)
    call_line = re.search(r"streamserver (call .*--stream-url)$", banner, re.M)
    assert serve_line and call_line, banner

    # The banner's serve line, on free ports instead of 8080/8081.
    control_port = free_port()
    env = {**clean_env, **exported, "STREAMSERVER_CONTROL__PORT": str(control_port)}
    rec = tmp_path / "rec"
    serve = subprocess.Popen(
        [*py, *shlex.split(serve_line.group(1)), "--port", "0", "--record-dir", str(rec)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    procs.append(serve)
    read_until(serve, r"control app on http://127\.0\.0\.1:\d+", "stderr")

    # The banner's call line in this process, with the default control URL pointing at the
    # free port: no --config, no --control-url.
    for key, value in exported.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(call.CONTROL_URL_ENV, raising=False)
    monkeypatch.setattr(call, "DEFAULT_CONTROL_URL", f"http://127.0.0.1:{control_port}")
    from streamserver.cli import main

    assert main(shlex.split(call_line.group(1))) == 0
    assert f"http://127.0.0.1:{control_port}/answer" in capsys.readouterr().out

    def finished() -> bool:  # the recorder finalizes its sidecar when the stream ends
        return any(json.loads(p.read_text()).get("end_time") for p in rec.glob("*/*.json"))

    deadline = time.monotonic() + T
    while not finished() and time.monotonic() < deadline:
        time.sleep(0.1)
    wavs = list(rec.glob("*/*.inbound.wav"))
    assert wavs and wavs[0].stat().st_size > 8000, "the call's audio was not recorded"


def test_call_stream_url_without_a_control_app_explains(
    clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(call.CONTROL_URL_ENV, raising=False)
    monkeypatch.setattr(call, "DEFAULT_CONTROL_URL", f"http://127.0.0.1:{free_port()}")
    from streamserver.cli import main

    args = ["call", "--to", "14155550101", "--from", "14155550100", "--stream-url"]
    assert main([*args, "--auth-id", "MAEMULATOR0000000001", "--auth-token", "x" * 12]) == 2
    err = capsys.readouterr().err
    assert "streamserver serve --control" in err and "--answer-url" in err
