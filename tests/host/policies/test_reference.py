"""The comparison of a measured return with a checkpoint's reference: rarely alarms when both come from
the same policy, and finds a planted shift. Simulated, seeded."""

from __future__ import annotations

import numpy as np

from host.policies.reference import ReferenceReturn, within_noise

N = 10
RUNS = 2000


def _reference(returns: np.ndarray) -> ReferenceReturn:
    return ReferenceReturn("Hopper-v5", tuple(range(len(returns))), tuple(float(r) for r in returns), "sb3")


def test_same_policy_rarely_alarms_and_a_shift_is_found() -> None:
    rng = np.random.default_rng(0)
    false_alarms = detected = 0
    for _ in range(RUNS):
        reference = _reference(rng.normal(1000.0, 100.0, N))
        false_alarms += not within_noise(list(rng.normal(1000.0, 100.0, N)), reference)
        detected += not within_noise(list(rng.normal(800.0, 100.0, N)), reference)  # 2 std lower
    assert false_alarms / RUNS < 0.03
    assert detected / RUNS > 0.8


def test_the_floor_accepts_tiny_differences_of_deterministic_policies() -> None:
    reference = _reference(np.full(N, 3000.0))
    assert within_noise([3000.0 + 50.0] * N, reference)  # 1.7 %: float32 against float64 maths
    assert not within_noise([3000.0 - 100.0] * N, reference)  # 3.3 %
