"""Settings of the local Plivo emulator: the ``[emulator]`` table of a TOML file.

Every key is optional and can be overridden by ``STREAMSERVER_EMULATOR__<KEY>`` variables
(values parsed as TOML scalars; a text field keeps the text). Values are cast strictly by
:mod:`streamserver.config` (booleans are ``true``/``false``). Credentials resolve as: the
table, then ``PLIVO_AUTH_ID`` / ``PLIVO_AUTH_TOKEN`` (the variables the REST client reads),
then the documented local-only defaults :data:`DEFAULT_AUTH_ID` / :data:`DEFAULT_AUTH_TOKEN`.
Problems raise :class:`EmulatorConfigError` naming the key, e.g.
``emulator.ring_s: expected a number``.

Example::

    [emulator]
    port = 8090
    ring_s = 1.0
    calls_per_second = 2
    caller_audio = "samples/hello-8k.wav"
    caller_dtmf = "5@2.0,#@4.5"          # digit@seconds after answer
    caller_input = "1|2345#|say:yes"     # one answer per <GetDigits>/<GetInput>
    stream_retries = 2                   # Plivo retries a failed or dropped socket twice

    [emulator.caller_audio_by_number]
    "14155550100" = "samples/digits-8k.wav"

    [emulator.outcome_by_number]
    "14155550123" = "busy"               # answer, machine, busy, no-answer, rejected, failed
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from ..config import ConfigError, FieldReader, env_value, read_table
from ..protocol.events import DTMF_DIGITS
from .outcomes import OUTCOMES, parse_caller_input

__all__ = [
    "DEFAULT_AUTH_ID",
    "DEFAULT_AUTH_TOKEN",
    "SAMPLES_DIR",
    "EmulatorConfigError",
    "EmulatorSettings",
    "load_emulator_settings",
    "parse_dtmf_script",
]

#: Auth ID of the emulated account when nothing else is configured. Local use only: it
#: opens nothing but this emulator. Same shape as a real one (``MA`` + 18 characters).
DEFAULT_AUTH_ID = "MAEMULATOR0000000001"
#: Auth token paired with :data:`DEFAULT_AUTH_ID`; local use only, not a secret.
DEFAULT_AUTH_TOKEN = "EmulatorLocalOnlyAuthToken00000000000000"

#: Committed sample recordings of real speech (8 kHz mono 16-bit WAV).
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"

ENV_PREFIX = "STREAMSERVER_EMULATOR__"
_AUTH_ID_RE = re.compile(r"^(MA|SA)[A-Z0-9]{18}$")
_DTMF_DIGITS = frozenset(DTMF_DIGITS)
_TTS_MODES = ("auto", "espeak", "tone")


class EmulatorConfigError(ConfigError, ValueError):
    """An emulator setting is missing, mistyped or out of range; the message names the key."""


@dataclass
class EmulatorSettings:
    """Everything the emulator's REST app and call simulator need, with units in the names."""

    host: str = "127.0.0.1"
    #: 0 picks a free port (tests); the bound port is reported by ``Emulator.base_url``.
    port: int = 8090
    auth_id: str = ""
    auth_token: str = ""
    #: How the outside world reaches this emulator, used in ``recording_url``; defaults
    #: to ``http://host:port`` as bound.
    public_url: str = ""

    # Calls
    #: Seconds a call rings before it is answered.
    ring_s: float = 1.0
    #: Calls dispatched per second; more are answered "call queued". 0 disables the limit.
    calls_per_second: float = 2.0
    #: Timeout of each answer-URL fetch and callback POST.
    http_timeout_s: float = 10.0
    #: Send ring/hangup/stream/recording callbacks (answer URLs are always fetched).
    callbacks: bool = True

    # Limits
    #: Non-call API requests allowed per window; more get 429. 0 disables the limit.
    rate_limit_requests: int = 300
    rate_limit_window_s: float = 5.0

    # The simulated far end ("the caller" whose voice is streamed)
    #: WAV/FLAC file the callee speaks once answered; default: the bundled hello sample.
    caller_audio: str = ""
    #: Dialled number (digits only) -> audio file, overriding ``caller_audio``.
    caller_audio_by_number: dict[str, str] = field(default_factory=dict)
    #: DTMF the callee presses: (seconds after answer, digit), sorted by time.
    caller_dtmf: list[tuple[float, str]] = field(default_factory=list)
    #: The callee hangs up this long after their audio ends; negative: never.
    caller_hangup_after_audio_s: float = 3.0
    #: What the callee enters at each ``<GetDigits>``/``<GetInput>``, in order: digits,
    #: ``say:<words>`` (speech) or "" (nothing: the element times out). Written
    #: ``"1|2345#|say:yes"``.
    caller_input: list[str] = field(default_factory=list)
    #: Dialled number (digits only) -> how the call goes (:data:`.outcomes.OUTCOMES`),
    #: beside the built-in magic numbers (:data:`.outcomes.MAGIC_NUMBERS`).
    outcome_by_number: dict[str, str] = field(default_factory=dict)

    # Streams (Plivo's side of every <Stream>)
    #: Reconnect attempts after a stream's socket fails to connect or drops (Plivo: 2).
    stream_retries: int = 2
    #: Wait before the first reconnect attempt; it doubles before each further one.
    stream_retry_delay_s: float = 0.5
    #: Audio held for a server that does not keep up; DegradedStream at 30/60/90 % of
    #: it, and the stream is dropped when it is full (Plivo: 40 s).
    stream_buffer_s: float = 40.0

    # Media
    #: Where recordings are written; empty: a temporary directory removed on exit.
    recordings_dir: str = ""
    #: Text-to-speech for <Speak>: "auto" (espeak-ng when on PATH), "espeak" or "tone".
    tts: str = "auto"
    #: One-time password that verifies caller IDs (the emulator plays the phone).
    verification_otp: str = "123456"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`EmulatorConfigError` naming the first bad key."""
        if not 0 <= self.port <= 65535:
            raise EmulatorConfigError(f"emulator.port: {self.port} is not a TCP port (0-65535)")
        if self.auth_id and not _AUTH_ID_RE.match(self.auth_id):
            raise EmulatorConfigError(
                f"emulator.auth_id: {self.auth_id!r} must be MA or SA followed by 18 "
                "uppercase letters or digits"
            )
        if self.auth_token and len(self.auth_token) < 8:
            raise EmulatorConfigError("emulator.auth_token: must be at least 8 characters")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise EmulatorConfigError(
                f"emulator.public_url: {self.public_url!r} must start with http:// or https://"
            )
        for name in ("ring_s", "calls_per_second", "rate_limit_requests"):
            if getattr(self, name) < 0:
                raise EmulatorConfigError(f"emulator.{name}: must be >= 0")
        if self.stream_retries < 0 or self.stream_retry_delay_s < 0:
            raise EmulatorConfigError("emulator.stream_retries and stream_retry_delay_s: >= 0")
        for name in ("http_timeout_s", "rate_limit_window_s", "stream_buffer_s"):
            if getattr(self, name) <= 0:
                raise EmulatorConfigError(f"emulator.{name}: must be > 0")
        if self.tts not in _TTS_MODES:
            raise EmulatorConfigError(
                f"emulator.tts: {self.tts!r} must be one of {', '.join(_TTS_MODES)}"
            )
        for at, digit in self.caller_dtmf:
            if digit not in _DTMF_DIGITS or at < 0:
                raise EmulatorConfigError(
                    f"emulator.caller_dtmf: {digit!r}@{at} needs a digit 0-9 * # A-D and a "
                    "time >= 0"
                )
        for number, outcome in self.outcome_by_number.items():
            if outcome not in OUTCOMES:
                raise EmulatorConfigError(
                    f"emulator.outcome_by_number: {number} = {outcome!r} must be one of "
                    f"{', '.join(OUTCOMES)}"
                )
        if not self.verification_otp:
            raise EmulatorConfigError("emulator.verification_otp: must not be empty")

    def with_credentials(self, environ: Mapping[str, str] | None = None) -> EmulatorSettings:
        """Fill missing credentials from ``PLIVO_AUTH_ID``/``PLIVO_AUTH_TOKEN``, then defaults.

        The environment pair is taken only when its auth ID has a valid shape, so a real
        account's variables pointing elsewhere cannot break the emulator's start-up.
        """
        env = os.environ if environ is None else environ
        auth_id, auth_token = self.auth_id, self.auth_token
        env_id, env_token = env.get("PLIVO_AUTH_ID", ""), env.get("PLIVO_AUTH_TOKEN", "")
        if not auth_id and env_id and _AUTH_ID_RE.match(env_id):
            auth_id = env_id
            auth_token = auth_token or env_token
        if not auth_id:
            auth_id = DEFAULT_AUTH_ID
            auth_token = auth_token or DEFAULT_AUTH_TOKEN
        if not auth_token:
            auth_token = env_token if auth_id == env_id and env_token else DEFAULT_AUTH_TOKEN
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(auth_id=auth_id, auth_token=auth_token)
        return EmulatorSettings(**values)

    def audio_for(self, number: str) -> Path:
        """The audio file the callee at ``number`` speaks."""
        digits = number.lstrip("+")
        chosen = self.caller_audio_by_number.get(digits) or self.caller_audio_by_number.get(number)
        if chosen:
            return Path(chosen)
        if self.caller_audio:
            return Path(self.caller_audio)
        return SAMPLES_DIR / "hello-8k.wav"


#: Field types, for reading environment variables as the field's type.
_HINTS = get_type_hints(EmulatorSettings)


def parse_dtmf_script(text: str, key: str = "emulator.caller_dtmf") -> list[tuple[float, str]]:
    """Parse ``"5@2.0,#@4.5"`` (digit@seconds) into sorted ``[(2.0, "5"), (4.5, "#")]``."""
    script: list[tuple[float, str]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        digit, sep, at = item.partition("@")
        digit = digit.strip().upper()
        try:
            seconds = float(at)
        except ValueError:
            seconds = -1.0
        if not sep or digit not in _DTMF_DIGITS or not 0 <= seconds < math.inf:
            raise EmulatorConfigError(
                f"{key}: {item!r} is not digit@seconds (e.g. 5@2.0; digits 0-9 * # A-D)"
            )
        script.append((seconds, digit))
    return sorted(script)


def _dtmf_field(value: Any, key: str) -> list[tuple[float, str]]:
    if not isinstance(value, str):
        raise EmulatorConfigError(f"{key}: expected a string like '5@2.0,#@4.5', got {value!r}")
    return parse_dtmf_script(value, key)


def _input_field(value: Any, key: str) -> list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "|".join(value)
    if not isinstance(value, str):
        raise EmulatorConfigError(f"{key}: expected a string like '1|2345#|say:yes', got {value!r}")
    try:
        return parse_caller_input(value)
    except ValueError as exc:
        raise EmulatorConfigError(f"{key}: {exc}") from None


def _numbers_field(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise EmulatorConfigError(f'{key}: expected a table of number = "text"')
    return {k.lstrip("+"): v for k, v in value.items()}


_READERS: dict[str, FieldReader] = {
    "caller_dtmf": _dtmf_field,
    "caller_input": _input_field,
    "caller_audio_by_number": _numbers_field,
    "outcome_by_number": _numbers_field,
}


#: Fields written as scripts: from the environment they take the text as written (``5#``
#: is two keys, not the number 5 and a TOML comment).
_SCRIPTS = frozenset({"caller_dtmf", "caller_input"})


def _from_table(table: Mapping[str, Any], base_dir: Path | None) -> EmulatorSettings:
    values = read_table(
        EmulatorSettings, table, "emulator", error=EmulatorConfigError, readers=_READERS
    )
    for name in ("caller_audio", "recordings_dir"):
        if values.get(name):
            values[name] = _resolve(values[name], base_dir)
    if "caller_audio_by_number" in values:
        values["caller_audio_by_number"] = {
            k: _resolve(v, base_dir) for k, v in values["caller_audio_by_number"].items()
        }
    return EmulatorSettings(**values)


def _resolve(path: str, base_dir: Path | None) -> str:
    # Relative paths in a config file are relative to that file, not to the working directory.
    p = Path(path).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return str(p)


def load_emulator_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    table: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> EmulatorSettings:
    """Build settings from the ``[emulator]`` table of ``path`` (or a given ``table``),
    apply ``overrides`` (e.g. ``{"port": 9000}`` from flags; None values are skipped), then
    resolve credentials from the environment or the defaults.
    """
    data: dict[str, Any] = dict(table or {})
    base_dir: Path | None = None
    if path is not None:
        p = Path(path)
        try:
            doc = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise EmulatorConfigError(f"config file {str(p)!r} not found") from None
        except OSError as exc:
            raise EmulatorConfigError(f"config file {str(p)!r} cannot be read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise EmulatorConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
        section = doc.get("emulator", {})
        if not isinstance(section, dict):
            raise EmulatorConfigError("[emulator] must be a table")
        data.update(section)
        base_dir = p.resolve().parent
    env = os.environ if environ is None else environ
    for var, raw in env.items():
        # STREAMSERVER_EMULATOR__PORT=9000, as for the server's own settings.
        if var.startswith(ENV_PREFIX) and len(var) > len(ENV_PREFIX):
            name = var[len(ENV_PREFIX) :].lower()
            data[name] = env_value(raw, str if name in _SCRIPTS else _HINTS.get(name))
    for name, value in (overrides or {}).items():
        if value is not None:
            data[name] = value
    return _from_table(data, base_dir).with_credentials(env)
