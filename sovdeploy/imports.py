"""sovdeploy's own import graph, read from its source without importing anything.

Every ``import`` counts, at module level or inside a function, and under
``TYPE_CHECKING`` too: a dependency hidden in a function is still a dependency.
:mod:`sovdeploy.bundle` packs the closure of the host-side programs from it, and a
test holds the graph to the layers drawn in ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import sovdeploy

PACKAGE_DIR = Path(sovdeploy.__file__).parent


def modules(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Each module's dotted name and its file (a package is its ``__init__.py``)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(name: str, path: Path, known: Iterable[str]) -> set[str]:
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            # `from pkg import mod` depends on the module; `from mod import name` on mod.
            found.update(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            )
    return {m for m in found if m in known and m != name}


def graph(root: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Each module of the package and the modules of the package it imports."""
    mods = modules(root)
    return {name: _imported(name, path, mods) for name, path in mods.items()}


def closure(start: Iterable[str], edges: dict[str, set[str]]) -> set[str]:
    """``start`` and everything it imports, directly or not, with the packages above each."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(edges[name])
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    return seen


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)
