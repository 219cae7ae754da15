"""ONNX export and int8 quantization (the runner that reads the files is in :mod:`tokentune.inference.runners`).

An exported directory holds ``model.onnx`` (fp32), optionally ``model.int8.onnx`` (int8 weights,
activations quantized per token at run time: :mod:`tokentune.quantization`), ``config.json`` (labels,
limits), the tokenizer files, tokentune's own metadata when the source had it (and a CRF head's
``crf.safetensors``), and ``onnx_export.json`` (what was exported and how well it matched torch).
``Tagger.from_pretrained(DIR, backend="onnx")`` and ``tokentune predict DIR --backend onnx`` read it;
so does a normal model directory into which ``tokentune export MODEL_DIR`` (no ``--output``) wrote
``model.onnx`` next to the torch weights.

The exporter is torch's TorchScript-based one (``dynamo=False``): the dynamo exporter needs the
``onnxscript`` package, which tokentune does not depend on, and the TorchScript trace of a transformers
BERT gives a graph with dynamic batch and sequence axes whose outputs match torch to ~1e-7.
"""
from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from .crf import CRF_FILE
from .errors import ConfigError, ModelError
from .inference.runners import FP32_FILE, INT8_FILE, QUANTIZATIONS, session_options, softmax
from .quantization import quantize_per_token

MANIFEST_FILE = "onnx_export.json"
OPSET = 17
MIN_OPSET = 14  # LayerNormalization and the attention graphs of transformers need opset 14 or newer
# exported graphs whose logits differ from torch by more than this are refused: something broke
MAX_EXPORT_DIFF = 1e-3
# tokentune metadata copied along so an exported directory keeps its model card and settings, and a CRF
# head's learned transition scores (the ONNX graph gives the logits; the Tagger decodes with these)
METADATA_FILES = ("tokentune_config.json", "metrics.json", "README.md", CRF_FILE)
INT8_SCHEME = "weights int8 per output channel (7 bits), activations int8 per token"

@dataclass
class ExportResult:
    output_dir: str
    files: dict[str, str]  # "fp32" / "int8" -> file name inside output_dir
    opset: int
    max_abs_diff: float  # fp32 logits vs torch on a padded check batch
    int8_max_prob_diff: float | None = None  # int8 probabilities vs torch, where the mask attends
    int8_scheme: str | None = None  # how the int8 file quantizes (a reader of the manifest knows which export)
    int8_products: str | None = None  # "quantized of all" MatMul and Gemm nodes
    notes: list[str] = field(default_factory=list)


def _logits_only(model):
    """The model wrapped so the traced graph has two inputs and one output, ``logits`` (a transformers
    model returns a dict-like output and takes optional inputs the exporter would trace as constants)."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    return LogitsOnly(model).eval()


def _check_batch(tokenizer, batch: int, extra: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of sample sentences, right-padded so the attention mask has zeros in it."""
    texts = ["EU rejects German call to boycott British lamb .", "Peter Blackburn", "BRUSSELS 1996-08-22"]
    encoded = tokenizer((texts * batch)[:batch], padding=True, return_tensors="np")
    ids = encoded["input_ids"].astype(np.int64)
    mask = encoded["attention_mask"].astype(np.int64)
    if extra:  # a longer sequence than the trace saw: proves the sequence axis is dynamic
        pad = tokenizer.pad_token_id or 0
        ids = np.concatenate([ids, np.full((batch, extra), pad, dtype=np.int64)], axis=1)
        mask = np.concatenate([mask, np.zeros((batch, extra), dtype=np.int64)], axis=1)
    return ids, mask


def _trace(model, tokenizer, path: str, opset: int) -> None:
    import torch

    ids, mask = _check_batch(tokenizer, 2, 0)
    axes = {"batch": 0, "sequence": 1}
    dynamic = {name: {v: k for k, v in axes.items()} for name in ("input_ids", "attention_mask", "logits")}
    with warnings.catch_warnings():
        # the TorchScript exporter warns that it is deprecated and that python conditions are traced
        # as constants; the check against torch on another shape below is what proves the graph right
        warnings.simplefilter("ignore")
        torch.onnx.export(_logits_only(model), (torch.from_numpy(ids), torch.from_numpy(mask)), path,
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True, dynamo=False)


def _torch_logits(model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.float().numpy()


def _onnx_logits(path: str, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(path, sess_options=session_options(), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]


def _write_export(model, tokenizer, directory: str, *, quantize: str | None, opset: int) -> ExportResult:
    """Write the ONNX file(s) into ``directory`` and check them against torch."""
    fp32 = os.path.join(directory, FP32_FILE)
    _trace(model, tokenizer, fp32, opset)
    ids, mask = _check_batch(tokenizer, 3, extra=5)  # another batch size and length than the trace
    reference = _torch_logits(model, ids, mask)
    diff = float(np.abs(_onnx_logits(fp32, ids, mask) - reference).max())
    if not diff <= MAX_EXPORT_DIFF:
        raise ModelError(f"the exported graph does not match torch (max logit difference {diff:.2e})",
                         fix="report this with the model's config.json; predict with --backend torch meanwhile")
    result = ExportResult(directory, {"fp32": FP32_FILE}, opset, diff)
    if quantize == "int8":
        quantized, products = quantize_per_token(fp32, os.path.join(directory, INT8_FILE))
        if not quantized:
            raise ModelError(f"none of the {products} matrix products of {FP32_FILE} multiplies by a constant "
                             "weight, so there is nothing to quantize", fix="leave --quantize out: predict with "
                                                                          "the fp32 file")
        result.int8_products = f"{quantized} of {products}"
        if quantized < products:  # e.g. ALBERT's shared layers reach their products through another node
            result.notes.append(f"{products - quantized} of {products} matrix products stay in float in {INT8_FILE} "
                                "(their weights are not constants of the graph)")
        int8 = softmax(_onnx_logits(os.path.join(directory, INT8_FILE), ids, mask))
        # over the sub-tokens the mask attends: padding's scores are never read, and int8 moves them most
        result.int8_max_prob_diff = float(np.abs(int8 - softmax(reference))[mask.astype(bool)].max())
        result.files["int8"] = INT8_FILE
        result.int8_scheme = INT8_SCHEME
    return result


def _copy_metadata(model_dir: str, model, tokenizer, directory: str, output_name: str) -> None:
    """config, tokenizer and tokentune's files next to the ONNX files; the card's usage is the export's
    (``output_name``: the output directory's, as a reader would load it)."""
    from .modeling import save_tokenizer

    model.config.save_pretrained(directory)
    save_tokenizer(tokenizer, directory)
    for name in METADATA_FILES:
        source = os.path.join(model_dir, name)
        if os.path.isfile(source):
            shutil.copy2(source, os.path.join(directory, name))
    card = os.path.join(directory, "README.md")
    if os.path.isfile(card):  # its usage is the trained model's (torch weights, transformers' pipeline): not here
        text = open(card, encoding="utf-8").read()
        head = text.split("\n## Usage\n", 1)[0].rstrip("\n")
        with open(card, "w", encoding="utf-8") as handle:
            handle.write(f"{head}\n\n{_export_usage(output_name, os.path.isfile(os.path.join(directory, CRF_FILE)))}")


def _export_usage(name: str, crf: bool = False) -> str:
    logits = ("output `logits`, one row of label scores per sub-token (see `onnx_export.json`). The tags "
              "tokentune gives come from Viterbi over them with the CRF's learned transitions in "
              "`crf.safetensors` and the scheme's constraints; an argmax of the logits gives other tags "
              "for some words." if crf else
              "output `logits`, one row of label scores per sub-token (see `onnx_export.json`); tokentune "
              "reads each word's first sub-token and decodes with the scheme's constraints (Viterbi).")
    return f"""## Usage

This directory is the ONNX export of the trained model: `model.onnx` (and `model.int8.onnx` when quantized),
with its tokenizer and config but without the torch weights, so transformers' `pipeline` does not load it
(the trained model's own directory does). tokentune picks the ONNX backend for it:

```bash
tokentune predict {name} "EU rejects German call to boycott British lamb."
```

```python
import tokentune
tagger = tokentune.Tagger.from_pretrained('{name}', backend='onnx')
tagger.predict_text('EU rejects German call to boycott British lamb.')
```

onnxruntime alone runs the graph too: inputs `input_ids` and `attention_mask`, {logits}

`model.int8.onnx` uses onnxruntime's operator `MatMulIntegerToFloat` (domain `com.microsoft`), so it runs on
onnxruntime; `model.onnx` uses standard ONNX operators only.
"""


def _manifest(result: ExportResult, source: str) -> dict:
    import torch

    data = asdict(result)
    data.pop("output_dir")
    data.pop("notes")
    data.update(source=os.path.abspath(source), torch=torch.__version__, exporter="torch.onnx (TorchScript)",
                inputs=["input_ids", "attention_mask"], outputs=["logits"], dynamic_axes=["batch", "sequence"])
    return data


def max_opset() -> int:
    """The newest opset torch's TorchScript exporter has symbolic functions for (one public module
    ``torch.onnx.symbolic_opsetN`` per opset; it only warns, and then fails, on newer ones)."""
    import pkgutil

    import torch.onnx

    found = [int(m.name[len("symbolic_opset"):]) for m in pkgutil.iter_modules(torch.onnx.__path__)
             if m.name.startswith("symbolic_opset") and m.name[len("symbolic_opset"):].isdigit()]
    return max(found, default=OPSET)


def check_options(model_dir: str, output: str | None, *, quantize: str | None, opset: int, overwrite: bool) -> None:
    """Refuse settings the export cannot honour before any model is loaded."""
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantize!r}", fix="use --quantize int8, or leave it out")
    newest = max_opset()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ConfigError(f"opset {opset!r} is out of range: this torch exports opsets {MIN_OPSET} to {newest} "
                          f"for transformer graphs", fix=f"use --opset {OPSET} (the default) or another in that range")
    if not os.path.isdir(model_dir):
        return  # load_trained says what it is (a file, a Hub id, nothing)
    source, target = os.path.realpath(model_dir), os.path.realpath(output or model_dir)
    if source == target:
        return  # in place
    if os.path.exists(target) and not os.path.isdir(target):
        raise ConfigError(f"--output {output} is a file, not a directory", fix="choose a directory path for --output")
    if os.path.exists(target) and not overwrite:
        raise ConfigError(f"output directory {target} already exists",
                          fix="choose another --output, or pass --overwrite to replace it")
    if target.startswith(source.rstrip(os.sep) + os.sep):
        raise ConfigError(f"--output {output} lies inside the model directory {model_dir}: the export would change "
                          f"the model directory", fix="choose an --output outside the model directory, or leave it "
                                                      "out to add the ONNX files to the model directory itself")
    if source.startswith(target.rstrip(os.sep) + os.sep):
        raise ConfigError(f"--output {output} holds the model directory {model_dir}: replacing it would delete the "
                          f"model", fix="choose an --output outside the model directory, or leave it out to add "
                                        "the ONNX files to the model directory itself")


def export_model(model_dir: str, output: str | None = None, *, quantize: str | None = None, opset: int = OPSET,
                 overwrite: bool = False) -> ExportResult:
    """Export the model in ``model_dir`` to ONNX.

    With ``output``, a new directory usable on its own is written atomically (a hidden temporary
    sibling renamed when complete). Without it, ``model.onnx`` (and ``model.int8.onnx``) are added to
    ``model_dir`` itself, each file replaced in one rename, so the directory serves both backends.
    """
    import tempfile

    from .io import atomic_directory, atomic_write_json, holds, writing
    from .modeling import load_trained

    check_options(model_dir, output, quantize=quantize, opset=opset, overwrite=overwrite)
    model, tokenizer = load_trained(model_dir)
    model.eval()
    if hasattr(model, "set_attn_implementation"):
        # the explicit softmax(QK^T)V graph runs faster in onnxruntime than the decomposition of
        # torch's scaled_dot_product_attention (int8: ~15% on MiniLM, see docs/benchmarks.md); same maths
        try:
            model.set_attn_implementation("eager")
        except (ValueError, NotImplementedError):
            pass  # a model without an eager attention keeps its own
    in_place = output is None or os.path.realpath(output) == os.path.realpath(model_dir)
    if not in_place:
        with atomic_directory(output, overwrite=overwrite, earlier=holds(MANIFEST_FILE)) as staging:
            result = _write_export(model, tokenizer, staging, quantize=quantize, opset=opset)
            _copy_metadata(model_dir, model, tokenizer, staging, os.path.basename(os.path.normpath(output)))
            atomic_write_json(os.path.join(staging, MANIFEST_FILE), _manifest(result, model_dir))
        result.output_dir = os.path.abspath(output)
        return result
    with writing(model_dir):  # a read-only model directory: one located error, not a traceback
        staging = tempfile.mkdtemp(dir=model_dir, prefix=".onnx-export.", suffix=".partial")
    try:
        result = _write_export(model, tokenizer, staging, quantize=quantize, opset=opset)
        with writing(model_dir):
            for name in result.files.values():
                os.replace(os.path.join(staging, name), os.path.join(model_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if quantize is None and os.path.exists(os.path.join(model_dir, INT8_FILE)):
        # an int8 file from an earlier export no longer matches the new fp32 one
        with writing(model_dir):
            os.unlink(os.path.join(model_dir, INT8_FILE))
        result.notes.append(f"removed the stale {INT8_FILE} of an earlier export")
    result.output_dir = os.path.abspath(model_dir)
    atomic_write_json(os.path.join(model_dir, MANIFEST_FILE), _manifest(result, model_dir))
    return result
