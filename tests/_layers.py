"""Import graphs of runstream's packages, for the layering tests: every import counts (module
level, inside functions, under ``TYPE_CHECKING``), read from the source with ``ast``."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path


def import_graph(package_dir: Path, package: str) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports (module names without the
    package, e.g. ``_engine``; the package itself is ``__init__``)."""
    modules = {p.stem: p for p in package_dir.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    if node.module:
                        deps.add(node.module.split(".")[0])
                    else:
                        deps.update(alias.name for alias in node.names)
                elif node.level == 0 and node.module is not None:
                    parts = node.module.split(".")
                    if parts[0] == package:
                        deps.add(parts[1] if len(parts) > 1 else "__init__")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == package:
                        deps.add(parts[1] if len(parts) > 1 else "__init__")
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (its strongly connected components of 2+ modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
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


def upward_imports(graph: dict[str, set[str]], layers: Iterable[Iterable[str]]
                   ) -> list[str]:
    """Imports that go up or sideways across ``layers`` (lowest first): ``a -> b`` where b's
    layer is above a's. Modules in no layer are reported too, so a new module must be placed."""
    rank: dict[str, int] = {}
    for i, layer in enumerate(layers):
        for module in layer:
            rank[module] = i
    problems = [f"{m} is in no layer" for m in sorted(graph) if m not in rank]
    for module, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if module in rank and dep in rank and rank[dep] > rank[module]:
                problems.append(f"{module} (layer {rank[module]}) imports {dep} "
                                f"(layer {rank[dep]})")
    return problems


def private_core_names(source_dirs: Iterable[Path]) -> list[str]:
    """Places in plugin code that import or touch a private name of ``runstream``
    (``runstream._x`` modules, or ``_name`` attributes imported from ``runstream``)."""
    found: list[str] = []
    for directory in source_dirs:
        for path in sorted(directory.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    parts = node.module.split(".")
                    if parts[0] == "runstream" and (
                            any(p.startswith("_") for p in parts[1:])
                            or any(a.name.startswith("_") for a in node.names)):
                        found.append(f"{path}:{node.lineno}: from {node.module} import ...")
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        parts = alias.name.split(".")
                        if parts[0] == "runstream" and any(p.startswith("_") for p in parts[1:]):
                            found.append(f"{path}:{node.lineno}: import {alias.name}")
    return found
