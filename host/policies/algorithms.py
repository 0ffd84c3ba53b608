"""The one registry of the reinforcement-learning algorithms drlc trains and imports.

Every other place that needs an algorithm's SB3 class, whether it learns on-policy or which checkpoints it
can load reads it from here: training (:mod:`host.training`), hyperparameters, the SB3 loader and the
importer. The names themselves are the agent contract's (``device_agent.contract.vocabulary.ALGORITHMS``,
the lower-case SB3 names a manifest records in its ``algo`` field): the registry keys on them and refuses,
on import, to lack one or add one.

Importing this module imports neither torch nor SB3: :meth:`Algorithm.load_class` does, on use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from device_agent.contract import vocabulary
from host.errors import DrlcError
from host.vocabulary import keyed_on

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


REGISTRY: Mapping[str, Algorithm] = keyed_on(
    vocabulary.ALGORITHMS,
    {
        a.name: a
        for a in (
            Algorithm("ppo", "stable_baselines3", "PPO", on_policy=True, family="actor_critic"),
            Algorithm("a2c", "stable_baselines3", "A2C", on_policy=True, family="actor_critic"),
            Algorithm("sac", "stable_baselines3", "SAC", on_policy=False, family="sac"),
            Algorithm("td3", "stable_baselines3", "TD3", on_policy=False, family="td3"),
            Algorithm("ddpg", "stable_baselines3", "DDPG", on_policy=False, family="td3"),
            Algorithm("trpo", "sb3_contrib", "TRPO", on_policy=True, family="actor_critic"),
            Algorithm("tqc", "sb3_contrib", "TQC", on_policy=False, family="tqc"),
        )
    },
    "host.policies.algorithms.REGISTRY",
)
"""What the host needs of every algorithm the contract names (``vocabulary.ALGORITHMS``), in its order."""


def algorithm(name: str) -> Algorithm:
    """The registry entry of ``name`` (lower case).

    :raises UnknownAlgorithmError: drlc does not know it; the message lists the names it knows
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownAlgorithmError(
            f"unknown algorithm {name!r}; choose one of {', '.join(vocabulary.ALGORITHMS)}"
        ) from None
