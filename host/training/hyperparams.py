"""Training hyperparameters: the RL Zoo's tuned values for an (algorithm, env) pair, resolved for SB3.

Where the values come from, in order:

1. the ``rl_zoo3`` package's ``hyperparams/<algo>.yml`` entry for the exact env id;
2. its entry for the same env at the nearest other version (``Hopper-v5`` -> ``Hopper-v4``; on a tie
   the newer one), since the zoo was tuned on older MuJoCo versions;
3. the file's ``default`` entry, which the RL Zoo itself falls back to (SB3's defaults, plus Gaussian
   action noise of std 0.1 for TD3 and DDPG);
4. SB3's defaults, when there is no zoo file for the algorithm (or ``use_zoo=False``).

Command-line overrides (``--hp key=value``) go over the chosen entry. The zoo's own syntax is
understood as the RL Zoo understands it: ``normalize`` (bool, or a dict of VecNormalize arguments),
``n_envs``, ``n_timesteps``, ``policy_kwargs`` as a string (``"dict(net_arch=[400, 300],
activation_fn=nn.ReLU)"``), ``noise_type`` / ``noise_std`` for action noise, linear schedules
(``"lin_7.3e-4"``) for learning_rate, clip_range and clip_range_vf, and ``train_freq`` as a list.
Strings are read by a small expression evaluator (literals, ``dict(...)``, ``nn.<Module>``), never
by ``eval``. What drlc cannot honour (env wrappers, frame stacking, HER buffers, callbacks, image
policies) is refused with the reason, before any training starts.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib.util
import inspect
import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from gymnasium.envs.registration import parse_env_id

from host.errors import DrlcError
from host.policies.algorithms import UnknownAlgorithmError, algorithm

#: Keys of a zoo entry that are not algorithm constructor arguments but that drlc understands.
EXTRA_KEYS = ("n_timesteps", "n_envs", "normalize", "policy", "noise_type", "noise_std")

#: Keys the RL Zoo knows that drlc refuses, with why. They change the env or the policy's input in ways
#: the exported graph (raw observations in, actions out) cannot carry, or need machinery drlc lacks.
REFUSED_KEYS = {
    "env_wrapper": "env wrappers change the observations the policy sees; the exported graph takes the env's raw observations",
    "vec_env_wrapper": "VecEnv wrappers change the observations the policy sees; the exported graph takes the env's raw observations",
    "frame_stack": "frame stacking changes the policy's input; the exported graph takes one raw observation",
    "callback": "RL Zoo callbacks are not run by drlc",
    "replay_buffer_class": "custom replay buffers (HER) are for goal-conditioned envs, which drlc does not export",
    "replay_buffer_kwargs": "custom replay buffers (HER) are for goal-conditioned envs, which drlc does not export",
    "env_kwargs": "env keyword arguments would make the device's env differ from the training env",
    "monitor_kwargs": "drlc wraps the env in its own Monitor",
}

#: Hyperparameters that take a schedule: a number, or the zoo's ``"lin_<initial value>"``.
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")

#: Constructor arguments drlc sets itself; a zoo entry or override cannot.
RESERVED_ARGS = ("self", "policy", "env", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model")


class HyperparamError(DrlcError):
    """Hyperparameters that cannot be read, or that drlc cannot train with."""


# --------------------------------------------------------------------------------------------
# Reading the zoo
# --------------------------------------------------------------------------------------------


def zoo_dir() -> Path | None:
    """The ``hyperparams/`` folder of the installed ``rl_zoo3`` package, or None when it is absent.

    Found without importing ``rl_zoo3``: its ``__init__`` takes seconds and patches gymnasium.
    """
    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "hyperparams"
    return folder if folder.is_dir() else None


def zoo_version() -> str | None:
    try:
        return metadata.version("rl_zoo3")
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def load_zoo_file(algo: str) -> dict[str, dict[str, Any]] | None:
    """The parsed ``<algo>.yml`` of the installed RL Zoo (env id -> entry), None when there is none.
    Cached: treat it as read-only (:func:`lookup` hands out copies)."""
    folder = zoo_dir()
    if folder is None or not (folder / f"{algo}.yml").is_file():
        return None
    with open(folder / f"{algo}.yml") as fh:
        return yaml.safe_load(fh)


def split_env_id(env_id: str) -> tuple[str, int | None]:
    """``"Hopper-v5"`` -> ``("Hopper", 5)``; namespaced ids keep their namespace in the name."""
    namespace, name, version = parse_env_id(env_id)
    return (f"{namespace}/{name}" if namespace else name), version


def nearest_version(env_id: str, candidates: list[str]) -> str | None:
    """The candidate with the same env name and the closest version to ``env_id``'s (newer wins a tie)."""
    name, version = split_env_id(env_id)
    same_name: list[tuple[int, str]] = []
    for key in candidates:
        try:
            key_name, key_version = split_env_id(key)
        except Exception:  # zoo keys like "atari" are not env ids
            continue
        if key_name == name and key_version is not None:
            same_name.append((key_version, key))
    if not same_name:
        return None
    target = version if version is not None else max(v for v, _ in same_name)
    return min(same_name, key=lambda vk: (abs(vk[0] - target), -vk[0]))[1]


@dataclass(frozen=True)
class HyperparamSource:
    """Where a run's hyperparameters came from.

    :param kind: ``zoo`` (exact entry), ``zoo-nearest`` (same env, other version), ``zoo-default``
        (the zoo file's ``default`` entry) or ``sb3-defaults``
    :param zoo_key: the zoo entry used (``"Hopper-v4"``, ``"default"``), None for SB3 defaults
    :param zoo_file: the YAML file's name (``"td3.yml"``), None for SB3 defaults
    :param zoo_version: the installed ``rl_zoo3`` version, None for SB3 defaults
    """

    kind: str
    zoo_key: str | None = None
    zoo_file: str | None = None
    zoo_version: str | None = None

    def describe(self, env_id: str) -> str:
        where = f"rl_zoo3 {self.zoo_version} {self.zoo_file} [{self.zoo_key}]"
        if self.kind == "zoo":
            return where
        if self.kind == "zoo-nearest":
            return f"{where}, the nearest version of {env_id} the zoo has"
        if self.kind == "zoo-default":
            return f"{where}: the zoo has no entry for {env_id}, so its default (SB3's defaults + its extras)"
        return "SB3 defaults"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


def lookup(algo: str, env_id: str, use_zoo: bool = True) -> tuple[HyperparamSource, dict[str, Any]]:
    """The zoo entry for ``(algo, env_id)`` by the order in the module docstring, as written in the YAML."""
    try:
        algorithm(algo)
    except UnknownAlgorithmError as exc:
        raise HyperparamError(str(exc)) from None
    table = load_zoo_file(algo) if use_zoo else None
    if table is None:
        return HyperparamSource("sb3-defaults"), {}
    meta = {"zoo_file": f"{algo}.yml", "zoo_version": zoo_version()}
    if env_id in table:
        return HyperparamSource("zoo", env_id, **meta), copy.deepcopy(table[env_id])
    nearest = nearest_version(env_id, list(table))
    if nearest is not None:
        return HyperparamSource("zoo-nearest", nearest, **meta), copy.deepcopy(table[nearest])
    if "default" in table:
        return HyperparamSource("zoo-default", "default", **meta), copy.deepcopy(table["default"])
    return HyperparamSource("sb3-defaults"), {}


# --------------------------------------------------------------------------------------------
# The zoo's string syntax, read safely
# --------------------------------------------------------------------------------------------


def _torch_attr(chain: list[str]) -> Any:
    """``nn.ReLU``, ``th.nn.ReLU``, ``torch.optim.Adam`` -> the torch object; anything else is refused."""
    import torch  # heavy: loaded only when a zoo entry names a torch class

    if chain and chain[0] in ("th", "torch"):
        chain = chain[1:]
    if len(chain) != 2 or chain[0] not in ("nn", "optim"):
        raise ValueError(f"only nn.<Module> and optim.<Optimizer> names are allowed, not {'.'.join(chain)}")
    value = getattr(getattr(torch, chain[0]), chain[1], None)
    if not isinstance(value, type):
        raise ValueError(f"torch.{chain[0]} has no class {chain[1]!r}")
    return value


def _eval_node(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_eval_node(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ValueError("** in a dict is not allowed")
        return {_eval_node(k): _eval_node(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval_node(node.operand)
        if not isinstance(value, (int, float)):
            raise ValueError("a sign applies to numbers only")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        if node.args or any(kw.arg is None for kw in node.keywords):
            raise ValueError("dict(...) takes keyword arguments only")
        return {kw.arg: _eval_node(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Name) and node.id in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[node.id]
    if isinstance(node, ast.Attribute):
        chain: list[str] = []
        current: ast.AST = node
        while isinstance(current, ast.Attribute):
            chain.insert(0, current.attr)
            current = current.value
        if isinstance(current, ast.Name):
            return _torch_attr([current.id, *chain])
    raise ValueError(f"{ast.unparse(node)!r} is not allowed (literals, dict(...) and nn.<Module> only)")


def eval_expression(text: str, key: str) -> Any:
    """Read one of the zoo's Python-expression strings (``"dict(net_arch=[64, 64])"``) without ``eval``."""
    try:
        return _eval_node(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError) as exc:
        raise HyperparamError(f"cannot read {key}={text!r}: {exc}") from exc


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``--hp key=value`` pairs. Values are JSON when they parse (numbers, lists, true/false), Python's
    True / False / None, else kept as strings (``lin_3e-4``, ``"dict(net_arch=[64, 64])"``, ``auto``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise HyperparamError(f"--hp takes key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = {"True": True, "False": False, "None": None}.get(value.strip(), value)
    return out


# --------------------------------------------------------------------------------------------
# Resolving an entry into what SB3 takes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionNoiseSpec:
    """Exploration noise for TD3 / DDPG, in SB3's [-1, 1] action units."""

    kind: str
    """``normal`` or ``ornstein-uhlenbeck``."""
    std: float
    """Standard deviation, the same on every action dimension."""

    def build(self, n_actions: int) -> Any:
        # SB3 (torch) loads on use: resolving hyperparameters for a dry run needs neither
        from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

        cls = NormalActionNoise if self.kind == "normal" else OrnsteinUhlenbeckActionNoise
        return cls(mean=np.zeros(n_actions), sigma=self.std * np.ones(n_actions))


@dataclass(frozen=True)
class Hyperparams:
    """The resolved hyperparameters of one training run.

    :param algo: the algorithm
    :param env_id: the env they were resolved for
    :param source: where the entry came from
    :param entry: the entry exactly as the zoo writes it, after overrides (JSON-safe: the record)
    :param overrides: the ``--hp`` overrides that were applied over the entry
    :param algo_kwargs: keyword arguments for the SB3 algorithm, ready to pass (schedules and
        policy_kwargs evaluated); action noise is in ``action_noise``
    :param n_envs: parallel envs (the zoo's ``n_envs``, default 1)
    :param n_timesteps: the zoo's training budget, None when the entry has none
    :param normalize: wrap the env in VecNormalize
    :param normalize_kwargs: VecNormalize arguments (``norm_obs``, ``norm_reward``, ``gamma``, ...)
    :param action_noise: exploration noise for off-policy algorithms, None for none
    """

    algo: str
    env_id: str
    source: HyperparamSource
    entry: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    n_envs: int = 1
    n_timesteps: int | None = None
    normalize: bool = False
    normalize_kwargs: dict[str, Any] = field(default_factory=dict)
    action_noise: ActionNoiseSpec | None = None

    def record(self) -> dict[str, Any]:
        """JSON-safe record for the manifest and the results database."""
        return {
            "source": self.source.to_json(),
            "values": _json_safe(self.entry),
            "overrides": _json_safe(self.overrides),
        }


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def constructor_args(algo: str) -> list[str]:
    """The keyword arguments the SB3 class of ``algo`` takes that a hyperparameter entry may set."""
    params = inspect.signature(algorithm(algo).load_class().__init__).parameters
    return [name for name in params if name not in RESERVED_ARGS]


def _schedule(key: str, value: Any) -> Any:
    from stable_baselines3.common.utils import LinearSchedule  # SB3 (torch) loads on use, not on import

    if isinstance(value, str):
        kind, _, initial = value.partition("_")
        try:
            start = float(initial)
        except ValueError:
            start = None
        if kind != "lin" or start is None:
            raise HyperparamError(
                f"{key}={value!r}: schedules are a number or 'lin_<initial value>' (linear to 0), e.g. lin_7.3e-4"
            )
        # SB3's own class (not a closure, not rl_zoo3's) so the checkpoint loads without the zoo installed.
        return LinearSchedule(start, 0.0, 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HyperparamError(f"{key}={value!r}: expected a number or 'lin_<initial value>'")
    return float(value)


def _normalize(value: Any, gamma: Any) -> tuple[bool, dict[str, Any]]:
    """The zoo's ``normalize``: a bool, or VecNormalize arguments as a dict or a dict-expression string."""
    if isinstance(value, str):
        value = eval_expression(value, "normalize")
    if isinstance(value, bool):
        on, kwargs = value, {}
    elif isinstance(value, dict):
        allowed = {"norm_obs", "norm_reward", "clip_obs", "clip_reward", "epsilon", "gamma"}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise HyperparamError(
                f"normalize={value!r}: unknown VecNormalize argument(s) {unknown}; allowed: {sorted(allowed)}"
            )
        on, kwargs = True, dict(value)
    else:
        raise HyperparamError(f"normalize={value!r}: expected true/false or a dict of VecNormalize arguments")
    if on and isinstance(gamma, (int, float)):
        # As the RL Zoo does: the reward normalisation discounts with the algorithm's gamma.
        kwargs.setdefault("gamma", float(gamma))
    return on, kwargs


def resolve(
    algo: str,
    env_id: str,
    overrides: dict[str, Any] | None = None,
    *,
    use_zoo: bool = True,
    normalize: bool | None = None,
) -> Hyperparams:
    """Hyperparameters for training ``algo`` on ``env_id``: the zoo entry, overrides on top, checked and
    turned into SB3 arguments.

    :param overrides: ``--hp`` values, in the zoo's syntax; they win over the entry
    :param use_zoo: False: start from SB3's defaults, ignoring the zoo
    :param normalize: force VecNormalize on (True) or off (False); None: as the entry says
    :raises HyperparamError: an unknown or unsupported key, or a value that cannot be read
    """
    source, entry = lookup(algo, env_id, use_zoo)
    overrides = dict(overrides or {})
    entry.update(overrides)
    if normalize is not None:
        entry["normalize"] = normalize
    return _resolve_entry(algo, env_id, source, entry, overrides)


def _resolve_entry(  # noqa: C901 -- one branch per zoo key, in the zoo's order
    algo: str, env_id: str, source: HyperparamSource, entry: dict[str, Any], overrides: dict[str, Any]
) -> Hyperparams:
    where = f"{algo} on {env_id} ({source.describe(env_id)})"
    for key in entry:
        if key in REFUSED_KEYS:
            raise HyperparamError(f"{where}: '{key}' is not supported: {REFUSED_KEYS[key]}")
    allowed = constructor_args(algo)
    unknown = sorted(k for k in entry if k not in allowed and k not in EXTRA_KEYS)
    if unknown:
        raise HyperparamError(
            f"{where}: unknown hyperparameter(s) {unknown} for {algo}; it takes {', '.join(sorted(allowed))}, "
            f"plus the RL Zoo's {', '.join(EXTRA_KEYS)}"
        )
    policy = entry.get("policy", "MlpPolicy")
    if policy != "MlpPolicy":
        raise HyperparamError(f"{where}: policy {policy!r} is not supported; drlc exports MlpPolicy actors")

    kwargs: dict[str, Any] = {k: v for k, v in entry.items() if k not in EXTRA_KEYS}
    for key in SCHEDULE_KEYS:
        if key in kwargs:
            kwargs[key] = _schedule(key, kwargs[key])
    if isinstance(kwargs.get("policy_kwargs"), str):
        kwargs["policy_kwargs"] = eval_expression(kwargs["policy_kwargs"], "policy_kwargs")
    if "policy_kwargs" in kwargs and not isinstance(kwargs["policy_kwargs"], dict):
        raise HyperparamError(f"{where}: policy_kwargs must be a dict, got {kwargs['policy_kwargs']!r}")
    if isinstance(kwargs.get("train_freq"), list):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])

    noise = None
    if entry.get("noise_type") is not None:
        kind = str(entry["noise_type"]).strip()
        if kind not in ("normal", "ornstein-uhlenbeck"):
            raise HyperparamError(f"{where}: noise_type {kind!r}; use normal or ornstein-uhlenbeck")
        if "action_noise" not in allowed:
            raise HyperparamError(
                f"{where}: noise_type applies to off-policy algorithms (td3, ddpg, sac, tqc)"
            )
        std = entry.get("noise_std", 0.1)
        if isinstance(std, bool) or not isinstance(std, (int, float)) or std < 0:
            raise HyperparamError(f"{where}: noise_std={std!r}; expected a number >= 0")
        noise = ActionNoiseSpec(kind, float(std))
    if "action_noise" in kwargs:
        raise HyperparamError(
            f"{where}: set exploration noise with noise_type and noise_std, not action_noise"
        )

    n_envs = entry.get("n_envs", 1)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise HyperparamError(f"{where}: n_envs={n_envs!r}; expected an integer >= 1")
    n_timesteps = entry.get("n_timesteps")
    if n_timesteps is not None:
        if isinstance(n_timesteps, bool) or not isinstance(n_timesteps, (int, float)) or n_timesteps < 1:
            raise HyperparamError(f"{where}: n_timesteps={n_timesteps!r}; expected a number >= 1")
        n_timesteps = int(n_timesteps)
    normalize, normalize_kwargs = _normalize(entry.get("normalize", False), entry.get("gamma"))

    return Hyperparams(
        algo=algo,
        env_id=env_id,
        source=source,
        entry=entry,
        overrides=overrides,
        algo_kwargs=kwargs,
        n_envs=n_envs,
        n_timesteps=n_timesteps,
        normalize=normalize,
        normalize_kwargs=normalize_kwargs,
        action_noise=noise,
    )
