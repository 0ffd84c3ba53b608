"""`drlc-host deploy`: profile variants on a target device."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from rich.markup import escape

from device_agent.contract.settings import OP_PROFILE_CALLS_ON
from device_agent.contract.validity import ValidityRule
from host.measure.agent_client import AgentClient, AgentUnreachableError
from host.store.artifacts import select_models
from host.cli.common import (
    DEFAULT_TARGET,
    HomeOption,
    ModelsOption,
    ProfilesDirOption,
    TargetOption,
    console,
    home_flag,
    open_workspace,
    user_errors,
)
from host.cli.deploy_progress import DeployProgress
from host.measure.deploy import DeployConfig, DeployOutcome, deploy, episodes_for
from host.errors import DeviceError, StoreError
from host.measure.profiles import TargetProfile, find_profile, load_profile
from host.decision import NOISE_THRESHOLD
from host.measure.protocol import (
    EXTRA_ROUND_BASE,
    LATER_ROUNDS_DEFAULT,
    LATER_ROUNDS_MODES,
    MAX_ROUNDS_DEFAULT,
    MAX_SPOILED_RETRIES_DEFAULT,
    MAX_STEPS_PER_EPISODE_DEFAULT,
    N_EPISODES_DEFAULT,
    ROUND_LATENCY_CALLS,
    ROUNDS_DEFAULT,
    WARMUP_CALLS_DEFAULT,
)
from host.measure.until_decided import AUTO_EPISODES_CAP_DEFAULT
from host.report.stats import session_unsettled

LaterRounds = Enum("LaterRounds", {m: m for m in LATER_ROUNDS_MODES}, type=str)  # type: ignore[misc]
"""--later-rounds' choices: the protocol's vocabulary (host.measure.protocol.LATER_ROUNDS_MODES)."""
LATER_ROUNDS_CHOICE = LaterRounds(LATER_ROUNDS_DEFAULT)


def check_reachable(profile: TargetProfile, timeout_s: float) -> None:
    """Wait (bounded, with a spinner) until a remote target's agent answers its health check.

    :raises DeviceError: nothing answered: what to check on the target, its tunnel and its docs
    """
    with console.status(
        escape(f"connecting to {profile.name} at {profile.address} (up to {timeout_s:.0f} s)...")
    ):
        with AgentClient(profile.address, security=profile.client_security()) as client:
            try:
                client.wait_ready(timeout_s=timeout_s)
            except AgentUnreachableError as exc:
                raise DeviceError(profile.unreachable(exc.address)) from None


def more_rounds_line(outcome: DeployOutcome, names: dict[str, str]) -> str | None:
    """What ``--max-rounds`` did: which variants got more paired rounds, and which are still unsettled
    (``names``: sha256 -> model name)."""
    if not outcome.more_rounds:
        return None
    got = ", ".join(f"{names.get(s, s[:12])} ({n})" for s, n in sorted(outcome.more_rounds.items()))
    line = f"more rounds for {len(outcome.more_rounds)} unsettled variant(s) (rounds in all): {got}"
    if outcome.unsettled:
        left = ", ".join(f"{names.get(s, s[:12])}: {why}" for s, why in sorted(outcome.unsettled.items()))
        line += f"; still unsettled at --max-rounds: {left}"
    return line


def parse_episodes(episodes: str | None, max_episodes: int) -> tuple[int | None, int]:
    """``--episodes``: a count, ``auto`` (start where an unset count would, extend up to ``max_episodes``), or
    unset (None).

    :return: (episodes of round 0, None: the profile's, else the protocol's default; the cap of --episodes
        auto, 0: off)
    :raises typer.BadParameter: neither a positive count nor 'auto'
    """
    if episodes is None:
        return None, 0
    if episodes.strip().lower() == "auto":
        return None, max_episodes
    try:
        n = int(episodes)
    except ValueError:
        n = 0
    if n < 1:
        raise typer.BadParameter(
            f"{episodes!r} is neither a number of episodes (>= 1) nor 'auto'", param_hint="--episodes"
        )
    return n, 0


def deploy_command(
    target: TargetOption = DEFAULT_TARGET,
    models: ModelsOption = None,
    episodes: Annotated[
        str | None,
        typer.Option(
            help=f"episodes per model (the study used >= 10; default: the profile's \\[measurement] n_episodes, "
            f"else {N_EPISODES_DEFAULT}), or 'auto': that many, then more seeded episodes for variants whose "
            "return is undecided (and their baselines) until decided or --max-episodes",
            show_default=False,
        ),
    ] = None,
    max_episodes: Annotated[
        int, typer.Option(help="with --episodes auto: the most episodes per model", min=N_EPISODES_DEFAULT)
    ] = AUTO_EPISODES_CAP_DEFAULT,
    seed: Annotated[int, typer.Option(help="episode i is reset with seed + i")] = 0,
    warmup_calls: Annotated[
        int | None,
        typer.Option(
            help="uncounted inference calls before timing (default: the profile's \\[measurement] warmup_calls, "
            f"else {WARMUP_CALLS_DEFAULT})",
            min=0,
            show_default=False,
        ),
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(
            help="steps per episode; 0 = the env's own limit (default: the profile's \\[measurement] "
            f"max_steps_per_episode, else {MAX_STEPS_PER_EPISODE_DEFAULT})",
            min=0,
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="run again even if this target has results with these settings")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            help="worker processes that run each job's episodes for their returns (batch 1 each); latency is "
            "then measured alone first; 0 = the device's cores (1 where it has an energy meter), 1 = every "
            "episode alone and timed",
            min=0,
        ),
    ] = 0,
    latency_calls: Annotated[
        int | None,
        typer.Option(
            help="with --workers > 1: timed in-loop calls of the quiet latency phase (agent default 1000)",
            min=1,
        ),
    ] = None,
    connect_timeout: Annotated[
        float,
        typer.Option(
            help="seconds to wait for a remote target's agent to answer before saying what to check", min=0.1
        ),
    ] = 15.0,
    rounds: Annotated[
        int,
        typer.Option(
            help="latency rounds: each a fresh job per model, models shuffled per round; round 0 also runs "
            "the episodes, later rounds are latency only (README: Measurement protocol)",
            min=1,
        ),
    ] = ROUNDS_DEFAULT,
    max_rounds: Annotated[
        int,
        typer.Option(
            help="then more paired rounds, up to this many in all, for the variants whose latency verdict is "
            f"unsettled (its CI crosses the ±{NOISE_THRESHOLD:.0%} noise threshold, or undecided); --rounds or "
            "less: none",
            min=1,
            max=EXTRA_ROUND_BASE - 1,
        ),
    ] = MAX_ROUNDS_DEFAULT,
    round_calls: Annotated[
        int, typer.Option(help="timed in-loop calls of each later (latency-only) round", min=1)
    ] = ROUND_LATENCY_CALLS,
    later_rounds: Annotated[
        LaterRounds,
        typer.Option(
            help="which models the later rounds time: candidates (every baseline and every variant not shown "
            "after round 0 to fall short on return) or all",
        ),
    ] = LATER_ROUNDS_CHOICE,
    order_seed: Annotated[
        int | None, typer.Option(help="seed of the per-round shuffles (default: a fresh one, recorded)")
    ] = None,
    spoiled_retries: Annotated[
        int,
        typer.Option(
            help="how often a round whose timing the validity rule spoiled (a noisy device) is run again; "
            "after that it is kept, flagged, and not used as a latency sample",
            min=0,
        ),
    ] = MAX_SPOILED_RETRIES_DEFAULT,
    op_profile: Annotated[
        bool | None,
        typer.Option(
            "--op-profile/--no-op-profile",
            help="after each model's timed phases, profile its operators with ONNX Runtime's profiler in a "
            "worker of its own (round 0 only): the report then says where the time goes; default: the "
            "target profile's measurement.op_profile_calls",
            show_default=False,
        ),
    ] = None,
    op_profile_calls: Annotated[
        int, typer.Option(help="with --op-profile: in-loop calls the profiler records", min=1)
    ] = OP_PROFILE_CALLS_ON,
    validity: Annotated[
        bool,
        typer.Option(
            help="judge each round's timing by the validity rule (README: Run validity); --no-validity uses "
            "every round as a sample, spoiled or not: to see what the rounds say on a device known to be busy",
        ),
    ] = True,
    profiles_dir: ProfilesDirOption = None,
    home: HomeOption = None,
) -> None:
    """Upload variants to a target's agent, profile them in MuJoCo there, and store the results (--models:
    default every registered model)."""
    with user_errors(), open_workspace(home, mujoco=False) as (workspace, db):
        profile = load_profile(find_profile(target, profiles_dir))
        chosen = select_models(db, models)
        if not chosen:
            raise StoreError("no models to deploy: import or train one first (drlc-host import PATH)")
        n_episodes, cap = parse_episodes(episodes, max_episodes)
        cfg = DeployConfig(
            n_episodes=n_episodes,
            auto_episodes_cap=cap,
            seed=seed,
            warmup_calls=warmup_calls,
            max_steps_per_episode=max_steps,
            force=force,
            quality_workers=workers,
            latency_calls=latency_calls,
            rounds=rounds,
            max_rounds=max_rounds,
            round_latency_calls=round_calls,
            later_rounds=later_rounds.value,
            order_seed=order_seed,
            max_spoiled_retries=spoiled_retries,
            op_profile_calls=None if op_profile is None else (op_profile_calls if op_profile else 0),
            validity_rule=ValidityRule() if validity else ValidityRule.never(),
        )
        if not profile.spawn_local:
            check_reachable(profile, connect_timeout)
        view = DeployProgress(console, chosen, episodes_for(profile, cfg), db, profile.name)
        try:
            with view:
                outcome = deploy(
                    chosen,
                    profile,
                    workspace,
                    db,
                    cfg,
                    view.update,
                    unsettled=lambda session_id: session_unsettled(db, session_id),
                )
        except AgentUnreachableError as exc:
            if profile.spawn_local:
                raise
            raise DeviceError(profile.unreachable(exc.address)) from None
        console.print(
            f"target [bold]{escape(outcome.target)}[/] ({outcome.fingerprint[:8]}): "
            f"{len(outcome.succeeded)} profiled, {len(outcome.skipped)} already done, "
            f"{len(outcome.uploaded)} uploaded, {len(outcome.failed)} failed",
            soft_wrap=True,
        )
        console.print(
            f"session {outcome.session_id}: {outcome.rounds} round(s), models shuffled per round",
            highlight=False,
        )
        if outcome.short and outcome.rounds > 1:
            console.print(
                f"later rounds: {len(outcome.short)} variant(s) shown to fall short on return were timed in "
                "round 0 only (--later-rounds all times them too)",
                highlight=False,
                soft_wrap=True,
            )
        if (more := more_rounds_line(outcome, {m.sha256: m.name for m in chosen})) is not None:
            console.print(more, highlight=False, soft_wrap=True)
        if outcome.extended:
            console.print(
                f"--episodes auto: {len(outcome.extended)} model(s) got more seeded episodes "
                f"(now {min(outcome.extended.values())}..{max(outcome.extended.values())} each, cap {cap})",
                highlight=False,
            )
        if (noisy := outcome.noisy_line()) is not None:
            console.print(f"[yellow]{escape(noisy)}[/]", soft_wrap=True)
        for sha, error in outcome.failed.items():
            console.print(f"[red]failed[/] {sha[:12]}: {escape(error)}", soft_wrap=True)
        if outcome.failed:
            raise typer.Exit(code=1)
        if outcome.succeeded or outcome.skipped:
            console.print(f"next: drlc-host report{escape(home_flag(home))}", highlight=False, soft_wrap=True)
