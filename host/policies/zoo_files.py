"""Reading the RL Zoo's YAML files (args.yml, config.yml, env_kwargs.yml) safely.

The zoo writes them with ``!!python/object/apply:collections.OrderedDict``, which a plain
``yaml.safe_load`` refuses; this loader accepts that one tag and nothing else unsafe.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)


class _ZooYamlLoader(yaml.SafeLoader):
    """A safe YAML loader that also reads the zoo's ``!!python/object/apply:collections.OrderedDict``."""


def _construct_ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    pairs = loader.construct_sequence(node, deep=True)  # type: ignore[arg-type]
    items = pairs[0] if pairs and isinstance(pairs[0], list) else pairs
    return {k: v for k, v in items}


_ZooYamlLoader.add_constructor(
    "tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _construct_ordered_dict
)


def zoo_yaml(path: Path) -> Any:
    """The content of a zoo YAML file; None when it is absent or unreadable (logged)."""
    if not path.is_file():
        return None
    try:
        return yaml.load(path.read_text(), Loader=_ZooYamlLoader)  # a SafeLoader subclass
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        logger.warning("ignoring unreadable %s: %s", path.name, exc)
        return None
