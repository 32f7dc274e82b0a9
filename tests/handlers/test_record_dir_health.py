"""The record dir is checked: unwritable at start-up → exit 2 with a clear message; gone bad
while serving → ``/readyz`` 503 with the reason, one log line per stream and no traceback,
and ready again once the directory works. The server runs as a real process."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import plivo_frames as pf
import pytest
from websockets.asyncio.client import connect

from handlers import recorddir
from handlers.recorddir import DirHealth, probe

T = 20.0


def serve_cmd(record_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "streamserver", "serve", "--port", "0",
        "--handlers", "recorder,echo", "--record-dir", str(record_dir),
    ]  # fmt: skip


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAMSERVER_")}


def test_unwritable_record_dir_exits_2_at_start(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory")
    bad = tmp_path / "afile" / "rec"
    proc = subprocess.run(
        serve_cmd(bad), capture_output=True, text=True, timeout=T, env=clean_env(), check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "configuration error" in proc.stderr
    assert f"record_dir '{bad}' cannot be written" in proc.stderr
    assert "ENOTDIR" in proc.stderr and "--record-dir" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    probe(tmp_path / "new" / "rec")
    assert list((tmp_path / "new" / "rec").iterdir()) == []


def test_dir_health_reprobes_on_the_given_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = DirHealth()
    health.failed(tmp_path, OSError(28, os.strerror(28)))
    jobs: list[object] = []
    assert "No space left on device (ENOSPC)" in (health.problem(tmp_path, jobs.append) or "")
    assert jobs == []  # just seen: no re-probe yet
    monkeypatch.setattr(recorddir, "REPROBE_S", 0.0)
    # the re-probe runs (here at once) and passes: healthy again
    assert health.problem(tmp_path, lambda fn: fn()) is not None
    assert health.problem(tmp_path, jobs.append) is None


async def test_record_dir_gone_bad_turns_readyz_503(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    proc = await asyncio.create_subprocess_exec(
        *serve_cmd(rec), stderr=asyncio.subprocess.PIPE, env=clean_env()
    )
    assert proc.stderr is not None
    url = ""
    try:
        while not url:
            line = (await asyncio.wait_for(proc.stderr.readline(), T)).decode()
            assert line, "server exited before listening"
            m = re.search(r"listening on (ws://\S+)", line)
            url = m.group(1) if m else ""
        http = url.replace("ws://", "http://")
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{http}/readyz")).status_code == 200
            # The directory disappears and a file takes its place (an unmounted volume).
            shutil.rmtree(rec)
            rec.write_text("")
            for _ in range(2):  # two streams: one log line each, and both still echo
                async with connect(f"{url}/stream") as ws:
                    await ws.send(pf.start())
                    await ws.send(pf.media(b"\xff" * 160, 1))
                    assert "playAudio" in await asyncio.wait_for(ws.recv(), T)
                    await ws.send(pf.stop())
            r = await client.get(f"{http}/readyz")
            assert r.status_code == 503
            assert f"record_dir {rec} cannot be written: Not a directory (ENOTDIR)" in r.text
            # Fixed again: ready once the re-probe (every 5 s) passes.
            rec.unlink()
            rec.mkdir()
            deadline = time.monotonic() + T
            while (await client.get(f"{http}/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "never ready again"
                await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), T) == 0
        log = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    failures = [ln for ln in log.splitlines() if "handler recorder failed" in ln]
    assert len(failures) == 2, log
    assert "ENOTDIR" in failures[0] and "no longer recorded" in failures[0]
    assert "Traceback" not in log, log
