"""The agent installs on boards without PyTorch: nothing under device_agent/ may import torch or host/."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import importlib, pkgutil, sys
import device_agent
names = [m.name for m in pkgutil.walk_packages(device_agent.__path__, 'device_agent.')]
for name in names:
    if name != 'device_agent.__main__':
        importlib.import_module(name)
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'host', 'stable_baselines3', 'sb3_contrib', 'torch_pruning'))
print(len(names), ','.join(bad))
"""


def test_device_agent_never_imports_torch_or_host() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    n_modules, forbidden = int(out[0]), out[1:]
    assert n_modules >= 10  # the walk really found the agent's modules
    assert forbidden == [], f"device_agent pulled in {forbidden}"


CONTRACT_PROBE = """
import importlib, pkgutil, sys
import device_agent.contract
names = [m.name for m in pkgutil.walk_packages(device_agent.contract.__path__, 'device_agent.contract.')]
for name in names:
    importlib.import_module(name)
agent = sorted(m for m in sys.modules if m.startswith('device_agent.') and not m.startswith('device_agent.contract'))
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'host', 'onnxruntime', 'mujoco'))
print(len(names), ','.join(agent + heavy))
"""


def test_the_contract_stands_alone() -> None:
    """What the host imports of the agent: the contract, without the agent's service, jobs or measuring code,
    and without torch, ONNX Runtime or MuJoCo."""
    out = subprocess.run(
        [sys.executable, "-c", CONTRACT_PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    n_modules, pulled = int(out[0]), out[1:]
    assert n_modules >= 8
    assert pulled == [], f"the contract pulled in {pulled}"
