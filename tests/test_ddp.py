"""`tokentune train` under torchrun: two CPU processes (gloo) train one model; rank 0 alone writes it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import tokentune


def _torchrun(args, tmp_path, nproc=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "tokentune.cli.main", "train", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)


def test_two_processes_train_one_whole_model(tiny_data, tiny_base_model, tmp_path):
    out = tmp_path / "ddp-model"
    proc = _torchrun(["--data", tiny_data, "--model", tiny_base_model, "--output", str(out), "--epochs", "2",
                      "--batch-size", "8", "--learning-rate", "5e-3", "--seed", "3", "--quiet"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test: precision") == 1, "only rank 0 prints"
    assert "effective batch size 16 = 8 per device x 2 device(s) x 1 accumulation step(s)" in proc.stdout
    files = set(os.listdir(out))
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokentune_config.json", "training_log.jsonl",
            "metrics.json", "README.md"} <= files
    assert "checkpoints" not in files and not any(n.startswith(".") for n in os.listdir(tmp_path))
    metrics = json.load(open(out / "metrics.json"))
    assert metrics["test"]["f1"] > 0.3, metrics["test"]
    assert (metrics["training"]["effective_batch_size"], metrics["training"]["processes"]) == (16, 2)
    evaluations = [json.loads(line) for line in open(out / "training_log.jsonl") if "eval_f1" in line]
    assert len(evaluations) == 2, "one log line per evaluation, written by rank 0 only"
    # 160 sentences / (8 x 2 processes) = 10 optimizer steps per epoch
    assert evaluations[-1]["step"] == 20
    # dev tagged in two shares, scored as one: the best evaluation's figures are the final ones, read once,
    # and the model written is that evaluation's (its weights kept in rank 0's memory: nothing on disk)
    assert not any("dev evaluated again" in note for note in metrics["notes"]), metrics["notes"]
    assert metrics["dev"]["f1"] == max(record["eval_f1"] for record in evaluations)
    assert metrics["training"]["best_step"] in (10, 20)
    assert tokentune.evaluate(str(out), tiny_data, split="dev")["f1"] == pytest.approx(metrics["dev"]["f1"], abs=1e-12)

    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(out)
    assert model.config.label2id["O"] == 0
    entities = tokentune.Tagger.from_pretrained(str(out)).predict_text("Alice visited Paris .")
    assert isinstance(entities, list)
