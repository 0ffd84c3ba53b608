"""Entry point of a job's worker process.

Each job gets a fresh process: a model that crashes ONNX Runtime takes down only this
process, and the memory figures describe a process that holds just this one model.
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from pathlib import Path

from device_agent.errors import AgentError
from device_agent.manifest import ArtifactManifest
from device_agent.results import JobError
from device_agent.settings import MeasurementSettings


def worker_main(
    conn: Connection, model_path: str, manifest_json: str, env_id: str, settings: MeasurementSettings
) -> None:
    from device_agent.runner import run_profile

    try:
        run_profile(Path(model_path), ArtifactManifest.from_json(manifest_json), env_id, settings, conn.send)
    except AgentError as exc:
        conn.send(JobError(type(exc).__name__, str(exc)))
    except Exception as exc:  # report anything else too: the agent turns it into a failed job
        conn.send(JobError("WorkerError", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
