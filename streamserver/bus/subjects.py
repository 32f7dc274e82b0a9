"""Subject names: ``{prefix}.events.{call_id}.{kind}`` and ``{prefix}.cmd.{call_id}``."""

from __future__ import annotations

import re

__all__ = ["TOKEN", "cmd_subject", "event_subject", "subject_token"]

#: One NATS subject token as this package writes them (also a valid JetStream stream name).
TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def subject_token(value: str) -> str:
    """``value`` as one NATS subject token: characters other than ``A-Za-z0-9_-`` (dots,
    wildcards, spaces) become ``_``. The event body keeps the exact id."""
    return _NOT_TOKEN.sub("_", value) or "_"


def event_subject(prefix: str, call_id: str, kind: str) -> str:
    """``{prefix}.events.{call_id}.{kind}``; ``kind`` may be dotted (``stream.started``)."""
    kind_tokens = ".".join(subject_token(t) for t in kind.split("."))
    return f"{prefix}.events.{subject_token(call_id)}.{kind_tokens}"


def cmd_subject(prefix: str, call_id: str) -> str:
    """``{prefix}.cmd.{call_id}``."""
    return f"{prefix}.cmd.{subject_token(call_id)}"
