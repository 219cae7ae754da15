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
from tokentune.inference import Tagger
from tokentune.inference.runners import onnx_file_for, physical_cores


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
    torch_tagger = Tagger.from_pretrained(model_dir, precision="fp32")  # as the ONNX file computes
    torch_tags = [p.tags for p in torch_tagger.predict_token_batches(test_sentences)]
    onnx_tagger = Tagger.from_pretrained(exported, backend="onnx")
    assert [p.tags for p in onnx_tagger.predict_token_batches(test_sentences)] == torch_tags
    torch_probs = np.concatenate(torch_tagger.word_probabilities(test_sentences))
    onnx_probs = np.concatenate(onnx_tagger.word_probabilities(test_sentences))
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-5)


def test_int8_export_loads_and_predicts(exported, test_sentences):
    fp32 = Tagger.from_pretrained(exported, backend="onnx").predict_token_batches(test_sentences)
    int8 = Tagger.from_pretrained(exported, backend="onnx", quantize="int8").predict_token_batches(test_sentences)
    same = sum(a == b for p, q in zip(fp32, int8) for a, b in zip(p.tags, q.tags))
    assert same / sum(len(p.tags) for p in fp32) >= 0.95
    by_name = Tagger.from_pretrained(exported, backend="onnx", onnx_file=INT8_FILE)
    assert [p.tags for p in by_name.predict_token_batches(test_sentences)] == [p.tags for p in int8]
    assert by_name.precision == "int8" and Tagger.from_pretrained(exported, backend="onnx").precision == "fp32"
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
    torch_entities = Tagger.from_pretrained(str(copy), precision="fp32").predict_text(text)
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


def test_export_options_are_checked_before_any_work(model_dir, tmp_path, monkeypatch, capsys):
    import tokentune.modeling as modeling
    from tokentune.export import max_opset

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(modeling, "load_trained", no_loading)
    newest = max_opset()
    assert newest >= 17  # the default is one torch exports
    for opset in (13, newest + 1, 0):
        with pytest.raises(ConfigError, match=rf"opset {opset} is out of range: this torch exports opsets 14 to {newest}"):
            export_model(model_dir, str(tmp_path / "o"), opset=opset)
    with pytest.raises(ConfigError, match="unknown quantization 'int4'"):
        export_model(model_dir, str(tmp_path / "o"), quantize="int4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        export_model(model_dir, str(tmp_path / "file"), overwrite=True)
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        export_model(model_dir, str(existing))
    parent = os.path.dirname(model_dir)  # replacing it would delete the model
    with pytest.raises(ConfigError, match="holds the model directory"):
        export_model(model_dir, parent, overwrite=True)
    assert os.path.isdir(model_dir)
    assert main(["export", model_dir, "--output", str(tmp_path / "o"), "--opset", str(newest + 1)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"opset {newest + 1} is out of range" in err
    assert not (tmp_path / "o").exists()


def test_export_of_a_damaged_model_is_one_line(model_dir, tmp_path, capsys):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    data = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(data[: len(data) // 3])
    assert main(["export", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{copy}/model.safetensors is truncated" in err
    assert not (copy / FP32_FILE).exists()


def test_onnx_output_must_match_the_labels_of_config_json(exported, tmp_path, capsys):
    bad = tmp_path / "fewer-labels"
    shutil.copytree(exported, bad)
    config = json.load(open(bad / "config.json"))
    labels = len(config["id2label"])
    config["id2label"] = {str(i): name for i, name in enumerate(["O", "B-X"])}
    config.pop("label2id", None)
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=rf"outputs logits of shape \['batch', 'sequence', {labels}\], but config.json "
                                         rf"in .*fewer-labels has 2 labels"):
        Tagger.from_pretrained(str(bad), backend="onnx")
    assert main(["predict", str(bad), "--backend", "onnx", "Alice met Bob ."]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fewer-labels" in err and "re-export" in err
    config["id2label"] = {"1": "O", "2": "B-X"}
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="id2label keys are 1, 2, not 0..1"):
        Tagger.from_pretrained(str(bad), backend="onnx")


def test_onnx_directory_is_not_a_torch_model(exported):
    with pytest.raises(ModelError, match="model.safetensors is missing .*use --backend onnx"):
        Tagger.from_pretrained(exported)


def test_the_exported_card_says_how_to_load_the_export(exported, model_dir):
    """The trained model's card is copied for its figures, but its usage (torch weights, transformers'
    pipeline) does not hold for the export: that section is the export's own."""
    out = exported
    card = open(os.path.join(out, "README.md"), encoding="utf-8").read()
    original = open(os.path.join(model_dir, "README.md"), encoding="utf-8").read()
    assert card.split("\n## Usage\n")[0] == original.split("\n## Usage\n")[0]  # the figures kept
    usage = card.split("\n## Usage\n")[1]
    assert "pipeline('token-classification'" not in usage and "without the torch weights" in usage
    name = os.path.basename(os.path.normpath(out))
    assert f"Tagger.from_pretrained('{name}', backend='onnx')" in usage and f"tokentune predict {name} " in usage
    crf = os.path.exists(os.path.join(model_dir, "crf.safetensors"))  # an argmax of the logits is not its tags
    assert ("learned transitions in `crf.safetensors`" in usage) == crf and "onnxruntime alone" in usage
    with pytest.raises(ModelError, match=r"it holds an ONNX export: use --backend onnx, or backend='onnx' from Python"):
        Tagger.from_pretrained(out)
    assert Tagger.from_pretrained(out, backend="onnx").predict_text("Alice met Bob") is not None
