"""Typed settings: TOML file, then environment, then command-line flags.

Nothing reads the environment at import time; :func:`load_settings` is called once by the
CLI and the result passed down. Every problem raises :class:`ConfigError` naming the key
and what is wrong (the CLI exits with code 2).

Environment overrides use ``STREAMSERVER_<SECTION>__<KEY>`` (double underscore between
table and key), e.g. ``STREAMSERVER_SERVER__PORT=9000`` or
``STREAMSERVER_HANDLER__RECORDER__RECORD_DIR=/data``. Values are parsed as TOML scalars
when possible (``true``, ``8``, ``[\"a\"]``), else taken as strings; a text field keeps the
text, a list of strings also reads ``a,b``. Values are cast strictly by
:mod:`streamserver.config` (booleans are ``true``/``false``). Credentials come from
``PLIVO_AUTH_ID`` / ``PLIVO_AUTH_TOKEN`` unless set in ``[plivo]``, and ``TWILIO_AUTH_TOKEN``
unless set in ``[twilio]``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from .audio import AudioFormat
from .config import ConfigError, closest, did_you_mean, env_value, read_table

__all__ = [
    "KNOWN_TABLES",
    "ConfigError",
    "PlivoSettings",
    "RouteSettings",
    "ServerSettings",
    "SessionSettings",
    "Settings",
    "TwilioSettings",
    "check_handler_tables",
    "load_settings",
]

ENV_PREFIX = "STREAMSERVER_"


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    #: URL the provider uses to reach this server (for signature checks and answer XML).
    public_url: str = ""
    max_streams: int = 2000
    #: Connections not upgraded yet (HTTP, handshakes); more are dropped at once, but for
    #: a small reserve that may still ask for /healthz, /readyz and /metrics.
    max_pending_connections: int = 256
    max_message_bytes: int = 65536
    start_timeout_s: float = 10.0
    #: The HTTP request head must arrive within this (0: never; independent of start).
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    drain_timeout_s: float = 30.0
    handler_stop_timeout_s: float = 10.0
    verify_signatures: bool = False
    #: Where signed upgrades' nonces are kept across restarts ("" : in memory only).
    nonce_dir: str = ".streamserver"
    #: How long a nonce is remembered (a replay is refused), across restarts.
    nonce_ttl_s: float = 86400.0
    log_level: str = "INFO"
    log_format: str = "text"
    #: Bytes queued for one peer before it is cut off (reading stops, 1008 unless it
    #: drains within session.send_timeout_s).
    max_send_buffer_bytes: int = 1048576
    #: Pings answered per second and connection; the rest are not answered.
    max_pings_per_s: float = 10.0
    #: Freeze start-up objects out of the garbage collector (fewer, shorter GC pauses).
    gc_freeze: bool = True
    #: Log the loop thread's stack when the event loop is this many seconds late (0: off).
    stall_warn_s: float = 0.25
    #: Worker processes sharing the port: a number, or "auto" (the usable cores).
    workers: int | str = 1
    #: Pin worker n to CPU worker_cpus[n % len] (empty: no pinning).
    worker_cpus: list[int] = field(default_factory=list)
    #: TLS on the server itself (wss://, and https:// for a shared control app): a PEM
    #: certificate chain and its private key (empty: in the certificate file).
    ssl_certfile: str = ""
    ssl_keyfile: str = ""


@dataclass
class SessionSettings:
    reorder_window: int = 5
    max_invalid_frames: int = 100
    send_timeout_s: float = 5.0
    handler_queue_s: float = 10.0
    #: Gaps longer than this (a chunk or timestamp jump) are cut to it and the track's
    #: timeline resyncs; counted in streamserver_gaps_capped_total.
    max_gap_s: float = 5.0
    #: A capped gap closes the stream with 1007 instead.
    close_on_capped_gap: bool = False
    #: Events (DTMF, unknown and bus events, gaps...) queued per handler; past it new
    #: ones are dropped and counted (streamserver_handler_dropped_events_total).
    handler_max_events: int = 1000
    #: Outgoing audio is written at the end of the event loop's pass that produced it (no
    #: added latency). Only while the server is busy (below) does a frame wait up to
    #: send_batch_delay_ms for the stream's next one, send_batch_frames per socket write:
    #: half the syscalls when the CPU is short. 1 = never. Control messages never wait.
    send_batch_frames: int = 2
    send_batch_delay_ms: float = 30.0
    #: Busy: the event loop's thread used at least this share of a CPU over the last
    #: tick (streamserver_event_loop_utilisation), or the tick came 50 ms late; pairing
    #: stops 0.15 below it.
    send_batch_busy: float = 0.95
    #: ... and at least this many streams are open.
    send_batch_min_streams: int = 200
    #: The stream doctor: no inbound audio for this long on an open stream is reported
    #: (a log line, streamserver_doctor_total{kind="silence"}, a doctor.silence event). 0 = off.
    doctor_silence_s: float = 10.0
    #: A new socket with the ids of a live stream takes it over, and one with the ids of a
    #: stream whose socket failed (error, timeout) less than this long ago resumes it:
    #: one timeline, one recording (streamserver.resume). 0 = every socket is a new stream.
    resume_s: float = 30.0
    #: Incoming frames per read for listen-only streams: 2+ asks the kernel to wake the
    #: server only when about that many frames are waiting (SO_RCVLOWAT, Linux), so one
    #: read, one wake-up and one ACK serve several frames; handlers get the audio up to
    #: (read_batch_frames - 1) x 20 ms later. A stream leaves batching for good when it
    #: first sends anything back (echo, bots: latency matters there). 1 = off.
    read_batch_frames: int = 2
    #: Batch reads only while at least this many streams are open.
    read_batch_min_streams: int = 200
    #: Frames per read while the server is short of CPU: after two ticks (1 s) with the
    #: event loop's thread at read_batch_busy of a CPU or more, until the open streams
    #: fall below 80 % of the count at which that happened (streamserver_read_batch_depth).
    #: Handlers of listen-only streams then get audio up to (N - 1) x 20 ms later (180 ms),
    #: and the server needs about a fifth less CPU for them (3,000 recorder streams: 72 %
    #: instead of 89 %). Equal to read_batch_frames = never.
    read_batch_frames_busy: int = 10
    read_batch_busy: float = 0.9


@dataclass
class PlivoSettings:
    auth_id: str = ""
    auth_token: str = ""
    #: Extra tokens accepted for signatures (e.g. the main account's, or during rotation).
    extra_auth_tokens: list[str] = field(default_factory=list)


@dataclass
class TwilioSettings:
    auth_token: str = ""
    #: Extra tokens accepted for X-Twilio-Signature (e.g. during rotation).
    extra_auth_tokens: list[str] = field(default_factory=list)


#: ``dialect`` values of a route: auto-detection, or one provider.
DIALECTS = ("auto", "plivo", "twilio", "telnyx", "exotel", "vonage")


@dataclass
class RouteSettings:
    handlers: list[str] = field(default_factory=list)
    bidirectional: bool = True
    #: "auto" (detect from the first message) or a provider name that pins the dialect.
    dialect: str = "auto"
    #: e.g. "audio/x-mulaw;rate=8000": a stream in another format is a doctor finding.
    expect_format: str = ""
    #: Handlers this route cannot do without (e.g. ["recorder"]): when one fails (a full
    #: disk...), the stream is closed with 1011 and the failure's reason instead of going
    #: on without it.
    required_handlers: list[str] = field(default_factory=list)


@dataclass
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    plivo: PlivoSettings = field(default_factory=PlivoSettings)
    twilio: TwilioSettings = field(default_factory=TwilioSettings)
    #: WebSocket path -> route
    routes: dict[str, RouteSettings] = field(default_factory=dict)
    #: handler name -> its options table
    handler: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: other top-level tables (e.g. ``[control]``, ``[emulator]``), kept raw for their owners
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = "defaults"


#: Tables whose keys are typed fields (environment values are read with the field's type).
_TYPED_TABLES: dict[str, type] = {
    "server": ServerSettings,
    "session": SessionSettings,
    "plivo": PlivoSettings,
    "twilio": TwilioSettings,
}

#: Every top-level table a config file (or ``STREAMSERVER_<TABLE>__...``) may hold; any
#: other name is a typo and fails naming it. Tables read by their owners (``[control]``,
#: ``[bus]``, ``[storage]``, ``[emulator]``) are kept raw in :attr:`Settings.extra`.
KNOWN_TABLES = frozenset(
    {*_TYPED_TABLES, "routes", "handler", "control", "bus", "storage", "emulator"}
)

DEFAULT_ROUTES = {"/stream": RouteSettings(handlers=["recorder"], bidirectional=True)}
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def _read_workers(value: Any, key: str) -> int | str:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value  # type: ignore[no-any-return]
    raise ConfigError(f'{key}: expected a number of workers (>= 1) or "auto", got {value!r}')


def _read_cpus(value: Any, key: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"{key}: expected a list of CPU numbers, got {value!r}") from None
    ok = isinstance(value, list) and all(isinstance(v, int) and v >= 0 for v in value)
    if not ok or any(isinstance(v, bool) for v in value):
        raise ConfigError(f"{key}: expected a list of CPU numbers, got {value!r}")
    return list(value)


_READERS: dict[str, dict[str, Any]] = {
    "server": {"workers": _read_workers, "worker_cpus": _read_cpus},
}


def _fill(obj: Any, table: Mapping[str, Any], prefix: str) -> None:
    readers = _READERS.get(prefix)
    for key, value in read_table(type(obj), table, prefix, readers=readers).items():
        setattr(obj, key, value)


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in parts):
            raise ConfigError(f"environment variable {name}: empty section or key")
        if parts[0] not in KNOWN_TABLES:
            close = closest(parts[0], KNOWN_TABLES)
            rest = "__".join(parts[1:]).upper()
            fix = f" (did you mean {ENV_PREFIX}{close.upper()}__{rest}?)" if close else ""
            raise ConfigError(
                f"environment variable {name}: unknown table {parts[0]!r}{fix} "
                f"(known: {', '.join(sorted(KNOWN_TABLES))})"
            )
        node = data
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name}: {p!r} is not a table")
            node = child
        table = _TYPED_TABLES.get(parts[0]) if len(parts) == 2 else None
        hint = get_type_hints(table).get(parts[1]) if table is not None else None
        node[parts[-1]] = env_value(raw, hint)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build :class:`Settings` from a TOML file, the environment and flag overrides.

    ``overrides`` maps dotted keys (``"server.port"``) to values from the command line.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {str(p)!r} not found") from None
        except OSError as exc:
            raise ConfigError(f"config file {str(p)!r} cannot be read: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {str(p)!r} is not UTF-8 text: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
        source = str(p)
    _apply_env(data, env)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *heads, last = dotted.split(".")
        for h in heads:
            node = node.setdefault(h, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{dotted}: {h!r} is not a table")
        node[last] = value

    s = Settings(source=source)
    for key, table in data.items():
        if key in ("server", "session", "plivo", "twilio"):
            if not isinstance(table, dict):
                raise ConfigError(f"[{key}] must be a table")
            _fill(getattr(s, key), table, key)
        elif key == "routes":
            if not isinstance(table, dict):
                raise ConfigError("[routes] must be a table of paths")
            for rpath, rtable in table.items():
                if not isinstance(rtable, dict):
                    raise ConfigError(f'routes."{rpath}" must be a table with handlers = [...]')
                if not rpath.startswith("/"):
                    raise ConfigError(f'routes."{rpath}": a route path must start with "/"')
                r = RouteSettings()
                _fill(r, rtable, f'routes."{rpath}"')
                _check_route(r, rpath)
                s.routes[rpath] = r
        elif key == "handler":
            if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
                raise ConfigError("[handler.NAME] tables must hold each handler's options")
            s.handler = {k: dict(v) for k, v in table.items()}
        elif key in KNOWN_TABLES:
            s.extra[key] = table
        else:
            raise ConfigError(
                f"[{key}]: unknown table{did_you_mean(key, KNOWN_TABLES)} "
                f"(known: {', '.join(sorted(KNOWN_TABLES))})"
            )

    if not s.routes:
        s.routes = {
            k: RouteSettings(list(v.handlers), v.bidirectional) for k, v in DEFAULT_ROUTES.items()
        }
    if not s.plivo.auth_id:
        s.plivo.auth_id = env.get("PLIVO_AUTH_ID", "")
    if not s.plivo.auth_token:
        s.plivo.auth_token = env.get("PLIVO_AUTH_TOKEN", "")
    if not s.twilio.auth_token:
        s.twilio.auth_token = env.get("TWILIO_AUTH_TOKEN", "")
    _validate(s)
    return s


def check_handler_tables(settings: Settings, installed: Iterable[str]) -> None:
    """Fail on a ``[handler.NAME]`` table that no route uses and no installed handler is
    called (a typo such as ``[handler.recordr]``), naming the closest valid name.

    Tables of installed handlers that no route uses are fine: one config file can hold the
    options of every handler while ``--handlers`` picks some.
    """
    used = {name for route in settings.routes.values() for name in route.handlers}
    valid = used | set(installed)
    for name in settings.handler:
        if name in valid or ":" in name:
            continue
        raise ConfigError(
            f"[handler.{name}]: no route uses a handler {name!r} and none is installed"
            f"{did_you_mean(name, valid)} (routes use: {', '.join(sorted(used)) or 'none'})"
        )


def _check_route(r: RouteSettings, path: str) -> None:
    r.dialect = r.dialect.strip().lower()
    if r.dialect not in DIALECTS:
        raise ConfigError(
            f'routes."{path}".dialect: {r.dialect!r} is not one of {", ".join(DIALECTS)}'
        )
    if r.expect_format:
        try:
            AudioFormat.from_content_type(r.expect_format)
        except ValueError as exc:
            raise ConfigError(f'routes."{path}".expect_format: {exc}') from None
    for name in r.required_handlers:
        if name not in r.handlers:
            raise ConfigError(
                f'routes."{path}".required_handlers: {name!r} is not one of the route\'s '
                f"handlers ({', '.join(r.handlers) or 'none'})"
            )


def _validate(s: Settings) -> None:
    sv = s.server
    if not 0 <= sv.port <= 65535:
        raise ConfigError(f"server.port: {sv.port} is not a TCP port (0-65535)")
    for name in (
        "max_streams",
        "max_pending_connections",
        "max_message_bytes",
        "max_send_buffer_bytes",
        "max_pings_per_s",
    ):
        if getattr(sv, name) < 1:
            raise ConfigError(f"server.{name}: must be at least 1")
    for name in (
        "start_timeout_s",
        "header_timeout_s",
        "idle_timeout_s",
        "drain_timeout_s",
        "handler_stop_timeout_s",
        "stall_warn_s",
    ):
        if getattr(sv, name) < 0:
            raise ConfigError(f"server.{name}: must be >= 0 (0 disables where noted)")
    if sv.nonce_ttl_s <= 0:
        raise ConfigError("server.nonce_ttl_s: must be > 0")
    if sv.log_level.upper() not in _LOG_LEVELS:
        raise ConfigError(f"server.log_level: {sv.log_level!r} is not one of {sorted(_LOG_LEVELS)}")
    sv.log_level = sv.log_level.upper()
    if sv.log_format not in ("text", "json"):
        raise ConfigError(f"server.log_format: {sv.log_format!r} must be 'text' or 'json'")
    if sv.public_url and sv.public_url.split("://", 1)[0] not in ("ws", "wss", "http", "https"):
        raise ConfigError(
            f"server.public_url: {sv.public_url!r} must start with ws://, wss://, http:// or https://"
        )
    if sv.ssl_keyfile and not sv.ssl_certfile:
        raise ConfigError("server.ssl_keyfile: needs server.ssl_certfile (the certificate)")
    for name in ("ssl_certfile", "ssl_keyfile"):
        path = getattr(sv, name)
        if path and not Path(path).is_file():
            raise ConfigError(f"server.{name}: {path!r} is not a file")
    if sv.ssl_certfile:
        import ssl

        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                sv.ssl_certfile, sv.ssl_keyfile or None
            )
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"server.ssl_certfile: cannot load {sv.ssl_certfile!r}"
                f"{' with ' + repr(sv.ssl_keyfile) if sv.ssl_keyfile else ''}: {exc}"
            ) from None
    if sv.verify_signatures:
        if not (
            s.plivo.auth_token
            or s.plivo.extra_auth_tokens
            or s.twilio.auth_token
            or s.twilio.extra_auth_tokens
        ):
            raise ConfigError(
                "server.verify_signatures: needs plivo.auth_token (or PLIVO_AUTH_TOKEN) or "
                "twilio.auth_token (or TWILIO_AUTH_TOKEN) to check signatures"
            )
        if not sv.public_url:
            raise ConfigError(
                "server.verify_signatures: needs server.public_url, the URL Plivo connects to"
            )
    ss = s.session
    if ss.doctor_silence_s < 0:
        raise ConfigError("session.doctor_silence_s: must be >= 0 (0 disables)")
    if ss.resume_s < 0:
        raise ConfigError("session.resume_s: must be >= 0 (0 disables)")
    if ss.reorder_window < 0:
        raise ConfigError("session.reorder_window: must be >= 0")
    if ss.handler_max_events < 1:
        raise ConfigError("session.handler_max_events: must be at least 1")
    if not ss.max_gap_s > 0:
        raise ConfigError("session.max_gap_s: must be > 0")
    if ss.handler_queue_s <= 0:
        raise ConfigError("session.handler_queue_s: must be > 0")
    if ss.send_batch_frames < 1:
        raise ConfigError("session.send_batch_frames: must be at least 1 (1 = no batching)")
    if not 0 < ss.send_batch_busy <= 1:
        raise ConfigError("session.send_batch_busy: must be in (0, 1] (a share of one CPU)")
    if ss.send_batch_min_streams < 0:
        raise ConfigError("session.send_batch_min_streams: must be >= 0")
    if not 1 <= ss.read_batch_frames <= 10:
        raise ConfigError("session.read_batch_frames: must be 1 to 10 (1 = no batching)")
    if not ss.read_batch_frames <= ss.read_batch_frames_busy <= 10:
        raise ConfigError(
            "session.read_batch_frames_busy: must be from read_batch_frames to 10 "
            f"(read_batch_frames is {ss.read_batch_frames}; equal to it = never deeper)"
        )
    if not 0 < ss.read_batch_busy <= 1:
        raise ConfigError("session.read_batch_busy: must be in (0, 1] (a share of one CPU)")
    if ss.read_batch_min_streams < 0:
        raise ConfigError("session.read_batch_min_streams: must be >= 0")
    if not 0 < ss.send_batch_delay_ms <= 1000:
        raise ConfigError("session.send_batch_delay_ms: must be in (0, 1000]")
