"""Label scores -> tags: plain argmax, or Viterbi constrained to the valid transitions of the
training scheme (the default), so every predicted sequence decodes to well-formed spans."""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from .schemes import OUTSIDE, Scheme, is_valid_transition

_FORBIDDEN = -1e9


def scheme_of_labels(labels: Sequence[str]) -> Scheme:
    """The scheme a model was trained with, read off its label names."""
    from .schemes import BILOU, BIOES, IOB2, PLAIN

    prefixes = {label.split("-", 1)[0] for label in labels if label != OUTSIDE and "-" in label}
    if any(label != OUTSIDE and ("-" not in label or len(label.split("-", 1)[0]) != 1) for label in labels):
        return PLAIN
    if prefixes & {"U", "L"}:
        return BILOU
    if prefixes & {"S", "E"}:
        return BIOES
    return IOB2


@lru_cache(maxsize=32)
def _masks(labels: tuple[str, ...], scheme_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from .schemes import get_scheme

    scheme = get_scheme(scheme_name)
    n = len(labels)
    start = np.array([0.0 if is_valid_transition(OUTSIDE, t, scheme) else _FORBIDDEN for t in labels])
    end = np.array([0.0 if is_valid_transition(t, OUTSIDE, scheme) else _FORBIDDEN for t in labels])
    trans = np.zeros((n, n))
    for i, prev in enumerate(labels):
        for j, cur in enumerate(labels):
            if not is_valid_transition(prev, cur, scheme):
                trans[i, j] = _FORBIDDEN
    return start, trans, end


def transition_masks(labels: Sequence[str], scheme: Scheme) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Additive masks (0 allowed, -1e9 forbidden): start[L], transitions[L, L], end[L]."""
    return _masks(tuple(labels), scheme.name)


def viterbi(log_probs: np.ndarray, labels: Sequence[str], scheme: Scheme) -> np.ndarray:
    """Best label ids under the scheme's constraints for one sentence's ``[words, labels]`` log-probs."""
    length = log_probs.shape[0]
    if length == 0:
        return np.zeros(0, dtype=np.int64)
    start, trans, end = transition_masks(labels, scheme)
    score = log_probs[0] + start
    back = np.zeros((length, log_probs.shape[1]), dtype=np.int64)
    for t in range(1, length):
        candidates = score[:, None] + trans  # [prev, cur]
        back[t] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[t]
    score = score + end
    best = np.empty(length, dtype=np.int64)
    best[-1] = int(score.argmax())
    if score[best[-1]] <= _FORBIDDEN / 2:  # the label set allows no valid path: do not invent one
        return log_probs.argmax(axis=1)
    for t in range(length - 1, 0, -1):
        best[t - 1] = back[t, best[t]]
    return best


def decode(probs: np.ndarray, labels: Sequence[str], scheme: Scheme, method: str = "viterbi") -> np.ndarray:
    """Label ids for one sentence from its ``[words, labels]`` probabilities."""
    if method == "argmax" or not scheme.prefixed:
        return probs.argmax(axis=1)
    if method != "viterbi":
        from .errors import ConfigError

        raise ConfigError(f"unknown decoding {method!r}", fix="use --decode viterbi (default) or argmax")
    return viterbi(np.log(np.clip(probs, 1e-12, None)), labels, scheme)
