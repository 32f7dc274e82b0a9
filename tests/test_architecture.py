"""The rules of the house, checked over the source with ``ast`` (see docs/architecture.md).

Every ``.py`` file under ``streamserver/`` and ``handlers/`` is parsed (never imported) and
each ``import``/``from ... import`` in it, at module level or inside a function, becomes an
arrow from that module to a module of ours. ``from pkg import name`` points at
``pkg.name`` when that is a module of ours, else at ``pkg``. Importing ``a.b.c`` does not
count as importing the packages ``a`` and ``a.b`` (Python runs their ``__init__`` first,
but that is not an arrow anyone wrote).

Imports under ``if TYPE_CHECKING:`` are left out of the cycle check (they never run) and
count for every other rule: a type-only arrow still couples two modules.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("streamserver", "handlers")

#: Longest source file, in lines.
MAX_LINES = 500
#: Files allowed over MAX_LINES, each with the reason.
LONG_FILES: dict[str, str] = {
    "streamserver/audio.py": "the one audio module handlers may import: G.711 (mu-law, A-law) "
    "and L16 codecs, resampling, framing and AudioFormat share its lookup tables",
    "streamserver/signature.py": "every provider's request signatures (Plivo V3/V2, Twilio) "
    "and the one upgrade verifier that tries them share the URL-candidate rules",
    "streamserver/protocol/exotel.py": "one dialect is one module, both sides (server and "
    "Exotel), so the two halves of the wire format are read and changed together",
    "streamserver/protocol/plivo.py": "one dialect is one module, both sides (server and "
    "Plivo), so the two halves of the wire format are read and changed together",
    "streamserver/emulator/store.py": "the emulator's in-memory records of every resource, "
    "one dataclass each with its Plivo JSON shape, behind one lock-free store",
    "streamserver/protocol/telnyx.py": "one dialect is one module, both sides (server and "
    "Telnyx), so the two halves of the wire format are read and changed together",
    "streamserver/net/connection.py": "the asyncio.Protocol of every socket: the request "
    "(upgrade, or hand-off to the HTTP app on the port), the inlined one-frame fast path and "
    "the frame layer's callbacks share its slots and state, one hot object",
    "streamserver/rest/_client.py": "PlivoClient and AsyncPlivoClient beside the base they "
    "share (transport, retries, streamed downloads), so the two stay line-for-line alike",
}

#: The wire layer, where the sockets are.
NET = ("streamserver.net",)
#: Pure modules: no I/O, nothing of ours outside ``protocol/``.
PURE = ("streamserver.protocol", "streamserver.audio", "streamserver.signature")
#: Per-stream logic that must not know about sockets.
CORE = (
    "streamserver.ordering",
    "streamserver.runner",
    "streamserver.stream_handlers",
    "streamserver.session",
    "streamserver.session_config",
    "streamserver.dialect_binding",
    "streamserver.stream_start",
    "streamserver.frame_faults",
    "streamserver.stream_report",
    "streamserver.stream_control",
    "streamserver.resume",
    "streamserver.handler",
    "streamserver.handler_values",
)
#: What built-in handlers may import of ``streamserver`` (besides ``handlers.*`` itself and
#: ``streamserver.__version__``): today they use handler, audio and protocol.events; rest
#: is allowed for a REST client a handler is given (none of the built-ins takes one yet);
#: webhooks holds the signature, options and delivery policy that the webhook handler
#: shares with the JetStream relay (which runs outside the workers).
HANDLER_API = (
    "streamserver.handler",
    "streamserver.audio",
    "streamserver.protocol.events",
    "streamserver.rest",
    "streamserver.webhooks",
)
#: Tools that use only public names and never the wire layer or the command line.
TOOLS = ("streamserver.emulator", "streamserver.loadtest", "streamserver.commands.demo")
TOOLS_MUST_NOT = (*NET, "streamserver.cli")

#: Rule breaks accepted while a change is in flight: (rule, module or file, what it imports
#: or breaks). Empty: every rule holds. An entry that no longer happens fails
#: test_known_violations_still_occur, so the set never outlives its reason.
KNOWN_VIOLATIONS: frozenset[tuple[str, str, str]] = frozenset()


@dataclass(frozen=True)
class Import:
    """One arrow: ``module`` imports ``target`` (a module of ours), maybe a ``name`` in it."""

    module: str
    target: str
    name: str | None
    line: int
    type_checking: bool

    def where(self) -> str:
        what = f"{self.target}.{self.name}" if self.name else self.target
        return f"{self.module}:{self.line} imports {what}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def sources() -> dict[str, Path]:
    """Module name -> file, for every module of ours."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _is_ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = sources()[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    inside.update(id(n) for n in ast.walk(child))
    return inside


@cache
def _tree(module: str) -> ast.Module:
    path = sources()[module]
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    """Every import in ``module`` that names a module of ours."""
    tree = _tree(module)
    typing_only = _type_checking_nodes(tree)
    known = sources()
    found: list[Import] = []
    for node in ast.walk(tree):
        tc = id(node) in typing_only
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_ours(alias.name):
                    found.append(Import(module, alias.name, None, node.lineno, tc))
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if not _is_ours(target):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    found.append(Import(module, sub, None, node.lineno, tc))
                else:
                    found.append(Import(module, target, alias.name, node.lineno, tc))
    return tuple(found)


def all_imports() -> Iterator[Import]:
    for module in sources():
        yield from imports_of(module)


def _bound_modules(module: str, tree: ast.Module) -> dict[str, str]:
    """Local names that ``module``'s imports bind to modules of ours (``import a.b as x``,
    ``from . import session``)."""
    bound: dict[str, str] = {}
    known = sources()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_ours(alias.name):
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        bound[top] = top
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    bound[alias.asname or alias.name] = f"{target}.{alias.name}"
    return bound


def _dotted(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def _private_attribute_uses(
    module: str, tree: ast.Module | None = None
) -> Iterator[tuple[str, str, int]]:
    """``(module of ours, private name, line)`` for each ``mod._name`` in ``module``."""
    tree = tree or _tree(module)
    bound = _bound_modules(module, tree)
    if not bound:
        return
    known = sources()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _is_private(node.attr):
            continue
        parts = _dotted(node.value)
        if parts is None or parts[0] not in bound:
            continue
        target = bound[parts[0]]
        for part in parts[1:]:
            if f"{target}.{part}" not in known:
                break
            target = f"{target}.{part}"
        else:
            yield target, node.attr, node.lineno


def _private_module_part(target: str) -> str | None:
    """The leading part of ``target`` up to its first private module, if it has one."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if _is_private(part):
            return ".".join(parts[: i + 1])
    return None


Found = list[tuple[str, str, str]]  # (module or file, what it imports or breaks, message)
RULES: dict[str, Callable[[], Found]] = {}


def rule(name: str) -> Callable[[Callable[[], Found]], Callable[[], Found]]:
    """Register a function that lists the violations of rule ``name``."""

    def register(fn: Callable[[], Found]) -> Callable[[], Found]:
        RULES[name] = fn
        return fn

    return register


def _check(name: str) -> None:
    """Fail with every violation of rule ``name`` not listed in KNOWN_VIOLATIONS."""
    problems = sorted({f for f in RULES[name]() if (name, f[0], f[1]) not in KNOWN_VIOLATIONS})
    assert not problems, f"rule {name!r} broken:\n" + "\n".join(f"  {m}" for _, _, m in problems)


# --- the rules ------------------------------------------------------------------------------


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in sources()}
    for imp in all_imports():
        if not imp.type_checking and imp.target in graph and imp.target != imp.module:
            graph[imp.module].add(imp.target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@rule("cycle")
def import_cycles() -> Found:
    found: Found = []
    for component in _cycles(_graph()):
        members = set(component)
        arrows = sorted(
            {
                imp.where()
                for m in component
                for imp in imports_of(m)
                if imp.target in members and not imp.type_checking and imp.target != m
            }
        )
        key = " <-> ".join(component)
        found.append((key, key, f"cycle {key}:\n    " + "\n    ".join(arrows)))
    return found


@rule("private")
def private_names() -> Found:
    found: Found = []
    for imp in all_imports():
        if imp.name is not None and _is_private(imp.name):
            what = f"{imp.target}.{imp.name}"
            found.append((imp.module, what, f"{imp.where()} (a private name)"))
        private = _private_module_part(imp.target)
        # A private module is private to its package: the package's own modules (and its
        # subpackages') may use it, nobody else.
        if private is not None and not _within(imp.module, [private.rpartition(".")[0]]):
            found.append((imp.module, imp.target, f"{imp.where()} (a private module)"))
    for module in sources():
        for target, attr, line in _private_attribute_uses(module):
            if target != module:
                what = f"{target}.{attr}"
                found.append((module, what, f"{module}:{line} uses {what} (a private name)"))
    return found


def _imports_where(source: Iterable[str], targets: Iterable[str], why: str = "") -> Found:
    """Every import from a module within ``source`` of a module within ``targets``."""
    source, targets = list(source), list(targets)
    return [
        (imp.module, imp.target, imp.where() + why)
        for imp in all_imports()
        if _within(imp.module, source) and _within(imp.target, targets)
    ]


@rule("pure")
def pure_modules() -> Found:
    return [
        (imp.module, imp.target, f"{imp.where()} (pure modules import only protocol/)")
        for imp in all_imports()
        if _within(imp.module, PURE) and not _within(imp.target, ["streamserver.protocol"])
    ]


@rule("core")
def core_off_the_wire() -> Found:
    return _imports_where(CORE, NET, " (per-stream logic never touches the wire layer)")


@rule("below-net")
def below_the_wire() -> Found:
    graph = _graph()
    for imp in all_imports():  # type-only arrows count here too
        if imp.target in graph and imp.target != imp.module:
            graph[imp.module].add(imp.target)
    below: set[str] = set()
    todo = [t for m in graph if _within(m, NET) for t in graph[m] if not _within(t, NET)]
    while todo:
        m = todo.pop()
        if m not in below:
            below.add(m)
            todo.extend(t for t in graph[m] if not _within(t, NET))
    return [
        (imp.module, imp.target, f"{imp.where()}, but the wire layer uses {imp.module}")
        for imp in all_imports()
        if imp.module in below and _within(imp.target, NET)
    ]


def _handler_may_import(imp: Import) -> bool:
    if _within(imp.target, ["handlers"]):
        return True
    if imp.target == "streamserver":
        return imp.name == "__version__"
    return _within(imp.target, HANDLER_API)


@rule("handlers")
def handler_imports() -> Found:
    allowed = ", ".join(["streamserver.__version__", *HANDLER_API])
    return [
        (imp.module, imp.target, f"{imp.where()} (handlers may import: {allowed})")
        for imp in all_imports()
        if _within(imp.module, ["handlers"]) and not _handler_may_import(imp)
    ]


@rule("no-handlers")
def streamserver_loads_handlers_by_name() -> Found:
    return _imports_where(["streamserver"], ["handlers"], " (load handlers by name)")


@rule("tools")
def tools_off_the_wire() -> Found:
    return _imports_where(TOOLS, TOOLS_MUST_NOT, " (tools use streamserver.service)")


@rule("loadtest-emulator")
def loadtest_without_emulator() -> Found:
    return _imports_where(["streamserver.loadtest"], ["streamserver.emulator"])


@rule("size")
def file_sizes() -> Found:
    found: Found = []
    for path in sources().values():
        rel = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and rel not in LONG_FILES:
            found.append(
                (rel, f">{MAX_LINES} lines", f"{rel}: {lines} lines (at most {MAX_LINES})")
            )
    return found


@pytest.mark.parametrize("name", list(RULES))
def test_rule(name: str) -> None:
    """cycle, private, pure, core, below-net, handlers, no-handlers, tools,
    loadtest-emulator, size: see the functions registered with @rule above."""
    _check(name)


def test_known_violations_still_occur() -> None:
    """An entry of KNOWN_VIOLATIONS that no longer happens must be deleted."""
    current = {(name, m, what) for name, fn in RULES.items() for m, what, _ in fn()}
    stale = sorted(KNOWN_VIOLATIONS - current)
    assert not stale, "fixed, remove from KNOWN_VIOLATIONS:\n" + "\n".join(f"  {v}" for v in stale)


def test_long_file_allowlist_is_current() -> None:
    for rel in LONG_FILES:
        path = ROOT / rel
        assert path.is_file(), f"LONG_FILES lists {rel}, which does not exist"
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines > MAX_LINES, f"{rel} is {lines} lines now: drop it from LONG_FILES"


# --- the checker checks itself --------------------------------------------------------------


def test_checker_sees_relative_and_function_level_imports() -> None:
    arrows = {(i.target, i.name) for i in imports_of("streamserver.cli")}
    assert ("streamserver.settings", "load_settings") in arrows  # module level, relative
    assert ("streamserver.service", "StreamService") in arrows  # inside a function
    assert ("streamserver.runtime", "run_async") in arrows
    typing_only = [i for i in imports_of("streamserver.control.app") if i.type_checking]
    assert typing_only and all(_within(i.target, NET) for i in typing_only)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _private_module_part("streamserver.rest._ops") == "streamserver.rest._ops"
    assert _private_module_part("streamserver.rest.calls") is None
    assert set(RULES) >= {name for name, _, _ in KNOWN_VIOLATIONS}
    for target, name, ok in [
        ("streamserver", "__version__", True),
        ("streamserver.audio", None, True),
        ("streamserver.protocol.events", "Dtmf", True),
        ("handlers.transcribe.events", "SpeechStarted", True),
        ("streamserver", "server", False),
        ("streamserver.server", None, False),
        ("streamserver.session", "Session", False),
        ("streamserver.protocol.plivo", None, False),
    ]:
        assert _handler_may_import(Import("handlers.x", target, name, 1, False)) is ok, target


def test_checker_sees_private_attributes_of_our_modules() -> None:
    code = """
import streamserver.rest._ops as ops
import streamserver
from streamserver import settings
from . import runtime

settings._fill(None)
streamserver.protocol.plivo._decode(1, 2)
ops._private
runtime._x
settings.load_settings
"""
    uses = sorted(_private_attribute_uses("streamserver.cli", ast.parse(code)))
    assert uses == [
        ("streamserver.protocol.plivo", "_decode", 8),
        ("streamserver.rest._ops", "_private", 9),
        ("streamserver.runtime", "_x", 10),
        ("streamserver.settings", "_fill", 7),
    ]


def test_tests_mirror_the_packages() -> None:
    """``tests/<package>/`` per package; basenames unique (no ``__init__.py``: pytest imports
    test files by basename, with ``tests/`` put on ``sys.path`` by conftest.py)."""
    tests = ROOT / "tests"
    files = sorted(p for p in tests.rglob("*.py") if "data" not in p.relative_to(tests).parts)
    assert not [p for p in files if p.name == "__init__.py"], "tests/ has no __init__.py files"
    seen: dict[str, Path] = {}
    for p in files:
        other = seen.setdefault(p.name, p)
        assert other == p, f"two test files named {p.name}: {other} and {p}"
    for d in sorted(p for p in tests.iterdir() if p.is_dir()):
        if d.name in ("data", "__pycache__"):
            continue
        mirrored = d.name == "handlers" or (ROOT / "streamserver" / d.name).is_dir()
        assert mirrored, f"tests/{d.name}/ mirrors no package (streamserver/{d.name}/)"
