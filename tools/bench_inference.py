"""Benchmark: the agent's measured p50 inference latency against the usual ways of calling the same actor.

The agent's figure is the real thing: the p50 a profile job reports (a gRPC agent on loopback, a
forked worker, every call timed with perf_counter_ns inside the MuJoCo loop, IO binding on
preallocated buffers). Beside it, in this process, the same actor is called inside the same kind
of loop (same env, same seeded episodes, the same clock around the call alone) the usual ways:

- plain ONNX Runtime ``session.run(None, {"obs": x})`` on a ready float32 input (the goal's baseline),
- torch eager (the same weights as an ``nn.Sequential``, ``torch.no_grad``, 1 thread),
- a bare numpy forward pass of the same weights.

Inside the loop every call meets caches MuJoCo has just used, so calls are 2-3x slower than
back-to-back ones; the back-to-back figures (recorded observations, one call after another) are
printed too, for comparison with figures quoted elsewhere. Rounds interleave all of them.

If OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE are set, this process (and the agent it starts) unsets them
before numpy loads, because they slow numpy's matrix products; the output says so.

    python tools/bench_inference.py [--model baseline.onnx] [--env HalfCheetah-v5]

Summary line: ``bench_inference: ... agent p50 / session.run p50 = 0.74 (goal <= 0.8) ...``.
"""

from __future__ import annotations

import os

UNSET = [name for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if os.environ.pop(name, None) is not None]

import argparse  # noqa: E402  (after the environment is fixed, before numpy loads)
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))


def candidates(data: bytes, buffer) -> dict[str, Callable[[], object]]:
    """Each way of calling the actor on whatever ``buffer`` holds (a (1, obs_dim) float32 array)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from host.compress.torch_actor import mlp_from_spec
    from host.policies.onnx_reader import spec_from_onnx

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    run = session.run

    def plain() -> object:
        return run(None, {"obs": buffer})[0]

    spec, _ = spec_from_onnx(data)
    torch.set_num_threads(1)
    mlp = mlp_from_spec(spec).eval()
    as_tensor = torch.from_numpy(buffer)  # shares memory: sees every write into buffer
    # the graph's input and output stages with their constants made once, as a deployed torch actor has them
    mean = scale = None
    if spec.obs_norm is not None:
        mean = torch.tensor(np.asarray(spec.obs_norm.mean, dtype=np.float32))
        scale = torch.tensor(np.asarray(spec.obs_norm.scale, dtype=np.float32))
        clip_obs = spec.obs_norm.clip_obs
    low = torch.tensor(np.asarray(spec.action_low, dtype=np.float32))
    high = torch.tensor(np.asarray(spec.action_high, dtype=np.float32))
    half, mid = 0.5 * (high - low), 0.5 * (high + low)
    if spec.postprocess != "tanh_rescale" or spec.pre_squash_clip is not None:
        raise SystemExit("the torch reference here supports tanh-rescaled actors without pre-squash clipping")

    def torch_eager() -> object:
        with torch.inference_mode():
            x = as_tensor if mean is None else torch.clamp((as_tensor - mean) * scale, -clip_obs, clip_obs)
            return torch.tanh(mlp(x)) * half + mid

    sys.path.insert(0, str(ROOT / "tools"))
    from bench_variants import numpy_call

    forward = numpy_call(spec)

    def numpy_forward() -> object:
        return forward(buffer)

    reference = plain()
    for name, call in (("torch eager", torch_eager), ("numpy", numpy_forward)):
        got = np.asarray(call(), dtype=np.float32)
        if not np.allclose(got, reference, atol=1e-4):
            raise SystemExit(
                f"{name} does not compute the same actions as the ONNX graph: {got} vs {reference}"
            )
    return {"session.run": plain, "torch eager": torch_eager, "numpy": numpy_forward}


def in_loop(env, buffer, call: Callable[[], object], seeds: list[int]):
    """The agent's loop, with ``call`` in place of the bound session: per-call times (ns) around the call."""
    import numpy as np

    clock = time.perf_counter_ns
    times: list[int] = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            buffer[0] = obs
            t0 = clock()
            action = call()
            t1 = clock()
            times.append(t1 - t0)
            obs, _, terminated, truncated, _ = env.step(np.asarray(action)[0])
            done = terminated or truncated
    return np.asarray(times)


def back_to_back(buffer, call: Callable[[], object], observations) -> float:
    import numpy as np

    clock = time.perf_counter_ns
    times = np.empty(len(observations), dtype=np.int64)
    for i, row in enumerate(observations):
        buffer[0] = row
        t0 = clock()
        call()
        times[i] = clock() - t0
    return float(np.median(times))


def agent_job(client, sha: str, seeds: list[int], job_id: str):
    from device_agent.contract.proto import agent_pb2 as pb

    request = pb.ProfileRequest(
        job_id=job_id,
        model_sha256=sha,
        settings=pb.ProfileSettings(
            n_episodes=len(seeds), seed=seeds[0], warmup_calls=100, intra_op_threads=1, quality_workers=1
        ),
    )
    events = list(client.run_profile(request))
    if not events[-1].HasField("summary"):
        raise SystemExit(f"agent job {job_id} failed: {events[-1]}")
    return events[-1].summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, help="a drlc baseline .onnx (default: random 256-256 SAC actor)"
    )
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per round and candidate")
    parser.add_argument("--rounds", type=int, default=10, help="short rounds pair the sides closely in time")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import gymnasium as gym
    import numpy as np
    from bench_common import BenchResult, finish, paired_ratio, spread

    from device_agent.contract.manifest import sha256_bytes
    from device_agent.measure.session import bind_session, open_session
    from device_agent.service.server import create_server
    from device_agent.contract.settings import MeasurementSettings
    from host.measure.agent_client import AgentClient

    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            from host.policies.random_policies import random_policy

            data, _, _ = random_policy(args.env, hidden=(256, 256))
        else:
            data = args.model.read_bytes()
        sha = sha256_bytes(data)
        (Path(tmp) / "policy.onnx").write_bytes(data)
        env = gym.make(args.env)
        buffer = np.zeros((1, *env.observation_space.shape), dtype=np.float32)
        calls = candidates(data, buffer)
        bound, how = bind_session(
            open_session(data, MeasurementSettings(execution_providers=("CPUExecutionProvider",))),
            buffer,
            env.action_space.shape,
        )
        calls = {"agent's call, in this process": bound, **calls}
        observations = []
        obs, _ = env.reset(seed=10_000)
        for _ in range(2000):  # recorded once, for the back-to-back figures
            observations.append(obs.astype(np.float32))
            buffer[0] = obs
            obs, _, terminated, truncated, _ = env.step(np.asarray(bound())[0])
            if terminated or truncated:
                obs, _ = env.reset()
        p50: dict[str, list[float]] = {name: [] for name in ["agent", *calls]}
        b2b: dict[str, list[float]] = {name: [] for name in calls}
        timer_ns, floor_ns = [], []
        agent = create_server("127.0.0.1:0", Path(tmp) / "agent")
        try:
            with AgentClient(f"127.0.0.1:{agent.port}") as client:
                client.wait_ready()
                client.upload(Path(tmp) / "policy.onnx", sha)
                for r in range(args.rounds):
                    seeds = list(range(r * args.episodes, (r + 1) * args.episodes))
                    summary = agent_job(client, sha, seeds, f"bench-inference-{r}")
                    p50["agent"].append(summary.inference.p50_ns)
                    timer_ns.append(summary.runtime.timer_overhead_ns)
                    floor_ns.append(summary.runtime_floor.p50_ns)
                    for name, call in calls.items():
                        p50[name].append(float(np.median(in_loop(env, buffer, call, seeds))))
                        b2b[name].append(back_to_back(buffer, call, observations))
        finally:
            agent.stop(grace_s=0)
    base = p50["session.run"]
    rows = []
    for name, values in p50.items():
        rows.append(
            {
                "call": name,
                "in-loop p50 µs": f"{np.median(values) / 1e3:.1f}",
                "agent / this": f"{paired_ratio(p50['agent'], values):.2f}",
                "back-to-back p50 µs": f"{np.median(b2b[name]) / 1e3:.1f}" if name in b2b else "–",
                "rounds (in-loop µs)": spread([v / 1e3 for v in values]),
            }
        )
    print(f"{'call':32} {'in-loop p50 µs':>15} {'agent/this':>11} {'b2b p50 µs':>11}")
    for row in rows:
        print(
            f"{row['call']:32} {row['in-loop p50 µs']:>15} {row['agent / this']:>11} {row['back-to-back p50 µs']:>11}"
        )
    ratio = paired_ratio(p50["agent"], base)
    notes = [
        f"the agent calls the model through {how}; timer cost (one perf_counter_ns pair, measured by the agent): "
        f"{np.median(timer_ns):.0f} ns; runtime floor (trivial graph, same call path): {np.median(floor_ns) / 1e3:.1f} µs"
    ]
    if UNSET:
        notes.append(f"unset {', '.join(UNSET)} in this benchmark's process (they slow numpy)")
    summary_line = (
        f"bench_inference: {args.env} fp32 actor, {args.episodes} episodes x {args.rounds} rounds in-loop; agent p50 "
        f"{np.median(p50['agent']) / 1e3:.1f} µs, session.run {np.median(base) / 1e3:.1f} µs, torch eager "
        f"{np.median(p50['torch eager']) / 1e3:.1f} µs, numpy {np.median(p50['numpy']) / 1e3:.1f} µs; median paired "
        f"ratio agent/session.run = {ratio:.2f} (goal <= 0.8), agent/torch = "
        f"{paired_ratio(p50['agent'], p50['torch eager']):.2f}, agent/numpy = {paired_ratio(p50['agent'], p50['numpy']):.2f}; "
        f"timer {np.median(timer_ns):.0f} ns" + (f"; unset {', '.join(UNSET)}" if UNSET else "")
    )
    finish(
        BenchResult("bench_inference", summary_line, ratio, "<= 0.8", ratio <= 0.8, rows, notes), args.json
    )


if __name__ == "__main__":
    main()
