"""What the device is: hardware, software and measuring abilities, reported by GetDeviceInfo."""

from __future__ import annotations

import platform
import socket
import uuid
from pathlib import Path

import psutil

from device_agent.energy import probe
from device_agent.contract.proto import agent_pb2 as pb
from device_agent.jobs.convert import meter_to_proto
from device_agent.contract.platform_facts import cpu_model_and_flags, library_versions
from device_agent.limits import AgentLimits


def agent_fingerprint(data_dir: Path) -> str:
    """A random id made on first start and kept in the data dir: results stay tied to this install."""
    path = data_dir / "agent-id"
    if not path.is_file():
        path.write_text(uuid.uuid4().hex + "\n")
    return path.read_text().strip()


def available_providers() -> list[str]:
    import onnxruntime as ort  # heavy (~0.6 s): drlc-agent --help and the host's imports do not pay for it

    return list(ort.get_available_providers())


def nvidia_gpus() -> list[str]:
    """Names of NVIDIA GPUs through NVML; an empty list where there is no driver."""
    try:
        import pynvml  # optional: only where NVIDIA's driver and nvidia-ml-py are installed
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        names = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return names
    finally:
        pynvml.nvmlShutdown()


def device_info(data_dir: Path, limits: AgentLimits, providers: list[str]) -> pb.DeviceInfo:
    cpu_model, flags = cpu_model_and_flags()
    return pb.DeviceInfo(
        hostname=socket.gethostname(),
        fingerprint=agent_fingerprint(data_dir),
        os=f"{platform.system()} {platform.release()}",
        machine=platform.machine(),
        cpu_model=cpu_model,
        n_cpu_logical=psutil.cpu_count(logical=True) or 0,
        n_cpu_physical=psutil.cpu_count(logical=False) or 0,
        cpu_flags=flags,
        memory_total_bytes=psutil.virtual_memory().total,
        gpus=nvidia_gpus(),
        execution_providers=providers,
        versions=library_versions(),
        energy_meters=[meter_to_proto(s) for s in probe.statuses()],
        limits=pb.AgentLimits(
            max_model_bytes=limits.max_model_bytes,
            max_episodes=limits.max_episodes,
            max_steps_per_episode=limits.max_steps_per_episode,
            max_job_duration_s=limits.max_job_duration_s,
        ),
    )
