"""Typos fail: unknown tables, handler tables and environment tables exit 2 naming the key
and the closest valid name; an invalid enum value lists the valid ones; ``--handlers ""``
is an error. The CLI runs as a real process (as in test_settings.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamserver.handler import HandlerLoadError, installed_handlers, load_handler
from streamserver.settings import ConfigError, check_handler_tables, load_settings

TIMEOUT_S = 30


def run_serve(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSERVER_")}
    clean.update(env or {})
    # --port 0: should the typo be accepted by mistake, the server must not take port 8080
    return subprocess.run(
        [sys.executable, "-m", "streamserver", "serve", "--port", "0", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_unknown_table_names_it_and_the_closest() -> None:
    want = r"\[serverr\]: unknown table \(did you mean 'server'\?\)"
    with pytest.raises(ConfigError, match=want):
        load_settings(environ={}, overrides={"serverr.port": 1})


def test_unknown_environment_table_names_the_variable_and_its_fix() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"STREAMSERVER_SERVR__PORT": "9000"})
    msg = str(info.value)
    assert "STREAMSERVER_SERVR__PORT" in msg
    assert "did you mean STREAMSERVER_SERVER__PORT?" in msg


def test_known_tables_still_pass(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text("[control]\nenabled = false\n[bus]\n[storage]\n[emulator]\n")
    assert set(load_settings(path, environ={}).extra) == {"control", "bus", "storage", "emulator"}


def test_handler_table_of_no_route_and_no_installed_handler_fails() -> None:
    s = load_settings(environ={"STREAMSERVER_HANDLER__RECORDR__FORMAT": "flac"})
    with pytest.raises(ConfigError, match=r"\[handler\.recordr\].*did you mean 'recorder'"):
        check_handler_tables(s, installed_handlers())
    # an installed handler's options may sit in the file while no route uses it
    s.handler = {"transcriber": {}, "pkg.mod:Mine": {}}
    check_handler_tables(s, installed_handlers())


def test_invalid_enum_value_lists_the_valid_ones() -> None:
    with pytest.raises(HandlerLoadError, match=r"'mp3'.*handler\.recorder\.format.*'wav', 'flac'"):
        load_handler("recorder", {"format": "mp3"})


@pytest.mark.parametrize(
    ("config", "env", "args", "words"),
    [
        ("[serverr]\nport = 1\n", {}, [], ["[serverr]", "unknown table", "'server'"]),
        ('[handler.recordr]\nformat = "flac"\n', {}, [], ["[handler.recordr]", "'recorder'"]),
        ("", {"STREAMSERVER_SERVR__PORT": "9000"}, [], ["STREAMSERVER_SERVER__PORT"]),
        ('[handler.recorder]\nformat = "mp3"\n', {}, [], ["'mp3'", "'wav', 'flac'"]),
        ("", {}, ["--handlers", ""], ["--handlers", "names no handler"]),
        ("", {}, ["--handlers", " , "], ["--handlers", "names no handler"]),
    ],
    ids=["table", "handler-table", "env-table", "enum", "empty-handlers", "blank-handlers"],
)
def test_cli_typos_exit_2(
    config: str, env: dict[str, str], args: list[str], words: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "typo.toml"
    path.write_text(config, encoding="utf-8")
    proc = run_serve("--config", str(path), *args, cwd=tmp_path, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "configuration error" in proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
