"""The agent's import rules, read from its source: no circles (function-local imports count), packages only
import downwards, function-local imports only for heavy or optional dependencies and each says why, and the
host reaches the agent only through its contract."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

AGENT = ROOT / "device_agent"
LAYERS = ("contract", "limits", "energy", "store", "measure", "jobs", "service", "cli", "__main__")
"""Packages (and top-level modules) of the agent, lowest first: each may import only from itself and below."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def agent_modules() -> dict[str, Path]:
    return {module_name(p): p for p in AGENT.rglob("*.py") if "proto" not in p.relative_to(AGENT).parts[:2]}


def imports(path: Path) -> list[tuple[str, ast.stmt, bool]]:
    """(imported module, statement, inside a function) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    local = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for sub in ast.walk(node)
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node, id(node) in local) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.module, node, id(node) in local))
            out += [(f"{node.module}.{a.name}", node, id(node) in local) for a in node.names]
    return out


def graph() -> dict[str, set[str]]:
    mods = agent_modules()
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


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else -1


def test_the_agent_has_no_import_circles() -> None:
    edges = graph()
    assert len(edges) > 40  # the walk really found the agent's modules
    assert cycles(edges) == []
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]  # the check itself can fail


def test_packages_import_only_downwards() -> None:
    upward = [
        f"{name} -> {target}"
        for name, targets in graph().items()
        for target in targets
        if name != "device_agent" and layer(target) > layer(name)
    ]
    assert upward == []


def test_function_local_imports_are_few_and_say_why() -> None:
    lines_of = {name: path.read_text().split("\n") for name, path in agent_modules().items()}
    silent = []
    for name, path in agent_modules().items():
        for target, node, local in imports(path):
            if not local:
                continue
            here, above = lines_of[name][node.lineno - 1], lines_of[name][node.lineno - 2]
            if "#" not in here and not above.strip().startswith("#"):
                silent.append(f"{name}:{node.lineno} {target}")
    assert silent == []


def test_the_host_imports_only_the_agents_contract() -> None:
    private = []
    for path in (ROOT / "host").rglob("*.py"):
        for target, node, _ in imports(path):
            if target.startswith("device_agent") and not target.startswith("device_agent.contract"):
                private.append(f"{path.relative_to(ROOT)}:{node.lineno} {target}")
    assert private == []
