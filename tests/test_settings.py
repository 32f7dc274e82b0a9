"""Settings: defaults, the TOML file, environment and flag overrides, every ConfigError path,
and the CLI's exit code 2 on bad configuration (run as a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from dataclasses import fields
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import msgspec
import pytest

from streamserver import __version__
from streamserver.handler import ENTRY_POINT_GROUP, load_handler
from streamserver.settings import (
    ConfigError,
    PlivoSettings,
    RouteSettings,
    ServerSettings,
    SessionSettings,
    Settings,
    TwilioSettings,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "streamserver.toml"
TYPED_TABLES: dict[str, type] = {
    "server": ServerSettings,
    "session": SessionSettings,
    "plivo": PlivoSettings,
    "twilio": TwilioSettings,
}
TIMEOUT_S = 60.0  # generous bound for one CLI process; they normally take well under 1 s


def load(text: str | None = None, tmp: Path | None = None, **kw: Any) -> Settings:
    """load_settings with an empty environment (unless given), from ``text`` as a file."""
    kw.setdefault("environ", {})
    if text is None:
        return load_settings(None, **kw)
    assert tmp is not None
    path = tmp / "conf.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, **kw)


def config_error(text: str | None, tmp: Path, **kw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(text, tmp, **kw)
    return str(info.value)


# --- defaults and the shipped file --------------------------------------------------------


def test_defaults() -> None:
    s = load()
    assert s.server == ServerSettings()
    assert s.session == SessionSettings()
    assert s.plivo == PlivoSettings()
    assert s.routes == {"/stream": RouteSettings(handlers=["recorder"], bidirectional=True)}
    assert s.handler == {}
    assert s.extra == {}
    assert s.source == "defaults"
    assert (s.server.host, s.server.port, s.server.log_level) == ("127.0.0.1", 8080, "INFO")


def test_default_routes_are_not_shared_between_loads() -> None:
    first = load()
    first.routes["/stream"].handlers.append("echo")
    assert load().routes["/stream"].handlers == ["recorder"]


def test_shipped_config_file_loads() -> None:
    s = load_settings(CONFIG, environ={})
    assert s.source == str(CONFIG)
    assert s.server == ServerSettings()  # the file documents the defaults
    assert s.session == SessionSettings()
    assert s.plivo == PlivoSettings()
    assert s.routes == {
        "/stream": RouteSettings(["recorder"], True),
        "/bot": RouteSettings(["recorder", "echo"], True),
    }
    assert s.handler["recorder"]["format"] == "wav"
    assert s.handler["echo"] == {"track": "inbound"}


def test_shipped_config_file_documents_every_setting_with_its_default() -> None:
    """Adding a setting without documenting it in config/streamserver.toml fails here."""
    doc = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    settings_tables = {f.name for f in fields(Settings)} - {"extra", "source"}
    assert settings_tables <= doc.keys()
    for table, cls in TYPED_TABLES.items():
        defaults = cls()
        for f in fields(cls):
            assert f.name in doc[table], f"config file lacks {table}.{f.name}"
            assert doc[table][f.name] == getattr(defaults, f.name), f"{table}.{f.name} default"
    assert doc["routes"], "config file shows no [routes.*] table"
    for path, route in doc["routes"].items():
        for f in fields(RouteSettings):
            assert f.name in route, f'config file lacks routes."{path}".{f.name}'


def test_shipped_config_file_documents_every_installed_handler_option() -> None:
    doc = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert {"recorder", "echo"} <= names
    for name in sorted(names):
        spec = load_handler(name)
        options = spec.cls.Options
        if options is None:
            continue
        table = doc["handler"].get(name)
        assert table is not None, f"config file lacks [handler.{name}]"
        defaults = options()
        for fname in msgspec.structs.fields(options):
            assert fname.name in table, f"config file lacks handler.{name}.{fname.name}"
            want = msgspec.to_builtins(getattr(defaults, fname.name))  # nested tables too
            assert table[fname.name] == want, f"{name}.{fname.name}"
        load_handler(name, table)  # and the documented values are valid
    assert set(doc["handler"]) <= names, "config file documents a handler that is not installed"


# --- environment ---------------------------------------------------------------------------


def test_env_port() -> None:
    assert load(environ={"STREAMSERVER_SERVER__PORT": "9000"}).server.port == 9000


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("false", False)])
def test_env_bool(raw: str, expected: bool) -> None:
    s = load(environ={"STREAMSERVER_SERVER__GC_FREEZE": raw})
    assert s.server.gc_freeze is expected


@pytest.mark.parametrize(
    "raw", ["True", "FALSE", "1", "0", "yes", "no", "on", "off", "2", "maybe", "", "[true]"]
)
def test_env_bool_rejects_other_values(raw: str, tmp_path: Path) -> None:
    # One rule for booleans everywhere (file, environment, emulator): TOML's true/false.
    msg = config_error(None, tmp_path, environ={"STREAMSERVER_SERVER__GC_FREEZE": raw})
    assert "server.gc_freeze" in msg
    assert "true or false" in msg


def test_env_int_and_float() -> None:
    s = load(
        environ={
            "STREAMSERVER_SESSION__REORDER_WINDOW": "0",
            "STREAMSERVER_SERVER__IDLE_TIMEOUT_S": "2.5",
            "STREAMSERVER_SERVER__START_TIMEOUT_S": "3",
            "STREAMSERVER_SERVER__MAX_STREAMS": "1_000",
        }
    )
    assert s.session.reorder_window == 0
    assert s.server.idle_timeout_s == 2.5
    assert s.server.start_timeout_s == 3.0
    assert isinstance(s.server.start_timeout_s, float)
    assert s.server.max_streams == 1000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [('["a", "b"]', ["a", "b"]), ("a, b", ["a", "b"]), ("a", ["a"]), ("", [])],
)
def test_env_list(raw: str, expected: list[str]) -> None:
    s = load(environ={"STREAMSERVER_PLIVO__EXTRA_AUTH_TOKENS": raw})
    assert s.plivo.extra_auth_tokens == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12345", "12345"), ("1e5", "1e5"), ("0.0.0.0", "0.0.0.0"), ('"a b"', "a b"), ("x", "x")],
)
def test_env_text_fields_keep_the_text(raw: str, expected: str) -> None:
    # A numeric-looking token or host must not turn into a number.
    s = load(environ={"STREAMSERVER_PLIVO__AUTH_TOKEN": raw, "STREAMSERVER_SERVER__HOST": raw})
    assert s.plivo.auth_token == expected
    assert s.server.host == expected


def test_env_nested_handler_options(tmp_path: Path) -> None:
    env = {
        "STREAMSERVER_HANDLER__RECORDER__FORMAT": "flac",
        "STREAMSERVER_HANDLER__RECORDER__WRITE_SIDECAR": "false",
        "STREAMSERVER_HANDLER__RECORDER__FLUSH_INTERVAL_S": "0.5",
        "STREAMSERVER_HANDLER__ECHO__TRACK": "outbound",
    }
    s = load('[handler.recorder]\nrecord_dir = "/data"\n', tmp_path, environ=env)
    assert s.handler["recorder"] == {
        "record_dir": "/data",  # the file's keys stay
        "format": "flac",
        "write_sidecar": False,
        "flush_interval_s": 0.5,
    }
    assert s.handler["echo"] == {"track": "outbound"}
    assert load_handler("recorder", s.handler["recorder"]).options.format == "flac"


def test_env_other_tables_are_kept_raw_for_their_owners() -> None:
    s = load(environ={"STREAMSERVER_EMULATOR__PORT": "9100"})
    assert s.extra == {"emulator": {"port": 9100}}


def test_env_ignores_unrelated_variables() -> None:
    s = load(environ={"STREAMSERVER_PORT": "1", "OTHER_SERVER__PORT": "2", "PORT": "3"})
    assert s.server.port == 8080


def test_precedence_file_then_env_then_overrides(tmp_path: Path) -> None:
    text = '[server]\nport = 1000\nhost = "0.0.0.0"\nlog_level = "debug"\n'
    env = {"STREAMSERVER_SERVER__PORT": "2000", "STREAMSERVER_SERVER__LOG_LEVEL": "warning"}
    s = load(text, tmp_path, environ=env, overrides={"server.port": 3000})
    assert s.server.port == 3000
    assert s.server.host == "0.0.0.0"
    assert s.server.log_level == "WARNING"  # normalised to upper case
    assert load(text, tmp_path, environ=env).server.port == 2000
    assert load(text, tmp_path).server.port == 1000


def test_overrides_mapping_like_the_cli() -> None:
    s = load(
        overrides={
            "server.host": None,  # flag not given: keeps the lower layers
            "server.port": 0,
            "server.log_format": "json",
            "handler.recorder.record_dir": "/tmp/rec",
        }
    )
    assert s.server.host == "127.0.0.1"
    assert s.server.port == 0
    assert s.server.log_format == "json"
    assert s.handler == {"recorder": {"record_dir": "/tmp/rec"}}


def test_plivo_credentials_from_environment(tmp_path: Path) -> None:
    env = {"PLIVO_AUTH_ID": "MAENV", "PLIVO_AUTH_TOKEN": "env-token"}
    s = load(environ=env)
    assert (s.plivo.auth_id, s.plivo.auth_token) == ("MAENV", "env-token")
    # the config file wins over PLIVO_*
    s = load('[plivo]\nauth_id = "MAFILE"\nauth_token = "file-token"\n', tmp_path, environ=env)
    assert (s.plivo.auth_id, s.plivo.auth_token) == ("MAFILE", "file-token")
    # and so does STREAMSERVER_PLIVO__*
    s = load(environ={**env, "STREAMSERVER_PLIVO__AUTH_TOKEN": "ss-token"})
    assert s.plivo.auth_token == "ss-token"


def test_verify_signatures_with_token_from_environment() -> None:
    env = {
        "PLIVO_AUTH_TOKEN": "tok",
        "STREAMSERVER_SERVER__VERIFY_SIGNATURES": "true",
        "STREAMSERVER_SERVER__PUBLIC_URL": "wss://media.example.com",
    }
    s = load(environ=env)
    assert s.server.verify_signatures is True
    # extra tokens alone are enough too
    env2 = {k: v for k, v in env.items() if k != "PLIVO_AUTH_TOKEN"}
    env2["STREAMSERVER_PLIVO__EXTRA_AUTH_TOKENS"] = "main-token"
    assert load(environ=env2).plivo.extra_auth_tokens == ["main-token"]


def test_file_values(tmp_path: Path) -> None:
    text = """
[server]
log_level = "error"
public_url = "https://media.example.com"
[routes."/a"]
handlers = "recorder, echo"
bidirectional = false
[routes."/b"]
handlers = ["echo"]
[emulator]
port = 9100
"""
    s = load(text, tmp_path)
    assert s.server.log_level == "ERROR"
    assert s.routes == {
        "/a": RouteSettings(["recorder", "echo"], False),
        "/b": RouteSettings(["echo"], True),
    }
    assert s.extra == {"emulator": {"port": 9100}}
    assert s.source == str(tmp_path / "conf.toml")


# --- every ConfigError ---------------------------------------------------------------------

ERRORS: list[tuple[str, str, dict[str, str], list[str]]] = [
    # id, file text, environment, words the message must contain
    ("unknown-key", "[server]\nprot = 1\n", {}, ["server.prot", "unknown key", "known:", "port"]),
    ("unknown-session-key", "[session]\nx = 1\n", {}, ["session.x", "reorder_window"]),
    ("unknown-plivo-key", '[plivo]\ntoken = "t"\n', {}, ["plivo.token", "auth_token"]),
    ("unknown-route-key", '[routes."/s"]\nhandler = []\n', {}, ['routes."/s".handler', "handlers"]),
    ("port-string", '[server]\nport = "abc"\n', {}, ["server.port", "integer", "abc"]),
    ("port-bool", "[server]\nport = true\n", {}, ["server.port", "integer"]),
    ("port-float", "[server]\nport = 80.5\n", {}, ["server.port", "integer"]),
    ("port-too-big", "[server]\nport = 70000\n", {}, ["server.port", "70000", "0-65535"]),
    ("port-negative", "[server]\nport = -1\n", {}, ["server.port", "-1"]),
    ("host-int", "[server]\nhost = 5\n", {}, ["server.host", "string"]),
    ("bool-word", '[server]\nverify_signatures = "maybe"\n', {}, ["server.verify_signatures"]),
    ("float-word", '[server]\nidle_timeout_s = "x"\n', {}, ["server.idle_timeout_s", "number"]),
    ("float-bool", "[server]\nidle_timeout_s = true\n", {}, ["server.idle_timeout_s", "number"]),
    ("list-ints", "[plivo]\nextra_auth_tokens = [1]\n", {}, ["plivo.extra_auth_tokens", "list"]),
    ("max-streams-0", "[server]\nmax_streams = 0\n", {}, ["server.max_streams", "at least 1"]),
    (
        "max-message-0",
        "[server]\nmax_message_bytes = 0\n",
        {},
        ["server.max_message_bytes", "at least 1"],
    ),
    ("timeout-negative", "[server]\ndrain_timeout_s = -1\n", {}, ["server.drain_timeout_s"]),
    ("busy-over-1", "[session]\nsend_batch_busy = 1.5\n", {}, ["session.send_batch_busy", "CPU"]),
    (
        "read-depth-below-base",
        "[session]\nread_batch_frames = 3\nread_batch_frames_busy = 2\n",
        {},
        ["session.read_batch_frames_busy", "read_batch_frames is 3"],
    ),
    ("read-busy-0", "[session]\nread_batch_busy = 0\n", {}, ["session.read_batch_busy", "CPU"]),
    ("log-level", '[server]\nlog_level = "LOUD"\n', {}, ["server.log_level", "LOUD", "DEBUG"]),
    ("log-format", '[server]\nlog_format = "xml"\n', {}, ["server.log_format", "xml", "json"]),
    ("public-url-ftp", '[server]\npublic_url = "ftp://x"\n', {}, ["server.public_url", "wss://"]),
    ("public-url-bare", '[server]\npublic_url = "x.com"\n', {}, ["server.public_url", "x.com"]),
    (
        "verify-no-token",
        '[server]\nverify_signatures = true\npublic_url = "wss://x"\n',
        {},
        ["server.verify_signatures", "plivo.auth_token", "PLIVO_AUTH_TOKEN"],
    ),
    (
        "verify-no-public-url",
        "[server]\nverify_signatures = true\n",
        {"PLIVO_AUTH_TOKEN": "t"},
        ["server.verify_signatures", "server.public_url"],
    ),
    ("route-no-slash", '[routes."stream"]\nhandlers = []\n', {}, ['"stream"', 'start with "/"']),
    ("route-not-table", 'routes = ["/s"]\n', {}, ["[routes]", "table"]),
    ("route-value", '[routes]\n"/s" = 5\n', {}, ['routes."/s"', "table"]),
    ("route-handlers", '[routes."/s"]\nhandlers = 5\n', {}, ['routes."/s".handlers', "list"]),
    ("server-not-table", "server = 5\n", {}, ["[server]", "table"]),
    ("handler-not-tables", "[handler]\nrecorder = 5\n", {}, ["handler", "options"]),
    ("reorder-negative", "[session]\nreorder_window = -1\n", {}, ["session.reorder_window"]),
    ("queue-zero", "[session]\nhandler_queue_s = 0\n", {}, ["session.handler_queue_s"]),
    ("env-bad-int", "", {"STREAMSERVER_SERVER__PORT": "abc"}, ["server.port", "integer"]),
    ("env-unknown", "", {"STREAMSERVER_SERVER__PROT": "1"}, ["server.prot", "unknown key"]),
    ("env-empty-key", "", {"STREAMSERVER_SERVER__": "1"}, ["STREAMSERVER_SERVER__", "empty"]),
    (
        "env-into-value",
        "[server]\nport = 1\n",
        {"STREAMSERVER_SERVER__PORT__X": "1"},
        ["STREAMSERVER_SERVER__PORT__X", "'port' is not a table"],
    ),
]


@pytest.mark.parametrize(
    ("text", "env", "words"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_config_errors_name_the_key(
    text: str, env: dict[str, str], words: list[str], tmp_path: Path
) -> None:
    msg = config_error(text, tmp_path, environ=env)
    for word in words:
        assert word in msg, msg


def test_override_into_a_value_is_an_error(tmp_path: Path) -> None:
    msg = config_error("server = 5\n", tmp_path, overrides={"server.port": 1})
    assert "server.port" in msg
    msg = config_error('[handler]\nrecorder = "x"\n', tmp_path, overrides={"handler.recorder.a": 1})
    assert "handler.recorder.a" in msg


def test_override_wrong_type(tmp_path: Path) -> None:
    assert "server.port" in config_error(None, tmp_path, overrides={"server.port": "abc"})


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)


def test_invalid_toml(tmp_path: Path) -> None:
    msg = config_error("[server\nport = 1\n", tmp_path)
    assert "not valid TOML" in msg
    assert "conf.toml" in msg


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b"[server]\nhost = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read") as info:
        load_settings(tmp_path, environ={})
    assert str(tmp_path) in str(info.value)


# --- the command line, as a real process ----------------------------------------------------


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("STREAMSERVER_", "PLIVO_AUTH"))
    }
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "streamserver", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[server]\nmax_streams = "lots"\n', ["server.max_streams", "integer", "lots"]),
        ("[server]\nprot = 1\n", ["server.prot", "unknown key", "known:"]),
        ("[server\n", ["not valid TOML"]),
        ('[handler.recorder]\nformat = "mp3"\n', ["handler.recorder.format", "mp3"]),
    ],
    ids=["wrong-type", "unknown-key", "invalid-toml", "bad-handler-option"],
)
def test_cli_bad_config_file_exits_2(text: str, words: list[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    # --port 0: should the config be accepted by mistake, the server must not take port 8080
    proc = run_cli("serve", "--config", str(path), "--port", "0", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "configuration error" in proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_missing_config_file_exits_2(tmp_path: Path) -> None:
    proc = run_cli("serve", "--config", "missing.toml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "missing.toml" in proc.stderr
    assert "not found" in proc.stderr


def test_cli_bad_environment_exits_2(tmp_path: Path) -> None:
    proc = run_cli("serve", cwd=tmp_path, env={"STREAMSERVER_SERVER__PORT": "99999"})
    assert proc.returncode == 2
    assert "server.port" in proc.stderr


def test_cli_unknown_handler_exits_2_naming_installed_ones(tmp_path: Path) -> None:
    proc = run_cli("serve", "--handlers", "nope", "--port", "0", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "'nope'" in proc.stderr
    assert "recorder" in proc.stderr
    assert "echo" in proc.stderr


def test_cli_version(tmp_path: Path) -> None:
    proc = run_cli("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"streamserver {__version__}"


def test_cli_serve_help_mentions_config_and_environment(tmp_path: Path) -> None:
    proc = run_cli("serve", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    out = proc.stdout
    for word in (
        "--config",
        "config/streamserver.toml",
        "STREAMSERVER_<SECTION>__<KEY>",
        "STREAMSERVER_SERVER__PORT",
        "PLIVO_AUTH_ID",
        "PLIVO_AUTH_TOKEN",
    ):
        assert word in out, word


def test_cli_bad_flag_value_exits_2(tmp_path: Path) -> None:
    proc = run_cli("serve", "--log-format", "xml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--log-format" in proc.stderr
