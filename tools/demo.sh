#!/usr/bin/env bash
# The whole drlc path on this machine, from nothing: train a small policy, export it,
# deploy it to an agent started locally, and print the report. Needs no ../shared.
set -euo pipefail
VENV=${VENV:-.venv}
export DRLC_HOME=${DRLC_HOME:-.drlc-demo}
rm -rf "$DRLC_HOME"
host="$VENV/bin/drlc-host"

echo "== 1/3 train PPO on InvertedPendulum-v5 (RL Zoo hyperparameters; about a minute on 2 cores)"
"$host" train --algo ppo --env InvertedPendulum-v5 --steps "${DEMO_STEPS:-20000}" --seed 0

echo "== 2/3 deploy to the local agent: 10 seeded episodes in MuJoCo, every inference timed"
"$host" deploy --target local --episodes 10

echo "== 3/3 report"
"$host" report
echo "(results in $DRLC_HOME/results.sqlite; 'drlc-host report --format md' for Markdown)"
