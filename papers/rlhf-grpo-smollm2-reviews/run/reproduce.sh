#!/usr/bin/env bash
# Re-runs every experiment from scratch, in order; each writes results/<experiment>/metrics.json.
# REPRO_SEED seeds every run; REPRO_SMOKE=1 makes a quick run of every code path (tiny data).
set -euo pipefail
cd "$(dirname "$0")"
rm -rf results
python train.py --method rlhf --out "results/rlhf"
