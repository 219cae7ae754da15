#!/usr/bin/env bash
# Runs the linter and the test suite (installing what it needs first). Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests bench  # the linter first: CI fails on what it finds
exec .venv/bin/python -m pytest -q "$@"
