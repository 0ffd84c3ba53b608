"""The host's import rules, read from its source: no circles (function-local imports count), packages import
only downwards in the pipeline's order, function-local imports only for heavy or optional dependencies and each
says why, and no shipped code (host/, device_agent/, tools/) imports the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.import_rules import (
    cycles,
    import_graph,
    imports,
    layer_of,
    modules_under,
    silent_local_imports,
    source_imports,
    upward_imports,
)

HOST = ROOT / "host"
LAYERS = (
    "errors",
    "vocabulary",
    "store",
    "policies",
    "training",
    "compress",
    "decision",
    "measure",
    "report",
    "study",
    "cli",
)
"""The host's packages (and top-level modules), lowest first: each may import only from itself and below.

The pipeline's order: the error types everything raises; how registries key on the agent contract's names (the
contract itself is the agent's and sits below all of these); the workspace and results database; policies
(spec, ONNX, import, the algorithm registry); training makes policies; compress makes variants of them;
decision is the statistics of a verdict, which measure (deploy until decided) and report both apply; report
reads what measure stored; a study runs the whole pipeline; the CLI parses and prints over all of it. ``host``
itself (the version) is below everything."""


def host_modules() -> dict[str, Path]:
    return modules_under(HOST)


def graph() -> dict[str, set[str]]:
    return import_graph(host_modules())


def test_the_host_has_no_import_circles() -> None:
    edges = graph()
    assert len(edges) > 80  # the walk really found the host's modules
    assert cycles(edges) == []
    planted = {"host.a": {"host.b"}, "host.b": {"host.c"}, "host.c": {"host.a"}, "host.d": {"host.a"}}
    assert cycles(planted) == [["host.a", "host.b", "host.c"]]  # the check itself can fail


def test_every_package_has_a_place_in_the_order() -> None:
    for name in host_modules():
        layer_of(name, LAYERS)  # raises for a package the order does not name
    with pytest.raises(ValueError, match="'newpkg' is in no layer"):
        layer_of("host.newpkg.x", LAYERS)


def test_packages_import_only_downwards() -> None:
    assert upward_imports(graph(), LAYERS) == []
    planted = {"host.store.db": {"host.report.rows"}, "host.report.rows": {"host.store.db"}}
    # the check itself can fail
    assert upward_imports(planted, LAYERS) == ["host.store.db -> host.report.rows"]


def test_function_local_imports_are_few_and_say_why() -> None:
    silent = [
        f"{name}:{line}"
        for name, path in host_modules().items()
        for line in silent_local_imports(path.read_text())
    ]
    assert silent == []
    planted = (
        "def f():\n"
        "    # SB3 (torch): loaded on use\n"
        "    import stable_baselines3\n"
        "    from stable_baselines3 import PPO\n"
        "\n"
        "    import torch\n"
    )
    assert silent_local_imports(planted) == [6]  # a block shares its comment; a separate import needs its own


@pytest.mark.parametrize("folder", ["host", "device_agent", "tools"])
def test_shipped_code_never_imports_the_tests(folder: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} {target}"
        for path in (ROOT / folder).rglob("*.py")
        for target, node, _ in imports(path)
        if target == "tests" or target.startswith("tests.")
    ]
    assert found == []
    planted = "def f():\n    from tests.policies import tiny\n"
    assert [t for t, _, _ in source_imports(planted) if t.startswith("tests")] == [
        "tests.policies",
        "tests.policies.tiny",
    ]
