#!/usr/bin/env bash
# Prepares, on this machine, what the GPU checks carry to a device machine that has no network
# (docs/benchmarks.md, "On a GPU"): run from the repository's root, then on the device
# `bash bench/gpu_run.sh` with carry [".gpu", ".whl"].
#
#   .whl/  wheels the device's Python 3.12 lacks (datasets, dill, multiprocess, seqeval), at this venv's versions
#   .gpu/  CoNLL-2003 as a tar.xz (read from ../shared/data; it only travels, it is never committed) and the
#          embedded MiniLM's files with its weights in fp16 (45 MB instead of 90: the carry limit is 64 MiB;
#          gpu_run.sh turns them back into fp32 there, so both engines start from the same rounded weights)
#
# Both folders are kept out of git through .git/info/exclude.
set -euo pipefail
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/conll2003}
for folder in /.gpu/ /.whl/; do
  grep -qxF "$folder" .git/info/exclude || echo "$folder" >> .git/info/exclude
done
mkdir -p .gpu .whl
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "datasets==$(version datasets)" "dill==$(version dill)" "multiprocess==$(version multiprocess)"
"$PY" -m pip wheel -q --no-deps -w .whl "seqeval==$(version seqeval)"
tar -C "$(dirname "$DATA")" -cJf .gpu/conll2003.tar.xz "$(basename "$DATA")"
"$PY" bench/gpu_weights.py fp16 embedded .gpu/minilm16
du -sh .gpu .whl
