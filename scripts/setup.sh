#!/usr/bin/env bash
# Set up a virtual environment in .venv with everything nerfseg and its tests need (CPU only).
# torch is pinned to the CPU build first: a bare "torch" requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[train,server,ray,postgres,dev]'
echo "nerfseg environment ready in .venv"
