"""train(): the output directory, the recipe's defaults, config precedence, and plain-transformers loading."""
from __future__ import annotations

import json
import os

import pytest

import tokentune
from tokentune.config import TrainConfig, build_config
from tokentune.errors import ConfigError, DataError, LabelError, ModelError


def test_output_directory_is_complete(tiny_model):
    out = tiny_model.output_dir
    files = set(os.listdir(out))
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokentune_config.json", "training_log.jsonl",
            "metrics.json", "README.md"} <= files
    assert not any(name.endswith((".bin", ".pkl", ".pt")) for name in files), "never pickle"
    assert "checkpoints" not in files
    assert not os.path.exists(os.path.join(os.path.dirname(out), ".model.partial"))
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["id2label"]["0"] == "O" and "B-PER" in config["id2label"].values()


def test_model_learns_and_metrics_are_written(tiny_model):
    metrics = json.load(open(os.path.join(tiny_model.output_dir, "metrics.json")))
    assert set(metrics["test"]) >= {"precision", "recall", "f1", "accuracy", "per_type"}
    assert metrics["test"]["f1"] > 0.5, metrics["test"]
    assert metrics["dev"]["f1"] == pytest.approx(tiny_model.metrics["dev"]["f1"])
    assert set(metrics["test"]["per_type"]) == {"PER", "LOC", "ORG"}


def test_training_log_and_model_card(tiny_model):
    records = [json.loads(line) for line in open(os.path.join(tiny_model.output_dir, "training_log.jsonl"))]
    assert any("loss" in r for r in records) and sum("eval_f1" in r for r in records) == 4  # one per epoch
    card = open(os.path.join(tiny_model.output_dir, "README.md")).read()
    assert card.startswith("---\n") and "model-index" in card
    assert "| Training Loss | Epoch | Step | Validation Loss | Precision | Recall | F1 | Accuracy |" in card
    assert card.count("\n| ") >= 5  # header + 4 evaluation rows
    assert "- learning_rate: 0.005" in card


def test_saved_config_repeats_the_run(tiny_model):
    saved = json.load(open(os.path.join(tiny_model.output_dir, "tokentune_config.json")))
    again = TrainConfig.from_dict(saved)
    assert again.learning_rate == 5e-3 and again.epochs == 4 and again.seed == 7


def test_loads_in_plain_transformers(tiny_model):
    from transformers import AutoModelForTokenClassification, pipeline

    model = AutoModelForTokenClassification.from_pretrained(tiny_model.output_dir)
    assert model.config.label2id["O"] == 0
    ner = pipeline("token-classification", model=tiny_model.output_dir, aggregation_strategy="first")
    text = "Alice met Bob Smith in Paris and works for Acme ."
    ours = tokentune.Tagger.from_pretrained(tiny_model.output_dir, decoding="argmax").predict_text(text)
    theirs = ner(text)
    assert [(e.label, e.start, e.end) for e in ours] == [(e["entity_group"], e["start"], e["end"]) for e in theirs]


def test_recipe_defaults():
    config = TrainConfig(data="x")
    assert (config.batch_size, config.eval_batch_size, config.epochs) == (16, 16, 20)
    assert TrainConfig(data="x", model="bert-base-cased").learning_rate == 1.5e-5  # the recipe's, for a named model
    assert config.learning_rate == 1e-4  # the embedded MiniLM's measured default (docs/tuning.md)
    assert TrainConfig(data="x", learning_rate=2e-5).learning_rate == 2e-5
    assert (config.adam_beta1, config.adam_beta2, config.adam_epsilon) == (0.9, 0.999, 1e-8)
    assert (config.lr_scheduler, config.seed, config.eval_steps) == ("linear", 42, None)


def test_flag_beats_file_beats_default(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("learning_rate: 5.0e-5\nepochs: 3\ndata: somewhere\n")
    config = build_config(str(path), epochs=2, batch_size=None)
    assert config.learning_rate == 5e-5 and config.epochs == 2 and config.batch_size == 16
    (tmp_path / "run.json").write_text(json.dumps({"epochs": 7, "data": "d"}))
    assert build_config(str(tmp_path / "run.json")).epochs == 7


def test_config_errors_teach(tmp_path):
    with pytest.raises(ConfigError, match="learning_rate must be a positive number"):
        TrainConfig(data="x", learning_rate=0)
    with pytest.raises(ConfigError, match="unknown setting.*learnin_rate"):
        TrainConfig.from_dict({"data": "x", "learnin_rate": 1})
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml.*cannot parse"):
        build_config(str(bad))
    with pytest.raises(ConfigError, match="no training data"):
        TrainConfig()


def test_existing_output_is_refused(tiny_data, tiny_base_model, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(ConfigError, match="already exists.*--overwrite"):
        tokentune.train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "out"), epochs=1)


def test_unseen_dev_label_is_an_error(tmp_path, tiny_base_model):
    (tmp_path / "train.txt").write_text("Alice I-PER\nmet O\n\n")
    (tmp_path / "dev.txt").write_text("Acme I-ORG\nsaid O\n\n")
    with pytest.raises(LabelError, match=r"dev.txt:1: dev has label\(s\) never seen in training: ORG"):
        tokentune.train(data=str(tmp_path), model=tiny_base_model, output=str(tmp_path.parent / f"{tmp_path.name}-o"),
                        epochs=1)


def test_unknown_model_offline_is_explained(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="could not be fetched from the Hugging Face Hub.*--model DIR"):
        tokentune.train(data=tiny_data, model="no-such-org/no-such-model", output=str(tmp_path / "o"), epochs=1)
    for path in ("/no/such/model", "./no-such-dir", "a/b/c"):  # a path, never a Hub id: no `hf download` advice
        with pytest.raises(ModelError, match=r"cannot load model .*: there is no such directory\. Fix: check the path"):
            tokentune.train(data=tiny_data, model=path, output=str(tmp_path / "o"), epochs=1)


def test_missing_train_file(tmp_path):
    (tmp_path / "dev.txt").write_text("a O\n")
    with pytest.raises(DataError, match="no train file found"):
        tokentune.train(data=str(tmp_path), output=str(tmp_path.parent / f"{tmp_path.name}-o"), epochs=1)


def test_no_dev_split_keeps_last_model(tiny_data, tiny_base_model, tmp_path):
    train_file = os.path.join(tiny_data, "train.txt")
    result = tokentune.train(train_file=train_file, model=tiny_base_model, output=str(tmp_path / "o"), epochs=1,
                             batch_size=32, quiet=True, max_train_samples=40)
    assert result.metrics == {} and any("no dev split" in note for note in result.notes)
    assert os.path.exists(tmp_path / "o" / "model.safetensors")
