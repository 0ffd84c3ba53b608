"""The import-rule checks both sides' tests run (tests/host/test_imports.py, tests/device_agent/test_imports.py):
read a package's imports from its source with ``ast`` (function-local ones included), find import circles, find
function-local imports that do not say why. Each check is a plain function of data, so a test can also run it on
a tiny planted case and see it fail."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from tests.conftest import ROOT


def module_name(path: Path) -> str:
    """``host/study/file.py`` -> ``host.study.file``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_under(folder: Path, skip: Iterable[str] = ()) -> dict[str, Path]:
    """Every module below ``folder`` by dotted name, leaving out paths with a part named in ``skip``."""
    skipped = set(skip)
    return {
        module_name(p): p for p in folder.rglob("*.py") if not skipped & set(p.relative_to(folder).parts[:-1])
    }


def imports(path: Path) -> list[tuple[str, ast.stmt, bool]]:
    """(imported module, statement, inside a function) for every absolute import in ``path``.

    ``from a.b import c`` yields both ``a.b`` and ``a.b.c``: ``c`` may be a module."""
    return source_imports(path.read_text())


def source_imports(source: str) -> list[tuple[str, ast.stmt, bool]]:
    """:func:`imports` of a module's source text."""
    tree = ast.parse(source)
    local = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for sub in ast.walk(node)
    }
    out: list[tuple[str, ast.stmt, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node, id(node) in local) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.module, node, id(node) in local))
            out += [(f"{node.module}.{a.name}", node, id(node) in local) for a in node.names]
    return out


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ``mods`` it imports (at the top or inside a function)."""
    return {
        name: {target for target, _, _ in imports(path) if target in mods and target != name}
        for name, path in mods.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
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

    for v in edges:
        if v not in index:
            visit(v)
    return found


def silent_local_imports(source: str) -> list[int]:
    """Lines of function-local imports that do not say why they are local.

    One says why when a comment stands on its line or on the line above, or when it directly follows (no line
    between) a local import that says why: one comment may explain a block of imports of the same library."""
    lines = source.split("\n")
    statements = sorted(
        {(node.lineno, node.end_lineno or node.lineno) for _, node, local in source_imports(source) if local}
    )
    explained_end = -1
    silent = []
    for first, last in statements:
        here, above = lines[first - 1], lines[first - 2] if first > 1 else ""
        if "#" in here or above.strip().startswith("#") or explained_end == first - 1:
            explained_end = last
        else:
            silent.append(first)
    return silent


def layer_of(module: str, layers: tuple[str, ...]) -> int:
    """Where ``module`` stands in ``layers`` (its package's second name part); the root package itself is -1.

    :raises ValueError: a package the declared order does not name (a new package must be placed in it)"""
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    if parts[1] not in layers:
        raise ValueError(f"{module}: {parts[1]!r} is in no layer of the declared order {layers}")
    return layers.index(parts[1])


def upward_imports(edges: dict[str, set[str]], layers: tuple[str, ...]) -> list[str]:
    """``a -> b`` for every import of a module ``b`` from a higher layer than ``a``'s (the root package, which
    only re-exports, may import anything of its own)."""
    return sorted(
        f"{name} -> {target}"
        for name, targets in edges.items()
        for target in targets
        if "." in name and layer_of(target, layers) > layer_of(name, layers)
    )
