"""Typed values from config tables: one strict reader for every settings object.

The server's settings, the control app's ``[control]`` table and the emulator's
``[emulator]`` table are read the same way. A value must already have its field's type;
nothing is guessed, and a problem raises :class:`ConfigError` whose message starts with
the key::

    bool        true or false (TOML booleans: not "yes", "on" or 1)
    int         an integer (not a bool)
    float       an integer or a float (not a bool), returned as a float
    str         a string
    list[str]   a list of strings, or one string of comma-separated items ("recorder, echo")

Environment variables are text: :func:`env_value` turns one into a value first (``8``,
``2.5``, ``true``, ``["a", "b"]`` as TOML; a string field keeps the text as written). Text
that spells no TOML value stays text, which :func:`cast` then refuses naming the key.

The ``[bus]`` and ``[storage]`` tables are msgspec Structs instead, read by
:func:`struct_from_table`: leniently (``strict=False``), and a problem raises ``ValueError``.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from typing import Any, TypeVar, get_type_hints

import msgspec

__all__ = [
    "ConfigError",
    "FieldReader",
    "cast",
    "closest",
    "did_you_mean",
    "env_value",
    "read_table",
    "struct_from_table",
]

S = TypeVar("S", bound=msgspec.Struct)


class ConfigError(Exception):
    """A configuration problem; the message names the key."""


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` a misspelt ``name`` most likely meant (difflib), or None."""
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the :func:`closest` of ``choices``, or ``""``."""
    close = closest(name, choices)
    return f" (did you mean {close!r}?)" if close else ""


#: Reads one field's raw value (``value``, ``key``) into its typed value, or raises.
FieldReader = Callable[[Any, str], Any]

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def cast(value: Any, typ: Any, key: str, *, error: type[ConfigError] = ConfigError) -> Any:
    """``value`` as a ``typ`` (see the module docstring); raise ``error`` naming ``key``."""
    if typ is bool:
        ok = isinstance(value, bool)
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif typ is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif typ is str:
        ok = isinstance(value, str)
    elif typ == list[str]:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise error(f"{key}: expected a list of strings, got {value!r}")
        return list(value)
    else:
        raise error(f"{key}: unsupported type {typ!r}")
    if not ok:
        raise error(f"{key}: expected {_NAMES[typ]}, got {value!r}")
    return value


def env_value(raw: str, typ: Any = None) -> Any:
    """An environment variable's text as a value for a field of type ``typ``.

    The TOML scalar the text spells (``8``, ``true``, ``["a"]``), else the text itself; a
    string field takes the text as written (a token ``12345`` stays a string). ``typ=None``
    (an untyped table, such as a handler's options): the TOML scalar or the text.
    """
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if typ is str and not isinstance(value, str):
        return raw
    return value


def read_table(
    cls: type,
    table: Mapping[str, Any],
    prefix: str,
    *,
    error: type[ConfigError] = ConfigError,
    readers: Mapping[str, FieldReader] | None = None,
) -> dict[str, Any]:
    """The typed values of ``table`` for the dataclass ``cls``, keyed by field name.

    Keys are named ``{prefix}.{key}`` in errors; an unknown key is an error that lists the
    known ones. A field in ``readers`` is read by its function instead of :func:`cast`
    (tables, schedules, paths).
    """
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    special = readers or {}
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}.{key}"
        if key not in names:
            raise error(
                f"{name}: unknown key{did_you_mean(key, names)} (known: {', '.join(sorted(names))})"
            )
        read = special.get(key)
        values[key] = read(value, name) if read else cast(value, hints[key], name, error=error)
    return values


def struct_from_table(cls: type[S], table: Mapping[str, Any], name: str) -> S:
    """The msgspec Struct ``cls`` from the raw ``[name]`` table; the ``ValueError`` starts
    with ``[name]`` and names the key that is wrong (``name.key``)."""
    try:
        return msgspec.convert(dict(table), cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"[{name}] {exc}".replace("`$.", f"`{name}.")) from None
