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

SCORE_DIGITS = 6  # entity scores are shown, and compared with --min-score, to this many decimals

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
    start, trans, end = _transition_scores(labels, scheme, learned)
    result = np.zeros(len(log_probs), dtype=np.int64)
    identity = np.arange(len(labels))
    for positions, active, lens in _length_groups(lengths, group, max_cells):
        rows, steps = np.arange(len(lens)), np.arange(positions.shape[1])
        scores = log_probs[positions]  # [group, time, labels]
        score = scores[:, 0] + start
        back = np.zeros((len(lens), len(steps), len(labels)), dtype=np.int64)
        for t in steps[1:]:
            candidates = score[:, :, None] + trans  # [group, previous, current]
            best_prev = candidates.argmax(axis=1)
            moved = np.take_along_axis(candidates, best_prev[:, None, :], axis=1)[:, 0] + scores[:, t]
            live = active[:, t, None]
            back[:, t] = np.where(live, best_prev, identity)
            score = np.where(live, moved, score)
        score = score + end
        path = np.zeros((len(lens), len(steps)), dtype=np.int64)
        path[:, -1] = score.argmax(axis=1)
        for t in steps[:0:-1]:
            path[:, t - 1] = back[rows, t, path[:, t]]
        # the label set allows no valid path: do not invent one
        stuck = score[rows, path[:, -1]] <= FORBIDDEN / 2
        path[stuck] = scores[stuck].argmax(axis=2)
        result[positions[active]] = path[active]
    return result


def _transition_scores(labels: Sequence[str], scheme: Scheme, learned) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    start, trans, end = transition_masks(labels, scheme)
    if learned is None:
        return start, trans, end
    return tuple(mask + np.asarray(score, dtype=np.float64) for mask, score in zip((start, trans, end), learned))


def _length_groups(lengths, group: int, max_cells: int):
    """Sentences sorted by length, up to ``group`` at a time (fewer when sentences x words would pass
    ``max_cells``): per group the ``[group, time]`` flat positions (a sentence past its end repeats its
    last word), which of them are real words, and the lengths."""
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]
    begin = 0
    while begin < len(order):
        size = min(group, len(order) - begin)
        while size > 1 and size * lengths[order[begin + size - 1]] > max_cells:
            size //= 2
        chosen = order[begin:begin + size]
        begin += size
        lens = lengths[chosen]
        steps = np.arange(int(lens.max()))
        active = steps[None, :] < lens[:, None]
        yield offsets[chosen][:, None] + np.minimum(steps[None, :], lens[:, None] - 1), active, lens


def _normalised(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to sum 1 (an all-zero row stays zero), and whether each row had any mass."""
    total = values.sum(axis=-1, keepdims=True)
    alive = total > 0
    return values / np.where(alive, total, 1.0), alive[..., 0]


def crf_marginals(log_probs: np.ndarray, lengths: np.ndarray, labels: Sequence[str], scheme: Scheme, learned,
                  group: int = 256, max_cells: int = 1 << 18) -> np.ndarray:
    """``[all words, labels]``: the probability of each label at each word under the linear-chain CRF
    that :func:`viterbi_batch` decodes (emissions ``log_probs``, the scheme's masks plus ``learned``
    scores), by the forward-backward algorithm. The CRF head's entity scores are the mean marginal
    of the decoded labels: a per-word softmax ignores the transitions that chose the path. A sentence
    with no valid path keeps its softmax, as :func:`viterbi_batch` falls back to argmax there.

    Forward and backward run in probability space, each step rescaled to sum 1 (a marginal is a ratio,
    so the scales cancel), several times faster than sums of logarithms. Each step is an element-wise
    product and a sum rather than a matrix product: BLAS rounds a row differently with the matrix's
    size, and a sentence's scores must not depend on which sentences share its batch or process."""
    start, trans, end = (np.exp(np.maximum(score, FORBIDDEN)) for score in _transition_scores(labels, scheme, learned))
    log_probs = np.asarray(log_probs, dtype=np.float64)
    softmax = np.exp(log_probs - log_probs.max(axis=1, keepdims=True)) if len(log_probs) else log_probs
    result = _normalised(softmax)[0]
    for positions, active, lens in _length_groups(lengths, group, max_cells):
        steps = positions.shape[1]
        emissions = result[positions]  # [group, time, labels]: each word's softmax, a constant scale of exp(scores)
        last = (np.arange(steps)[None, :] == (lens - 1)[:, None])[..., None]
        forward, backward = np.empty_like(emissions), np.empty_like(emissions)
        forward[:, 0], valid = _normalised(emissions[:, 0] * start)
        for t in range(1, steps):
            forward[:, t], alive = _normalised((forward[:, t - 1, :, None] * trans).sum(axis=1) * emissions[:, t])
            valid &= alive | ~active[:, t]
        backward[:, -1] = _normalised(np.broadcast_to(end, emissions[:, -1].shape))[0]
        for t in range(steps - 2, -1, -1):
            inner = _normalised((trans * (emissions[:, t + 1] * backward[:, t + 1])[:, None, :]).sum(axis=2))[0]
            backward[:, t] = np.where(last[:, t], backward[:, -1], inner)
        marginals, alive = _normalised(forward * backward)
        valid &= (alive | ~active).all(axis=1)
        keep = valid[:, None] & active
        result[positions[keep]] = marginals[keep]
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
