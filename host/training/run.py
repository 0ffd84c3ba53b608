"""Train a baseline policy with Stable-Baselines3 and export it as a drlc artifact.

Reads top to bottom in execution order: the config, the plan (hyperparameters from the RL Zoo,
budget, intervals), the run folder (new, or an interrupted one to resume), the envs, the
algorithm, the monitor callback (progress, training curve, periodic evaluation, checkpoints),
``learn()``, then the final save, evaluation and export; last, a run as an executor's task. A finished
run is stored by :func:`host.training.records.record_run`.

A run is named ``{env_id}__{algo}__{seed}__{unix time}`` and lives in ``$DRLC_HOME/runs``::

    run.json            the plan: config, resolved hyperparameters, config key
    curve.jsonl         the training curve, one JSON point per line, appended as it is made
    checkpoint/         the latest checkpoint (model.zip, vecnormalize.pkl, replay_buffer.pkl, state.json)
    model.zip           the final SB3 checkpoint (QAT's rl mode continues from it)
    vecnormalize.pkl    its VecNormalize statistics, when the run normalises observations
    result.json         written last: the run finished
    tb/                 SB3's TensorBoard logs, when asked for
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from device_agent.contract.envs import check_env_options
from device_agent.contract.errors import AgentError
from device_agent.contract.manifest import sha256_bytes
from host.errors import DrlcError
from host.policies.algorithms import UnknownAlgorithmError, algorithm
from host.policies.importer import ExportedPolicy, export_model
from host.policies.onnx_reader import spec_from_onnx
from host.policies.sb3.actor import spec_from_model
from host.training.hyperparams import Hyperparams, resolve

#: The paper study's grid (algorithms from :data:`host.policies.algorithms.ALGORITHMS`).
STUDY_ALGOS = ("trpo", "ppo", "ddpg", "td3", "sac")
STUDY_ENVS = ("HalfCheetah-v5", "HumanoidStandup-v5", "Ant-v5", "Humanoid-v5", "Hopper-v5")
#: Budget when neither the command line nor the hyperparameters give one (the RL Zoo's default).
DEFAULT_TOTAL_STEPS = 1_000_000
#: Evaluation episodes are seeded from here (+ the training seed), apart from training's own seeds.
EVAL_SEED_OFFSET = 100_000


class TrainingError(DrlcError):
    """Training cannot start or did not produce a policy."""


@dataclass(frozen=True)
class TrainConfig:
    # What to train
    algo: str
    """A name of :data:`host.policies.algorithms.ALGORITHMS` (ppo, sac, ...)."""
    env_id: str
    """Any Gymnasium env id with a Box observation and a Box action space, e.g. Hopper-v5."""
    seed: int = 0
    """Seeds the algorithm, the training envs and torch; recorded in the artifact's manifest."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Env options for ``gymnasium.make`` (``--env-option``), checked against the env's signature;
    recorded in the artifact's manifest, so the device steps the env the policy was trained in."""
    total_steps: int | None = None
    """Environment steps to train for. None: the hyperparameters' n_timesteps (the RL Zoo's budget), else 1e6.
    On-policy algorithms finish their last rollout, so they may run up to one rollout more."""

    # Hyperparameters
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """Overrides over the chosen hyperparameters (``--hp key=value``), in the RL Zoo's syntax."""
    use_zoo: bool = True
    """Start from the RL Zoo's tuned hyperparameters when it has them; False: SB3's defaults."""
    normalize: bool | None = None
    """VecNormalize (observations baked into the exported graph). None: as the hyperparameters say."""

    # Evaluation and checkpoints
    eval_every_steps: int | None = None
    """Evaluate the deterministic policy every this many steps. None: every tenth of the run, at least
    25 000 steps apart (the RL Zoo's interval). 0: never. The evaluation after training always runs."""
    eval_episodes: int = 5
    """Episodes per periodic evaluation (seeded, the same starts every time)."""
    final_eval_episodes: int = 10
    """Episodes of the evaluation after training, recorded as the run's return."""
    checkpoint_every_steps: int | None = None
    """Write a resumable checkpoint every this many steps (only the latest is kept). None: as often as
    evaluations. 0: never, and the run cannot be resumed."""

    # Logging and resources
    tensorboard: bool = False
    """Write SB3's TensorBoard logs to the run folder's ``tb/`` (needs the tensorboard package)."""
    torch_threads: int = 1
    """Small MLPs train fastest on one thread; more threads contend with the env and other runs."""

    @property
    def label(self) -> str:
        return f"{self.algo} {self.env_id} seed {self.seed}"


# --------------------------------------------------------------------------------------------
# The plan: everything a run does, decided before it starts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainPlan:
    """The effective settings of a run (MLPerf's "requested vs effective"): ``config`` as asked,
    the rest derived from it.

    :param config_key: hash of what shapes the result (algo, env, seed, budget, hyperparameters);
        a run resumes only a run with the same key
    """

    config: TrainConfig
    hyperparams: Hyperparams
    total_steps: int
    eval_every_steps: int
    checkpoint_every_steps: int
    config_key: str

    def record(self) -> dict[str, Any]:
        return {
            "algo": self.config.algo,
            "env_id": self.config.env_id,
            "env_kwargs": self.config.env_kwargs,
            "seed": self.config.seed,
            "total_steps": self.total_steps,
            "eval_every_steps": self.eval_every_steps,
            "eval_episodes": self.config.eval_episodes,
            "checkpoint_every_steps": self.checkpoint_every_steps,
            "hyperparams": self.hyperparams.record(),
            "config_key": self.config_key,
        }


def make_plan(cfg: TrainConfig) -> TrainPlan:
    """Resolve ``cfg``: hyperparameters, budget, evaluation and checkpoint intervals.

    :raises TrainingError: unknown algorithm, or hyperparameters drlc cannot train with
    """
    try:
        algorithm(cfg.algo)
    except UnknownAlgorithmError as exc:
        raise TrainingError(str(exc)) from None
    hp = resolve(cfg.algo, cfg.env_id, cfg.hyperparams, use_zoo=cfg.use_zoo, normalize=cfg.normalize)
    total = cfg.total_steps if cfg.total_steps is not None else hp.n_timesteps or DEFAULT_TOTAL_STEPS
    if total < 1:
        raise TrainingError(f"total_steps={total}; train for at least one step")
    every = cfg.eval_every_steps if cfg.eval_every_steps is not None else max(total // 10, 25_000)
    ckpt = cfg.checkpoint_every_steps if cfg.checkpoint_every_steps is not None else every
    if every < 0 or ckpt < 0:
        raise TrainingError("eval_every_steps and checkpoint_every_steps must be >= 0 (0: never)")
    shaping = {
        "algo": cfg.algo,
        "env_id": cfg.env_id,
        "seed": cfg.seed,
        "total_steps": total,
        "hyperparams": hp.record()["values"],
    }
    if cfg.env_kwargs:  # only when given: runs without options keep their keys
        shaping["env_kwargs"] = cfg.env_kwargs
    key = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]
    return TrainPlan(cfg, hp, total, every, ckpt, key)


# --------------------------------------------------------------------------------------------
# What a run reports while it runs, and what it returns
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainProgress:
    """A progress report: sent a few times a second, picklable (it crosses process boundaries)."""

    label: str
    steps: int
    total: int
    steps_per_s: float | None = None
    recent_return: float | None = None
    """Mean return of the last (up to) 20 finished training episodes."""
    eval_return: float | None = None
    """Mean return of the latest evaluation."""
    phase: str = "train"
    """train, eval, checkpoint (one was just written), export or done."""


ProgressFn = Callable[[TrainProgress], None]


@dataclass(frozen=True)
class CurvePoint:
    step: int
    """Environment steps done when the point was taken."""
    kind: str
    """``train``: training episodes finished since the previous point; ``eval``: a deterministic evaluation."""
    return_mean: float
    return_std: float
    episodes: int
    wall_s: float
    """Seconds of training so far (summed over resumptions)."""


@dataclass(frozen=True, eq=False)
class TrainResult:
    """A finished run.

    :param files: the run folder's final files, as bytes, when the run was trained on a machine that
        does not share this one's disk (Ray); :func:`unpack_result` writes them into ``runs_dir``
    """

    run_id: str
    run_dir: Path
    plan: dict[str, Any]
    checkpoint: Path
    vecnormalize: Path | None
    exported: ExportedPolicy
    steps_done: int
    wall_s: float
    train_steps_per_s: float
    """Environment steps per second of learning, evaluations and checkpoints excluded."""
    final_returns: list[float]
    curve: list[CurvePoint]
    resumed_from_step: int | None = None
    files: dict[str, bytes] | None = None

    @property
    def final_return_mean(self) -> float:
        return sum(self.final_returns) / len(self.final_returns) if self.final_returns else float("nan")

    @property
    def final_return_std(self) -> float:
        n = len(self.final_returns)
        if n < 2:
            return 0.0
        mean = self.final_return_mean
        return (sum((r - mean) ** 2 for r in self.final_returns) / n) ** 0.5

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        # Results cross process boundaries (pool, Ray), but an ExportedPolicy's spec holds a mappingproxy,
        # which does not pickle: ship the ONNX bytes and rebuild the spec from them on arrival.
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        e = self.exported
        state["exported"] = (e.onnx_bytes, e.notes, e.max_abs_action_error)
        return (_rebuild_result, (state,))


def _rebuild_result(state: dict[str, Any]) -> TrainResult:
    data, notes, error = state["exported"]
    spec, manifest = spec_from_onnx(data)
    state["exported"] = ExportedPolicy(data, sha256_bytes(data), manifest, spec, notes, error)
    return TrainResult(**state)


# --------------------------------------------------------------------------------------------
# Run folders: a new one, or the interrupted one to resume
# --------------------------------------------------------------------------------------------


def _new_run_dir(runs_dir: Path, cfg: TrainConfig) -> Path:
    stamp = int(time.time())
    while True:
        run_dir = runs_dir / f"{cfg.env_id}__{cfg.algo}__{cfg.seed}__{stamp}"
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            stamp += 1


def find_resumable(runs_dir: Path, plan: TrainPlan) -> Path | None:
    """The newest unfinished run of the same plan (same config key) that has a checkpoint."""
    cfg = plan.config
    for run_dir in sorted(runs_dir.glob(f"{cfg.env_id}__{cfg.algo}__{cfg.seed}__*"), reverse=True):
        try:
            key = json.loads((run_dir / "run.json").read_text())["config_key"]
        except (OSError, ValueError, KeyError):
            continue
        if key != plan.config_key or (run_dir / "result.json").exists():
            continue
        if (run_dir / "checkpoint" / "state.json").is_file():
            return run_dir
    return None


def _read_curve(run_dir: Path, up_to_step: int | None = None) -> list[CurvePoint]:
    path = run_dir / "curve.jsonl"
    if not path.is_file():
        return []
    points = [CurvePoint(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    return [p for p in points if up_to_step is None or p.step <= up_to_step]


# --------------------------------------------------------------------------------------------
# Train
# --------------------------------------------------------------------------------------------


def train(
    cfg: TrainConfig, runs_dir: Path, progress: ProgressFn | None = None, *, resume: bool = False
) -> TrainResult:
    """Train ``cfg`` and export the final policy as a baseline artifact (not yet stored: see
    :func:`host.training.records.record_run`).

    :param runs_dir: where the run folder goes
    :param progress: called a few times a second with a :class:`TrainProgress`
    :param resume: continue the newest interrupted run of the same plan from its checkpoint, if any
        (otherwise start a new run)
    :raises TrainingError: the env, the hyperparameters or the policy do not work for drlc
    """
    # torch and SB3 load when a run starts, not when the CLI (or a dry run) imports this module
    import torch
    from stable_baselines3.common.vec_env import VecNormalize

    plan = make_plan(cfg)
    if cfg.tensorboard:
        try:
            import tensorboard  # noqa: F401  (optional extra: only checked when asked for)
        except ImportError:
            raise TrainingError(
                "--tensorboard needs the tensorboard package: pip install tensorboard (or drlc[tensorboard])"
            ) from None
    torch.set_num_threads(cfg.torch_threads)
    runs_dir.mkdir(parents=True, exist_ok=True)
    run_dir = find_resumable(runs_dir, plan) if resume else None
    state: dict[str, Any] = {}
    new_run = run_dir is None
    if run_dir is not None:
        state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    else:
        run_dir = _new_run_dir(runs_dir, cfg)
        (run_dir / "run.json").write_text(json.dumps(plan.record(), indent=2, sort_keys=True))
    try:
        venv, eval_env, model = _setup(plan, run_dir, state)
    except BaseException:
        if new_run:  # nothing was trained: leave no folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    start_steps = int(model.num_timesteps)

    # ---- the monitor: progress, training curve, evaluations, checkpoints
    monitor = _Monitor(model, plan, run_dir, eval_env, progress, state)
    remaining = max(plan.total_steps - start_steps, 0)
    if remaining:
        model.learn(
            total_timesteps=remaining,
            callback=_sb3_callback(monitor),
            reset_num_timesteps=not state,
            tb_log_name=run_dir.name,
        )
    wall_s, train_steps_per_s = monitor.wall_s(), monitor.train_steps_per_s()

    # ---- save, evaluate, export
    checkpoint = run_dir / "model.zip"
    model.save(checkpoint)
    vecnormalize = None
    if isinstance(venv, VecNormalize):
        vecnormalize = run_dir / "vecnormalize.pkl"
        venv.save(str(vecnormalize))
    monitor.report("eval")
    final_returns = monitor.evaluate(model, cfg.final_eval_episodes)
    monitor.add_point("eval", final_returns)
    monitor.report("export")
    exported = _export(model, venv if plan.hyperparams.normalize else None, plan, int(model.num_timesteps))
    venv.close()
    eval_env.close()

    result = TrainResult(
        run_id=run_dir.name,
        run_dir=run_dir,
        plan=plan.record(),
        checkpoint=checkpoint,
        vecnormalize=vecnormalize,
        exported=exported,
        steps_done=int(model.num_timesteps),
        wall_s=wall_s,
        train_steps_per_s=train_steps_per_s,
        final_returns=final_returns,
        curve=_read_curve(run_dir),
        resumed_from_step=start_steps if state else None,
    )
    summary = {
        "steps_done": result.steps_done,
        "wall_s": result.wall_s,
        "train_steps_per_s": result.train_steps_per_s,
        "final_returns": final_returns,
        "sha256": exported.sha256,
        "resumed_from_step": result.resumed_from_step,
    }
    (run_dir / "result.json").write_text(json.dumps(summary, indent=2))
    shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)  # the final model.zip supersedes it
    monitor.report("done")
    return result


def _setup(plan: TrainPlan, run_dir: Path, state: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The training envs, the evaluation env and the algorithm: new, or restored from the checkpoint."""
    from stable_baselines3.common.env_util import make_vec_env  # SB3 (torch): loaded when a run starts
    from stable_baselines3.common.vec_env import VecNormalize

    cfg, hp = plan.config, plan.hyperparams
    # ---- envs: training envs (VecNormalize when the hyperparameters say so) and one evaluation env
    try:
        check_env_options(cfg.env_id, cfg.env_kwargs)
        options = dict(cfg.env_kwargs) or None
        venv = make_vec_env(
            cfg.env_id, n_envs=hp.n_envs, seed=cfg.seed + state.get("steps", 0), env_kwargs=options
        )
        eval_env = make_vec_env(cfg.env_id, n_envs=1, seed=EVAL_SEED_OFFSET + cfg.seed, env_kwargs=options)
    except (gym.error.Error, AgentError) as exc:
        raise TrainingError(f"cannot make env {cfg.env_id!r}: {exc}") from exc
    if hp.normalize:
        if state:
            venv = VecNormalize.load(str(run_dir / "checkpoint" / "vecnormalize.pkl"), venv)
            venv.training = True
        else:
            venv = VecNormalize(venv, **hp.normalize_kwargs)
        obs_kwargs = {
            k: v for k, v in hp.normalize_kwargs.items() if k in ("norm_obs", "clip_obs", "epsilon")
        }
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False, **obs_kwargs)

    # ---- algorithm: new, or loaded from the checkpoint
    cls = algorithm(cfg.algo).load_class()
    tb_dir = str(run_dir / "tb") if cfg.tensorboard else None
    if state:
        model = cls.load(run_dir / "checkpoint" / "model.zip", env=venv, device="cpu", tensorboard_log=tb_dir)
        model.set_random_seed(cfg.seed + model.num_timesteps)
        if (run_dir / "checkpoint" / "replay_buffer.pkl").is_file():
            model.load_replay_buffer(run_dir / "checkpoint" / "replay_buffer.pkl")
    else:
        kwargs = dict(hp.algo_kwargs)
        if hp.action_noise is not None:
            kwargs["action_noise"] = hp.action_noise.build(int(venv.action_space.shape[0]))
        try:
            model = cls(
                "MlpPolicy", venv, seed=cfg.seed, device="cpu", verbose=0, tensorboard_log=tb_dir, **kwargs
            )
        except (TypeError, ValueError, AssertionError, KeyError) as exc:
            raise TrainingError(f"cannot build {cfg.algo} for {cfg.env_id} with {hp.entry}: {exc}") from exc
    _check_exportable(model, cfg)
    return venv, eval_env, model


def _check_exportable(model: Any, cfg: TrainConfig) -> None:
    """Fail before training, not after it: the policy these hyperparameters build must be exportable."""
    try:
        spec_from_model(model, None)
    except DrlcError as exc:
        raise TrainingError(f"{cfg.label}: drlc could not export the trained policy: {exc}") from exc


def _export(model: Any, venv: Any, plan: TrainPlan, steps_done: int) -> ExportedPolicy:
    # No run name or time here: the manifest must not make identical policies hash differently.
    source = {
        "origin": "train",
        "total_steps": steps_done,
        "hyperparams": plan.hyperparams.record(),
        "config_key": plan.config_key,
    }
    cfg = plan.config
    return export_model(
        model,
        venv,
        env_id=cfg.env_id,
        algo=cfg.algo,
        source=source,
        training_seed=cfg.seed,
        env_kwargs=cfg.env_kwargs,
    )


def _sb3_callback(monitor: _Monitor) -> Any:
    """An SB3 callback that hands every step to ``monitor`` (SB3 is imported only when training)."""
    from stable_baselines3.common.callbacks import BaseCallback  # SB3 (torch): loaded when a run starts

    class MonitorCallback(BaseCallback):
        def _on_training_start(self) -> None:
            monitor.start()

        def _on_step(self) -> bool:
            return monitor.on_step(self.locals)

    return MonitorCallback()


class _Monitor:
    """What runs at every step: throttled progress reports, the training curve, evaluations and
    checkpoints. Time spent evaluating and checkpointing is kept apart, so the throughput it reports
    is training's.
    """

    #: Points on the training curve over a run (plus one per evaluation).
    CURVE_POINTS = 200

    def __init__(
        self,
        model: Any,
        plan: TrainPlan,
        run_dir: Path,
        eval_env: Any,
        progress: ProgressFn | None,
        state: dict[str, Any],
    ) -> None:
        self.model = model
        self.plan = plan
        self.run_dir = run_dir
        self.eval_env = eval_env
        self.progress = progress
        self.prior_wall_s = float(state.get("wall_s", 0.0))
        self.prior_side_s = float(state.get("side_s", 0.0))
        self.prior_steps = int(state.get("steps", 0))
        self.side_s = 0.0  # evaluating and checkpointing, this session
        self.started = time.perf_counter()
        self.curve_every = max(plan.total_steps // self.CURVE_POINTS, 1)
        self.window: list[float] = []
        self.recent: deque[float] = deque(maxlen=20)
        self.eval_return: float | None = None
        self.speed: deque[tuple[float, int]] = deque(maxlen=20)
        self.last_report = 0.0
        # Points after the checkpoint were made by the interrupted session and are made again.
        points = _read_curve(run_dir, up_to_step=self.prior_steps if state else None)
        with open(run_dir / "curve.jsonl", "w") as fh:
            fh.writelines(json.dumps(asdict(p)) + "\n" for p in points)
        for p in points:
            if p.kind == "eval":
                self.eval_return = p.return_mean

    def start(self) -> None:
        steps = int(self.model.num_timesteps)
        self.next_curve = (steps // self.curve_every + 1) * self.curve_every
        every, ckpt = self.plan.eval_every_steps, self.plan.checkpoint_every_steps
        self.next_eval = (steps // every + 1) * every if every else None
        self.next_ckpt = (steps // ckpt + 1) * ckpt if ckpt else None

    def on_step(self, sb3_locals: dict[str, Any]) -> bool:
        for info in sb3_locals.get("infos", ()):
            episode = info.get("episode")
            if episode is not None:
                self.window.append(float(episode["r"]))
                self.recent.append(float(episode["r"]))
        steps = int(self.model.num_timesteps)
        if steps >= self.next_curve:
            if self.window:
                self.add_point("train", self.window)
                self.window = []
            self.next_curve = (steps // self.curve_every + 1) * self.curve_every
        last = steps >= self.plan.total_steps  # the final save and evaluation cover the last step
        if self.next_eval is not None and steps >= self.next_eval and not last:
            self.report("eval", force=True)
            self.add_point("eval", self.evaluate(self.model, self.plan.config.eval_episodes))
            self.next_eval = (steps // self.plan.eval_every_steps + 1) * self.plan.eval_every_steps
        if self.next_ckpt is not None and steps >= self.next_ckpt and not last:
            self.save_checkpoint()
            self.report("checkpoint", force=True)
            self.next_ckpt = (
                steps // self.plan.checkpoint_every_steps + 1
            ) * self.plan.checkpoint_every_steps
        self.report("train")
        return True

    # -- bookkeeping
    def wall_s(self) -> float:
        return self.prior_wall_s + time.perf_counter() - self.started

    def train_steps_per_s(self) -> float:
        steps = int(self.model.num_timesteps) - self.prior_steps
        learn_s = time.perf_counter() - self.started - self.side_s
        return steps / learn_s if learn_s > 0 else float("nan")

    def report(self, phase: str, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.perf_counter()
        if not force and phase == "train" and now - self.last_report < 0.25:
            return
        self.last_report = now
        steps = int(self.model.num_timesteps)
        if phase == "train":  # evaluating and exporting make no steps: they would drag the rate down
            self.speed.append((now, steps))
        (t0, s0), (t1, s1) = (self.speed[0], self.speed[-1]) if self.speed else ((0.0, 0), (0.0, 0))
        sps = (s1 - s0) / (t1 - t0) if t1 > t0 and s1 > s0 else None
        recent = sum(self.recent) / len(self.recent) if self.recent else None
        total = self.plan.total_steps
        self.progress(
            TrainProgress(
                self.plan.config.label, min(steps, total), total, sps, recent, self.eval_return, phase
            )
        )

    def add_point(self, kind: str, returns: list[float]) -> None:
        point = CurvePoint(
            step=int(self.model.num_timesteps),
            kind=kind,
            return_mean=float(np.mean(returns)),
            return_std=float(np.std(returns)),
            episodes=len(returns),
            wall_s=round(self.wall_s(), 3),
        )
        if kind == "eval":
            self.eval_return = point.return_mean
        with open(self.run_dir / "curve.jsonl", "a") as fh:
            fh.write(json.dumps(asdict(point)) + "\n")

    def evaluate(self, model: Any, episodes: int) -> list[float]:
        """Returns of ``episodes`` deterministic episodes, from the same seeded starts every time."""
        # SB3 (torch): loaded when a run starts
        from stable_baselines3.common.evaluation import evaluate_policy
        from stable_baselines3.common.vec_env import sync_envs_normalization

        started = time.perf_counter()
        if model.get_vec_normalize_env() is not None:
            sync_envs_normalization(model.get_env(), self.eval_env)
        self.eval_env.seed(EVAL_SEED_OFFSET + self.plan.config.seed)
        returns, _ = evaluate_policy(
            model, self.eval_env, n_eval_episodes=episodes, deterministic=True, return_episode_rewards=True
        )
        self.side_s += time.perf_counter() - started
        return [float(r) for r in returns]

    def save_checkpoint(self) -> None:
        """Write the latest checkpoint beside the old one, then swap, so a crash leaves one whole."""
        started = time.perf_counter()
        tmp = self.run_dir / "checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        self.model.save(tmp / "model.zip")
        vecnorm = self.model.get_vec_normalize_env()
        if vecnorm is not None:
            vecnorm.save(str(tmp / "vecnormalize.pkl"))
        if getattr(self.model, "replay_buffer", None) is not None:
            self.model.save_replay_buffer(tmp / "replay_buffer.pkl")
        self.side_s += time.perf_counter() - started
        state = {
            "steps": int(self.model.num_timesteps),
            "wall_s": self.wall_s(),
            "side_s": self.prior_side_s + self.side_s,
        }
        (tmp / "state.json").write_text(json.dumps(state))
        final = self.run_dir / "checkpoint"
        old = self.run_dir / "checkpoint.old"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Running on another machine: a task, its shipped-back files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainTask:
    """One training run for an executor (picklable).

    :param runs_dir: the host's runs folder
    :param fs_token: ``(file name, content)`` of a token the host wrote in ``runs_dir``; a worker that
        cannot read it does not share the host's disk, trains in a temporary folder and ships the run's
        final files back in the result. None: the worker shares the disk.
    """

    config: TrainConfig
    runs_dir: str
    resume: bool = False
    fs_token: tuple[str, str] | None = None


#: Files of a run folder shipped back from a worker that does not share the host's disk.
SHIPPED = ("run.json", "curve.jsonl", "model.zip", "vecnormalize.pkl", "result.json")


def write_fs_token(runs_dir: Path) -> tuple[str, str]:
    """A token file in ``runs_dir`` by which workers tell whether they see the host's disk."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    content = os.urandom(16).hex()
    name = f".fs-token-{content[:8]}"
    (runs_dir / name).write_text(content)
    return name, content


def _shares_disk(task: TrainTask) -> bool:
    if task.fs_token is None:
        return True
    try:
        return (Path(task.runs_dir) / task.fs_token[0]).read_text() == task.fs_token[1]
    except OSError:
        return False


def train_task(task: TrainTask, report: ProgressFn | None = None) -> TrainResult:
    """Run ``task`` on this machine (an executor's worker). On a machine that does not share the host's
    disk, train in a temporary folder and return the final files in ``result.files``."""
    if _shares_disk(task):
        return train(task.config, Path(task.runs_dir), report, resume=task.resume)
    with tempfile.TemporaryDirectory(prefix="drlc-train-") as tmp:
        result = train(task.config, Path(tmp), report)
        files = {}
        for name in SHIPPED:
            path = result.run_dir / name
            if path.is_file():
                files[name] = path.read_bytes()
        for path in (result.run_dir / "tb").rglob("*") if task.config.tensorboard else ():
            if path.is_file():
                files[str(path.relative_to(result.run_dir))] = path.read_bytes()
        return replace(result, files=files)


def unpack_result(result: TrainResult, runs_dir: Path) -> TrainResult:
    """Write a shipped-back run's files into ``runs_dir`` and point the result at them."""
    if result.files is None:
        return result
    run_dir = runs_dir / result.run_id
    for name, data in result.files.items():
        path = run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return replace(
        result,
        run_dir=run_dir,
        checkpoint=run_dir / "model.zip",
        vecnormalize=run_dir / "vecnormalize.pkl" if result.vecnormalize is not None else None,
        files=None,
    )
