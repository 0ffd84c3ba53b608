"""Two compressions compared across a study's policies, the RL community's way (rliable), for FINDINGS.md.

For each pair of variant labels (``ptdq`` vs ``ptsq``, ``l2 25%`` vs ``l1 25%``, ...): per policy (a *task*),
the episodes' returns as a fraction of that policy's baseline mean (paired seeds: episode i of every variant has
seed i); across policies, the interquartile mean (IQM) of each side and the probability of improvement
P(A > B), each with a stratified-bootstrap 95 % CI (host.report.aggregates: rliable's definitions). A pair is
reported only where both labels were measured on at least two policies.

    python tools/study_compare.py --home DIR [--pairs "ptdq:ptsq,ptdq:qat"] [--pruning] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_PAIRS = "ptdq:ptsq,ptdq:qat,qat:ptsq,ptdq fp32-1st:ptdq,ptsq fp32-1st:ptsq,qat fp32-1st:qat"


def scores(comparisons: list, label: str) -> dict[str, dict[int, float]]:
    """policy -> {seed: return / baseline mean} of the variant with this label (positive baselines only)."""
    out = {}
    for c in comparisons:
        if c.label == label and not c.is_baseline and c.base.return_mean > 0:
            out[c.base.model] = {
                s: r / c.base.return_mean for s, r in zip(c.row.seeds, c.row.returns, strict=False)
            }
    return out


def compare_pair(comparisons: list, a: str, b: str) -> dict[str, object] | None:
    from host.report.aggregates import improvement_interval, iqm_interval

    sa, sb = scores(comparisons, a), scores(comparisons, b)
    policies = sorted(set(sa) & set(sb))
    seeds_per = [sorted(set(sa[p]) & set(sb[p])) for p in policies]
    keep = [(p, s) for p, s in zip(policies, seeds_per, strict=True) if len(s) >= 2]
    if len(keep) < 2:
        return None
    runs = min(len(s) for _, s in keep)
    x = np.array([[sa[p][s] for s in seeds[:runs]] for p, seeds in keep]).T
    y = np.array([[sb[p][s] for s in seeds[:runs]] for p, seeds in keep]).T
    ia, ib, poi = iqm_interval(x), iqm_interval(y), improvement_interval(x, y)
    return {
        "a": a,
        "b": b,
        "n_policies": len(keep),
        "episodes_per_policy": runs,
        "iqm_a": [ia.value, ia.low, ia.high],
        "iqm_b": [ib.value, ib.low, ib.high],
        "p_a_beats_b": [poi.value, poi.low, poi.high],
    }


def main() -> None:
    from host.report.rows import collect_rows
    from host.report.stats import compare_all
    from host.store.results_db import ResultsDB
    from host.store.workspace import Workspace

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--pairs", default=DEFAULT_PAIRS, help="comma-separated A:B label pairs")
    parser.add_argument("--pruning", action="store_true", help="also l2 X%% vs l1 X%% at every ratio")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    with ResultsDB(Workspace.resolve(args.home).db_path) as db:
        comparisons = compare_all(collect_rows(db))
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",") if p]
    if args.pruning:
        pairs += [(f"l2 {k * 5}%", f"l1 {k * 5}%") for k in range(1, 15)]
    results = []
    print("A vs B: IQM of return / baseline [95 % CI] for A and B over policies; P(A > B) [95 % CI]")
    for a, b in pairs:
        r = compare_pair(comparisons, a, b)
        if r is None:
            print(f"{a} vs {b}: fewer than 2 policies with both")
            continue
        results.append(r)
        ia, ib, p = r["iqm_a"], r["iqm_b"], r["p_a_beats_b"]
        print(
            f"{a} vs {b} ({r['n_policies']} policies x {r['episodes_per_policy']} episodes): "
            f"IQM {ia[0]:.1%} [{ia[1]:.1%}, {ia[2]:.1%}] vs {ib[0]:.1%} [{ib[1]:.1%}, {ib[2]:.1%}]; "
            f"P(A > B) = {p[0]:.2f} [{p[1]:.2f}, {p[2]:.2f}]"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
