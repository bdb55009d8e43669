#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")"
rm -rf results
python train.py lora
