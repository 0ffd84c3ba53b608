"""Target profiles: ``profiles/NAME.toml`` says where a device's agent is and how to measure there."""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from host.measure.agent_client import ClientSecurity
from host.measure.config_errors import describe
from host.errors import ProfileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class MeasurementOverrides(BaseModel):
    """The device-specific measurement knobs (see device_agent.settings.MeasurementSettings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_episodes: int | None = None
    warmup_calls: int | None = None
    max_steps_per_episode: int | None = None
    intra_op_threads: int | None = None
    keep_latencies: bool | None = None
    cpu_affinity: list[int] | None = Field(
        default=None, description="CPUs the agent's worker may run on (e.g. [3] on a Pi with isolcpus=3)"
    )
    control_rate: bool | None = Field(
        default=None, description="pace the loop at the env's control period and count deadline misses"
    )
    idle_s: float | None = Field(
        default=None, ge=0, description="idle window before each job where a meter works (agent default 3 s)"
    )
    inference_phase_s: float | None = Field(
        default=None,
        ge=0,
        description="minimum inference-only phase; unset: only where a meter works (2 s), 0: never",
    )
    op_profile_calls: int | None = Field(
        default=None,
        ge=0,
        description="in-loop calls ONNX Runtime's profiler records after the timed phases (where the time "
        "goes, by op type); unset or 0: no operator profile",
    )
    trt_engine_cache: bool | None = Field(
        default=None,
        description="TensorRT: cache built engines in the agent's own directory and reuse them in later jobs",
    )
    trt_fp16: bool | None = Field(default=None, description="TensorRT: allow fp16 kernels")
    trt_int8: bool | None = Field(
        default=None, description="TensorRT: allow int8 kernels (Q/DQ models or a calibration table)"
    )


class TargetProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    address: str = Field(description="host:port of the agent; ignored when spawn_local is true")
    spawn_local: bool = Field(
        default=False, description="start an agent on this machine for the deploy and stop it after"
    )
    tunnel: str = Field(
        default="",
        description="command that makes address reach the agent (e.g. an ssh -L port forward); "
        "printed when the agent cannot be reached",
    )
    docs: str = Field(
        default="", description="how to install and run the agent there (a path in this checkout)"
    )
    execution_providers: list[str] = Field(
        default_factory=list, description="preference order; empty: the device's best"
    )
    meters: list[str] = Field(
        default_factory=list,
        description="energy meters this device should have (nvml, rapl, ina3221, pmic, battery); "
        "`drlc-host targets` warns when its agent has none of one kind",
    )
    measurement: MeasurementOverrides = Field(default_factory=MeasurementOverrides)
    security: SecurityOverrides = Field(default_factory=lambda: SecurityOverrides())

    def client_security(self) -> ClientSecurity:
        return self.security.load(self.name)

    def unreachable(self, address: str | None = None, suggest_targets: bool = True) -> str:
        """What to tell a user whose deploy cannot reach this target's agent: what to check, where to read."""
        address = address or self.address
        text = f"cannot reach the agent at {address}: is `drlc-agent serve` running there?"
        if self.tunnel:
            text += f" Open the tunnel first: {self.tunnel}"
        also = "; `drlc-host targets` shows which agents answer" if suggest_targets else ""
        text += f" (see {self.docs or 'docs/targets/README.md'}{also})"
        return text


class SecurityOverrides(BaseModel):
    """How the host authenticates to this target's agent. Secrets are never written in the profile:
    the token comes from an environment variable or a file the profile names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_env: str | None = Field(default=None, description="environment variable holding the agent token")
    token_file: str | None = Field(default=None, description="file holding the agent token")
    tls_ca: str | None = Field(
        default=None, description="PEM CA that signed the agent's certificate (turns on TLS)"
    )
    tls_client_cert: str | None = Field(default=None, description="PEM client certificate, for mutual TLS")
    tls_client_key: str | None = Field(default=None, description="PEM client key, for mutual TLS")
    tls_server_name: str | None = Field(
        default=None, description="name in the agent's certificate, if not the address"
    )
    allow_plaintext_token: bool = Field(
        default=False,
        description="send the token without TLS to a non-loopback address (anyone on the path can read it)",
    )

    def load(self, profile: str) -> ClientSecurity:
        def read(path: str | None, what: str) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).expanduser().read_bytes()
            except OSError as exc:
                raise ProfileError(f"profile {profile!r}: cannot read the {what} {path}: {exc}") from exc

        token = None
        if self.token_env is not None:
            token = os.environ.get(self.token_env)
            if not token:
                raise ProfileError(
                    f"profile {profile!r} takes its agent token from ${self.token_env}, which is not set"
                )
        elif self.token_file is not None:
            token = (read(self.token_file, "token file") or b"").decode().strip()
        if (self.tls_client_cert is None) != (self.tls_client_key is None):
            raise ProfileError(
                f"profile {profile!r}: mutual TLS needs both tls_client_cert and tls_client_key"
            )
        return ClientSecurity(
            token=token or None,
            tls_ca=read(self.tls_ca, "TLS CA"),
            tls_client_cert=read(self.tls_client_cert, "client certificate"),
            tls_client_key=read(self.tls_client_key, "client key"),
            tls_server_name=self.tls_server_name,
            allow_plaintext_token=self.allow_plaintext_token,
        )


TargetProfile.model_rebuild()


def profile_dirs(explicit: Path | None = None) -> list[Path]:
    """Where profiles are looked up, first match wins: --profiles-dir, $DRLC_PROFILES, ./profiles, the checkout's."""
    dirs = [explicit] if explicit else []
    if env := os.environ.get("DRLC_PROFILES"):
        dirs.append(Path(env))
    dirs += [Path.cwd() / "profiles", Path(__file__).resolve().parents[2] / "profiles"]
    return dirs


def find_profile(name: str, explicit_dir: Path | None = None) -> Path:
    candidate = Path(name)
    if candidate.suffix == ".toml" and candidate.is_file():
        return candidate
    for folder in profile_dirs(explicit_dir):
        path = folder / f"{name}.toml"
        if path.is_file():
            return path
    searched = ", ".join(dict.fromkeys(str(d) for d in profile_dirs(explicit_dir)))
    known = [p.stem for p in list_profiles(explicit_dir)]
    close = difflib.get_close_matches(name, known, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    raise ProfileError(
        f"no target {name!r}; {guess}known targets: {', '.join(known) or 'none'} "
        f"(profiles/NAME.toml in {searched})"
    )


def load_profile(path: Path) -> TargetProfile:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"cannot read {path}: {exc}") from exc
    data.setdefault("name", path.stem)
    try:
        return TargetProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(describe(path, exc, TargetProfile)) from None


def list_profiles(explicit_dir: Path | None = None) -> list[Path]:
    seen: dict[str, Path] = {}
    for folder in profile_dirs(explicit_dir):
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            seen.setdefault(path.stem, path)
    return list(seen.values())
