"""The artifact's passport: the JSON manifest stored in an ONNX policy's ``metadata_props``.

Both sides read it: the host writes it when it exports or compresses a policy, the agent
reads it to know which env to step and to check that the graph fits that env. It lives in
the agent's contract because the agent never imports the host.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device_agent.contract.errors import InvalidModelError
from device_agent.contract.vocabulary import ALGORITHMS, BASELINE, METHODS

MANIFEST_KEY = "drlc.manifest"
SCHEMA_VERSION = 1
INPUT_NAME = "obs"
OUTPUT_NAME = "action"


class ObsNormalization(BaseModel):
    """VecNormalize statistics, repeated for reading: the graph already applies them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: list[float]
    var: list[float]
    clip_obs: float
    epsilon: float


class ObsWrapper(BaseModel):
    """An observation wrapper the policy was trained inside, by drlc's name for it, with its parameters.

    Only names the agent implements itself (``device_agent.contract.obs_wrappers.OBS_WRAPPERS``) run; the
    agent refuses any other with the reason, because running a policy without the wrapper it was
    trained in gives observations of the wrong shape or meaning.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


#: Manifest fields left out of the JSON while they hold their default, so artifacts that need no
#: env options keep the bytes (and sha256) they had before these fields existed.
_OMIT_WHEN_EMPTY = ("env_kwargs", "obs_wrappers")


class ArtifactManifest(BaseModel):
    """Everything a reader needs to know about one policy variant.

    Holds no timestamps or host paths: the same inputs must give the same file bytes, so
    the sha256 identity of a variant is reproducible.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    name: str = Field(description="human label, e.g. 'sac-HalfCheetah-v5'")
    algo: str = Field(description=f"sb3 algorithm name in lower case: {', '.join(ALGORITHMS)}")
    env_id: str
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="options passed to gymnasium.make, e.g. use_contact_forces"
    )
    obs_wrappers: list[ObsWrapper] = Field(
        default_factory=list, description="observation wrappers around the env, innermost first"
    )
    observation_shape: list[int]
    action_shape: list[int]
    action_low: list[float]
    action_high: list[float]
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    hidden_sizes: list[int]
    activation: str
    action_postprocess: Literal["tanh_rescale", "clip", "none"]
    obs_normalization: ObsNormalization | None = None
    method: str = Field(default=BASELINE, description=", ".join(METHODS))
    method_params: dict[str, Any] = Field(default_factory=dict)
    parent_sha256: str | None = None
    source: dict[str, Any] = Field(default_factory=dict, description="where the weights came from")
    n_params: int
    training_seed: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, description="e.g. action error vs parent")
    versions: dict[str, str] = Field(default_factory=dict)

    def to_json(self) -> str:
        data = self.model_dump(mode="json")
        for key in _OMIT_WHEN_EMPTY:
            if not data[key]:
                del data[key]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ArtifactManifest:
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise InvalidModelError(f"the model's drlc manifest is malformed: {exc}") from exc


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
