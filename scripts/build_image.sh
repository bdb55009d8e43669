#!/usr/bin/env bash
# Build the offline sandbox image (repro-sandbox:<hash> + :latest). Needs a running Docker engine
# and Debian's busybox-static (apt-get install -y busybox-static). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
exec "$PY" -c 'from sandbox.image import ensure_image; print(ensure_image(log=print))' "$@"
