#!/usr/bin/env bash
# The whole drlc path on this machine, from nothing: train a small policy, compress it a few ways,
# deploy the baseline and its variants to an agent started locally, and print the report.
# Needs no ../shared. Its workspace is $DRLC_HOME (.drlc-demo), apart from your own.
set -euo pipefail
VENV=${VENV:-.venv}
export DRLC_HOME=${DRLC_HOME:-.drlc-demo}
rm -rf "$DRLC_HOME"
host="$VENV/bin/drlc-host"
base=ppo-InvertedPendulum-v5

echo "== 1/4 train PPO on InvertedPendulum-v5 (RL Zoo settings; a minute on 2 cores)"
"$host" train --algo ppo --env InvertedPendulum-v5 --steps "${DEMO_STEPS:-20000}" --seed 0

echo "== 2/4 compress it: int8 (dynamic, static), L2 pruning of 10 % and 30 %"
"$host" compress "$base" --method ptdq
"$host" compress "$base" --method ptsq --calibration-episodes 5
"$host" compress "$base" --method l2 --ratio 0.1
"$host" compress "$base" --method l2 --ratio 0.3

echo "== 3/4 deploy all five to a local agent: ${DEMO_EPISODES:-10} seeded episodes each"
"$host" deploy --target local --episodes "${DEMO_EPISODES:-10}"

echo "== 4/4 report"
"$host" report
"$host" report --format html -o "$DRLC_HOME/report.html"

cat <<HINT

The demo's workspace is $DRLC_HOME (yours: \$DRLC_HOME or ~/.local/share/drlc).
HTML report: $DRLC_HOME/report.html. The report again, by hand:
  source $VENV/bin/activate
  drlc-host report --home $DRLC_HOME
  drlc-host report --home $DRLC_HOME --format md
or without activating:  make report   (and: make report-html)
HINT
