#!/usr/bin/env bash
# The main job: fine-tune the embedded MiniLM on CoNLL-2003 for a short budget, print dev/test metrics
# with a per-type table, then tag an example sentence. Extra arguments go to `tokentune train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA=${DATA:-../shared/data/conll2003}
OUT=${OUT:-runs/conll2003-minilm}
.venv/bin/tokentune train --data "$DATA" --output "$OUT" --overwrite \
  --epochs 1 --max-train-samples 6000 --learning-rate 5e-5 "$@"
echo
echo "Example:"
.venv/bin/tokentune predict "$OUT" "EU rejects German call to boycott British lamb, says Peter Blackburn in Brussels."
