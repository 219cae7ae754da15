"""One configuration: the reader flags are the same in train, evaluate, inspect and convert, the config
file takes the same names, flags are derived from TrainConfig's fields, and bad values are one line."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re

import pytest

from tokentune.cli.main import main
from tokentune.config import TrainConfig, build_config
from tokentune.errors import ConfigError

from conftest import make_sentences, write_conll

TINY = ["--epochs", "1", "--batch-size", "8", "--learning-rate", "5e-3", "--quiet"]


def _with_misc(sentences):
    """Make every ORG a MISC, so that a --label-map MISC=O run can be told apart."""
    return [[(w, t.replace("ORG", "MISC")) for w, t in s] for s in sentences]


@pytest.fixture(scope="module")
def one_file_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("one_file")
    write_conll(root / "train.txt", _with_misc(make_sentences(120, seed=4)))
    return root


@pytest.fixture(scope="module")
def words_labels_jsonl(tmp_path_factory):
    path = tmp_path_factory.mktemp("jsonl") / "x.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for sentence in make_sentences(60, seed=5):
            words, tags = zip(*sentence)
            handle.write(json.dumps({"words": list(words), "labels": list(tags)}) + "\n")
    return path


def _labels(model_dir) -> set[str]:
    return set(json.load(open(os.path.join(model_dir, "config.json")))["id2label"].values())


def test_dev_split_and_label_map_on_a_directory_with_one_file(one_file_dir, tiny_base_model, tmp_path, capsys):
    out = tmp_path / "model"
    argv = ["train", "--data", str(one_file_dir), "--dev-split", "0.1", "--label-map", "MISC=O",
            "--model", tiny_base_model, "--output", str(out), *TINY]
    assert main(argv) == 0, capsys.readouterr().err
    assert not any("MISC" in label for label in _labels(out)) and "B-PER" in _labels(out)
    saved = json.load(open(out / "tokentune_config.json"))
    assert saved["dev_split"] == 0.1 and saved["label_map"] == ["MISC=O"]
    assert "dev" in json.load(open(out / "metrics.json"))


def test_jsonl_with_other_keys_from_flags_and_from_yaml(words_labels_jsonl, tiny_base_model, tmp_path, capsys):
    flags = ["--train", str(words_labels_jsonl), "--format", "jsonl", "--tokens-key", "words", "--tags-key", "labels"]
    assert main(["train", *flags, "--model", tiny_base_model, "--output", str(tmp_path / "a"), *TINY]) == 0
    config = tmp_path / "run.yaml"
    config.write_text(f"train_file: {words_labels_jsonl}\nformat: jsonl\ntokens_key: words\ntags_key: labels\n"
                      f"model: {tiny_base_model}\nepochs: 1\nbatch_size: 8\nlearning_rate: 5.0e-3\nquiet: true\n")
    assert main(["train", "--config", str(config), "--output", str(tmp_path / "b")]) == 0, capsys.readouterr().err
    assert _labels(tmp_path / "a") == _labels(tmp_path / "b") == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC",
                                                                  "B-ORG", "I-ORG"}
    capsys.readouterr()
    # evaluate takes the same reader flags
    assert main(["evaluate", str(tmp_path / "a"), "--data", str(words_labels_jsonl), "--format", "jsonl",
                 "--tokens-key", "words", "--tags-key", "labels", "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["f1"] <= 1.0


def test_evaluate_label_map_and_drop_unknown_labels(one_file_dir, tiny_model, capsys):
    data = str(one_file_dir / "train.txt")
    assert main(["evaluate", tiny_model.output_dir, "--data", data]) == 2
    err = capsys.readouterr().err
    assert "MISC" in err and "--label-map" in err and "train.txt:" in err and err.count("\n") == 1
    assert main(["evaluate", tiny_model.output_dir, "--data", data, "--label-map", "MISC=ORG", "--json"]) == 0
    assert "ORG" in json.loads(capsys.readouterr().out)["per_type"]
    assert main(["evaluate", tiny_model.output_dir, "--data", data, "--drop-unknown-labels", "--json"]) == 0
    assert any("dropped" in note for note in json.loads(capsys.readouterr().out)["notes"])


def test_every_field_has_a_flag_and_help_written_once():
    from tokentune.cli.train import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    dests = {action.dest for action in parser._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= dests
    assert all(f.metadata["help"] for f in dataclasses.fields(TrainConfig))
    args = parser.parse_args(["--bf16", "--batch-mean-loss", "--no-packing", "--label-map", "A=B", "--label-map", "C=O"])
    assert (args.precision, args.token_weighted_loss, args.packing, args.label_map) == ("bf16", False, False,
                                                                                         ["A=B", "C=O"])
    assert args.learning_rate is None  # not given: the config file or the default decides


def test_flag_beats_file_beats_default(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"data": "d", "learning_rate": 5e-5, "tokens-key": "words"}))
    built = build_config(str(config), learning_rate=1e-4)
    assert (built.learning_rate, built.tokens_key, built.batch_size) == (1e-4, "words", 16)


@pytest.mark.parametrize("text, message", [
    ("learning_rte: 1.0e-4\n", "unknown setting 'learning_rte'.*did you mean 'learning_rate'"),
    ("tokens_kye: words\n", "unknown setting 'tokens_kye'.*did you mean 'tokens_key'"),
    ("weight_decay: .nan\n", "weight_decay must be a finite number"),
    ("epochs: .inf\n", "epochs must be a finite number"),
    ("scheme: [IOB2]\n", "scheme must be a string"),
    ("1: 2\n", "setting names must be strings"),
    ("dev_split: 1.5\n", "dev_split must be below 1.0"),
])
def test_bad_config_file_values_are_located_config_errors(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text("data: d\n" + text)
    where = re.escape(f"{path}:2: ") if not text.startswith("1:") else re.escape(f"{path}: ")  # YAML's key 1: no line
    with pytest.raises(ConfigError, match=where + message):
        build_config(str(path))


def test_a_json_config_names_the_line_and_a_flag_is_not_blamed_on_the_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{\n  "data": "d",\n  "learnin_rate": 0.1\n}\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path}:3: unknown setting 'learnin_rate'") + ".*did you mean"):
        build_config(str(path))
    path.write_text('{\n  "data": "d",\n  "epochs": 1,\n  "warmup_ratio": 3\n}\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path}:4: warmup_ratio must be below 1.0, got 3. Fix: set "
                                                    "warmup_ratio to below 1.0")):
        build_config(str(path))
    path.write_text('{"data": "d", "epochs": 1}')
    with pytest.raises(ConfigError, match=r"^configuration: learning_rate must be a positive number, got -3\.0\. "
                                          r"Fix: set --learning-rate"):
        build_config(str(path), learning_rate=-3.0)


@pytest.mark.parametrize("flag, value", [("--weight-decay", "nan"), ("--adam-epsilon", "inf"),
                                         ("--learning-rate", "nan"), ("--epochs", "inf"), ("--warmup-ratio", "-0.1")])
def test_non_finite_flags_exit_2_before_reading_anything(tmp_path, capsys, flag, value):
    assert main(["train", "--data", str(tmp_path / "missing"), "--output", str(tmp_path / "o"), flag, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_python_api_is_checked_the_same_way():
    with pytest.raises(ConfigError, match="adam_epsilon must be a finite number"):
        TrainConfig(data="d", adam_epsilon=float("inf"))
    with pytest.raises(ConfigError, match="max_length must be at least 3"):
        TrainConfig(data="d", max_length=1)


def test_outputs_never_destroy_inputs(tiny_data, tiny_model, tmp_path, capsys):
    """train --output DATA --overwrite, convert IN IN, evaluate --report MODEL: refused, inputs unchanged."""
    before = {name: open(os.path.join(tiny_data, name), "rb").read() for name in os.listdir(tiny_data)}
    assert main(["train", "--data", tiny_data, "--output", tiny_data, "--overwrite"]) == 2
    assert main(["train", "--data", tiny_data, "--output", os.path.join(tiny_data, "inside"), "--overwrite"]) == 2
    assert main(["train", "--train", os.path.join(tiny_data, "train.txt"), "--output", os.path.dirname(tiny_data)
                 + "/", "--overwrite"]) == 2
    train_file = os.path.join(tiny_data, "train.txt")
    assert main(["convert", train_file, train_file]) == 2
    assert main(["evaluate", tiny_model.output_dir, "--data", tiny_data, "--report", tiny_model.output_dir]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 5 and all("destroy the input" in line for line in errors), errors
    assert {name: open(os.path.join(tiny_data, name), "rb").read() for name in os.listdir(tiny_data)} == before
    assert os.path.exists(os.path.join(tiny_model.output_dir, "model.safetensors"))


def test_model_weights_are_written_with_the_usual_permissions(tiny_model):
    modes = {name: os.stat(os.path.join(tiny_model.output_dir, name)).st_mode & 0o777
             for name in ("model.safetensors", "config.json", "metrics.json")}
    assert len(set(modes.values())) == 1, modes


def test_predict_output_equal_to_its_input_is_refused(tiny_model, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("Alice met Bob in Paris\n")
    assert main(["predict", tiny_model.output_dir, "--input", str(texts), "--output", str(texts)]) == 2
    assert "destroy the input" in capsys.readouterr().err
    assert texts.read_text() == "Alice met Bob in Paris\n"


def test_evaluate_notes_predicted_types_the_data_lacks(tiny_model, tiny_data):
    import tokentune
    from tokentune.data import read_corpus

    plain = tokentune.evaluate(tiny_model.output_dir, tiny_data, split="dev")
    assert not any("a type the data does not have" in note for note in plain.get("notes", []))
    mapped = tokentune.evaluate(tiny_model.output_dir, tiny_data, split="dev", label_map={"PER": "O"})
    tagger = tokentune.Tagger.from_pretrained(tiny_model.output_dir)
    sentences = [s.words for s in read_corpus(os.path.join(tiny_data, "dev.txt"))]
    predicted = sum(label == "PER" for p in tagger.predict_token_batches(sentences) for label, _, _ in p.spans)
    assert predicted > 0 and mapped["per_type"]["PER"]["support"] == 0
    assert (f"the model predicted {predicted} PER entities, a type the data does not have (not annotated there, or "
            f"mapped away by --label-map): all count as false positives") in mapped["notes"]
