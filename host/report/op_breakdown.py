"""Where the time of one inference call goes: a variant's operator profile beside its baseline's.

The agent's operator profile (agent.proto ``OpProfile``, stored in the jobs table's ``op_profile`` column) gives
the mean kernel time per call of every op type, and the part of the call outside any kernel. Here op types are
put in a few named groups (:data:`OP_GROUPS`) so a change reads as a cause - "dynamic quantization +14.9 µs,
unfused activations +8.3 µs, gemm -13.3 µs" - and the runtime floor (a weightless graph of the same I/O, timed
in the same loop) is set beside the call, to show what no compression can remove.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

OP_GROUPS: dict[str, tuple[str, ...]] = {
    "gemm": ("Gemm", "FusedGemm", "MatMul", "FusedMatMul", "MatMulNBits"),
    "dynamic quantization": (
        "DynamicQuantizeMatMul",
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "MatMulIntegerToFloat",
        "ConvInteger",
    ),
    "int8 kernels": ("QLinearMatMul", "QGemm", "QLinearConv", "QLinearAdd", "QLinearMul", "QLinearSigmoid"),
    "quantize/dequantize": ("QuantizeLinear", "DequantizeLinear"),
    "activations": (
        "Relu",
        "Tanh",
        "Sigmoid",
        "LeakyRelu",
        "Elu",
        "Selu",
        "Softplus",
        "Clip",
        "HardSigmoid",
        "Gelu",
        "FastGelu",
        "QuickGelu",
    ),
    "elementwise": ("Add", "Sub", "Mul", "Div", "Min", "Max", "Neg", "Sqrt", "Reciprocal"),
}
"""Op-type groups the why line speaks of; an op type in none of them is named by itself."""

_GROUP_OF = {op: group for group, ops in OP_GROUPS.items() for op in ops}

FUSING_OPS = ("FusedGemm", "FusedMatMul", "FusedConv")
"""Kernels ONNX Runtime makes by folding an activation into the product: a baseline that runs these and no
separate activation, beside a variant that runs activations apart, has lost that fusion."""

MIN_DELTA_US = 0.5
"""Group changes smaller than this are left out of the why line: the profiler times each kernel to 1 µs."""


def group_of(op_type: str) -> str:
    return _GROUP_OF.get(op_type, op_type)


@dataclass(frozen=True)
class Breakdown:
    """One model's call, µs per call: kernel time by group (slowest first; trimmed means over the profiled calls), and
    what lies outside every kernel (wall minus the kernels' means, as the agent reports it)."""

    groups: list[tuple[str, float]]
    op_types: list[tuple[str, float]]
    kernel_us: float
    outside_us: float
    call_us: float
    """The profiled call (profiler on: slower than a timed one, its bookkeeping is in ``outside_us``)."""
    fused: bool
    """The graph runs fused product+activation kernels and no separate activation."""
    overhead_us: float = 0.0
    """The profiler's own cost per kernel taken off every kernel (0: none measured, figures as profiled)."""
    n_kernels: int = 0
    timed_call_us: float = 0.0
    """The job's own timed call (p50, profiler off); 0 from an agent that did not send it."""

    @property
    def rest_us(self) -> float:
        """The timed call less the kernels' work: the runtime around the kernels (never below 0; an estimate)."""
        return max(self.timed_call_us - self.kernel_us, 0.0)

    @property
    def kernel_share(self) -> float:
        """The kernels' share of a profiled call (means, as the agent reports them)."""
        return 1.0 - self.outside_us / self.call_us if self.call_us > 0 else math.nan


def _typical(op: dict[str, Any]) -> float:
    """An op type's time per call: its trimmed mean over the profiled calls, else (an older agent) its mean."""
    trimmed = float(op.get("trimmed_us", 0.0))
    return trimmed if trimmed > 0 else float(op.get("mean_us", 0.0))


def breakdown(profile: dict[str, Any] | None) -> Breakdown | None:
    """The profile's figures grouped; None when there is no usable profile (none taken, or it failed)."""
    if not profile or profile.get("error") or not profile.get("op_types"):
        return None
    # trimmed means: a busy device preempts some profiled calls, and a plain mean moves with them
    op_types = [(str(t["name"]), _typical(t)) for t in profile["op_types"]]
    overhead = float(profile.get("kernel_overhead_us", 0.0))
    nodes = profile.get("nodes", [])
    if overhead > 0 and nodes:
        # every kernel's figure holds the profiler's own cost: take it off each node, never below 0
        work: dict[str, float] = {}
        for n in nodes:
            op = str(n.get("op_type", "?"))
            work[op] = work.get(op, 0.0) + max(float(n.get("trimmed_us", 0.0)) - overhead, 0.0)
        op_types = list(work.items())
    else:
        overhead = 0.0
    groups: dict[str, float] = {}
    for name, us in op_types:
        groups[group_of(name)] = groups.get(group_of(name), 0.0) + us
    names = {n for n, _ in op_types}
    fused = bool(names & set(FUSING_OPS)) and not names & set(OP_GROUPS["activations"])
    return Breakdown(
        groups=sorted(groups.items(), key=lambda g: -g[1]),
        op_types=sorted(op_types, key=lambda t: -t[1]),
        kernel_us=sum(us for _, us in op_types),
        outside_us=float(profile.get("outside_kernels_us", 0.0)),
        call_us=float(profile.get("wall_per_call_us", 0.0)),
        fused=fused,
        overhead_us=overhead,
        n_kernels=len(nodes),
        timed_call_us=float(profile.get("timed_call_us", 0.0)),
    )


def _signed(us: float) -> str:
    return f"{'+' if us >= 0 else '−'}{abs(us):.1f} µs"


def group_deltas(variant: Breakdown, base: Breakdown) -> list[tuple[str, float]]:
    """Per group, variant minus baseline (µs per call), largest change first; activations that the baseline
    fused and the variant runs apart are called "unfused activations"."""
    v, b = dict(variant.groups), dict(base.groups)
    out = []
    for name in dict.fromkeys([*v, *b]):
        delta = v.get(name, 0.0) - b.get(name, 0.0)
        label = "unfused activations" if name == "activations" and base.fused and not variant.fused else name
        out.append((label, delta))
    return sorted(out, key=lambda d: -abs(d[1]))


def floor_text(call_us: float, floor_us: float) -> str | None:
    """Say "runtime floor 9.1 µs = 31 % of the call" (p50s of the timed loop): what no compression removes."""
    if not (math.isfinite(call_us) and math.isfinite(floor_us)) or call_us <= 0 or floor_us <= 0:
        return None
    if floor_us >= call_us:  # the floor is timed in round 0 alone: one noisy round can read above the call
        return f"runtime floor {floor_us:.1f} µs, not below the call's {call_us:.1f} µs: a noisy floor round"
    return f"runtime floor {floor_us:.1f} µs = {floor_us / call_us:.0%} of the call"


def why_line(
    label: str,
    verdict: str,
    ratio: float,
    variant: Breakdown,
    base: Breakdown,
    floor: str | None = None,
    most: int = 3,
) -> str:
    """e.g. "ptdq 1.21× slower: dynamic quantization +14.9 µs, gemm −13.3 µs, unfused activations +8.3 µs; the
    kernel part grew 74 % (13.3 → 23.2 µs); runtime floor 9.0 µs = 31 % of the call".

    :param verdict: the p50 latency verdict the tables show ("faster", "slower", "within noise", ...)
    :param ratio: the variant's p50 latency / the baseline's
    :param floor: :func:`floor_text` of the variant's timed call
    """
    if verdict in ("faster", "slower") and math.isfinite(ratio) and ratio > 0:
        head = f"{label} {max(ratio, 1 / ratio):.2f}× {verdict}"
    elif math.isfinite(ratio) and ratio > 0:
        head = f"{label} p50 {ratio:.2f}× the baseline's ({verdict})"
    else:
        head = f"{label} (p50 {verdict})"
    deltas = [d for d in group_deltas(variant, base) if abs(d[1]) >= MIN_DELTA_US][:most]
    parts = (
        ", ".join(f"{name} {_signed(delta)}" for name, delta in deltas) or "no kernel group changed by 0.5 µs"
    )
    kernels = ""
    extra = variant.n_kernels - base.n_kernels
    if extra and variant.n_kernels and base.n_kernels:
        parts += f" ({extra:+d} kernel{'s' if abs(extra) != 1 else ''})"
    if base.kernel_us > 0:
        change = variant.kernel_us / base.kernel_us - 1
        word = "grew" if change >= 0 else "shrank"
        kernels = (
            f"; the kernel part {word} {abs(change):.0%} ({base.kernel_us:.1f} → {variant.kernel_us:.1f} µs)"
        )
    return f"{head}: {parts}{kernels}" + (f"; {floor}" if floor else "")


def baseline_line(label: str, base: Breakdown, floor: str | None = None, most: int = 3) -> str:
    """The baseline's own call: its slowest op types, the kernels' share of a profiled call (the rest lies outside
    every kernel), the floor's share of the timed call."""
    ops = ", ".join(f"{name} {us:.1f} µs" for name, us in base.op_types[:most])
    text = f"{label}: kernels {base.kernel_us:.1f} µs ({ops})"
    if base.timed_call_us > 0:
        share = min(base.kernel_us / base.timed_call_us, 1.0)
        text += (
            f" of a {base.timed_call_us:.1f} µs timed call ({share:.0%}); the rest is the runtime around them"
        )
    elif base.call_us > 0:
        text += f"; as profiled, kernels are {base.kernel_share:.0%} of a call"
    return text + (f"; {floor}" if floor else "")


def estimate_note(overhead_us: float) -> str:
    """What the figures of a why line are, when the profiler's own cost per kernel was taken off."""
    return (
        f"µs are trimmed means per call less the profiler's own {overhead_us:.1f} µs per kernel (what the runtime "
        "floor's do-nothing kernels read): estimates of each kernel's work."
    )
