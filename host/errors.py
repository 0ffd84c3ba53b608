"""Errors the host raises. The CLI catches :class:`DrlcError` at the command boundary and prints it.

Every message says what was given, what is allowed and what to try instead.
"""

from __future__ import annotations


class DrlcError(Exception):
    """Base of every error drlc-host reports to a user (as opposed to a bug)."""


class CheckpointError(DrlcError):
    """A checkpoint (SB3 zip, RL Zoo folder, vecnormalize.pkl) cannot be found, read or understood."""


class SpaceMismatchError(CheckpointError):
    """A policy's observation or action space does not fit the env it is meant to run in."""


class ExportError(DrlcError):
    """A policy cannot be turned into a drlc ONNX artifact."""


class UnsupportedPolicyError(ExportError):
    """The policy is outside what drlc exports: continuous actions from a flat-observation MLP actor."""


class ProfileError(DrlcError):
    """A target profile (profiles/NAME.toml) is missing or malformed."""


class DeviceError(DrlcError):
    """A target's agent could not be reached or refused a request."""


class StoreError(DrlcError):
    """The local workspace (artifacts, results database) cannot serve the request."""


class CompressionError(DrlcError):
    """A compression method cannot make a valid variant from this baseline."""
