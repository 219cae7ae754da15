"""Bad arguments to the bench scripts that take a model or figures: one line naming the value, exit 2, no
traceback, and the model directory untouched (bench/one_line_parser.py)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")

# (script, arguments ({model}: a directory with a config.json and nothing else), what the line must say)
ROWS = [
    ("pass_costs.py", ["passes"], "passes needs MODEL_DIR"),
    ("pass_costs.py", ["passes", ""], "passes needs MODEL_DIR"),
    ("pass_costs.py", ["steps", "{missing}"], "is not a model directory (no config.json there)"),
    ("pass_costs.py", ["onnx", "{model}"], "has no model.int8.onnx: run `tokentune export"),
    ("pass_costs.py", ["passes", "{model}", "--rounds", "0"], "--rounds must be at least 1, not 0"),
    ("pass_costs.py", ["passes", "{model}", "--rounds", "nan"], "invalid int value: 'nan'"),
    ("pass_costs.py", ["sideways", "{model}"], "invalid choice: 'sideways'"),
    ("flop_ceiling.py", ["--plain", "2000=nan"], "--plain takes JOB=SECONDS"),
    ("flop_ceiling.py", ["--plain", "2000="], "--plain takes JOB=SECONDS"),
    ("flop_ceiling.py", ["--tokentune", "predict=-3"], "--tokentune takes JOB=SECONDS"),
    ("flop_ceiling.py", ["--plain", "sometimes=4"], "--plain takes JOB=SECONDS"),
    ("flop_ceiling.py", ["--threads", "0"], "--threads takes a count of at least 1; got 0"),
]


@pytest.mark.parametrize("script, arguments, expected", ROWS)
def test_a_bad_argument_is_one_line_and_exit_2(tmp_path, script, arguments, expected):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    names = {"model": str(model), "missing": str(tmp_path / "missing")}
    done = subprocess.run([sys.executable, script, *(a.format(**names) for a in arguments)], cwd=BENCH,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"{script}: error: ") and expected in done.stderr, done.stderr
    assert sorted(os.listdir(model)) == ["config.json"] and (model / "config.json").read_text() == "{}"
