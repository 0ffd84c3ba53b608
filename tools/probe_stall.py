"""Probe: how fast short calls answer while an agent's uploads and job streams are all held open.

Starts a real agent with its default limits on loopback, runs a paced job (slow by construction),
opens N uploads that send a header and then nothing and N WatchJob followers of that job, then
times the health check and GetDeviceInfo (the calls a host makes first) several times. Also reports
how the held calls ended: stalled uploads ended by the agent (CANCELLED) or refused beyond the cap,
followers admitted or refused (RESOURCE_EXHAUSTED).

    python tools/probe_stall.py                  # 24 stalled uploads, 24 followers
    python tools/probe_stall.py --stalled 64

Prints one summary line: ``probe_stall: health p50 … ms, max … ms; device info …``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from device_agent.contract.proto import agent_pb2 as pb  # noqa: E402
from device_agent.service.server import create_server  # noqa: E402
from device_agent.limits import AgentLimits  # noqa: E402
from host.measure.agent_client import AgentClient  # noqa: E402
from host.policies.random_policies import random_policy  # noqa: E402


def paced_request(job_id: str, sha: str) -> pb.ProfileRequest:
    """A job that is slow by construction, whatever the CPU: HalfCheetah never terminates early, and in
    control-rate mode each of its 1000 steps waits for the env's control period (0.05 s), so its episode
    lasts at least 50 s of wall time (as tests/device_agent/test_server.py's paced_request)."""
    settings = pb.ProfileSettings(
        n_episodes=1, seed=7, warmup_calls=10, keep_latencies=True, control_rate=True, quality_workers=1
    )
    return pb.ProfileRequest(job_id=job_id, model_sha256=sha, env_id="HalfCheetah-v5", settings=settings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalled", type=int, default=24, help="stalled uploads and followers, each")
    parser.add_argument("--calls", type=int, default=20, help="timed health and device-info calls")
    args = parser.parse_args()
    limits = AgentLimits(upload_idle_s=30.0)
    with tempfile.TemporaryDirectory() as tmp:
        agent = create_server("127.0.0.1:0", Path(tmp) / "agent", limits=limits)
        release = threading.Event()
        try:
            with AgentClient(f"127.0.0.1:{agent.port}") as c:
                c.wait_ready()
                data, sha, _ = random_policy("HalfCheetah-v5", hidden=(8,))
                model = Path(tmp) / "upload.onnx"
                model.write_bytes(data)
                c.upload(model, sha)
                job = c.run_profile(paced_request("held", sha))
                next(job)

                def messages():
                    yield pb.UploadModelRequest(header=pb.UploadHeader(sha256="ab" * 32, size_bytes=1000))
                    release.wait()

                uploads = [c.stub.UploadModel.future(messages()) for _ in range(args.stalled)]
                followers, admitted, refused = [], 0, 0
                for _ in range(args.stalled):
                    f = c.watch_job("held")
                    followers.append(f)
                    try:
                        next(f)
                        admitted += 1
                    except grpc.RpcError:
                        refused += 1
                health = health_pb2_grpc.HealthStub(c.channel)
                health_ms, info_ms = [], []
                for _ in range(args.calls):
                    t0 = time.perf_counter()
                    health.Check(health_pb2.HealthCheckRequest(), timeout=30)
                    t1 = time.perf_counter()
                    c.stub.GetDeviceInfo(pb.GetDeviceInfoRequest(), timeout=30)
                    t2 = time.perf_counter()
                    health_ms.append((t1 - t0) * 1e3)
                    info_ms.append((t2 - t1) * 1e3)
                t_end = time.perf_counter()
                codes = [u.exception(timeout=120).code().name for u in uploads]
                ended_after_s = time.perf_counter() - t_end
                for f in followers:
                    f.cancel()
                c.cancel_job("held")
        finally:
            release.set()
            agent.stop(grace_s=0)
    print(
        f"{args.stalled} stalled uploads: " + ", ".join(f"{codes.count(k)} {k}" for k in sorted(set(codes)))
    )
    print(
        f"uploads ended by the agent within {ended_after_s:.1f} s after the timed calls (idle deadline 30 s)"
    )
    print(f"{args.stalled} followers: {admitted} admitted, {refused} refused (RESOURCE_EXHAUSTED)")
    print(
        f"probe_stall: health p50 {statistics.median(health_ms):.1f} ms, max {max(health_ms):.1f} ms; "
        f"device info p50 {statistics.median(info_ms):.1f} ms, max {max(info_ms):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
