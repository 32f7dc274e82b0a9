"""The control app's ``[control]`` table: typed, checked against the server's routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

from ..asgi import HttpLimits
from ..config import ConfigError, read_table
from ..rest import xml
from ..settings import Settings

__all__ = ["SAME_PORT", "ControlSettings", "load_control_settings"]

#: ``[control] port = "same"``: the control app's routes on the stream server's port.
SAME_PORT = "same"

_AUDIO_TRACKS = get_args(Literal["inbound", "outbound", "both"])
_CONTENT_TYPES = get_args(xml.ContentType)


@dataclass
class ControlSettings:
    """The ``[control]`` table (see ``config/streamserver.toml`` for each option)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    #: Its own port, or ``"same"``: served on the stream server's port (``host`` unused).
    port: int | str = 8081
    #: How Plivo reaches this app (signatures, callback URLs); default http://host:port.
    public_url: str = ""
    # The <Stream> that /answer returns
    route: str = "/stream"
    bidirectional: bool = True
    audio_track: str = "inbound"
    content_type: str = "audio/x-mulaw;rate=8000"
    extra_headers: dict[str, str] = field(default_factory=dict)
    keep_call_alive: bool = True
    #: 0 leaves streamTimeout out (Plivo's default, 86400 s).
    stream_timeout_s: int = 0
    #: Point the stream's statusCallbackUrl at /callbacks/stream.
    status_callback: bool = True
    # Security and ops
    verify_signatures: bool = True
    streams_endpoint: bool = True
    #: Serve unsigned callbacks and /streams to anyone on a non-loopback address.
    open_access: bool = False
    # Timeouts and limits of every connection (none: 0)
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 256

    @property
    def http_limits(self) -> HttpLimits:
        """The bounds of each connection to the app (0 in a setting: that bound off)."""
        return HttpLimits(
            header_timeout_s=self.header_timeout_s or None,
            body_timeout_s=self.body_timeout_s or None,
            max_connections=self.max_connections or None,
        )

    @property
    def shared(self) -> bool:
        """Served on the stream server's port (``port = "same"``)."""
        return self.port == SAME_PORT

    def stream_verb(self, url: str, status_callback_url: str | None) -> xml.Stream:
        """The ``<Stream>`` to ``url`` with these options (ValueError if Plivo would refuse it)."""
        return xml.Stream(
            url,
            bidirectional=self.bidirectional,
            audio_track=cast(Any, self.audio_track),
            stream_timeout=self.stream_timeout_s or None,
            status_callback_url=status_callback_url,
            status_callback_method="POST" if status_callback_url else None,
            content_type=cast(Any, self.content_type),
            extra_headers=self.extra_headers or None,
            keep_call_alive=self.keep_call_alive,
        )


def load_control_settings(settings: Settings) -> ControlSettings:
    """Read ``settings.extra["control"]``; raise :class:`ConfigError` naming a bad key.

    The route and stream options are checked against the server's routes and Plivo's rules
    only when the app is enabled.
    """
    table = settings.extra.get("control", {})
    if not isinstance(table, dict):
        raise ConfigError("[control] must be a table")
    cs = ControlSettings(**read_table(ControlSettings, table, "control", readers=_READERS))
    if isinstance(cs.port, int) and not 0 <= cs.port <= 65535:
        raise ConfigError(f"control.port: {cs.port} is not a TCP port (0-65535)")
    if cs.public_url:
        parts = urlsplit(cs.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"control.public_url: {cs.public_url!r} must be an http:// or https:// URL"
            )
        if parts.query or parts.fragment:
            raise ConfigError("control.public_url: must not have a query or fragment")
    if cs.stream_timeout_s < 0:
        raise ConfigError("control.stream_timeout_s: must be >= 0 (0 = Plivo's default)")
    for key in ("header_timeout_s", "body_timeout_s", "max_connections"):
        if getattr(cs, key) < 0:
            raise ConfigError(f"control.{key}: must be >= 0 (0 = no limit)")
    if cs.audio_track not in _AUDIO_TRACKS:
        raise ConfigError(
            f"control.audio_track: {cs.audio_track!r} is not one of {', '.join(_AUDIO_TRACKS)}"
        )
    if cs.content_type not in _CONTENT_TYPES:
        raise ConfigError(
            f"control.content_type: {cs.content_type!r} is not one of {', '.join(_CONTENT_TYPES)}"
        )
    if cs.enabled and cs.shared:
        taken = sorted(p for p in settings.routes if p in _APP_PATHS)
        if taken:
            raise ConfigError(
                f'control.port: "same" serves {", ".join(taken)} on the stream port, '
                "where a stream route has that path (rename the route)"
            )
    if cs.enabled:
        route = settings.routes.get(cs.route)
        if route is None:
            raise ConfigError(
                f"control.route: {cs.route!r} is not a configured route "
                f"({', '.join(sorted(settings.routes)) or 'none'})"
            )
        if cs.bidirectional and not route.bidirectional:
            raise ConfigError(
                f"control.bidirectional: route {cs.route!r} is not bidirectional "
                f'(set routes."{cs.route}".bidirectional = true, or control.bidirectional = false)'
            )
        try:
            cs.stream_verb("wss://check.invalid/", None)
        except ValueError as exc:
            raise ConfigError(f"[control] stream options: {exc}") from None
    return cs


def _headers(value: Any, name: str) -> dict[str, str]:
    if isinstance(value, str):
        pairs = [p.partition("=") for p in value.split(",") if p.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ConfigError(f"{name}: expected a table or 'k=v,k2=v2', got {value!r}")
        return {k.strip(): v.strip() for k, _, v in pairs}
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        return {k: str(v) for k, v in value.items()}
    raise ConfigError(f'{name}: expected a table of name = "value", got {value!r}')


def _port(value: Any, name: str) -> int | str:
    if value == SAME_PORT:
        return SAME_PORT
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(
        f'{name}: expected a port number or "same" (the stream server\'s port), got {value!r}'
    )


#: Paths the control app serves (besides /healthz, which the stream port answers itself).
_APP_PATHS = frozenset(
    {"/answer", "/callbacks/stream", "/callbacks/hangup", "/callbacks/recording", "/streams"}
)
_READERS = {"extra_headers": _headers, "port": _port}
