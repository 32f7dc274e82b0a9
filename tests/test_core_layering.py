"""The stream core's rules, read from the source with ``ast``: what each module may import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).parent.parent / "streamserver"
CORE = (
    "dialect_binding",
    "doctor",
    "frame_faults",
    "handler",
    "handler_values",
    "ordering",
    "playback",
    "resume",
    "runner",
    "session",
    "session_config",
    "session_state",
    "stream_control",
    "stream_handlers",
    "stream_report",
    "stream_start",
)
#: What each core module may import of ours (besides itself).
ALLOWED = {
    "ordering": set(),
    "session_state": set(),
    "handler": {"audio", "handler_values", "protocol.events"},
    "handler_values": {"audio"},
    "doctor": {"audio", "handler", "metrics", "protocol.events", "protocol.neutral"},
    "session_config": {"audio", "handler"},
    "dialect_binding": {
        "protocol.detect",
        "protocol.dialect",
        "protocol.neutral",
        "protocol.plivo",
    },
    "frame_faults": {
        "logs",  # clean(): network strings in log lines (logs imports nothing of ours)
        "metrics",
        "protocol.events",
        "protocol.plivo",
        "protocol.websocket",
        "session_config",
    },
    "stream_start": {"audio", "doctor", "handler", "logs", "protocol.events", "session_config"},
    "stream_report": {
        "audio",
        "handler",
        "ordering",
        "protocol.dialect",
        "runner",
        "session_config",
        "session_state",
        "stream_handlers",
    },
    "playback": {"audio", "metrics", "protocol.dialect"},
    "resume": {"audio", "ordering"},
    "stream_control": {
        "doctor",
        "handler",
        "metrics",
        "playback",
        "session_config",
        "stream_handlers",
    },
    "runner": {"handler", "metrics", "protocol.events"},
    "stream_handlers": {"handler", "metrics", "protocol.websocket", "runner"},
    "session": {
        "audio",
        "dialect_binding",
        "doctor",
        "frame_faults",
        "handler",
        "logs",
        "metrics",
        "observer",
        "ordering",
        "playback",
        "protocol.detect",
        "protocol.dialect",
        "protocol.events",
        "protocol.neutral",
        "protocol.plivo",
        "protocol.websocket",
        "resume",
        "runner",
        "session_config",
        "session_state",
        "stream_control",
        "stream_handlers",
        "stream_report",
        "stream_start",
    },
}
#: No sockets in the core: the network layer owns them.
FORBIDDEN_STDLIB = {"socket", "ssl", "selectors", "uvloop", "websockets"}


def imports(module: str) -> list[tuple[str, str]]:
    """(module imported, name imported) pairs; relative imports made absolute in our package."""
    tree = ast.parse((PKG / f"{module}.py").read_text(encoding="utf-8"))
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"streamserver.{base}" if base else "streamserver"
            for alias in node.names:
                found.append((base, alias.name))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, "") for alias in node.names)
    return found


def ours(module: str) -> set[str]:
    """Our modules that ``module`` imports, dotted below ``streamserver``."""
    deps = set()
    for base, name in imports(module):
        if base != "streamserver" and not base.startswith("streamserver."):
            continue
        rel = base.removeprefix("streamserver").lstrip(".")
        sub = f"{rel}.{name}".lstrip(".")
        # `from .protocol import plivo` imports the module protocol.plivo
        is_module = (PKG / f"{sub.replace('.', '/')}.py").exists() or (PKG / sub).is_dir()
        deps.add(sub if name and is_module else rel)
    return deps


@pytest.mark.parametrize("module", CORE)
def test_core_modules_import_only_what_they_may(module: str) -> None:
    assert ours(module) <= ALLOWED[module]
    stdlib = {base.split(".")[0] for base, _ in imports(module)}
    assert not stdlib & FORBIDDEN_STDLIB
    assert not any(d == "net" or d.startswith(("net.", "server")) for d in ours(module))


@pytest.mark.parametrize("module", CORE)
def test_core_modules_import_no_private_names(module: str) -> None:
    private = [
        f"{base}.{name}"
        for base, name in imports(module)
        if base.startswith("streamserver") and name.startswith("_")
    ]
    assert private == []


def test_the_core_has_no_import_cycle() -> None:
    graph = {m: ALLOWED[m] & set(CORE) for m in CORE}
    for m in CORE:  # the allowed lists themselves must not form a cycle
        seen, todo = set(), list(graph[m])
        while todo:
            d = todo.pop()
            assert d != m, f"import cycle through {m}"
            if d not in seen:
                seen.add(d)
                todo.extend(graph[d])
