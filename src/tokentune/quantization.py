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
- ``q = QuantizeLinear(x / s, 1, 128)``: ``x / s`` rounded (half to even) to an integer in [-127, 127]
  and stored as uint8 with zero point 128, so onnxruntime's fast u8 x s8 kernels run it;
- ``y = MatMulIntegerToFloat(q, W8, 1, w_scale, 128) * s`` (onnxruntime's contrib operator), where
  ``W8`` is the weight rounded per output column to integers in [-63, 63]: with 7-bit weights the
  pairwise sums of the u8 x s8 instructions of CPUs without VNNI cannot saturate (255 x 63 x 2 < 2^15),
  so the integer products are exact on every x86 CPU (the float steps around them round as fp32 does).

``MatMulIntegerToFloat`` is an onnxruntime operator (domain ``com.microsoft``): the int8 file runs on
onnxruntime, where the fp32 file runs on any ONNX runtime.

The embeddings, layer norms, attention's own products and softmax stay in float (quantizing the
embeddings too cost F1 and gained no speed on CoNLL-2003). No calibration data is needed.
"""
from __future__ import annotations

import numpy as np

from .errors import ModelError
from .inference.onnx_graph import INTEGER_OPS

# rounding each weight column to [-63, 63] and each token's vector to [-127, 127]
WEIGHT_LEVELS = 63
ACTIVATION_LEVELS = 127
ZERO_POINT = 128
_CONTRIB = "com.microsoft"


class _Rewriter:
    """Builds the quantized graph's nodes and constants, one product at a time, under names the graph
    does not use yet (ONNX does not require node names to be unique, and a graph may hold any name)."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.graph = model.graph
        self.numpy_helper = numpy_helper
        graph_inputs = {value.name for value in model.graph.input}
        # an initializer that is also a graph input can be overridden by the caller: not a constant
        self.weights = {init.name: init for init in model.graph.initializer if init.name not in graph_inputs}
        self.axes_as_input = _opset(model) >= 18  # ReduceMax took its axes as an attribute before
        self.taken = _names(model.graph)
        self.nodes: list = []
        self.replaced: set[str] = set()  # weights read by a rewritten product
        self.rewritten = 0
        self.shared: dict[str, str] = {}  # constant's role -> its name
        self.quantized: dict[str, tuple[str, str]] = {}  # input name -> (its uint8 tensor, its scales)

    def _fresh(self, base: str) -> str:
        name, count = base, 1
        while name in self.taken:
            name, count = f"{base}_{count}", count + 1
        self.taken.add(name)
        return name

    def _constant(self, base: str, value: np.ndarray) -> str:
        name = self._fresh(base)
        self.graph.initializer.append(self.numpy_helper.from_array(value, name))
        return name

    def _shared(self, role: str) -> str:
        values = {"levels": np.array(ACTIVATION_LEVELS, np.float32), "one": np.array(1.0, np.float32),
                  "tiny": np.array(np.finfo(np.float32).tiny, np.float32),
                  "zero_point": np.array(ZERO_POINT, np.uint8), "last_axis": np.array([-1], np.int64)}
        if role not in self.shared:
            self.shared[role] = self._constant("tt_q/" + role, values[role])
        return self.shared[role]

    def _node(self, op: str, inputs: list[str], base: str, **attributes) -> str:
        from onnx import helper

        output = self._fresh(base)
        domain = "com.microsoft" if op == "MatMulIntegerToFloat" else ""
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attributes))
        return output

    def per_token(self, x: str) -> tuple[str, str]:
        """``(q, s)``: ``x`` as uint8 with one scale per token (computed once per input)."""
        if x not in self.quantized:
            name = "tt_q/" + x
            magnitude = self._node("Abs", [x], name + "/abs")
            if self.axes_as_input:
                largest = self._node("ReduceMax", [magnitude, self._shared("last_axis")], name + "/max", keepdims=1)
            else:
                largest = self._node("ReduceMax", [magnitude], name + "/max", axes=[-1], keepdims=1)
            # tiny: an all-zero vector stays zero, not 0/0
            largest = self._node("Max", [largest, self._shared("tiny")], name + "/largest")
            scale = self._node("Div", [largest, self._shared("levels")], name + "/scale")
            scaled = self._node("Div", [x, scale], name + "/scaled")  # in [-127, 127]
            # one fused pass rounds, shifts by the zero point and saturates
            uint8 = self._node("QuantizeLinear", [scaled, self._shared("one"), self._shared("zero_point")], name + "/uint8")
            self.quantized[x] = (uint8, scale)
        return self.quantized[x]

    def product(self, x: str, weight: np.ndarray, output: str, bias: str | None = None) -> None:
        """``output = x @ weight (+ bias)`` with int8 weights and per-token int8 activations."""
        from onnx import helper

        columns = np.abs(weight).max(axis=0) / WEIGHT_LEVELS
        columns[columns == 0] = 1.0  # an all-zero column stays zero whatever its scale
        rounded = np.clip(np.rint(weight / columns), -WEIGHT_LEVELS, WEIGHT_LEVELS).astype(np.int8)
        q, scale = self.per_token(x)
        name = "tt_q/" + output
        product = self._node("MatMulIntegerToFloat", [q, self._constant(name + "/weight", rounded), self._shared("one"),
                                                      self._constant(name + "/weight_scale", columns.astype(np.float32)),
                                                      self._shared("zero_point")], name + "/int8")
        self.rewritten += 1
        if bias is None:  # the product's own output name, which later nodes read
            self.nodes.append(helper.make_node("Mul", [product, scale], [output], name=self._fresh(name + "/scaled")))
        else:
            unbiased = self._node("Mul", [product, scale], name + "/unbiased")
            self.nodes.append(helper.make_node("Add", [unbiased, bias], [output], name=self._fresh(name + "/biased")))

    def rewrite(self, node) -> bool:
        """Quantize ``node`` if it is a product with a constant 2-D weight; False leaves it as it is."""
        to_array = self.numpy_helper.to_array
        if node.op_type == "MatMul" and _is_matrix(self.weights.get(node.input[1])):
            self.product(node.input[0], to_array(self.weights[node.input[1]]).astype(np.float32), node.output[0])
            self.replaced.add(node.input[1])
            return True
        if node.op_type == "Gemm" and _plain_gemm(node) and _is_matrix(self.weights.get(node.input[1])):
            weight = to_array(self.weights[node.input[1]]).astype(np.float32)
            transposed = any(a.name == "transB" and a.i for a in node.attribute)
            bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
            self.product(node.input[0], weight.T if transposed else weight, node.output[0], bias)
            self.replaced.add(node.input[1])
            return True
        return False


def _node_graphs(node) -> list:
    """The graphs in a node's attributes (If's branches, Loop's and Scan's bodies)."""
    return [graph for attribute in node.attribute
            for graph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs)]


def _subgraphs(graph):
    """``graph`` and every graph inside its nodes' attributes, recursively."""
    yield graph
    for node in graph.node:
        for inner in _node_graphs(node):
            yield from _subgraphs(inner)


def _names(graph) -> set[str]:
    """Every node and value name of ``graph`` and its subgraphs."""
    names = set()
    for inner in _subgraphs(graph):
        names |= {value.name for value in (*inner.input, *inner.output, *inner.value_info, *inner.initializer)}
        for node in inner.node:
            names |= {node.name, *node.input, *node.output}
    return names


def _read(graph, nodes) -> set[str]:
    """Names that ``nodes`` (with their subgraphs) and the graph's outputs read."""
    read = {value.name for value in graph.output}
    for node in nodes:
        read |= set(node.input)
        for subgraph in (sub for inner in _node_graphs(node) for sub in _subgraphs(inner)):
            read |= {name for inner_node in subgraph.node for name in inner_node.input}
    return read


def _constant_values(graph) -> set[str]:
    """Values computed from the graph's constants alone (initializers that are not graph inputs, Constant
    nodes, and what nodes make of them only); the nodes come in topological order, as ONNX requires."""
    inputs = {value.name for value in graph.input}
    constant = {init.name for init in graph.initializer if init.name not in inputs}
    for node in graph.node:
        if all(name in constant for name in node.input if name):
            constant |= set(node.output)
    return constant


def _opset(model) -> int:
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)


def _is_matrix(initializer) -> bool:
    return initializer is not None and len(initializer.dims) == 2 and initializer.data_type == 1  # float32


def _plain_gemm(node) -> bool:
    """Gemm without transA, alpha or beta: a product plus a bias, as a Linear layer exports."""
    attributes = {a.name: a for a in node.attribute}
    return (not ("transA" in attributes and attributes["transA"].i)
            and all(name not in attributes or attributes[name].f == 1.0 for name in ("alpha", "beta")))


def quantize_per_token(fp32_path: str, int8_path: str) -> tuple[int, int]:
    """Write ``int8_path``: the graph of ``fp32_path`` with every product by a constant weight in int8.
    Returns ``(quantized, products)``: how many MatMul and Gemm nodes by a weight were quantized, of how
    many (a weight that reaches its product through another node, such as ALBERT's shared layers, stays
    float; attention's products of two activations are not counted)."""
    import onnx
    from onnx import helper

    model = onnx.load(fp32_path)
    integer = sorted({node.op_type for node in model.graph.node} & set(INTEGER_OPS))
    if integer:
        raise ModelError(f"{fp32_path} is quantized already ({', '.join(integer)})",
                         fix="quantize the fp32 file (model.onnx), or re-export it with `tokentune export`")
    rewriter = _Rewriter(model)
    constant = _constant_values(model.graph)
    products = 0
    for node in list(model.graph.node):
        # products by a weight (a constant, or computed from constants), not attention's products of activations
        products += node.op_type in ("MatMul", "Gemm") and node.input[1] in constant
        if not rewriter.rewrite(node):
            rewriter.nodes.append(node)
    # a replaced weight that something else still reads (a node, a subgraph, a graph output) stays
    dropped = rewriter.replaced - _read(model.graph, rewriter.nodes)
    kept = [init for init in model.graph.initializer if init.name not in dropped]
    del model.graph.node[:]
    model.graph.node.extend(rewriter.nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    if not any(entry.domain == "com.microsoft" for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, int8_path)
    return rewriter.rewritten, products
