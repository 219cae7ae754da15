"""The train / evaluate / predict commands as a user runs them: output, JSON, exit codes, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tokentune.cli.main import main


def test_evaluate_prints_table_and_json(tiny_model, tiny_data, capsys):
    assert main(["evaluate", tiny_model.output_dir, "--data", tiny_data]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "micro avg" in out and "PER" in out
    assert main(["evaluate", tiny_model.output_dir, "--data", tiny_data, "--split", "dev", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) >= {"precision", "recall", "f1", "accuracy", "per_type"}
    assert set(metrics["per_type"]["PER"]) >= {"precision", "recall", "f1", "support"}
    assert metrics["f1"] == pytest.approx(tiny_model.metrics["dev"]["f1"])


def test_evaluate_on_a_single_file(tiny_model, tiny_data, capsys):
    assert main(["evaluate", tiny_model.output_dir, "--data", os.path.join(tiny_data, "test.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["f1"] == pytest.approx(tiny_model.metrics["test"]["f1"])
    # --split names a split of a directory: for one file it is refused, not ignored (unless it is that file's)
    assert main(["evaluate", tiny_model.output_dir, "--data", os.path.join(tiny_data, "test.txt"), "--split", "dev"]) == 2
    err = capsys.readouterr().err
    assert "--split dev picks a split of a data directory, but" in err and "holds one set of data (test)" in err
    assert main(["evaluate", tiny_model.output_dir, "--data", os.path.join(tiny_data, "test.txt"), "--split", "test",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["f1"] == pytest.approx(tiny_model.metrics["test"]["f1"])


def test_predict_gives_character_offsets(tiny_model, capsys):
    # an unknown word (split into several pieces) away from the entities: as the first word, next to
    # "Alice", the tiny model read it as part of the name in fp32 and not in bf16 (by machine)
    text = "today Alice met Bob Smith in Paris , yesterday ."
    assert main(["predict", tiny_model.output_dir, text, "Acme works with Globex ."]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == [text, "Acme works with Globex ."]
    for line in lines:
        for entity in line["entities"]:
            assert line["text"][entity["start"]:entity["end"]] == entity["text"]
            assert set(entity) == {"label", "start", "end", "text", "score"} and 0 < entity["score"] <= 1
    assert {e["text"] for e in lines[0]["entities"]} >= {"Alice", "Paris"}


def test_predict_reads_a_file(tiny_model, tmp_path, capsys):
    path = tmp_path / "texts.txt"
    path.write_text("Alice visited Rome .\nAcme said .\n")
    assert main(["predict", tiny_model.output_dir, "--input", str(path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_train_command_end_to_end(tiny_data, tiny_base_model, tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text("epochs: 5\nlearning_rate: 5.0e-3\nbatch_size: 16\n")
    out = tmp_path / "model"
    code = main(["train", "--data", tiny_data, "--model", tiny_base_model, "--output", str(out), "--config",
                 str(config), "--epochs", "1", "--max-train-samples", "60", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "test: precision" in printed and "micro avg" in printed and str(out) in printed
    saved = json.load(open(out / "tokentune_config.json"))
    assert saved["epochs"] == 1 and saved["learning_rate"] == 5e-3 and saved["max_train_samples"] == 60


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "/nonexistent/dir", "--output", "x"], "not a directory"),
    (["evaluate", "MODEL", "--data", "/nonexistent/file.txt"], "file not found"),
    (["train", "--output", "x"], "no training data given"),
    (["train", "--data", "D", "--output", "x", "--learning-rate", "-1"], "learning_rate must be a positive number"),
])
def test_user_errors_exit_2_with_one_line(argv, message, capsys, tmp_path, tiny_model):
    argv = [tiny_model.output_dir if a == "MODEL" else str(tmp_path) if a == "D" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_columns_name_file_and_line(tmp_path, capsys):
    (tmp_path / "train.txt").write_text("Alice NNP I-PER\nmet VBD O\nParis I-LOC\n\n")
    assert main(["train", "--data", str(tmp_path), "--output", str(tmp_path.parent / f"{tmp_path.name}-o")]) == 2
    err = capsys.readouterr().err
    assert "train.txt:3: wrong number of columns; expected 3 columns" in err


def test_empty_file(tmp_path, capsys):
    (tmp_path / "train.txt").write_text("\n\n")
    assert main(["train", "--data", str(tmp_path), "--output", str(tmp_path.parent / f"{tmp_path.name}-o")]) == 2
    assert "train.txt" in capsys.readouterr().err


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    (tmp_path / "train.txt").write_text("a O\nb\n\n")
    proc = subprocess.run([sys.executable, "-m", "tokentune.cli.main", "train", "--data", str(tmp_path), "--output",
                           str(tmp_path.parent / f"{tmp_path.name}-o")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "train.txt:2" in proc.stderr


def test_import_is_light_and_silent():
    code = ("import sys, logging, warnings; n = len(warnings.filters); import tokentune; "
            "print('torch' in sys.modules, len(logging.root.handlers), len(warnings.filters) == n)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "0", "True"]


def test_commands_keep_openmp_spinning_and_set_no_thread_variable(monkeypatch, tmp_path):
    """OpenMP's own wait policy stays (the watch gives way to other jobs instead: tokentune.threads), so
    a command that computes sets no variable, except PASSIVE under a CPU quota; a user's setting stands."""
    from tokentune.threads import cpu_quota

    for name in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)
    missing = str(tmp_path / "missing")
    code = ("import os, sys; from tokentune.cli.main import main; "
            f"code = main(['evaluate', {missing!r}, '--data', {missing!r}]); "
            "print(code, os.environ.get('OMP_WAIT_POLICY'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    from tokentune.threads import busy_seconds

    cpus, quota = frozenset(os.sched_getaffinity(0)), cpu_quota()
    # a watch where it can see the cores; else threads that sleep at once
    watched = (quota is None or quota >= len(cpus)) and len(cpus) > 1 and busy_seconds(cpus) is not None
    assert done.stdout.split()[-2:] == ["2", "None" if watched else "PASSIVE"]  # the command ran, and failed
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-1] == "ACTIVE"  # the user's choice stands


def test_the_command_freezes_the_heap_before_shutting_down_and_keeps_its_exit_code():
    """The console script is console_main: main's exit code, then gc.freeze (shutdown's repeated collections
    over torch's and transformers' objects took about a second); main itself, called in-process, freezes
    nothing."""
    import tomllib

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as handle:
        scripts = tomllib.load(handle)["project"]["scripts"]
    assert scripts["tokentune"] == "tokentune.cli.main:console_main"
    code = ("import gc, sys; from tokentune.cli.main import main, console_main; sys.argv = ['tokentune', 'score']; "
            "n = gc.get_freeze_count(); rc = main(['--version']); print(rc, gc.get_freeze_count() == n); "
            "rc = console_main(); print(rc, gc.get_freeze_count() > n)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split()[-4:] == ["0", "True", "2", "True"], done.stderr
    assert "Traceback" not in done.stderr
