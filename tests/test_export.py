"""ONNX export: the CLI, atomic output, torch vs ONNX labels, the int8 file, and the onnx backend's errors."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from tokentune.cli.main import main
from tokentune.data import read_corpus
from tokentune.errors import ConfigError, ModelError
from tokentune.export import FP32_FILE, INT8_FILE, MANIFEST_FILE, export_model
from tokentune.inference.runners import onnx_file_for, physical_cores
from tokentune.inference import Tagger


@pytest.fixture(scope="module")
def model_dir(tiny_model):
    return tiny_model.output_dir


@pytest.fixture(scope="module")
def exported(model_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("export") / "onnx"
    assert main(["export", model_dir, "--output", str(output), "--quantize", "int8"]) == 0
    return str(output)


@pytest.fixture(scope="module")
def test_sentences(tiny_data):
    return [s.words for s in read_corpus(os.path.join(tiny_data, "test.txt"))]


def test_export_cli_writes_a_self_contained_directory(exported, model_dir, capsys):
    names = set(os.listdir(exported))
    assert {FP32_FILE, INT8_FILE, MANIFEST_FILE, "config.json", "tokenizer.json", "tokentune_config.json"} <= names
    assert "model.safetensors" not in names  # the ONNX directory does not need the torch weights
    manifest = json.load(open(os.path.join(exported, MANIFEST_FILE)))
    assert manifest["files"] == {"fp32": FP32_FILE, "int8": INT8_FILE}
    assert manifest["max_abs_diff"] < 1e-4
    assert not [n for n in os.listdir(os.path.dirname(exported)) if n.endswith(".partial")]


def test_onnx_graph_has_dynamic_batch_and_sequence_axes(exported):
    import onnx

    graph = onnx.load(os.path.join(exported, FP32_FILE)).graph
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims[:2]] == ["batch", "sequence"], value.name


def test_torch_and_onnx_fp32_labels_identical(model_dir, exported, test_sentences):
    torch_tags = [p.tags for p in Tagger.from_pretrained(model_dir).predict_token_batches(test_sentences)]
    onnx_tagger = Tagger.from_pretrained(exported, backend="onnx")
    assert [p.tags for p in onnx_tagger.predict_token_batches(test_sentences)] == torch_tags
    torch_probs = np.concatenate(Tagger.from_pretrained(model_dir).word_probabilities(test_sentences))
    onnx_probs = np.concatenate(onnx_tagger.word_probabilities(test_sentences))
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-5)


def test_int8_export_loads_and_predicts(exported, test_sentences):
    fp32 = Tagger.from_pretrained(exported, backend="onnx").predict_token_batches(test_sentences)
    int8 = Tagger.from_pretrained(exported, backend="onnx", quantize="int8").predict_token_batches(test_sentences)
    same = sum(a == b for p, q in zip(fp32, int8) for a, b in zip(p.tags, q.tags))
    assert same / sum(len(p.tags) for p in fp32) >= 0.95
    by_name = Tagger.from_pretrained(exported, backend="onnx", onnx_file=INT8_FILE)
    assert [p.tags for p in by_name.predict_token_batches(test_sentences)] == [p.tags for p in int8]
    assert os.path.getsize(os.path.join(exported, INT8_FILE)) < os.path.getsize(os.path.join(exported, FP32_FILE))


def test_export_in_place_serves_both_backends(model_dir, tmp_path, capsys):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    assert main(["export", str(copy), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(copy)
    assert (copy / FP32_FILE).exists() and (copy / "model.safetensors").exists()
    assert not [n for n in os.listdir(copy) if n.startswith(".")]  # no staging files left
    text = "Alice met Bob in Paris ."
    onnx = Tagger.from_pretrained(str(copy), backend="onnx").predict_text(text)
    torch_entities = Tagger.from_pretrained(str(copy)).predict_text(text)
    assert [(e.label, e.start, e.end) for e in onnx] == [(e.label, e.start, e.end) for e in torch_entities]
    # scores are rounded to 6 decimals: float differences between the engines may move the last one
    assert [e.score for e in onnx] == pytest.approx([e.score for e in torch_entities], abs=2e-6)
    # a later export with int8, then one without: the stale int8 file goes
    export_model(str(copy), quantize="int8")
    assert (copy / INT8_FILE).exists()
    assert export_model(str(copy)).notes and not (copy / INT8_FILE).exists()


def test_existing_output_needs_overwrite(model_dir, exported, capsys):
    assert main(["export", model_dir, "--output", exported]) == 2
    assert "already exists" in capsys.readouterr().err


def test_failed_export_leaves_nothing(model_dir, tmp_path, monkeypatch):
    import tokentune.export as export

    def broken(*args, **kwargs):
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(export, "_trace", broken)
    with pytest.raises(RuntimeError):
        export_model(model_dir, str(tmp_path / "out"))
    assert os.listdir(tmp_path) == []


def test_export_errors_exit_2(tmp_path, model_dir, capsys):
    assert main(["export", str(tmp_path / "missing"), "--output", str(tmp_path / "o")]) == 2
    assert "cannot load" in capsys.readouterr().err
    assert main(["export", model_dir, "--output", str(tmp_path / "o"), "--opset", "9"]) == 2
    assert "opset" in capsys.readouterr().err


def test_onnx_backend_errors(model_dir, exported, tmp_path):
    with pytest.raises(ModelError, match="tokentune export"):
        Tagger.from_pretrained(model_dir, backend="onnx")  # a torch-only directory
    with pytest.raises(ConfigError):
        onnx_file_for(exported, quantize="int4")
    with pytest.raises(ConfigError):
        Tagger.from_pretrained(model_dir, backend="torch", quantize="int8")
    bad = tmp_path / "bad"
    shutil.copytree(exported, bad)
    (bad / FP32_FILE).write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="cannot load"):
        Tagger.from_pretrained(str(bad), backend="onnx")


def test_session_uses_physical_cores(exported):
    from tokentune.inference.runners import session_options

    options = session_options()
    assert options.intra_op_num_threads == physical_cores() >= 1
