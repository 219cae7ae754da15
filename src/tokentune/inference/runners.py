"""Runners: ``runner(input_ids, attention_mask) -> probabilities [batch, time, labels]`` for the Tagger,
from a torch model or from an ONNX file (written by :mod:`tokentune.export`) through ONNX Runtime."""
from __future__ import annotations

import contextlib
import os
from typing import Callable

import numpy as np

from ..errors import ConfigError, ModelError
from ..settings import check_choice
from ..threads import follow
from .onnx_graph import onnx_graph_kind

FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
QUANTIZATIONS = ("int8",)
BACKENDS = ("torch", "onnx")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# input_ids [batch, time] and attention_mask, both int64 -> probabilities [batch, time, labels]
Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


def inference_precision(requested: str | None, device: str, model_config=None) -> str:
    """The precision a torch model predicts in: ``fp32``, ``bf16`` or ``fp16`` (CUDA) autocast, or ``auto``:
    bf16 where training's ``precision auto`` picks it (CPUs with AMX-BF16, and CPUs with AVX512-BF16 where
    a bf16 matrix product measured at least 1.3x as fast as fp32: training.hardware.cpu_bf16_pays; CUDA
    GPUs with bf16 for models whose layers hold 100M weights or more, or of unknown size), fp32
    elsewhere. On an AMX CPU bf16 made MiniLM's forward 2.0-3.1x faster at fixed shapes, a whole CoNLL-2003
    evaluation 1.3-1.4x (each new shape compiles its kernels once), and moved test F1 by 0.02 points
    (docs/benchmarks.md, "Whole jobs"); logits become fp32 before the softmax. On a GPU, auto keeps fp32
    for a model as small as the embedded one (``model_config``: its config; training.hardware.gpu_bf16_pays)."""
    from ..training.hardware import cpu_bf16_pays, gpu_bf16_pays

    requested = check_device_precision(requested, device)
    if requested != "auto":
        return requested
    if device.startswith("cuda"):  # Ampere and later compute in bf16; older GPUs only emulate it, slower than fp32
        import torch

        ampere = torch.cuda.get_device_capability(torch.device(device))[0] >= 8
        return "bf16" if ampere and gpu_bf16_pays(model_config) else "fp32"
    return "bf16" if cpu_bf16_pays()[0] else "fp32"


def check_device_precision(requested: str | None, device: str) -> str:
    """``requested`` checked as :func:`check_precision` does and against the device (fp16 needs CUDA),
    before any model loads; ``auto`` stays ``auto``."""
    requested = check_precision(requested)
    if requested == "fp16" and not device.startswith("cuda"):
        raise ConfigError("fp16 prediction needs a CUDA GPU", fix="use --precision bf16 or fp32 on a CPU")
    return requested


def check_precision(requested: str | None) -> str:
    """``requested`` (None: auto) as one of :data:`PRECISIONS`, before any model loads."""
    return check_choice(requested or "auto", PRECISIONS, "precision", "--precision")


def precision_after_training(trained: str | None) -> str:
    """What a model predicts in by default: fp32 when it was trained with ``--precision fp32`` (its user
    asked for fp32 figures), else ``auto``. Training's dev evaluation and a later ``evaluate`` on the same
    machine so compute the same figures; a forced ``--bf16`` (slow on some CPUs) is not kept."""
    return "fp32" if trained == "fp32" else "auto"


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(device: str | None) -> str:
    """The torch device to run on (None: :func:`default_device`); a name torch does not know, or a GPU
    this machine does not have, is a ConfigError before the model loads."""
    import torch

    if device is None:
        return default_device()
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}", fix="pass --device cpu, cuda or cuda:N") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device} asked for, but torch sees no CUDA GPU on this machine",
                          fix="leave out --device (the CPU is used), or run where a GPU is visible")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device} asked for, but torch sees {torch.cuda.device_count()} GPU(s)",
                          fix="pass cuda:0 up to the last one (nvidia-smi lists them)")
    if parsed.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device}: tokentune predicts on cpu or cuda", fix="pass --device cpu or cuda")
    return device


def torch_runner(model, device: str | None = None, precision: str = "fp32", *, packing: bool = True) -> Runner:
    """``precision`` (fp32, bf16, fp16): the forward runs under that autocast; the weights stay as they are.

    ``packing``: where the model's position ids are known (:func:`packed_positions`), the runner also has
    ``runner.packed(input_ids, attention_mask_4d, position_ids, select=None)`` and ``runner.first_position``,
    with which the Tagger runs windows packed into rows (:mod:`.packed`); with ``select`` (row and column
    index arrays; ``runner.packed.selects`` is True) it returns the probabilities at those positions only,
    ``[selected, labels]``, computed there alone by a model that can (``selects_positions``: :mod:`.bert`)
    where the call has more positions than the rounded selection."""
    import torch

    device = device or default_device()
    model = model.to(device).eval()
    # a model being trained in bf16 has its forward wrapped in autocast by accelerate: its original
    # forward runs in the precision asked for here, as the saved model will in `evaluate`
    forward = model.__dict__.get("_original_forward", model)
    device_type = torch.device(device).type
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def autocast():  # no autocast object at all in fp32: some devices (older torch's mps) have none
        return torch.autocast(device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        follow()  # the command's thread advice (tokentune.threads), before each batch
        with torch.inference_mode(), autocast():
            logits = forward(input_ids=torch.from_numpy(input_ids).to(device),
                             attention_mask=torch.from_numpy(attention_mask).to(device)).logits
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    run.model = model  # the module it runs (training drops a plain-torch BERT's prepared weights after a dev pass)
    first_position = packed_positions(model.config) if packing else None
    if first_position is None:
        return run
    run_packed = _packed_runner(model, forward, device, autocast)
    run.packed, run.first_position = run_packed, first_position
    return run


def _packed_runner(model, forward, device: str, autocast):
    """``runner.packed`` of :func:`torch_runner`: packed rows, their 4D mask and position ids; ``select``."""
    import torch

    from ..training.packing import additive_mask

    additive = getattr(model.config, "_attn_implementation", None) == "eager"
    weights = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    selects = getattr(model, "selects_positions", False)

    def run_packed(input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray,
                   select: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        mask = torch.from_numpy(attention_mask)
        if additive:  # eager attention adds its mask to the scores, in the weights' dtype (without autocast)
            mask = additive_mask(mask, weights)
        follow()  # the command's thread advice (tokentune.threads), before each batch
        # the model computes the selected positions alone where that is less work than all of them
        inside = selects and select is not None and rounded_size(len(select[0])) < input_ids.size
        where = None if select is None else tuple(
            torch.from_numpy(rounded_up(index) if inside else index).to(device) for index in select)
        with torch.inference_mode(), autocast():
            logits = forward(input_ids=torch.from_numpy(input_ids).to(device), attention_mask=mask.to(device),
                             position_ids=torch.from_numpy(position_ids).to(device),
                             **({"select": where} if inside else {})).logits
            if where is not None and not inside:  # computed at every position: read the chosen ones
                logits = logits[where]
        probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return probs if select is None else probs[:len(select[0])]

    run_packed.selects = True  # takes select= (a runner written before it did not: the Tagger asks)
    return run_packed


SELECT_STEP = 256  # selected positions, rounded up to a multiple of this (the last one repeated)


def rounded_up(index: np.ndarray) -> np.ndarray:
    """``index`` with its last entry repeated up to a multiple of :data:`SELECT_STEP`: the last layer's
    tensors then come in few sizes, which glibc's heap reuses; with a new size each batch the freed blocks
    that the command keeps in the process (memory.reuse_freed_memory) fragmented, and `predict`'s
    peak memory grew from 464 to 632 MB on CoNLL-2003 test. A call with fewer positions than the rounded
    selection computes them all instead (a `serve` request of a few short sentences)."""
    extra = rounded_size(len(index)) - len(index)
    return np.concatenate([index, np.repeat(index[-1:], extra)]) if extra and len(index) else index


def rounded_size(count: int) -> int:
    return count + -count % SELECT_STEP


# families whose token classifier takes no position ids (RoFormer: rotary positions from the column, and a
# row wider than its sinusoid table would fail): their windows run padded
IGNORE_POSITION_IDS = {"roformer"}


def packed_positions(model_config) -> int | None:
    """The first position id of a window for a model that packed rows can run (its family's positions are
    known, and its attention takes a 4D mask: eager or SDPA), else None."""
    from ..errors import ConfigError
    from ..training.packing import position_offset

    if getattr(model_config, "_attn_implementation", None) not in ("eager", "sdpa"):
        return None  # flash attention and others take no 4D mask
    if getattr(model_config, "model_type", None) in IGNORE_POSITION_IDS:
        return None
    try:
        return position_offset(model_config)
    except ConfigError:
        return None


def physical_cores() -> int:
    """Physical cores this process may use: hyper-threads share one core's units, so more threads
    than cores only adds contention to matrix multiplications."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or logical
    except ImportError:  # psutil is optional: assume no hyper-threading
        physical = logical
    return max(1, min(physical, logical))


def onnx_file_for(model_dir: str, *, quantize: str | None = None, onnx_file: str | None = None) -> str:
    """The ONNX file to load: ``onnx_file`` (a name inside ``model_dir`` or a path) if given, else
    ``model.int8.onnx`` for ``quantize="int8"``, else ``model.onnx``."""
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantize!r}", fix="use --quantize int8, or leave it out for fp32")
    if onnx_file is not None and not str(onnx_file).strip():
        raise ConfigError("--onnx-file is empty", fix="name the ONNX file, e.g. --onnx-file model.onnx, or leave it out")
    if onnx_file is not None:
        path = onnx_file if os.path.isabs(onnx_file) or os.path.exists(onnx_file) else os.path.join(model_dir, onnx_file)
    else:
        path = os.path.join(model_dir, INT8_FILE if quantize == "int8" else FP32_FILE)
    if not os.path.isfile(path):
        flag = " --quantize int8" if quantize == "int8" else ""
        raise ModelError(f"no ONNX model at {path}",
                         fix=f"export it first: `tokentune export {model_dir}{flag}` adds it to that directory")
    return path


def session_options(threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1  # one graph at a time: parallelism is inside the matmuls
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def _providers(device: str | None) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device is not None and device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ConfigError("device cuda asked for, but this onnxruntime has no CUDA provider",
                              fix="install onnxruntime-gpu, or leave out --device")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device not in (None, "cpu"):
        raise ConfigError(f"unknown device {device!r} for the onnx backend", fix="use cpu or cuda")
    return ["CPUExecutionProvider"]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=-1, keepdims=True)
    return shifted


REEXPORT_FIX = "re-export the model with `tokentune export MODEL_DIR`, so the ONNX file and config.json match"


def _check_session(session, config, path: str, model_dir: str) -> tuple[set[str], str, int]:
    """``(extra input names, output name, label count)`` of an ONNX session, checked against config.json:
    inputs input_ids and attention_mask, and logits with one score per label of id2label."""
    from ..modeling import check_labels

    labels = len(check_labels(config, model_dir))
    names = {i.name for i in session.get_inputs()}
    if not {"input_ids", "attention_mask"} <= names:
        raise ModelError(f"{path} takes inputs {sorted(names)}, not input_ids and attention_mask",
                         fix="export the model with `tokentune export`")
    output = session.get_outputs()[0]  # "logits" from tokentune; other exporters name it otherwise
    shape = list(output.shape or [])
    if len(shape) != 3 or (isinstance(shape[-1], int) and shape[-1] != labels):
        raise ModelError(f"{path} outputs {output.name} of shape {shape}, but config.json in {model_dir} has "
                         f"{labels} labels (id2label): the two belong to different models", fix=REEXPORT_FIX)
    return names - {"input_ids", "attention_mask"}, output.name, labels  # extra: e.g. token_type_ids


def load_onnx(model_dir: str, device: str | None, precision: str, *, quantize: str | None = None,
              onnx_file: str | None = None, threads: int | None = None) -> tuple[Runner, object, str, bool]:
    """``(runner, config, precision, batch_dependent)`` of an ONNX model: ``precision`` is int8 or fp32, as
    its graph computes; ``batch_dependent``: it scales activations once per call (:func:`onnx_graph_kind`)."""
    if precision not in ("auto", "fp32"):
        raise ConfigError(f"precision {precision} applies to the torch backend; this model runs as an ONNX file, "
                          "whose precision is its own", fix="leave --precision out for ONNX models (--quantize "
                                                            "int8 loads the int8 file), or pass --backend torch")
    path = onnx_file_for(model_dir, quantize=quantize, onnx_file=onnx_file)
    runner, config = onnx_runner(model_dir, device, onnx_file=path, threads=threads)
    int8, per_call = onnx_graph_kind(path)
    return runner, config, "int8" if int8 else "fp32", per_call


def onnx_runner(model_dir: str, device: str | None = None, *, quantize: str | None = None,
                onnx_file: str | None = None, threads: int | None = None) -> tuple[Runner, object]:
    """``(runner, config)``: runner(input_ids, attention_mask) -> float32 probabilities ``[B, T, L]``."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("the onnx backend needs onnxruntime", fix="pip install 'tokentune[onnx]'") from None
    from .light import read_model_config

    path = onnx_file_for(model_dir, quantize=quantize, onnx_file=onnx_file)
    config = read_model_config(model_dir)  # without transformers: it would import torch (light.py)
    try:
        session = ort.InferenceSession(path, sess_options=session_options(threads), providers=_providers(device))
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the ONNX model {path}: {str(err).splitlines()[0]}",
                         fix="re-export it with `tokentune export`; the directory needs config.json") from None
    except Exception as err:  # onnxruntime raises its own exception types for corrupt or foreign files
        raise ModelError(f"onnxruntime cannot load {path}: {str(err).splitlines()[0]}",
                         fix="re-export it with `tokentune export`") from None
    extra, output, labels = _check_session(session, config, path, model_dir)

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        feed.update({name: np.zeros_like(input_ids) for name in extra})
        (logits,) = session.run([output], feed)
        if logits.ndim != 3 or logits.shape[-1] != labels:
            raise ModelError(f"{path} gave logits of shape {list(logits.shape)}, not [batch, sequence, {labels}] for "
                             f"the {labels} labels of config.json", fix=REEXPORT_FIX)
        return softmax(logits.astype(np.float32, copy=False))

    return run, config
