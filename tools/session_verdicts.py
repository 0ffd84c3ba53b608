"""The verdicts of each deploy session, side by side: does a second deploy say the same thing?

Reads a drlc workspace's results database and judges every session on its own (the report's code, as if that
session were the latest): per variant, its return verdict (keeps / falls short / undecided) and its latency
verdict (faster / slower / within noise / undecided). With two or more sessions over the same models it prints
how many variants got the same pair of verdicts in every session, and any opposite ones (faster in one, slower
in another; keeps in one, falls short in another). ``--model NAME`` counts one variant's latency verdicts over
the sessions (the near-null test: ten deploys of L2 at 0.4 % beside its baseline).

    python tools/session_verdicts.py --home DIR [--sessions S1,S2 | --last N] [--model NAME] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from host.decision import Keep
    from host.report.rows import collect_rows
    from host.report.stats import compare_all
    from host.store.results_db import ResultsDB
    from host.store.workspace import Workspace

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--sessions", default="", help="comma-separated session ids (default: --last N)")
    parser.add_argument("--last", type=int, default=2, help="the latest N sessions")
    parser.add_argument("--model", default="", help="count this variant's verdicts over the sessions")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    workspace = Workspace.resolve(args.home)
    with ResultsDB(workspace.db_path) as db:
        if args.sessions:
            sessions = args.sessions.split(",")
        else:
            rows = db.conn.execute(
                "SELECT session_id FROM jobs WHERE session_id IS NOT NULL GROUP BY session_id"
                " ORDER BY MIN(created_at) DESC LIMIT ?",
                (args.last,),
            )
            sessions = [r[0] for r in rows][::-1]
        verdicts: dict[str, dict[str, tuple[str, str, str]]] = {}
        for s in sessions:
            verdicts[s] = {
                c.row.model: (c.keep.verdict.value, c.latency.verdict, f"{c.latency.ratio:.3f}")
                for c in compare_all(collect_rows(db, s))
                if not c.is_baseline
            }
    out: dict[str, object] = {"sessions": sessions, "verdicts": verdicts}
    for s in sessions:
        print(f"session {s}: {len(verdicts[s])} variants")
    if args.model:
        counts = Counter(verdicts[s][args.model][1] for s in sessions if args.model in verdicts[s])
        returns = Counter(verdicts[s][args.model][0] for s in sessions if args.model in verdicts[s])
        ratios = [verdicts[s][args.model][2] for s in sessions if args.model in verdicts[s]]
        print(
            f"{args.model}: latency verdicts {dict(counts)}; return verdicts {dict(returns)}; ratios {ratios}"
        )
        out["model"] = {"latency": dict(counts), "return": dict(returns), "ratios": ratios}
    common = set.intersection(*(set(v) for v in verdicts.values())) if len(sessions) > 1 else set()
    if common:
        same = [m for m in sorted(common) if len({verdicts[s][m][:2] for s in sessions}) == 1]
        opposite = []
        for m in sorted(common):
            lat = {verdicts[s][m][1] for s in sessions}
            ret = {verdicts[s][m][0] for s in sessions}
            if {"faster", "slower"} <= lat or {Keep.keeps.value, Keep.falls_short.value} <= ret:
                opposite.append(m)
        differ = {m: [verdicts[s][m] for s in sessions] for m in sorted(common) if m not in same}
        print(
            f"agreement: {len(same)}/{len(common)} variants ({len(same) / len(common):.1%}) got the same "
            f"(return, latency) verdicts in all {len(sessions)} sessions; opposite: {opposite or 'none'}"
        )
        for m, v in differ.items():
            print(f"  differs: {m}: {v}")
        out["agreement"] = {"same": len(same), "of": len(common), "opposite": opposite, "differ": differ}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
