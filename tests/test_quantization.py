"""int8 with a scale per token (tokentune.quantization): a text's answer does not depend on its batch, the
products match float on hand-built graphs (MatMul, Gemm, opset 17 and 18), and onnxruntime's own
``quantize_dynamic`` is the oracle that shows the batch dependence it removes."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tokentune.errors import ModelError
from tokentune.export import FP32_FILE, INT8_FILE, INT8_SCHEME, MANIFEST_FILE, export_model
from tokentune.inference import Tagger
from tokentune.inference.onnx_graph import onnx_graph_kind, requantize_command
from tokentune.quantization import WEIGHT_LEVELS, quantize_per_token


# the words of the tiny test data's sentences (tagged in batches of several sentences each)
@pytest.fixture(scope="module")
def sentences(tiny_data):
    from tokentune.data import read_corpus

    return [s.words for s in read_corpus(os.path.join(tiny_data, "test.txt"))]


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    output = tmp_path_factory.mktemp("quantization") / "onnx"
    export_model(tiny_model.output_dir, str(output), quantize="int8")
    return str(output)


@pytest.fixture(scope="module")
def per_call_file(exported):
    """The same fp32 graph quantized by onnxruntime's quantize_dynamic (one activation scale per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = os.path.join(exported, "per-call.int8.onnx")
    quantize_dynamic(os.path.join(exported, FP32_FILE), path, weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gemm"])
    return path


def alone_and_batched(tagger, sentences) -> float:
    """Largest change of any word's probabilities between a sentence tagged alone and in its batch."""
    batched = tagger.word_probabilities(sentences)
    alone = [tagger.word_probabilities([words])[0] for words in sentences[:12]]
    return max(float(np.abs(a - b).max()) for a, b in zip(alone, batched))


def test_int8_export_scales_each_token_and_says_so(exported):
    assert onnx_graph_kind(os.path.join(exported, INT8_FILE)) == (True, False)
    assert onnx_graph_kind(os.path.join(exported, FP32_FILE)) == (False, False)
    with open(os.path.join(exported, MANIFEST_FILE), encoding="utf-8") as handle:
        manifest = json.load(handle)
    assert manifest["int8_scheme"] == INT8_SCHEME
    quantized, products = map(int, manifest["int8_products"].split(" of "))
    assert quantized == products > 0  # every product of a BERT has its weight as a constant
    tagger = Tagger.from_pretrained(exported, backend="onnx", quantize="int8")
    assert tagger.precision == "int8" and not tagger.batch_dependent


def test_a_texts_int8_answer_does_not_depend_on_its_batch(exported, per_call_file, sentences):
    ours = Tagger.from_pretrained(exported, backend="onnx", quantize="int8")
    assert alone_and_batched(ours, sentences) < 1e-5  # float rounding, as fp32
    theirs = Tagger.from_pretrained(exported, backend="onnx", onnx_file=per_call_file)
    assert theirs.precision == "int8" and theirs.batch_dependent
    assert alone_and_batched(theirs, sentences) > 1e-4  # the oracle: one scale per call moves a text's scores


def test_per_token_int8_is_as_close_to_fp32_as_onnxruntimes(exported, per_call_file, sentences):
    fp32 = np.concatenate(Tagger.from_pretrained(exported, backend="onnx").word_probabilities(sentences))
    ours = np.concatenate(Tagger.from_pretrained(exported, backend="onnx", quantize="int8").word_probabilities(sentences))
    theirs = np.concatenate(Tagger.from_pretrained(exported, backend="onnx", onnx_file=per_call_file)
                            .word_probabilities(sentences))
    assert np.abs(ours - fp32).mean() <= 1.5 * np.abs(theirs - fp32).mean()
    assert np.abs(ours - fp32).max() < 0.05


def product_graph(opset: int, gemm: bool, weight: np.ndarray, bias: np.ndarray):
    """``y = x @ weight + bias`` as a MatMul and an Add, or as one Gemm whose weight is stored transposed."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", weight.shape[0]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", weight.shape[1]])
    if gemm:
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="gemm", transB=1)]
        weights = [numpy_helper.from_array(weight.T.copy(), "w"), numpy_helper.from_array(bias, "b")]
    else:
        nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"], name="matmul"), helper.make_node("Add", ["xw", "b"], ["y"])]
        weights = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")]
    graph = helper.make_graph(nodes, "product", [x], [y], initializer=weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


@pytest.mark.parametrize("opset, gemm", [(17, False), (18, False), (17, True)])
def test_products_match_float_within_their_rounding(tmp_path, opset, gemm):
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(64, 24)).astype(np.float32), rng.normal(size=24).astype(np.float32)
    x = rng.normal(size=(5, 64)).astype(np.float32) * np.array([[1], [10], [0.01], [100], [0]], np.float32)
    onnx.save(product_graph(opset, gemm, weight, bias), tmp_path / "fp32.onnx")
    assert quantize_per_token(str(tmp_path / "fp32.onnx"), str(tmp_path / "int8.onnx")) == (1, 1)
    onnx.checker.check_model(onnx.load(tmp_path / "int8.onnx"), full_check=True)
    assert onnx_graph_kind(str(tmp_path / "int8.onnx")) == (True, False)
    (y,) = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    exact = x @ weight + bias
    # each factor rounded by at most half a step: rows to 127 levels of their largest value, columns to 63
    bound = (np.abs(x).max(axis=1, keepdims=True) / 254 * np.abs(weight).sum(axis=0)
             + np.abs(x).sum(axis=1, keepdims=True) * np.abs(weight).max(axis=0) / (2 * WEIGHT_LEVELS))
    assert np.all(np.abs(y - exact) <= bound * 1.01 + 1e-5)
    np.testing.assert_allclose(y[4], bias, atol=1e-6)  # a zero row stays exact: its scale is not a division by 0
    # each row alone gives the same numbers as in the batch
    session = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    alone = np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    np.testing.assert_allclose(alone, y, rtol=1e-6, atol=1e-6)


def save_graph(path, nodes, weights, inputs=("x",), opset: int = 17, extra_inputs=()):
    values = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["rows", 8]) for name in inputs]
    graph = helper.make_graph(nodes, "g", values + list(extra_inputs),
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", 8])],
                              initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8), path)


def run_graph(path, x: np.ndarray) -> np.ndarray:
    onnx.checker.check_model(onnx.load(path), full_check=True)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]


WEIGHT = np.random.default_rng(1).normal(size=(8, 8)).astype(np.float32)
X = np.random.default_rng(2).normal(size=(3, 8)).astype(np.float32)


def test_a_weight_shared_with_a_float_node_is_kept(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Gather", ["w", "zero"], ["w_row"], axis=0),
             helper.make_node("Add", ["xw", "w_row"], ["y"])]
    save_graph(tmp_path / "a.onnx", nodes, {"w": WEIGHT, "zero": np.array(0, np.int64)})
    assert quantize_per_token(str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx")) == (1, 1)
    np.testing.assert_allclose(run_graph(tmp_path / "b.onnx", X), X @ WEIGHT + WEIGHT[0], atol=0.1)


def test_nodes_of_the_same_name_and_names_like_ours_stay_apart(tmp_path):
    """ONNX does not require unique node names, and a graph may already use any tensor name."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["tt_q/x/abs"], name="mm"),
             helper.make_node("MatMul", ["tt_q/x/abs", "w"], ["tt_q/one"], name="mm"),
             helper.make_node("Identity", ["tt_q/one"], ["y"], name="tt_q/levels")]
    save_graph(tmp_path / "a.onnx", nodes, {"w": WEIGHT})
    assert quantize_per_token(str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx")) == (2, 2)
    np.testing.assert_allclose(run_graph(tmp_path / "b.onnx", X), X @ WEIGHT @ WEIGHT, atol=0.2)
    with pytest.raises(ModelError, match="is quantized already .*MatMulIntegerToFloat"):
        quantize_per_token(str(tmp_path / "b.onnx"), str(tmp_path / "c.onnx"))


def test_a_weight_read_in_a_subgraph_stays_and_a_graph_input_is_not_a_constant(tmp_path):
    branch = helper.make_graph([helper.make_node("Identity", ["w"], ["w_copy"])], "branch", [],
                               [helper.make_tensor_value_info("w_copy", TensorProto.FLOAT, [8, 8])])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Constant", [], ["yes"], value=
                                                                              numpy_helper.from_array(np.array(True))),
             helper.make_node("If", ["yes"], ["w_if"], then_branch=branch, else_branch=branch),
             helper.make_node("MatMul", ["xw", "w_if"], ["y"])]
    save_graph(tmp_path / "a.onnx", nodes, {"w": WEIGHT})
    assert quantize_per_token(str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx")) == (1, 2)
    np.testing.assert_allclose(run_graph(tmp_path / "b.onnx", X), X @ WEIGHT @ WEIGHT, atol=0.2)
    # a weight that is also a graph input can be replaced by the caller: it stays a float product
    weight_input = helper.make_tensor_value_info("w", TensorProto.FLOAT, [8, 8])
    save_graph(tmp_path / "c.onnx", [helper.make_node("MatMul", ["x", "w"], ["y"])], {"w": WEIGHT},
               extra_inputs=[weight_input])
    assert quantize_per_token(str(tmp_path / "c.onnx"), str(tmp_path / "d.onnx")) == (0, 0)


def test_graph_kind_reads_subgraphs(tmp_path):
    branch = helper.make_graph([helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
                                helper.make_node("Identity", ["x"], ["y_branch"])], "branch", [],
                               [helper.make_tensor_value_info("y_branch", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("Constant", [], ["yes"], value=numpy_helper.from_array(np.array(True))),
             helper.make_node("If", ["yes"], ["y"], then_branch=branch, else_branch=branch)]
    save_graph(tmp_path / "a.onnx", nodes, {})
    assert onnx_graph_kind(str(tmp_path / "a.onnx")) == (False, True)


def test_the_fix_for_a_per_call_file_names_a_command_that_works(exported, tiny_model):
    assert requantize_command(tiny_model.output_dir) == f"tokentune export {tiny_model.output_dir} --quantize int8"
    assert requantize_command(exported) == (f"tokentune export {os.path.abspath(tiny_model.output_dir)} "
                                            f"--output {exported} --overwrite --quantize int8")


def test_graph_kind_of_a_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x0f\xff\xff\xff not a protobuf")
    with pytest.raises(ModelError, match="is not an ONNX model"):
        onnx_graph_kind(str(path))
    path.write_bytes(b"")
    assert onnx_graph_kind(str(path)) == (False, False)
    with pytest.raises(ModelError, match="cannot read the ONNX model"):
        onnx_graph_kind(str(tmp_path))  # a directory: open() fails


def test_an_old_per_call_export_still_runs_and_is_marked(exported, per_call_file, tmp_path, sentences):
    """An int8 file from an earlier tokentune (quantize_dynamic) keeps working; serve runs its texts alone."""
    old = tmp_path / "old"
    shutil.copytree(exported, old)
    shutil.copy(per_call_file, old / INT8_FILE)
    tagger = Tagger.from_pretrained(str(old), backend="onnx", quantize="int8")
    assert tagger.precision == "int8" and tagger.batch_dependent
    assert len(tagger.predict_token_batches(sentences)) == len(sentences)


def test_predict_says_when_an_int8_file_scales_per_call(exported, per_call_file, tmp_path, capsys, tiny_model):
    from tokentune.cli.main import main

    old = tmp_path / "old"
    shutil.copytree(exported, old)
    shutil.copy(per_call_file, old / INT8_FILE)
    assert main(["predict", str(old), "--backend", "onnx", "--quantize", "int8", "EU rejects German lamb"]) == 0
    note = capsys.readouterr().err
    assert f"note: {old / INT8_FILE} scales activations once per model call" in note
    assert f"`tokentune export {os.path.abspath(tiny_model.output_dir)} --output {old} --overwrite" in note
    assert main(["predict", exported, "--backend", "onnx", "--quantize", "int8", "EU rejects German lamb"]) == 0
    assert "once per model call" not in capsys.readouterr().err
