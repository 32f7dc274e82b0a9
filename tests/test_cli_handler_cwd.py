"""The README's own handler example, as a newcomer uses it: saved as ``myhandlers.py`` in
the current directory, it passes the project's ruff, and ``streamserver serve --handlers
recorder,myhandlers:Loudness`` (the console script, no PYTHONPATH) imports it from there
and runs it on a replayed call."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from readme_support import ROOT, handler_example

BIN = Path(sys.executable).parent
SAMPLE = ROOT / "streamserver" / "emulator" / "samples" / "hello-8k.wav"
T = 20.0


def test_the_example_passes_the_projects_ruff() -> None:
    code = handler_example().code
    for args in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [str(BIN / "ruff"), *args, "--stdin-filename", "myhandlers.py", "-"],
            input=code,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stdout + done.stderr


async def _serve(cwd: Path, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "streamserver"), "serve", "--port", "0", "--record-dir", str(cwd / "rec"),
        *args, cwd=cwd, env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), T)).decode()
        assert line, "server exited before listening"
        m = re.search(r"listening on (ws://\S+)", line)
        if m:
            return proc, m.group(1)


async def test_serve_imports_module_class_from_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "myhandlers.py").write_text(handler_example().code)
    proc, url = await _serve(tmp_path, "--handlers", "recorder,myhandlers:Loudness")
    try:
        replay = await asyncio.create_subprocess_exec(
            str(BIN / "streamserver"), "replay", str(SAMPLE), "--url", f"{url}/stream",
            "--bidirectional", "--no-progress", "--speed", "4",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(replay.communicate(), T * 2)
        assert replay.returncode == 0, out.decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        err = (await asyncio.wait_for(proc.stderr.read(), T)).decode()
        await proc.wait()
    assert proc.returncode == 0, err
    assert "beep heard: True" in err
    assert re.search(r"ended \(\S+\), peak [1-9]\d*", err), err
    assert list((tmp_path / "rec").rglob("*.inbound.wav"))


def test_a_missing_module_is_a_configuration_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "streamserver"), "serve", "--port", "0", "--handlers", "nosuchmod:X"],
        cwd=tmp_path, capture_output=True, text=True, timeout=T,
    )  # fmt: skip
    assert done.returncode == 2
    assert "cannot import module 'nosuchmod'" in done.stderr
