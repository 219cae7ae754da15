"""What an ONNX file computes, read from its nodes' operator types without loading it: whether its
products are int8, and whether it scales activations once per call (so that a text's answer depends on
the texts batched with it), and how to write such a file anew."""
from __future__ import annotations

import json
import os

from ..errors import ModelError

# products in int8, and activations scaled once for a whole call (onnxruntime's quantize_dynamic: one
# factor from the largest value in the batch, so a text's answer depends on the texts beside it)
INTEGER_OPS = ("MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QLinearMatMul", "QAttention",
               "QGemm", "MatMulNBits", "ConvInteger", "QLinearConv", "DequantizeLinear")
PER_CALL_OPS = ("DynamicQuantizeLinear", "DynamicQuantizeMatMul")


def onnx_graph_kind(path: str) -> tuple[bool, bool]:
    """``(int8, scaled_per_call)`` of an ONNX file, from the operator types of its nodes (those of the
    graph, its subgraphs and its functions). The file's protobuf is walked for those strings alone,
    skipping the weights unread: ``import onnx`` takes about a second, longer than an int8 prediction's
    start-up."""
    import mmap

    fix = "check the file, or export the model again with `tokentune export MODEL_DIR`"
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return False, False
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                ops = set(_op_types(data))
    except OSError as err:
        raise ModelError(f"cannot read the ONNX model {path}: {err.strerror or err}", fix=fix) from None
    except (ValueError, IndexError) as err:
        raise ModelError(f"{path} is not an ONNX model ({err})", fix=fix) from None
    return bool(ops & set(INTEGER_OPS)), bool(ops & set(PER_CALL_OPS))


def _op_types(data):
    """op_type of each node: ModelProto's graph (field 7) and functions (field 25, nodes in field 3)."""
    for graph in _messages(data, 0, len(data), 7):
        yield from _graph_op_types(data, *graph)
    for function in _messages(data, 0, len(data), 25):
        for node in _messages(data, *function, 3):
            yield from _node_op_types(data, *node)


def _graph_op_types(data, start: int, end: int):
    for node in _messages(data, start, end, 1):  # GraphProto.node
        yield from _node_op_types(data, *node)


def _node_op_types(data, start: int, end: int):
    """NodeProto.op_type (field 4), and those of the graphs in its attributes (If, Loop, Scan: field 5,
    AttributeProto.g field 6 and .graphs field 11)."""
    for op_start, op_end in _messages(data, start, end, 4):
        yield bytes(data[op_start:op_end]).decode("utf-8", "replace")
    for attribute in _messages(data, start, end, 5):
        for field in (6, 11):
            for graph in _messages(data, *attribute, field):
                yield from _graph_op_types(data, *graph)


def _messages(data, start: int, end: int, wanted: int):
    """``(start, end)`` of each length-delimited field numbered ``wanted`` in the message ``data[start:end]``."""
    position = start
    while position < end:
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            position = _varint(data, position)[1]
        elif wire == 2:
            length, position = _varint(data, position)
            if number == wanted:
                yield position, position + length
            position += length
        elif wire in (1, 5):
            position += 8 if wire == 1 else 4
        else:
            raise ValueError(f"wire type {wire} at byte {position}")


def _varint(data, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if byte < 0x80:
            return value, position
        shift += 7


def requantize_command(model_dir: str) -> str:
    """The command that writes ``model_dir``'s int8 file anew (with a scale per token): an export into
    the model directory itself, or, for an export directory (no torch weights), from the model it was
    exported from (``onnx_export.json``'s ``source``)."""
    if any(os.path.isfile(os.path.join(model_dir, name)) for name in ("model.safetensors", "pytorch_model.bin")):
        return f"tokentune export {model_dir} --quantize int8"
    try:
        with open(os.path.join(model_dir, "onnx_export.json"), encoding="utf-8") as handle:
            source = json.load(handle).get("source")
    except (OSError, ValueError, AttributeError):
        source = None
    return f"tokentune export {source or 'TRAINED_MODEL_DIR'} --output {model_dir} --overwrite --quantize int8"


def scales_per_call_message(path: str, model_dir: str, consequence: str) -> str:
    """What ``predict`` notes and ``serve`` warns for a file scaled once per call, with the fix."""
    return (f"{path} scales activations once per model call, {consequence}; `{requantize_command(model_dir)}` "
            "writes model.int8.onnx anew with a scale per token")
