#!/usr/bin/env bash
# Re-runs every experiment of the plan from scratch, in order.
# Each writes results/<method>/metrics.json (accuracy before and after fine-tuning).
set -euo pipefail
cd "$(dirname "$0")"
rm -rf results
python train.py --method head --out "results/head"
python train.py --method lora --out "results/lora"
python train.py --method full --out "results/full"
echo "all experiments finished"
