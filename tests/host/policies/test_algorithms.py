"""The one algorithm registry: its entries are what SB3 says they are, and it names what the manifest names."""

from __future__ import annotations

import re

import pytest
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from device_agent.contract.manifest import ArtifactManifest
from device_agent.contract.vocabulary import ALGORITHMS
from host.policies.algorithms import REGISTRY, UnknownAlgorithmError, algorithm
from host.training.run import STUDY_ALGOS
from tests.host.test_vocabulary import refused_on_import


@pytest.mark.parametrize("name", ALGORITHMS)
def test_each_entry_loads_its_class_and_knows_how_it_learns(name: str) -> None:
    entry = algorithm(name)
    cls = entry.load_class()
    assert cls.__name__.lower() == name and cls.__module__.startswith(entry.library)
    assert entry.on_policy == issubclass(cls, OnPolicyAlgorithm)


def test_families_share_a_policy_class() -> None:
    # checkpoints of one family load as one another: their policy classes are the same
    by_family: dict[str, set[type]] = {}
    for entry in REGISTRY.values():
        by_family.setdefault(entry.family, set()).add(entry.load_class().policy_aliases["MlpPolicy"])
    assert all(len(classes) == 1 for classes in by_family.values()), by_family
    assert len({frozenset(c) for c in by_family.values()}) == len(by_family)


def test_the_registry_names_what_an_artifact_manifest_names() -> None:
    # The agent's manifest describes its algo field in words; the registry must not drift from it.
    description = ArtifactManifest.model_fields["algo"].description or ""
    named = set(re.findall(r"\b[a-z0-9]+\b", description.split(":", 1)[1]))
    assert named == set(ALGORITHMS)


def test_the_study_grid_uses_registered_algorithms() -> None:
    assert set(STUDY_ALGOS) <= set(ALGORITHMS)


def test_an_unknown_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(UnknownAlgorithmError, match=r"unknown algorithm 'dqn'; choose one of ppo, a2c, sac"):
        algorithm("dqn")


def test_the_registry_is_the_contracts_and_refuses_to_drift() -> None:
    assert tuple(REGISTRY) == ALGORITHMS  # its names, in its order
    message = refused_on_import("host.policies.algorithms", ALGORITHMS=(*ALGORITHMS[1:], "dqn"))
    assert "host.policies.algorithms.REGISTRY" in message
    assert "missing ['dqn'], not in the contract ['ppo']" in message
