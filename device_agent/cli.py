"""``drlc-agent``: run the device agent. argparse, not Typer: the agent installs with few dependencies."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from device_agent import __version__
from device_agent.contract.errors import AgentError
from device_agent.service.security import TOKEN_ENV, SecurityConfig
from device_agent.service.server import create_server
from device_agent.limits import AgentLimits


def default_data_dir() -> Path:
    """$DRLC_AGENT_HOME, else ~/.local/share/drlc-agent (XDG_DATA_HOME respected)."""
    if env := os.environ.get("DRLC_AGENT_HOME"):
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "drlc-agent"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drlc-agent", description="drlc device agent")
    parser.add_argument("-V", "--version", action="version", version=f"drlc-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve profile jobs over gRPC until stopped (Ctrl-C / SIGTERM)")
    serve.add_argument(
        "--address", default="127.0.0.1:50051", help="host:port to listen on (port 0: any free port)"
    )
    serve.add_argument("--data-dir", type=Path, default=None, help="where models and job records live")
    serve.add_argument(
        "--trt-cache-dir",
        type=Path,
        default=None,
        help="where TensorRT engines are cached for jobs that ask for it (default: DATA_DIR/trt_engines)",
    )
    serve.add_argument("--port-file", type=Path, default=None, help="write the bound port here once serving")
    serve.add_argument("--max-model-mb", type=float, default=AgentLimits.max_model_bytes / 2**20)
    serve.add_argument("--max-job-duration-s", type=float, default=AgentLimits.max_job_duration_s)
    serve.add_argument(
        "--max-job-memory-mb",
        type=float,
        default=0,
        help="resident memory one job's workers may hold together (0: half of this device's memory)",
    )
    serve.add_argument(
        "--max-store-mb",
        type=float,
        default=AgentLimits.max_store_bytes / 2**20,
        help="total size of stored models",
    )
    serve.add_argument(
        "--upload-idle-s",
        type=float,
        default=AgentLimits.upload_idle_s,
        help="end an upload that sends nothing for this long",
    )
    serve.add_argument(
        "--max-threads",
        type=int,
        default=AgentLimits.max_intra_op_threads,
        help="most ONNX Runtime threads a job may ask for (0: this device's CPU count)",
    )
    serve.add_argument(
        "--max-streams",
        type=int,
        default=AgentLimits.max_streams,
        help="job streams (RunProfile, WatchJob) open at once; more are refused",
    )
    serve.add_argument(
        "--token-file", type=Path, default=None, help=f"file holding the client token (else ${TOKEN_ENV})"
    )
    serve.add_argument("--tls-cert", type=Path, default=None, help="PEM server certificate (chain)")
    serve.add_argument("--tls-key", type=Path, default=None, help="PEM private key of the certificate")
    serve.add_argument(
        "--tls-client-ca", type=Path, default=None, help="PEM CA: require client certificates (mutual TLS)"
    )
    serve.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback address without token or TLS"
    )
    serve.add_argument(
        "--allow-env",
        action="append",
        default=[],
        metavar="ENV_ID",
        help="allow this env id (repeatable); default: Gymnasium MuJoCo envs",
    )
    serve.add_argument("--log-level", default="INFO")
    return parser


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    limits = AgentLimits(
        max_model_bytes=int(args.max_model_mb * 2**20),
        max_job_duration_s=args.max_job_duration_s,
        max_worker_rss_bytes=int(args.max_job_memory_mb * 2**20),
        max_store_bytes=int(args.max_store_mb * 2**20),
        upload_idle_s=args.upload_idle_s,
        max_streams=args.max_streams,
        max_intra_op_threads=args.max_threads,
        allowed_envs=tuple(args.allow_env),
    )
    data_dir = args.data_dir or default_data_dir()
    if args.insecure:
        logging.warning("--insecure: anyone who can reach this port can upload and run models")
    try:
        security = SecurityConfig.load(args.token_file, args.tls_cert, args.tls_key, args.tls_client_ca)
        agent = create_server(
            args.address,
            data_dir,
            limits,
            insecure=args.insecure,
            security=security,
            trt_cache_dir=args.trt_cache_dir,
        )
    except AgentError as exc:
        print(f"drlc-agent: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(str(agent.port))
        tmp.replace(args.port_file)
    print(f"drlc-agent serving on port {agent.port}", flush=True)
    stop.wait()
    agent.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
