"""int8 quantization of an exported ONNX graph: weights per output channel, activations per token.

ONNX Runtime's ``quantize_dynamic`` scales a MatMul's input with one factor for the whole call, taken
from the largest value in the batch, so a text's scores, and at times its entities, depended on the
texts it was batched with (48 of 600 CoNLL-2003 sentences had other entities alone than in batches of
32). Here every token's vector gets its own factor, so a text's answer does not depend on its batch
(beyond float rounding, as in fp32) and a small token is not quantized on the scale of a large one.
ONNX Runtime has no operator for a scale per row, so the graph computes it from standard operators.

Each MatMul (and Gemm) whose weight is a constant matrix ``[K, N]`` becomes:

- ``s = max(|x|) / 127`` over the last axis of its input ``x`` (one scale per token; inputs shared by
  several products, such as attention's query, key and value, are quantized once);
- ``q = uint8(x / s + 128.5)``: ``x / s`` rounded to an integer in [-127, 127], stored with zero point
  128, so onnxruntime's fast u8 x s8 kernels run it;
- ``y = MatMulIntegerToFloat(q, W8, 1, w_scale, 128) * s`` (onnxruntime's contrib operator), where
  ``W8`` is the weight rounded per output column to integers in [-63, 63]: with 7-bit weights the
  pairwise sums of the u8 x s8 instructions of CPUs without VNNI cannot saturate (255 x 63 x 2 < 2^15),
  so the result is the same on every x86 CPU.

The embeddings, layer norms, attention's own products and softmax stay in float (quantizing the
embeddings too cost F1 and gained no speed on CoNLL-2003). No calibration data is needed.
"""
from __future__ import annotations

import numpy as np

# rounding each weight column to [-63, 63] and each token's vector to [-127, 127]
WEIGHT_LEVELS = 63
ACTIVATION_LEVELS = 127
ZERO_POINT = 128
_CONTRIB = "com.microsoft"


class _Rewriter:
    """Builds the quantized graph's nodes and constants, one product at a time."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.graph = model.graph
        self.numpy_helper = numpy_helper
        self.weights = {init.name: init for init in model.graph.initializer}
        self.axes_as_input = _opset(model) >= 18  # ReduceMax/ReduceMin took their axes as an attribute before
        self.nodes: list = []
        self.replaced: set[str] = set()
        self.added: set[str] = set()
        self.quantized: dict[str, tuple[str, str]] = {}  # input name -> (its uint8 tensor, its scales)
        self._constant("tt_q_levels", np.array(ACTIVATION_LEVELS, np.float32))
        self._constant("tt_q_tiny", np.array(np.finfo(np.float32).tiny, np.float32))
        self._constant("tt_q_zero_point", np.array(ZERO_POINT, np.uint8))
        self._constant("tt_q_one", np.array(1.0, np.float32))
        self._constant("tt_q_last_axis", np.array([-1], np.int64))

    def _constant(self, name: str, value: np.ndarray) -> str:
        self.graph.initializer.append(self.numpy_helper.from_array(value, name))
        self.added.add(name)
        return name

    def _node(self, op: str, inputs: list[str], output: str, **attributes) -> str:
        from onnx import helper

        domain = _CONTRIB if op == "MatMulIntegerToFloat" else ""
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attributes))
        return output

    def _reduce(self, op: str, x: str, output: str) -> str:
        if self.axes_as_input:
            return self._node(op, [x, "tt_q_last_axis"], output, keepdims=1)
        return self._node(op, [x], output, axes=[-1], keepdims=1)

    def per_token(self, x: str) -> tuple[str, str]:
        """``(q, s)``: ``x`` as uint8 with one scale per token (computed once per input)."""
        if x not in self.quantized:
            name = "tt_q/" + x
            magnitude = self._node("Abs", [x], name + "/abs")
            largest = self._node("Max", [self._reduce("ReduceMax", magnitude, name + "/max"), "tt_q_tiny"],
                                 name + "/largest")  # tiny: an all-zero vector stays zero, not 0/0
            scale = self._node("Div", [largest, "tt_q_levels"], name + "/scale")
            scaled = self._node("Div", [x, scale], name + "/scaled")  # in [-127, 127]
            # one fused pass rounds, shifts by the zero point and saturates
            self.quantized[x] = (self._node("QuantizeLinear", [scaled, "tt_q_one", "tt_q_zero_point"], name + "/uint8"),
                                 scale)
        return self.quantized[x]

    def product(self, node, x: str, weight: np.ndarray, output: str, bias: str | None = None) -> None:
        """``output = x @ weight (+ bias)`` with int8 weights and per-token int8 activations."""
        columns = np.abs(weight).max(axis=0) / WEIGHT_LEVELS
        columns[columns == 0] = 1.0  # an all-zero column stays zero whatever its scale
        rounded = np.clip(np.rint(weight / columns), -WEIGHT_LEVELS, WEIGHT_LEVELS).astype(np.int8)
        q, scale = self.per_token(x)
        name = "tt_q/" + (node.name or output)
        product = self._node("MatMulIntegerToFloat", [q, self._constant(name + "/weight", rounded), "tt_q_one",
                                                      self._constant(name + "/weight_scale", columns.astype(np.float32)),
                                                      "tt_q_zero_point"], name + "/int8")
        if bias is None:
            self._node("Mul", [product, scale], output)
        else:
            self._node("Add", [self._node("Mul", [product, scale], name + "/unbiased"), bias], output)

    def rewrite(self, node) -> bool:
        """Quantize ``node`` if it is a product with a constant 2-D weight; False leaves it as it is."""
        to_array = self.numpy_helper.to_array
        if node.op_type == "MatMul" and _is_matrix(self.weights.get(node.input[1])):
            self.product(node, node.input[0], to_array(self.weights[node.input[1]]).astype(np.float32), node.output[0])
            self.replaced.add(node.input[1])
            return True
        if node.op_type == "Gemm" and _plain_gemm(node) and _is_matrix(self.weights.get(node.input[1])):
            weight = to_array(self.weights[node.input[1]]).astype(np.float32)
            transposed = any(a.name == "transB" and a.i for a in node.attribute)
            bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
            self.product(node, node.input[0], weight.T if transposed else weight, node.output[0], bias)
            self.replaced.add(node.input[1])
            return True
        return False


def _opset(model) -> int:
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)


def _is_matrix(initializer) -> bool:
    return initializer is not None and len(initializer.dims) == 2 and initializer.data_type == 1  # float32


def _plain_gemm(node) -> bool:
    """Gemm without transA, alpha or beta: a product plus a bias, as a Linear layer exports."""
    attributes = {a.name: a for a in node.attribute}
    return (not ("transA" in attributes and attributes["transA"].i)
            and all(name not in attributes or attributes[name].f == 1.0 for name in ("alpha", "beta")))


def quantize_per_token(fp32_path: str, int8_path: str) -> int:
    """Write ``int8_path``: the graph of ``fp32_path`` with every product by a constant weight in int8.
    Returns how many products were quantized."""
    import onnx
    from onnx import helper

    model = onnx.load(fp32_path)
    rewriter = _Rewriter(model)
    for node in list(model.graph.node):
        if not rewriter.rewrite(node):
            rewriter.nodes.append(node)
    # a replaced weight shared with a node left in float stays; constants no node reads go (onnxruntime warns)
    still_used = {name for node in rewriter.nodes for name in node.input}
    dropped = (rewriter.replaced | rewriter.added) - still_used
    kept = [init for init in model.graph.initializer if init.name not in dropped]
    del model.graph.node[:]
    model.graph.node.extend(rewriter.nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    if not any(entry.domain == _CONTRIB for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid(_CONTRIB, 1))
    onnx.save(model, int8_path)
    return len(rewriter.replaced)
