"""The layout is the architecture (issue 14): no import cycle anywhere in src/ (imports under
TYPE_CHECKING and inside functions count), no module over 400 lines, and the engine, the
reconciler and the console grammar reach no I/O module, however indirectly."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
MAX_LINES = 400
# What a pure module may import from outside the project, directly or through what it imports.
PURE_STDLIB = {
    "__future__", "collections", "dataclasses", "difflib", "enum", "functools", "heapq",
    "itertools", "math", "re", "typing",
}  # fmt: skip
PURE = ("ipvswm.engine.engine", "ipvswm.kernel.reconcile", "ipvswm.console.grammar")


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def imports(name: str) -> tuple[set[str], set[str]]:
    """(project modules, outside top-level packages) that `name` imports anywhere in its text,
    plus the packages a project module runs on import (its parents' __init__)."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    inside: set[str] = set()
    outside: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (inside if alias.name in MODULES else outside).add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                stem = package[: len(package) - node.level + 1]
                base = ".".join([*stem, base] if base else stem)
            if base in MODULES:
                inside.add(base)
            elif base.split(".")[0] != "ipvswm":
                outside.add(base.split(".")[0])
            inside.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
    inside = {m for m in inside if m in MODULES}
    inside.discard(name)
    return inside, outside


GRAPH = {name: imports(name)[0] for name in MODULES}


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    return found


def test_no_import_cycle_in_src() -> None:
    assert cycles() == []


def test_no_module_over_400_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_engine_reconciler_and_grammar_reach_no_io_module() -> None:
    for start in PURE:
        seen: set[str] = set()
        todo = [start]
        outside: set[str] = set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            parts = name.split(".")
            todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # packages run first
            inside, more = imports(name)
            todo.extend(inside)
            outside |= more
        assert outside <= PURE_STDLIB, (start, sorted(outside - PURE_STDLIB))


def test_the_checker_sees_a_cycle_and_an_io_import() -> None:
    """The graph is read right: the daemon imports the engine, the engine not the daemon."""
    assert "ipvswm.engine.engine" in GRAPH["ipvswm.daemon.runtime"] | GRAPH["ipvswm.daemon.daemon"]
    assert not any(m.startswith("ipvswm.daemon") for m in GRAPH["ipvswm.engine.engine"])
    assert "asyncio" in imports("ipvswm.daemon.owner")[1]


def test_the_architecture_doc_names_modules_that_exist() -> None:
    """docs/architecture.md's walks and table name real modules (the doc follows the code)."""
    text = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z_]+/[a-z_]+\.py)", text))
    assert len(named) > 20
    root = SRC.parent
    missing = sorted(
        path
        for path in named
        if not (SRC / "ipvswm" / path).is_file() and not (root / path).is_file()
    )
    assert missing == []
