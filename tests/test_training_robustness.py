"""Training runs on the tiny model: out-of-memory batch halving, early stopping, determinism,
gradient checkpointing, frozen embeddings, and what metrics.json says about the run."""
from __future__ import annotations

import json
import os

import pytest

import tokentune
from tokentune.errors import ConfigError


def _train(tiny_data, tiny_base_model, output, **settings):
    options = dict(data=tiny_data, model=tiny_base_model, output=str(output), epochs=1, learning_rate=5e-3,
                   batch_size=8, quiet=True, seed=11, max_train_samples=64, precision="fp32")
    options.update(settings)
    return tokentune.train(**options)


def test_out_of_memory_halves_the_batch_and_says_so(tiny_data, tiny_base_model, tmp_path, monkeypatch, capsys):
    import torch
    from transformers import Trainer

    step, raised = Trainer.training_step, []

    def step_that_runs_out_once(self, model, inputs, *args, **kwargs):
        if inputs["input_ids"].shape[0] == 8 and not raised:
            raised.append(True)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return step(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", step_that_runs_out_once)
    result = _train(tiny_data, tiny_base_model, tmp_path / "o")
    assert raised and "out of memory with batch size 8 per device" in capsys.readouterr().err
    assert any("started again with 4 and gradient accumulation 2 (the same 8 examples per step)" in n
               for n in result.notes)
    assert (result.run["per_device_batch_size"], result.run["gradient_accumulation_steps"]) == (4, 2)
    assert result.run["effective_batch_size"] == 8 and result.run["optimizer_steps"] == 8
    saved = json.load(open(tmp_path / "o" / "tokentune_config.json"))
    assert (saved["batch_size"], saved["gradient_accumulation_steps"]) == (4, 2)


def test_out_of_memory_without_the_finder_fails(tiny_data, tiny_base_model, tmp_path, monkeypatch):
    import torch
    from transformers import Trainer

    def out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("out of memory")

    monkeypatch.setattr(Trainer, "training_step", out_of_memory)
    with pytest.raises(ConfigError, match=r"out of memory with batch size 8 per device with --no-auto-batch-size "
                                          r"\(OutOfMemoryError: out of memory\)\. Fix: pass --batch-size 4 "
                                          r"--gradient-accumulation-steps 2"):
        _train(tiny_data, tiny_base_model, tmp_path / "o", auto_batch_size=False)
    assert not os.path.exists(tmp_path / "o")


def test_same_seed_same_metrics(tiny_data, tiny_base_model, tmp_path):
    settings = dict(epochs=2, max_train_samples=None, eval_steps=10, precision="auto")
    first = _train(tiny_data, tiny_base_model, tmp_path / "a", **settings)
    second = _train(tiny_data, tiny_base_model, tmp_path / "b", **settings)
    assert first.metrics["dev"]["f1"] > 0.2
    for split in ("dev", "test"):
        for key in ("precision", "recall", "f1", "accuracy"):
            assert first.metrics[split][key] == second.metrics[split][key]
    losses = [[r.get("eval_loss") for r in result.log_history if "eval_loss" in r] for result in (first, second)]
    assert losses[0] == losses[1] and len(losses[0]) == 4


def test_patience_stops_when_dev_f1_stalls(tiny_data, tiny_base_model, tmp_path):
    # a learning rate this small leaves dev F1 where it starts: the second evaluation brings nothing new
    result = _train(tiny_data, tiny_base_model, tmp_path / "o", epochs=5, eval_steps=2, patience=1,
                    learning_rate=1e-12)
    assert result.run["optimizer_steps"] == 4, result.run
    assert any("stopped early" in note and "--patience" in note for note in result.notes)


def test_patience_needs_a_dev_split(tiny_data, tiny_base_model, tmp_path):
    with pytest.raises(ConfigError, match="--patience needs a dev split"):
        _train(None, tiny_base_model, tmp_path / "o", train_file=os.path.join(tiny_data, "train.txt"), patience=2)


def test_memory_options_train_and_frozen_embeddings_stay(tiny_data, tiny_base_model, tmp_path):
    from safetensors.torch import load_file

    result = _train(tiny_data, tiny_base_model, tmp_path / "o", gradient_checkpointing=True, freeze_embeddings=True)
    base = load_file(os.path.join(tiny_base_model, "model.safetensors"))
    tuned = load_file(os.path.join(result.output_dir, "model.safetensors"))
    name = next(k for k in tuned if k.endswith("word_embeddings.weight"))
    base_name = next(k for k in base if k.endswith("word_embeddings.weight"))
    assert (tuned[name] == base[base_name]).all(), "frozen word embeddings are saved unchanged"
    layer = next(k for k in tuned if k.endswith("layer.0.attention.self.query.weight"))
    assert not (tuned[layer] == base[next(k for k in base if k.endswith(layer.split("bert.")[-1]))]).all()


def test_metrics_file_reports_the_run(tiny_model):
    metrics = json.load(open(os.path.join(tiny_model.output_dir, "metrics.json")))
    assert any(n.startswith("effective batch size 8 = 8 per device x 1 device(s) x 1") for n in metrics["notes"])
    assert any(n.startswith("precision: ") for n in metrics["notes"])
    assert tiny_model.run["effective_batch_size"] == 8 and tiny_model.run["processes"] == 1
    assert metrics["training"]["effective_batch_size"] == 8 and metrics["training"]["optimizer_steps"] == 80


@pytest.mark.slow
def test_torch_compile_trains_and_saves_a_plain_model(tiny_data, tiny_base_model, tmp_path):
    from transformers import AutoModelForTokenClassification

    result = _train(tiny_data, tiny_base_model, tmp_path / "c", epochs=1, torch_compile=True)
    assert result.metrics["dev"]["f1"] >= 0.0 and result.run["optimizer_steps"] == 8  # 64 sentences / 8
    names = AutoModelForTokenClassification.from_pretrained(tmp_path / "c").state_dict().keys()
    assert not any("_orig_mod" in name for name in names), "the compiled wrapper must not leak into the weights"
