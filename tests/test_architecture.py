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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("streamserver", "handlers")

#: Longest source file, in lines.
MAX_LINES = 500
#: Files allowed over MAX_LINES, each with the reason.
LONG_FILES: dict[str, str] = {
    "streamserver/audio.py": "one table-driven codec module (μ-law, A-law, L16, resampling, "
    "framing) whose parts share the lookup tables; splitting it would scatter the hot path",
    "streamserver/rest/_client.py": "the sync and async clients and their shared transport "
    "seam: one table drives both, kept side by side so they cannot drift",
    "handlers/transcribe/engines.py": "one module per optional engine would be 60-line files "
    "behind one registry; the engines share the pool and audio helpers",
    "handlers/transcribe/transcriber.py": "the handler and its utterance pipeline (VAD "
    "events -> engine jobs -> transcript events); the pieces share per-stream state",
}

#: The wire layer, where the sockets are (``server.py`` until it moves into ``net/``).
NET = ("streamserver.net", "streamserver.server")
#: Pure modules: no I/O, nothing of ours outside ``protocol/``.
PURE = ("streamserver.protocol", "streamserver.audio", "streamserver.signature")
#: Per-stream logic that must not know about sockets.
CORE = (
    "streamserver.ordering",
    "streamserver.runner",
    "streamserver.session",
    "streamserver.handler",
)
#: What built-in handlers may import of ``streamserver`` (plus ``handlers.*`` itself):
#: the root package only for ``__version__`` (the webhook's User-Agent); ``rest`` for a
#: REST client a handler is given (none of the built-ins uses one yet).
HANDLER_API = (
    "streamserver",
    "streamserver.handler",
    "streamserver.audio",
    "streamserver.protocol.events",
    "streamserver.rest",
)
#: Tools that use only public names and never the wire layer or the command line.
TOOLS = ("streamserver.emulator", "streamserver.loadtest", "streamserver.commands.demo")
TOOLS_MUST_NOT = (*NET, "streamserver.cli")

#: Rule breaks in code being restructured on other branches, to be removed when those
#: branches are merged: (rule, importing module, imported module or name).
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


def _bound_modules(module: str) -> dict[str, str]:
    """Local names that ``module``'s imports bind to modules of ours (``import a.b as x``,
    ``from . import session``)."""
    bound: dict[str, str] = {}
    known = sources()
    for node in ast.walk(_tree(module)):
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


def _private_attribute_uses(module: str) -> Iterator[tuple[str, str, int]]:
    """``(module of ours, private name, line)`` for each ``mod._name`` in ``module``."""
    bound = _bound_modules(module)
    if not bound:
        return
    known = sources()
    for node in ast.walk(_tree(module)):
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


def _package_of(module: str) -> str:
    return module if sources()[module].name == "__init__.py" else module.rpartition(".")[0]


def _private_module_part(target: str) -> str | None:
    """The leading part of ``target`` up to its first private module, if it has one."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if _is_private(part):
            return ".".join(parts[: i + 1])
    return None


def _check(rule: str, found: Iterable[tuple[str, str, str]]) -> None:
    """Fail with every violation of ``rule`` not listed in KNOWN_VIOLATIONS."""
    problems = sorted(
        {(m, what, msg) for m, what, msg in found if (rule, m, what) not in KNOWN_VIOLATIONS}
    )
    assert not problems, f"{rule}:\n" + "\n".join(f"  {msg}" for _, _, msg in problems)


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


def test_no_import_cycles() -> None:
    graph = _graph()
    found = []
    for component in _cycles(graph):
        members = set(component)
        arrows = [
            f"{imp.where()}"
            for m in component
            for imp in imports_of(m)
            if imp.target in members and not imp.type_checking and imp.target != m
        ]
        key = " <-> ".join(component)
        found.append((key, key, f"cycle {key}:\n    " + "\n    ".join(sorted(set(arrows)))))
    _check("cycle", found)


def test_no_private_names_across_modules() -> None:
    found = []
    for imp in all_imports():
        if imp.name is not None and _is_private(imp.name):
            found.append(
                (imp.module, f"{imp.target}.{imp.name}", f"{imp.where()} (a private name)")
            )
        private = _private_module_part(imp.target)
        # A private module is private to its package: its siblings (and their
        # subpackages) may use it, nobody else.
        if private is not None and not _within(imp.module, [private.rpartition(".")[0]]):
            found.append((imp.module, imp.target, f"{imp.where()} (a private module)"))
    for module in sources():
        for target, attr, line in _private_attribute_uses(module):
            if target != module:
                found.append((module, f"{target}.{attr}", f"{module}:{line} uses {target}.{attr}"))
    _check("private", found)


def test_pure_modules_import_only_protocol() -> None:
    found = [
        (imp.module, imp.target, imp.where())
        for imp in all_imports()
        if _within(imp.module, PURE) and not _within(imp.target, ["streamserver.protocol"])
    ]
    _check("pure", found)


def test_core_never_imports_the_wire_layer() -> None:
    found = [
        (imp.module, imp.target, imp.where())
        for imp in all_imports()
        if _within(imp.module, CORE) and _within(imp.target, NET)
    ]
    _check("core", found)


def test_nothing_below_the_wire_layer_imports_it() -> None:
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
    found = [
        (imp.module, imp.target, f"{imp.where()}, but the wire layer uses {imp.module}")
        for imp in all_imports()
        if imp.module in below and _within(imp.target, NET)
    ]
    _check("below-net", found)


def test_handlers_use_only_the_handler_api() -> None:
    found = [
        (imp.module, imp.target, f"{imp.where()} (allowed: {', '.join(HANDLER_API)})")
        for imp in all_imports()
        if _within(imp.module, ["handlers"])
        and not _within(imp.target, ["handlers"])
        and not (imp.target in HANDLER_API or _within(imp.target, HANDLER_API[1:]))
    ]
    _check("handlers", found)


def test_streamserver_never_imports_handlers() -> None:
    found = [
        (imp.module, imp.target, f"{imp.where()} (load handlers by name)")
        for imp in all_imports()
        if _within(imp.module, ["streamserver"]) and _within(imp.target, ["handlers"])
    ]
    _check("no-handlers", found)


def test_tools_stay_off_the_wire_layer_and_the_cli() -> None:
    found = [
        (imp.module, imp.target, imp.where())
        for imp in all_imports()
        if _within(imp.module, TOOLS) and _within(imp.target, TOOLS_MUST_NOT)
    ]
    _check("tools", found)


def test_load_tester_does_not_import_the_emulator() -> None:
    found = [
        (imp.module, imp.target, imp.where())
        for imp in all_imports()
        if _within(imp.module, ["streamserver.loadtest"])
        and _within(imp.target, ["streamserver.emulator"])
    ]
    _check("loadtest-emulator", found)


def test_source_files_are_small() -> None:
    found = []
    for path in sources().values():
        rel = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and rel not in LONG_FILES:
            found.append((rel, str(lines), f"{rel}: {lines} lines (at most {MAX_LINES})"))
    _check("size", found)


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
    assert ("streamserver.runtime", "run_async") in arrows
    assert any(t == "streamserver.handler" for t, _ in arrows)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _private_module_part("streamserver.rest._ops") == "streamserver.rest._ops"
    assert _private_module_part("streamserver.rest.calls") is None
