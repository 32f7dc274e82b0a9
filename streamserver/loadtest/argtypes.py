"""The types of the load tester's flags: argparse converters that fail with a clear message."""

from __future__ import annotations

import argparse

from ..audio import AudioFormat
from .wire import Target

__all__ = [
    "CONTENT_TYPES",
    "content_type",
    "cpus",
    "ladder",
    "nonneg_float",
    "positive_float",
    "positive_int",
    "ws_url",
]

#: The formats a Plivo stream offers.
CONTENT_TYPES = ("audio/x-mulaw;rate=8000", "audio/x-l16;rate=8000", "audio/x-l16;rate=16000")


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {n}")
    return n


def positive_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return x


def nonneg_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return x


def ladder(value: str) -> list[int]:
    try:
        steps = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--ladder takes stream counts like 250,500,750; got {value!r}"
        ) from None
    if not steps or any(n < 1 for n in steps) or steps != sorted(set(steps)):
        raise argparse.ArgumentTypeError("--ladder needs increasing positive stream counts")
    return steps


def cpus(value: str) -> list[int]:
    try:
        cpus = sorted({int(c) for c in value.split(",") if c.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected CPU numbers like 0 or 0,1; got {value!r}"
        ) from None
    if not cpus:
        raise argparse.ArgumentTypeError("expected at least one CPU number")
    return cpus


def ws_url(value: str) -> str:
    try:
        Target.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def content_type(value: str) -> str:
    try:
        return AudioFormat.from_content_type(value).content_type
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; use one of: {', '.join(CONTENT_TYPES)}") from None
