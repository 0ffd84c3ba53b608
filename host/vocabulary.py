"""How the host's registries key on the agent contract's vocabulary (:mod:`device_agent.contract.vocabulary`).

The contract declares every algorithm and compression method name once; the host's tables
(:mod:`host.policies.algorithms`, :mod:`host.compress.methods`) add only what the host needs per name (a class
to train, a module that compresses). :func:`keyed_on` builds such a table in the contract's order and refuses,
when the table's module is imported, one that lacks a name or adds one, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TypeVar

Entry = TypeVar("Entry")


def keyed_on(names: tuple[str, ...], table: Mapping[str, Entry], what: str) -> Mapping[str, Entry]:
    """``table`` in the order of ``names``, read-only.

    :param names: the contract's names (e.g. ``vocabulary.ALGORITHMS``)
    :param table: the host's entry for each name
    :param what: what the table is, for the message (``"host.policies.algorithms.REGISTRY"``)
    :raises ImportError: the table lacks a name of the contract or has one the contract does not declare
    """
    missing = [n for n in names if n not in table]
    extra = [n for n in table if n not in names]
    if missing or extra:
        raise ImportError(
            f"{what} must have an entry for each name of device_agent.contract.vocabulary and no other: "
            f"missing {missing or 'none'}, not in the contract {extra or 'none'}"
        )
    return MappingProxyType({n: table[n] for n in names})
