"""Every shell and Python snippet of README.md, run as a reader would, against the local
Plivo emulator and a real server (``readme_support`` extracts them; a
``<!-- snippet: skip REASON -->`` marker leaves one out, with its reason).

The snippets run in order in a scratch directory laid out like the clone (``.venv``,
``config``, ``scripts`` and the ``streamserver`` package linked in), each block in its own
``bash`` as one terminal would. A block ending in a long-running ``streamserver emulate``
or ``serve`` is started, waited for until it says it is listening, and stopped (SIGTERM,
which must exit 0) when a later block starts the same kind or at the end. The README's
fixed ports (8080 server, 8081 control app, 8090 emulator) become free ones: in the
snippets' text and through the matching STREAMSERVER_* variables, so that commands that
name no port reach the same processes. ``export NAME=...`` means "the id the previous
command printed": the request_uuid of the last ``call``. Python snippets run with the
emulator's env file loaded (as in a terminal that sourced it).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from readme_support import ROOT, Snippet, snippets

T = 30.0
LONG_RUNNING = re.compile(r"streamserver (emulate|serve)\b(?!.*--help)")
READY = {"emulate": "Plivo emulator listening on", "serve": "listening on ws://"}
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env_file(cwd: Path) -> dict[str, str]:
    path = cwd / "plivo-emulator.env"
    if not path.exists():
        return {}
    found = re.findall(r"^(?:export\s+)?(\w+)=['\"]?([^'\"\n]*)", path.read_text(), re.M)
    return dict(found)


class Terminals:
    """The reader's terminals: blocks run to completion, or started and kept running."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.running: dict[str, tuple[subprocess.Popen[str], Path]] = {}
        self.last_uuid = ""
        self.logs: dict[str, str] = {}

    def run(self, snip: Snippet, code: str) -> None:
        lines = [ln for ln in code.splitlines() if ln.strip()]
        body: list[str] = []
        for ln in lines:
            m = re.match(r"\s*export (\w+)=\.\.\.(\s|$)", ln)
            if m:
                setup = [b for b in body if re.match(r"\s*(\.|source|export)\s", b)]
                if len(setup) < len(body):
                    # The id comes from a command earlier in this block: run that part first,
                    # as the reader would, and keep its environment for the rest.
                    self.finish(snip, "set -e\n" + "\n".join(body))
                    body = setup
                assert self.last_uuid, f"{snip.where}: nothing printed an id before {ln!r}"
                ln = f"export {m.group(1)}={self.last_uuid}"
            body.append(ln)
        last = body[-1]
        kind = LONG_RUNNING.search(last)
        if kind:
            assert not any(LONG_RUNNING.search(b) for b in body[:-1]), snip.where
            self.start(snip, kind.group(1), "\n".join([*body[:-1], "exec " + last.strip()]))
        else:
            self.finish(snip, "set -e\n" + "\n".join(body))

    def finish(self, snip: Snippet, script: str) -> None:
        done = subprocess.run(
            ["bash", "-c", script], cwd=self.cwd, env=self.env, capture_output=True, text=True,
            timeout=T * 2,
        )  # fmt: skip
        out = done.stdout + done.stderr
        assert done.returncode == 0, f"{snip.where} exited {done.returncode}:\n{script}\n{out}"
        found = re.findall(r"^call fired\s+(\S+)", done.stdout, re.M) or (
            UUID.findall(done.stdout) if "placed" in done.stdout else []
        )
        if found:
            self.last_uuid = found[-1]

    def start(self, snip: Snippet, kind: str, script: str) -> None:
        self.stop(kind)  # the reader stops the earlier one (Ctrl-C) before starting another
        log = self.cwd / f".{kind}-{snip.line}.log"
        with log.open("w") as f:
            proc = subprocess.Popen(
                ["bash", "-c", script], cwd=self.cwd, env=self.env, stdout=f,
                stderr=subprocess.STDOUT, text=True, start_new_session=True,
            )  # fmt: skip
        self.running[kind] = (proc, log)
        deadline = time.monotonic() + T
        while READY[kind] not in log.read_text():
            assert proc.poll() is None, f"{snip.where} exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{snip.where} never listened:\n{log.read_text()}"
            time.sleep(0.05)

    def stop(self, kind: str) -> None:
        if kind not in self.running:
            return
        proc, log = self.running.pop(kind)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(T)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        self.logs[kind] = log.read_text()
        assert rc == 0, f"{kind} exited {rc} on SIGTERM:\n{self.logs[kind]}"

    def stop_all(self) -> None:
        for kind in list(self.running):
            self.stop(kind)


def test_every_skipped_snippet_says_why() -> None:
    found = snippets()
    assert len(found) >= 8
    for snip in found:
        if snip.marker == "skip":
            assert len(snip.arg.split()) >= 3, f"{snip.where}: a skip marker needs a reason"
    assert [s for s in found if s.marker is None and s.lang == "python"]


def test_readme_snippets_run(tmp_path: Path) -> None:
    venv_bin = Path(sys.executable).parent
    # The snippets say .venv/bin/...: that is the environment running this test (it may
    # be another one than the clone's .venv, e.g. make test-latest's .venv-latest).
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    for name in ("config", "scripts", "streamserver"):
        (tmp_path / name).symlink_to(ROOT / name)
    server, control, emulator = _free_ports(3)
    ports = {"8080": str(server), "8081": str(control), "8090": str(emulator)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "STREAMSERVER_"))}
    env.pop("PYTHONPATH", None)
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        STREAMSERVER_SERVER__PORT=str(server),
        STREAMSERVER_CONTROL__PORT=str(control),
        STREAMSERVER_EMULATOR__PORT=str(emulator),
        STREAMSERVER_CONTROL_URL=f"http://127.0.0.1:{control}",
    )
    terms = Terminals(tmp_path, env)
    ran = 0
    try:
        for snip in snippets():
            if snip.marker == "skip":
                continue
            code = re.sub(r":(8080|8081|8090)\b", lambda m: ":" + ports[m.group(1)], snip.code)
            if snip.marker == "file":
                (tmp_path / snip.arg).write_text(code)
            elif snip.lang == "python":
                py = subprocess.run(
                    [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                    env={**env, **_env_file(tmp_path)}, timeout=T,
                )  # fmt: skip
                assert py.returncode == 0, f"{snip.where}:\n{py.stdout}{py.stderr}"
                uuids = UUID.findall(py.stdout)
                assert uuids, f"{snip.where} placed no call: {py.stdout}"
            else:
                terms.run(snip, code)
            ran += 1
        serve_log = terms.running["serve"][1]
        # The last server runs the README's own handler: a call through the CLI reached it.
        deadline = time.monotonic() + T
        while not re.search(r"ended \(\S+\), peak \d+", serve_log.read_text()):
            assert time.monotonic() < deadline, serve_log.read_text()
            time.sleep(0.1)
        assert "beep heard: True" in serve_log.read_text()
    finally:
        terms.stop_all()
    assert ran >= 6
    assert (tmp_path / "plivo-emulator.env").exists()
    assert list((tmp_path / "recordings").rglob("*.inbound.wav"))


@pytest.mark.parametrize("text", ["<!-- snippet: skip -->\n```sh\nmake demo\n```\n"])
def test_markers_are_understood(text: str) -> None:
    (snip,) = snippets(text)
    assert snip.marker == "skip" and snip.arg == ""
