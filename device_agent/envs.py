"""Which envs a client may ask the agent to build: Gymnasium's MuJoCo envs unless configured.

An env id names code the agent will import and run, so it is checked against an
allow-list before any job is queued.
"""

from __future__ import annotations

from device_agent.errors import EnvNotAllowedError

MUJOCO_ENTRY_POINT = "gymnasium.envs.mujoco"


def is_mujoco_env(env_id: str) -> bool:
    import gymnasium

    spec = gymnasium.registry.get(env_id)
    return (
        spec is not None
        and isinstance(spec.entry_point, str)
        and spec.entry_point.startswith(MUJOCO_ENTRY_POINT)
    )


def check_env_allowed(env_id: str, allowed: tuple[str, ...]) -> None:
    """:param allowed: explicit env ids; empty means every Gymnasium MuJoCo env."""
    if allowed:
        if env_id not in allowed:
            raise EnvNotAllowedError(
                f"env {env_id!r} is not allowed on this agent; allowed: {', '.join(allowed)}"
            )
    elif not is_mujoco_env(env_id):
        raise EnvNotAllowedError(
            f"env {env_id!r} is not a Gymnasium MuJoCo env, the only kind this agent runs by default "
            "(start it with --allow-env ID to allow others)"
        )
