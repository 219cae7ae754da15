#!/usr/bin/env bash
# Creates .venv (once) and installs torch 2.13.0 (CPU wheel) first, then tokentune with its test extras.
# A second run reuses what is there: pip skips what is already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
# torch first: a bare `torch` requirement resolved later would pull a multi-GB CUDA build
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install --quiet torch==2.13.0
stamp=.venv/.tokentune-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet -e ".[test]"
  touch "$stamp"
fi
