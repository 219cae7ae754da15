"""Label scores -> labels -> spans, for many sentences at once.

Constrained decoding: Viterbi over each sentence's ``[words, labels]`` log-probabilities, allowed
only the transitions that the training scheme's table (:mod:`tokentune.schemes`) permits, so every
decoded sequence reads as well-formed spans; then spans are cut from the flat label ids by array
operations, with the same result as :func:`tokentune.schemes.tags_to_spans` on each sentence.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from .schemes import OUTSIDE, Scheme, get_scheme, is_valid_transition, split_tag

FORBIDDEN = -1e9  # the additive score of a transition the scheme does not allow


@lru_cache(maxsize=32)
def _masks(labels: tuple[str, ...], scheme_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scheme = get_scheme(scheme_name)
    n = len(labels)
    start = np.array([0.0 if is_valid_transition(OUTSIDE, t, scheme) else FORBIDDEN for t in labels])
    end = np.array([0.0 if is_valid_transition(t, OUTSIDE, scheme) else FORBIDDEN for t in labels])
    trans = np.zeros((n, n))
    for i, prev in enumerate(labels):
        for j, cur in enumerate(labels):
            if not is_valid_transition(prev, cur, scheme):
                trans[i, j] = FORBIDDEN
    return start, trans, end


def transition_masks(labels: Sequence[str], scheme: Scheme) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Additive masks (0 allowed, -1e9 forbidden): start[L], transitions[L, L], end[L]."""
    return _masks(tuple(labels), scheme.name)


def viterbi_batch(log_probs: np.ndarray, lengths: np.ndarray, labels: Sequence[str], scheme: Scheme,
                  group: int = 256, max_cells: int = 1 << 18, learned=None) -> np.ndarray:
    """Viterbi (``tests/reference.py`` has the per-sentence original) for many sentences at once, with the same result (ties
    included): ``log_probs`` is ``[all words, labels]``, sentences of ``lengths`` one after another.

    Sentences are sorted by length and decoded up to ``group`` at a time (fewer when sentences x
    words would pass ``max_cells``: long documents), each step one array operation over the group;
    a sentence that has ended keeps its score and points back to its own label.

    ``learned``: a CRF head's ``(start[L], transitions[L, L], end[L])`` scores
    (:class:`tokentune.crf.CrfScores`), added to the scheme's masks: one Viterbi over both.
    """
    start, trans, end = transition_masks(labels, scheme)
    if learned is not None:
        start, trans, end = (mask + np.asarray(score, dtype=np.float64) for mask, score in zip((start, trans, end),
                                                                                              learned))
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    result = np.zeros(len(log_probs), dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]
    identity = np.arange(len(labels))
    begin = 0
    while begin < len(order):
        size = min(group, len(order) - begin)
        while size > 1 and size * lengths[order[begin + size - 1]] > max_cells:
            size //= 2
        chosen = order[begin:begin + size]
        begin += size
        lens, rows = lengths[chosen], np.arange(len(chosen))
        steps = np.arange(int(lens.max()))
        active = steps[None, :] < lens[:, None]
        positions = offsets[chosen][:, None] + np.minimum(steps[None, :], lens[:, None] - 1)
        scores = log_probs[positions]  # [group, time, labels]
        score = scores[:, 0] + start
        back = np.zeros((len(chosen), len(steps), len(labels)), dtype=np.int64)
        for t in steps[1:]:
            candidates = score[:, :, None] + trans  # [group, previous, current]
            best_prev = candidates.argmax(axis=1)
            moved = np.take_along_axis(candidates, best_prev[:, None, :], axis=1)[:, 0] + scores[:, t]
            live = active[:, t, None]
            back[:, t] = np.where(live, best_prev, identity)
            score = np.where(live, moved, score)
        score = score + end
        path = np.zeros((len(chosen), len(steps)), dtype=np.int64)
        path[:, -1] = score.argmax(axis=1)
        for t in steps[:0:-1]:
            path[:, t - 1] = back[rows, t, path[:, t]]
        # the label set allows no valid path: do not invent one
        stuck = score[rows, path[:, -1]] <= FORBIDDEN / 2
        path[stuck] = scores[stuck].argmax(axis=2)
        result[positions[active]] = path[active]
    return result


def label_table(labels: Sequence[str], scheme: Scheme) -> tuple[list[str], np.ndarray]:
    """Entity types, and per label: [is outside, type index, opens an entity, closes an entity],
    the facts :func:`tokentune.schemes.tags_to_spans` reads off each tag."""
    closing, opening = scheme.closing, scheme.opening
    types: list[str] = []
    info = np.zeros((len(labels), 4), dtype=np.int64)
    for i, label in enumerate(labels):
        prefix, kind = split_tag(label, scheme)
        if kind not in types:
            types.append(kind)
        outside = prefix == OUTSIDE
        # an unprefixed scheme has one-word spans only: every label both opens and closes
        opens = not scheme.prefixed or prefix in opening
        closes = not scheme.prefixed or prefix in closing
        info[i] = (outside, types.index(kind), opens and not outside, closes and not outside)
    return types, info


def cut_spans(ids: np.ndarray, offsets: np.ndarray, info: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spans of flat label ids as ``tags_to_spans`` decodes each sentence (lenient repair included):
    an entity starts at a non-O word after O, after a sentence start, after a type change, at an
    opening prefix or after a closing one; it ends before the next O, start, or sentence end."""
    count = len(ids)
    if not count:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    outside, kind = info[ids, 0].astype(bool), info[ids, 1]
    opens, closes = info[ids, 2].astype(bool), info[ids, 3].astype(bool)
    sentence_start = np.zeros(count, dtype=bool)
    sentence_start[offsets[:-1][offsets[:-1] < count]] = True
    prev_outside = np.concatenate([[True], outside[:-1]])
    prev_kind = np.concatenate([[-1], kind[:-1]])
    prev_closes = np.concatenate([[False], closes[:-1]])
    begins = ~outside & (sentence_start | prev_outside | (kind != prev_kind) | opens | prev_closes)
    starts = np.flatnonzero(begins)
    stops = np.flatnonzero(begins | outside | sentence_start)
    ends = np.append(stops, count)[np.searchsorted(stops, starts, side="right")]
    # an entity never runs past its sentence: the next sentence's first word is a stop
    return starts, ends, kind[starts]
