"""Benchmark: model upload throughput over loopback, and what an unchanged sweep costs to deploy again.

Throughput: a large valid drlc model (a random 2048-2048-2048 actor, about 34 MB) is uploaded to an
agent process on loopback (1 MiB chunks, the agent checks the sha256, validates the graph and stores
it). The baseline, in the same rounds: the same bytes over a plain TCP loopback socket to a child
process that hashes and writes them, which is the least any upload has to do. Each round uploads a
fresh model (another seed), so deduplication never shortcuts it.

Re-deploy: 32 small models are deployed to the local target (1 short episode each), then the same
deploy again (nothing to do: goal 0 bytes sent), then again with --force (jobs run again, models
are already there: 0 model bytes). Model bytes are counted at the host's upload call.

    python tools/bench_upload.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

SINK = """
import hashlib, socket, sys
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    size = int.from_bytes(conn.recv(8, socket.MSG_WAITALL), "big")
    if size == 0:
        break
    digest, left = hashlib.sha256(), size
    with open(sys.argv[1], "wb") as out:
        while left:
            chunk = conn.recv(min(left, 1 << 20))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    conn.sendall(digest.digest())
    conn.close()
"""


def socket_upload(port: int, data: bytes) -> float:
    """Seconds to send ``data`` to the sink and get its sha256 back."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(len(data).to_bytes(8, "big"))
        for start in range(0, len(data), 1 << 20):
            conn.sendall(data[start : start + (1 << 20)])
        digest = conn.recv(32, socket.MSG_WAITALL)
    if digest != hashlib.sha256(data).digest():
        raise SystemExit("the loopback sink got other bytes than were sent")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--hidden", type=int, default=2048, help="width of the 3 hidden layers of the big model"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from bench_common import BenchResult, finish, paired_ratio, spread

    from host.measure import agent_client
    from host.measure.agent_client import AgentClient
    from host.store.artifacts import store_artifact
    from device_agent.contract.validity import ValidityRule
    from host.measure.deploy import DeployConfig, deploy
    from host.measure.local_agent import local_agent
    from host.measure.profiles import TargetProfile
    from host.store.results_db import ResultsDB
    from host.store.workspace import Workspace
    from host.policies.random_policies import random_policy

    rows = []
    agent_s, sink_s = [], []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sink = subprocess.Popen(
            [sys.executable, "-c", SINK, str(tmp / "sink.bin")], stdout=subprocess.PIPE, text=True
        )
        try:
            port = int(sink.stdout.readline())  # type: ignore[union-attr]
            with local_agent(tmp / "agent") as agent, AgentClient(agent.address, timeout_s=300) as client:
                client.wait_ready()
                for r in range(args.rounds):
                    data, sha, _ = random_policy("HalfCheetah-v5", hidden=(args.hidden,) * 3, seed=100 + r)
                    path = tmp / f"big-{r}.onnx"
                    path.write_bytes(data)
                    first_sink = r % 2 == 0
                    if first_sink:
                        sink_s.append(socket_upload(port, data))
                    t0 = time.perf_counter()
                    reply = client.upload(path, sha)
                    agent_s.append(time.perf_counter() - t0)
                    if reply.already_present:
                        raise SystemExit("the big model was already on the agent: not a fresh upload")
                    if not first_sink:
                        sink_s.append(socket_upload(port, data))
                    mb = len(data) / 1e6
                    rows.append(
                        {
                            "round": r,
                            "model MB": f"{mb:.1f}",
                            "agent upload MB/s": f"{mb / agent_s[-1]:.0f}",
                            "socket floor MB/s": f"{mb / sink_s[-1]:.0f}",
                            "agent / floor": f"{sink_s[-1] / agent_s[-1]:.2f}",
                        }
                    )
                    print(rows[-1], flush=True)
        finally:
            try:
                with socket.create_connection(("127.0.0.1", port)) as conn:
                    conn.sendall((0).to_bytes(8, "big"))
            except OSError:
                pass
            sink.wait(timeout=10)
        throughput = paired_ratio(sink_s, agent_s)  # agent MB/s over floor MB/s
        mb_s = len(data) / 1e6 / sorted(agent_s)[len(agent_s) // 2]

        # an unchanged sweep deployed again
        sent: list[int] = []
        original = agent_client.AgentClient.upload

        def counting_upload(self, path: Path, sha256: str):
            sent.append(path.stat().st_size)
            return original(self, path, sha256)

        agent_client.AgentClient.upload = counting_upload  # type: ignore[method-assign]
        workspace = Workspace.resolve(tmp / "home")
        phases = {}
        with ResultsDB(workspace.db_path) as db, local_agent(tmp / "agent2") as agent:
            models = [
                store_artifact(workspace, db, *random_policy("HalfCheetah-v5", hidden=(64, 64), seed=s)[::2])
                for s in range(32)
            ]
            profile = TargetProfile(name="loopback", address=agent.address)
            cfg = DeployConfig(
                n_episodes=1,
                max_steps_per_episode=10,
                warmup_calls=1,
                quality_workers=1,
                rounds=1,
                validity_rule=ValidityRule.never(),
            )
            for phase, config in (
                ("first", cfg),
                ("again", cfg),
                ("again --force", dataclasses.replace(cfg, force=True)),
            ):
                sent.clear()
                t0 = time.perf_counter()
                outcome = deploy(models, profile, workspace, db, config)
                phases[phase] = (
                    sum(sent),
                    len(outcome.succeeded),
                    len(outcome.skipped),
                    time.perf_counter() - t0,
                )
        agent_client.AgentClient.upload = original  # type: ignore[method-assign]
    for phase, (nbytes, ran, skipped, seconds) in phases.items():
        rows.append(
            {
                "round": f"deploy {phase}",
                "model MB": f"{nbytes / 1e6:.2f}",
                "agent upload MB/s": f"{ran} jobs run",
                "socket floor MB/s": f"{skipped} skipped",
                "agent / floor": f"{seconds:.1f} s",
            }
        )
        print(
            f"deploy {phase}: {nbytes} model bytes sent, {ran} jobs run, {skipped} skipped, {seconds:.1f} s"
        )
    again_bytes = phases["again"][0] + phases["again --force"][0]
    summary = (
        f"bench_upload: {len(data) / 1e6:.0f} MB model over loopback, {args.rounds} rounds: median {mb_s:.0f} MB/s, "
        f"median paired ratio agent/socket floor = {throughput:.2f} (rounds {spread([s / a for s, a in zip(sink_s, agent_s, strict=True)])}); "
        f"32-model sweep deployed again: {phases['again'][0]} bytes sent, {phases['again'][1]} jobs (goal 0); "
        f"again with --force: {phases['again --force'][0]} model bytes, {phases['again --force'][1]} jobs re-run"
    )
    result = BenchResult(
        "bench_upload", summary, throughput, "re-deploy sends 0 bytes", again_bytes == 0, rows
    )
    result.headline = (
        f"re-deploy: {again_bytes} bytes; upload {mb_s:.0f} MB/s = {throughput:.2f} x socket floor"
    )
    finish(result, args.json)


if __name__ == "__main__":
    main()
