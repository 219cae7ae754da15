#!/usr/bin/env bash
# Two versions of tokentune taking turns on the same commands, to separate a code change from the
# machine's drift within a bench run (docs/benchmarks.md, eighteenth session).
#   bench/alternate_pairs.sh BEFORE_SRC AFTER_SRC WORK [TRAIN_PAIRS] [PREDICT_PAIRS]
# BEFORE_SRC, AFTER_SRC: src folders (e.g. `git archive COMMIT src | tar -x -C DIR`, then DIR/src);
# WORK: a folder bench/whole_job.py --work filled (seed-data/, tokentune-2000/, test.txt).
# Prints, per run: the command, the version, the round, whole seconds, and dev F1 or predict's own line.
set -euo pipefail
before=$1 after=$2 work=$3 train_pairs=${4:-2} predict_pairs=${5:-3}
python=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python
out=$(mktemp -d)
run() {  # label src round command...
  local label=$1 src=$2 round=$3; shift 3
  local start end
  start=$(date +%s.%N)
  PYTHONPATH=$src "$python" -m tokentune.cli.main "$@" > "$out/$label-$round.log" 2>&1
  end=$(date +%s.%N)
  printf '%s %s %s %.1f s ' "$1" "$label" "$round" "$(echo "$end - $start" | bc)"
}
for round in $(seq "$train_pairs"); do
  for version in "before:$before" "after:$after"; do
    label=${version%%:*} src=${version#*:}
    run "$label" "$src" "$round" train --data "$work/seed-data" --output "$out/$label" --quiet --overwrite \
      --epochs 20 --learning-rate 1.5e-5 --eval-steps 10
    grep -o '"f1": [0-9.]*' "$out/$label/metrics.json" | head -1
  done
done
for round in $(seq "$predict_pairs"); do
  for version in "before:$before" "after:$after"; do
    label=${version%%:*} src=${version#*:}
    run "$label" "$src" "$round" predict "$work/tokentune-2000" --input "$work/test.txt" --output "$out/$label.jsonl"
    tail -1 "$out/$label-$round.log"
  done
done
cmp -s "$out/before.jsonl" "$out/after.jsonl" && echo "predict outputs identical" || echo "predict outputs differ"
