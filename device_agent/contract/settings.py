"""Every measurement knob of a profile job, in one place, with units in the names.

Stopping rule: a job runs ``n_episodes`` seeded episodes (episode ``i`` is reset with
``seed + i``), each until the env terminates or truncates (its own time limit, or
``max_steps_per_episode`` when that is > 0), after ``warmup_calls`` uncounted inference
calls. Requested settings are checked against the agent's ``AgentLimits``; both the requested
and the effective settings are reported with every result.

Phases of a job, in order: idle window (``idle_s``, only where an energy meter works), warm-up,
the episodes (paced at the env's control period when ``control_rate``), the inference-only
phase (``inference_phase_s``), the runtime floor (timed in the same loop as the policy: an env step between calls). With ``op_profile_calls`` > 0,
after all of them, the operator profile phase: ONNX Runtime's profiler over that many in-loop calls in a separate
worker process, so nothing it costs reaches a timed figure.

With ``quality_workers`` > 1 the episodes are wanted for their returns only and run in that many
worker processes at once (each at batch 1); the latency figures then come from a latency phase of
``latency_calls`` timed in-loop calls that the measuring worker makes alone, after the warm-up and
before any helper starts stepping. Every phase that times or meters anything runs alone on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from device_agent.contract.proto import agent_pb2 as pb


@dataclass(frozen=True)
class MeasurementSettings:
    n_episodes: int = 10
    """Episodes whose return is measured; the study used >= 10."""
    seed: int = 0
    """Episode i is reset with seed + i, so two jobs with the same seed see the same starts."""
    warmup_calls: int = 100
    """Inference calls (stepping a separate warm-up episode) before any latency is recorded."""
    max_steps_per_episode: int = 0
    """0: the env's own time limit (1000 steps for the MuJoCo locomotion envs)."""
    execution_providers: tuple[str, ...] = ()
    """ONNX Runtime providers in preference order; empty: the best one this device offers."""
    intra_op_threads: int = 1
    """1 by default: a batch-1 MLP gains nothing from a thread pool whose spinning threads steal
    the core that steps the env. 0 lets ONNX Runtime choose."""
    keep_latencies: bool = True
    """Send every per-call latency back, so the host can compute any statistic later."""

    # CPU placement
    cpu_affinity: tuple[int, ...] = ()
    """CPUs the worker process (and so ONNX Runtime's threads) may run on; empty: the agent's own set."""

    # Control-rate mode
    control_rate: bool = False
    """Pace the loop at the env's control period (dt) as a robot would, sleeping between ticks, and count
    ticks whose work (inference and env step) overran it. Spaced-out calls meet colder caches and lower
    clocks than back-to-back ones. An episode then lasts steps x dt of wall time (1000 x 0.05 s = 50 s for
    HalfCheetah). False: back-to-back, as fast as the device goes."""

    # Energy (only where a meter works; a device without one skips these phases)
    idle_s: float = 3.0
    """Idle window before the job, stretched to 10 updates of the slowest meter; its power is subtracted to
    give net energy. 0: no idle window, gross energy only."""
    inference_phase_s: float | None = None
    """Minimum length of the inference-only phase (observations recorded in the env, replayed back-to-back),
    stretched to 10 updates of the slowest meter. None: run it only where a meter works, for at least
    INFERENCE_PHASE_DEFAULT_S. 0: never. > 0: always (its mean call time is reported even without a meter)."""
    replay_observations: int = 1000
    """Observations recorded for the inference-only phase (a seeded rollout of the policy, untimed)."""

    # Parallel return evaluation
    quality_workers: int = 1
    """Worker processes that run the episodes. 1: every episode runs alone in the measuring worker, which times
    every call (latency from all episode steps) and meters every episode. N > 1: the episodes are run for their
    returns only, spread over N processes at once (each at batch 1, episode i still reset with seed + i, so the
    returns are those of a sequential run); latency comes from the latency phase (``latency_calls``) and no
    per-episode energy is measured. 0: one worker per CPU the job may use (``cpu_affinity``, else the device's),
    or 1 where an energy meter works, since per-episode energy needs the episodes alone. Never more workers than
    episodes."""
    latency_calls: int = 1000
    """With quality_workers > 1: timed inference calls, each followed by an env step as in an episode, that the
    measuring worker makes alone (seeded throw-away episodes, after the warm-up); summary latency and env-step
    figures come from them. 1000 puts ten samples beyond the p99."""

    # Paired, repeated latency (a deploy's later rounds)
    latency_only: bool = False
    """A later round of a repeated deploy: warm-up, then the latency phase (``latency_calls`` timed in-loop calls,
    each followed by an env step) in a fresh worker, and nothing else: no episodes for returns (seeded MuJoCo gives
    the same returns every round), no energy windows, no inference-only phase, no floor. ``n_episodes`` is then
    not run; ``quality_workers`` is 1 (no helpers)."""
    paired_with_sha256: str | None = None
    """Latency-only jobs: a stored model (the variant's baseline, same shapes) whose calls alternate with the job's
    own in the latency phase, in blocks of ``PAIRED_BLOCK_CALLS`` ordered ABBA, in the same worker process. Two
    models timed in one process meet the same memory layout and the same moment's machine; timed in two processes
    they do not, and on a shared or virtual machine a process's speed alone varies by up to 2x (README, "Measurement
    protocol"). None: the job's model alone."""

    # Operator profile (where the time goes; off by default so it never touches a timed phase)
    op_profile_calls: int = 0
    """In-loop calls (each followed by an env step, as in the timed loop) that ONNX Runtime's profiler records,
    after ``warmup_calls`` unrecorded ones, in a separate worker process started after the job's timed phases.
    Reduced on the device to mean µs per call by op type and by node, each with its share of the call, and the
    part outside any kernel (wall per call minus the kernels' sum). 0: no operator profile. Never in a
    latency-only job."""

    # TensorRT execution provider options (ignored by every other provider)
    trt_engine_cache: bool = False
    """Keep built TensorRT engines in the agent's own cache directory (its data dir, or ``drlc-agent serve
    --trt-cache-dir``; a host never names a path on the device) and reuse them in later jobs: without it
    every job rebuilds its engine, which takes seconds to minutes."""
    trt_fp16: bool = False
    """Let TensorRT pick fp16 kernels where faster (changes the numbers the policy computes)."""
    trt_int8: bool = False
    """Let TensorRT pick int8 kernels: needs a model with Q/DQ nodes (PTSQ, QAT) or a calibration table."""


OP_PROFILE_CALLS_ON = 1000
"""Profiled calls when a user turns the operator profile on without a number (``drlc-host deploy --op-profile``):
enough for every kernel's mean to settle at the profiler's 1 µs resolution."""

PAIRED_BLOCK_CALLS = 25
"""In-loop calls per block of a paired latency phase: long enough that switching models costs a negligible share
of a block's calls (the first call after a switch meets the other model's cache state), short enough that a
300-call round alternates 24 times."""

INFERENCE_PHASE_DEFAULT_S = 2.0
"""Inference-only phase length when a meter works and the request leaves it unset."""


# ---------------------------------------------------------------------------------------------- settings <-> wire
# One declared mapping, driven by the fields of MeasurementSettings and of the ProfileSettings message: every
# setting has a field of the same name on the wire (checked when this module is imported), so a setting cannot be
# added on one side and forgotten on the other. What a field means when it is absent is declared once, here:

ZERO_MEANS_DEFAULT = frozenset({"n_episodes", "warmup_calls"})
"""Plain proto3 fields whose 0 is no valid request: 0 (unset) on the wire means the agent's default. Every
other plain field carries its value as sent (seed 0, max_steps_per_episode 0, control_rate false)."""
NOT_ON_THE_WIRE = frozenset({"replay_observations"})
"""Settings no request can carry (the message has no field for them): always the agent's default."""
# ``optional`` fields (explicit presence): unset means the agent's default, a value sent is the value used,
# and a setting of None is sent as unset. ``repeated`` fields: empty means the agent's default.

_WIRE = pb.ProfileSettings.DESCRIPTOR.fields_by_name
_FIELDS = tuple(f.name for f in fields(MeasurementSettings) if f.name not in NOT_ON_THE_WIRE)
if set(_FIELDS) != set(_WIRE):
    raise ImportError(
        "MeasurementSettings and the ProfileSettings message disagree: "
        f"only in the settings {sorted(set(_FIELDS) - set(_WIRE))}, only on the wire {sorted(set(_WIRE) - set(_FIELDS))}"
    )
_REPEATED = frozenset(n for n in _FIELDS if _WIRE[n].is_repeated)
_PRESENCE = frozenset(n for n in _FIELDS if n not in _REPEATED and _WIRE[n].has_presence)


def settings_from_proto(msg: pb.ProfileSettings, defaults: MeasurementSettings) -> MeasurementSettings:
    """The settings a request asks for: each field as sent, or ``defaults``' value where the wire says "unset"."""
    values: dict[str, Any] = {name: getattr(defaults, name) for name in NOT_ON_THE_WIRE}
    for name in _FIELDS:
        value = getattr(msg, name)
        if name in _REPEATED:
            values[name] = tuple(value) or getattr(defaults, name)
        elif name in _PRESENCE:
            values[name] = value if msg.HasField(name) else getattr(defaults, name)
        elif name in ZERO_MEANS_DEFAULT:
            values[name] = value or getattr(defaults, name)
        else:
            values[name] = value
    return MeasurementSettings(**values)


def settings_request(**given: Any) -> pb.ProfileSettings:
    """The wire form of a request that names only some settings (by their MeasurementSettings names); the
    others, and any given as None, stay unset, so the agent's defaults apply. This is how a client builds a
    request: it never spells the message's fields itself.

    :raises TypeError: a name that is no setting, or one the wire does not carry
    """
    unknown = sorted(set(given) - set(_FIELDS))
    if unknown:
        raise TypeError(
            f"not a setting a request can carry: {', '.join(unknown)}; settings: {', '.join(_FIELDS)}"
        )
    msg = pb.ProfileSettings()
    for name, value in given.items():
        if name in _REPEATED:
            getattr(msg, name).extend(value or ())
        elif value is not None:
            setattr(msg, name, value)
    return msg


def settings_to_proto(settings: MeasurementSettings) -> pb.ProfileSettings:
    """Every setting on the wire, so the agent uses exactly these (None is left unset)."""
    return settings_request(**{name: getattr(settings, name) for name in _FIELDS})
