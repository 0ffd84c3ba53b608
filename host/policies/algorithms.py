"""The one registry of the reinforcement-learning algorithms drlc trains and imports.

Every other place that needs an algorithm's name, its SB3 class, whether it learns on-policy or which
checkpoints it can load reads it from here: training (:mod:`host.training`), hyperparameters, the SB3
loader and the importer. The names are the lower-case SB3 names an artifact's manifest records in its
``algo`` field (``device_agent.manifest.ArtifactManifest``); a test checks the two agree.

Importing this module imports neither torch nor SB3: :meth:`Algorithm.load_class` does, on use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from host.errors import DrlcError

#: Checkpoints of algorithms of one family share a policy class and load as one another; across
#: families they do not. It also says how the actor is read: a Gaussian actor-critic MLP, a squashed
#: Gaussian actor (SAC, TQC), or a deterministic actor (TD3, DDPG).
Family = Literal["actor_critic", "sac", "tqc", "td3"]


class UnknownAlgorithmError(DrlcError):
    """An algorithm name drlc does not train or import."""


@dataclass(frozen=True)
class Algorithm:
    name: str
    """Lower-case SB3 name, as recorded in an artifact's manifest (``ppo``)."""
    library: Literal["stable_baselines3", "sb3_contrib"]
    """The package whose class trains and loads it."""
    class_name: str
    """The class in ``library`` (``PPO``)."""
    on_policy: bool
    """Learns from its own fresh rollouts (no replay buffer, no action noise, no learning_starts)."""
    family: Family

    def load_class(self) -> type:
        """The SB3 / sb3-contrib class (imports the library: torch comes with it)."""
        return getattr(importlib.import_module(self.library), self.class_name)  # type: ignore[no-any-return]


ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType(
    {
        a.name: a
        for a in (
            Algorithm("a2c", "stable_baselines3", "A2C", on_policy=True, family="actor_critic"),
            Algorithm("ddpg", "stable_baselines3", "DDPG", on_policy=False, family="td3"),
            Algorithm("ppo", "stable_baselines3", "PPO", on_policy=True, family="actor_critic"),
            Algorithm("sac", "stable_baselines3", "SAC", on_policy=False, family="sac"),
            Algorithm("td3", "stable_baselines3", "TD3", on_policy=False, family="td3"),
            Algorithm("tqc", "sb3_contrib", "TQC", on_policy=False, family="tqc"),
            Algorithm("trpo", "sb3_contrib", "TRPO", on_policy=True, family="actor_critic"),
        )
    }
)
"""Every algorithm drlc trains and imports, by name (alphabetical)."""

NAMES: tuple[str, ...] = tuple(ALGORITHMS)


def algorithm(name: str) -> Algorithm:
    """The registry entry of ``name`` (lower case).

    :raises UnknownAlgorithmError: drlc does not know it; the message lists the names it knows
    """
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise UnknownAlgorithmError(f"unknown algorithm {name!r}; choose one of {', '.join(NAMES)}") from None
