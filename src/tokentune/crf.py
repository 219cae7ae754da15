"""The CRF head's file: learned start, transition and end scores of a linear-chain CRF, kept next to
the plain transformers weights of a model directory as ``crf.safetensors``.

The encoder and its linear token-classification layer are saved as usual (``model.safetensors``), so
the directory still loads in plain transformers; tokentune's Tagger (torch and ONNX backends) and
``serve`` read this file too and decode with Viterbi over the per-word log-probabilities plus these
scores plus the scheme's forbidden-transition masks (:func:`tokentune.decoding.viterbi_batch`).

Emissions: the CRF is trained on the classifier's raw logits; log-softmax differs from them by one
constant per word, which cancels in the CRF's likelihood and in Viterbi, so decoding the Tagger's
log-probabilities gives the same paths. This module needs numpy and safetensors, not torch.
"""
from __future__ import annotations

import json
import os
from typing import NamedTuple, Sequence

import numpy as np

from .errors import ModelError

CRF_FILE = "crf.safetensors"
TENSORS = ("start", "transitions", "end")


class CrfScores(NamedTuple):
    """Additive scores: ``start[L]`` (first word's label), ``transitions[L, L]`` (previous, current)
    and ``end[L]`` (last word's label)."""

    start: np.ndarray
    transitions: np.ndarray
    end: np.ndarray


def has_crf(model_dir: str) -> bool:
    return os.path.isfile(os.path.join(model_dir, CRF_FILE))


def load_crf(model_dir: str, labels: Sequence[str]) -> CrfScores | None:
    """The CRF scores of a model directory (None: it has no ``crf.safetensors``, a softmax head),
    checked against the model's labels."""
    path = os.path.join(model_dir, CRF_FILE)
    fix = "copy crf.safetensors again from the directory `tokentune train --head crf` wrote, or train again"
    if not os.path.isfile(path):
        from .inference.saved import saved_setting

        if saved_setting(model_dir, "head", ("crf", "softmax")) == "crf":  # else its predictions are not the model's
            raise ModelError(f"{path} is missing, but tokentune_config.json says the model has a CRF head", fix=fix)
        return None
    from safetensors import safe_open

    try:
        with safe_open(path, framework="numpy") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        raise ModelError(f"cannot read {path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
                         fix=fix) from None
    count = len(labels)
    shapes = {"start": (count,), "transitions": (count, count), "end": (count,)}
    for name, shape in shapes.items():
        if name not in tensors or tuple(tensors[name].shape) != shape:
            found = tuple(tensors[name].shape) if name in tensors else "missing"
            raise ModelError(f"{path}: tensor {name!r} should have shape {shape} for the {count} labels of "
                             f"config.json, found {found}", fix=fix)
    saved = metadata.get("labels")
    if saved is not None and json.loads(saved) != list(labels):
        raise ModelError(f"{path} was saved for the labels {json.loads(saved)}, but config.json has {list(labels)}",
                         fix=fix)
    values = [np.asarray(tensors[name], dtype=np.float64) for name in TENSORS]
    if not all(np.isfinite(v).all() for v in values):
        raise ModelError(f"{path} holds scores that are NaN or infinite", fix=fix)
    return CrfScores(*values)


def save_crf(directory: str, scores: CrfScores, labels: Sequence[str]) -> str:
    """Write ``crf.safetensors`` (float32 tensors, the label names in its metadata)."""
    from safetensors.numpy import save_file

    path = os.path.join(directory, CRF_FILE)
    tensors = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in zip(TENSORS, scores)}
    save_file(tensors, path, metadata={"labels": json.dumps(list(labels)), "format": "tokentune-crf-1"})
    return path
