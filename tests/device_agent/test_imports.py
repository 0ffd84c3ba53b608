"""The agent's import rules, read from its source: no circles (function-local imports count), packages only
import downwards, function-local imports only for heavy or optional dependencies and each says why, and the
host reaches the agent only through its contract."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT
from tests.import_rules import (
    cycles,
    import_graph,
    imports,
    modules_under,
    silent_local_imports,
    upward_imports,
)

AGENT = ROOT / "device_agent"
LAYERS = ("contract", "limits", "energy", "store", "measure", "jobs", "service", "cli", "__main__")
"""Packages (and top-level modules) of the agent, lowest first: each may import only from itself and below."""


def agent_modules() -> dict[str, Path]:
    return modules_under(AGENT, skip=("proto",))


def graph() -> dict[str, set[str]]:
    return import_graph(agent_modules())


def test_the_agent_has_no_import_circles() -> None:
    edges = graph()
    assert len(edges) > 40  # the walk really found the agent's modules
    assert cycles(edges) == []
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]  # the check itself can fail


def test_packages_import_only_downwards() -> None:
    assert upward_imports(graph(), LAYERS) == []
    planted = {"device_agent.contract.x": {"device_agent.jobs.y"}, "device_agent.jobs.y": set()}
    assert upward_imports(planted, LAYERS) == ["device_agent.contract.x -> device_agent.jobs.y"]  # can fail


def test_function_local_imports_are_few_and_say_why() -> None:
    silent = [
        f"{name}:{line}"
        for name, path in agent_modules().items()
        for line in silent_local_imports(path.read_text())
    ]
    assert silent == []
    assert silent_local_imports("def f():\n    import torch\n") == [2]  # the check itself can fail


def test_the_host_imports_only_the_agents_contract() -> None:
    private = []
    for path in (ROOT / "host").rglob("*.py"):
        for target, node, _ in imports(path):
            if target.startswith("device_agent") and not target.startswith("device_agent.contract"):
                private.append(f"{path.relative_to(ROOT)}:{node.lineno} {target}")
    assert private == []
