"""The ONNX backend loads without transformers (inference/light.py): the same tokenizer, labels and
predictions as transformers' loading gives, and a `predict --backend onnx` process that never imports torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tokentune.cli.main import main
from tokentune.data import read_corpus
from tokentune.errors import ModelError
from tokentune.inference import Tagger, light
from tokentune.modeling import embedded_model_path, load_tokenizer

WORDS = ["Müller", "visited", "São", "Paulo", "and", "東京", "with", "ACME-Corp", "'s", "C.E.O.", "naïve", "x" * 40]


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    output = tmp_path_factory.mktemp("light") / "onnx"
    assert main(["export", tiny_model.output_dir, "--output", str(output), "--quantize", "int8"]) == 0
    return str(output)


@pytest.mark.parametrize("which", ["embedded", "tiny"])
def test_the_light_tokenizer_is_transformers_tokenizer(which, tiny_model):
    path = str(embedded_model_path()) if which == "embedded" else tiny_model.output_dir
    ours, theirs = light.light_tokenizer(path), load_tokenizer(path)
    assert ours is not None
    for name in ("cls_token_id", "sep_token_id", "pad_token_id", "unk_token_id", "model_max_length"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.num_special_tokens_to_add(pair=False) == theirs.num_special_tokens_to_add(pair=False)
    assert len(ours) == len(theirs)
    mine = ours.backend_tokenizer.encode(WORDS, is_pretokenized=True, add_special_tokens=False)
    assert mine.ids == theirs(WORDS, is_split_into_words=True, add_special_tokens=False)["input_ids"]


def test_onnx_predictions_are_the_same_either_way(exported, tiny_data, monkeypatch):
    sentences = [s.words for s in read_corpus(os.path.join(tiny_data, "test.txt"))]
    texts = [" ".join(words) for words in sentences]
    fast = Tagger.from_pretrained(exported, backend="onnx")
    assert isinstance(fast.tokenizer, light.LightTokenizer)
    monkeypatch.setattr(light, "light_tokenizer", lambda model_dir: None)
    slow = Tagger.from_pretrained(exported, backend="onnx")
    assert not isinstance(slow.tokenizer, light.LightTokenizer)
    assert fast.max_length == slow.max_length and fast.labels == slow.labels
    assert fast.predict_token_batches(sentences) == slow.predict_token_batches(sentences)
    assert fast.predict_texts(texts) == slow.predict_texts(texts)


def test_predict_with_onnx_never_imports_torch(exported):
    code = ("import sys; from tokentune.cli.main import main; "
            f"code = main(['predict', {exported!r}, '--backend', 'onnx', 'Alice visited Paris']); "
            "print(code, 'torch' in sys.modules, 'transformers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "0 False False", done.stderr
    assert "entities" in json.loads(lines[0])


def test_a_tokenizer_transformers_would_change_is_left_to_transformers(exported, tmp_path):
    copy = tmp_path / "model"
    copy.mkdir()
    for name in os.listdir(exported):
        os.symlink(os.path.join(exported, name), copy / name)
    settings = json.load(open(os.path.join(exported, "tokenizer_config.json")))
    os.unlink(copy / "tokenizer_config.json")
    # casing settings that disagree with tokenizer.json's normalizer: transformers rebuilds it, so we leave it
    lowercase = json.load(open(os.path.join(exported, "tokenizer.json")))["normalizer"]["lowercase"]
    (copy / "tokenizer_config.json").write_text(json.dumps({**settings, "do_lower_case": lowercase}))
    assert light.light_tokenizer(str(copy)) is not None
    (copy / "tokenizer_config.json").write_text(json.dumps({**settings, "do_lower_case": not lowercase}))
    assert light.light_tokenizer(str(copy)) is None
    (copy / "tokenizer_config.json").write_text(json.dumps({**settings, "tokenizer_class": "XLMRobertaTokenizer"}))
    assert light.light_tokenizer(str(copy)) is None


def test_config_json_is_read_and_checked(exported, tmp_path):
    config = light.read_model_config(exported)
    assert config.id2label[0] == "O" and config.num_labels == len(config.id2label)
    (tmp_path / "config.json").write_text(json.dumps({"id2label": {"zero": "O"}}))
    with pytest.raises(ModelError, match="id2label keys must be label ids"):
        light.read_model_config(str(tmp_path))
    with pytest.raises(ModelError, match="no config.json"):
        light.read_model_config(str(tmp_path / "missing"))
