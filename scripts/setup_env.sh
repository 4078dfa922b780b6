#!/usr/bin/env bash
# Creates the virtual environment and installs vqfuse with its dev extras.
# Installs the CPU build of torch first when none is present, so that `torch>=2.4` does not pull a
# multi-GB CUDA build on a CPU-only machine. On a GPU machine, install the torch you want first.
set -euo pipefail
PY=${PY:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  $PIP install -q "torch==2.13.0" 2>/dev/null || $PIP install -q "torch>=2.4"
fi
$PIP install -q -e ".[dev,video]"
