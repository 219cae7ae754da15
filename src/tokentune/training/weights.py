"""Per-label loss weights (``--class-weights auto|FILE``) for the softmax head's cross-entropy.

``auto``: inverse frequency, smoothed. With ``n_l`` the number of training sub-tokens labelled ``l``
(the labelled first pieces of every training window), ``w_l = (n_l + K)^-ALPHA`` with ``K = 1`` and
``ALPHA = 0.5``, then scaled so that the mean weight over the labelled tokens is 1
(``sum_l n_l w_l = sum_l n_l``): the loss keeps its size and the learning rate its meaning, while a
label ten times rarer weighs about three times more. A label never seen in training gets ``1^-0.5``
before scaling.

FILE: a JSON or YAML mapping of label (``B-PER``) or entity type (``PER``: all its labels) to a
finite weight >= 0; labels it leaves out weigh 1; an exact label beats its entity type.
"""
from __future__ import annotations

import json
import math
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from ..windows import IGNORE

SMOOTHING = 1.0  # K
POWER = 0.5  # ALPHA


def label_counts(train_features: Sequence[dict], count: int) -> np.ndarray:
    values = np.fromiter((label for f in train_features for label in f["labels"] if label != IGNORE), dtype=np.int64)
    return np.bincount(values, minlength=count)[:count]


def auto_weights(counts: np.ndarray) -> np.ndarray:
    """``(n + K)^-ALPHA`` scaled to a mean of 1 over the labelled tokens."""
    counts = np.asarray(counts, dtype=np.float64)
    raw = (counts + SMOOTHING) ** -POWER
    total = float((counts * raw).sum())
    return raw * (counts.sum() / total) if total > 0 else np.ones_like(raw)


def _entity_type(label: str) -> str:
    return label.split("-", 1)[1] if "-" in label and label != "O" else label


def _read_mapping(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the class weights file ({err})",
                          fix="pass a readable UTF-8 JSON or YAML file to --class-weights") from None
    try:
        if path.endswith(".json"):
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
    except ValueError as err:
        where = f"{path}:{err.lineno}" if getattr(err, "lineno", None) else path
        raise ConfigError(f"{where}: cannot parse the class weights file ({str(err).splitlines()[0]})",
                          fix='write a mapping of label -> weight, e.g. {"B-PER": 2.0, "O": 0.5}') from None
    except Exception as err:  # noqa: BLE001 - yaml.YAMLError and its subclasses
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise ConfigError(f"{where}: cannot parse the class weights file ({getattr(err, 'problem', None) or err})",
                          fix="write a mapping of label -> weight, e.g. 'B-PER: 2.0'") from None
    if not isinstance(values, dict) or not values:
        raise ConfigError(f"{path}: expected a mapping of label -> weight, found {type(values).__name__}",
                          fix='write e.g. {"B-PER": 2.0, "O": 0.5} (JSON) or "PER: 2.0" lines (YAML)')
    return values


def file_weights(path: str, labels: Sequence[str]) -> np.ndarray:
    """Weights from a JSON/YAML mapping (see the module's text); a one-line error for anything else."""
    values = _read_mapping(path)
    types = {_entity_type(label) for label in labels}
    weights = np.ones(len(labels))
    for key, value in values.items():
        if str(key) not in labels and str(key) not in types:
            raise ConfigError(f"{path}: unknown label {key!r} in the class weights",
                              fix=f"use the labels the model learns: {', '.join(labels)} (or an entity type: "
                                  f"{', '.join(sorted(types - set(labels)))})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{path}: the weight of {key!r} must be a finite number >= 0, found {value!r}",
                              fix="give every label a number such as 0.5 or 2")
    for index, label in enumerate(labels):
        kind = _entity_type(label)
        if label in values or kind in values:
            weights[index] = float(values[label] if label in values else values[kind])
    if not weights.any():
        raise ConfigError(f"{path}: every label weighs 0, so nothing would be learned",
                          fix="give at least one label a weight above 0")
    return weights


def class_weights(setting: str | None, labels: Sequence[str], train_features: Sequence[dict]) -> np.ndarray | None:
    """The ``--class-weights`` setting as one weight per label id (None: no weights)."""
    if setting is None:
        return None
    if setting == "auto":
        return auto_weights(label_counts(train_features, len(labels)))
    return file_weights(setting, labels)


def weights_note(setting: str, labels: Sequence[str], weights: np.ndarray) -> str:
    shown = ", ".join(f"{label} {weight:.3g}" for label, weight in zip(labels, weights))
    how = "auto: (count + 1)^-0.5, mean 1 over labelled tokens" if setting == "auto" else f"from {setting}"
    return f"class weights ({how}): {shown}"


def head_notes(config, labels: Sequence[str], train_features: Sequence[dict]) -> list[str]:
    """Notes on the head and loss a run trains with (``--head``, ``--class-weights``); a bad weights
    file is refused here, before anything is written."""
    if config.head == "crf":
        return ["head: linear-chain CRF over each window's first sub-tokens (packed sentences kept apart), "
                "Viterbi-decoded; transitions saved in crf.safetensors"]
    weights = class_weights(config.class_weights, labels, train_features)
    return [] if weights is None else [weights_note(config.class_weights, labels, weights)]
