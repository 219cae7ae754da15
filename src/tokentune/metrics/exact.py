"""Entity-level precision, recall and F1, token accuracy and per-type scores, for a whole corpus at once.

Why our own implementation rather than seqeval: seqeval walks every tag in Python, once more for
every average it reports, which takes seconds on a million tokens. Here the corpus is encoded once as
one flat int array and chunk boundaries, entity keys and counts are found with NumPy array operations.

The numbers are seqeval 1.2.2's on every input, well-formed or not (``tests/test_metrics.py`` checks
this against seqeval itself):

* ``mode="default"`` is seqeval's default mode, the lenient reading of conlleval: ``I-X`` after ``O``
  starts an entity, a type change ends one, and so on, on any mix of prefixes;
* ``mode="strict"`` is seqeval's ``mode="strict"`` with an explicit scheme (IOB2, IOE2, BIOES, BILOU):
  only entities whose tags follow the scheme count.

Where seqeval has no answer we give one and say so: macro averages over no entity type at all are 0.0
(seqeval: NaN, which is not JSON), accuracy over no token is 0.0 (seqeval: ZeroDivisionError), and
tags seqeval would crash on (empty strings; strict mode: prefixes outside the scheme) are a DataError.
Two readings are ours on purpose: ``scheme="BILOU"`` in default mode reads ``U``/``L`` as ``S``/``E``
(seqeval's default mode does not know them and would merge two adjacent ``U-PER`` into one entity),
and ``scheme="PLAIN"`` scores each non-``O`` tag as a one-token entity of its own (POS tags).

This module imports NumPy and nothing heavy: ``tokentune score`` must start fast, without torch.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..errors import DataError
from .encoding import EMPTY, check_mode, decode_entities, flatten_pair

__all__ = ["score_tags", "score_flat_tags", "score_spans", "micro_prf"]

# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------
def score_tags(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    *,
    mode: str = "default",
    scheme: str | None = None,
) -> dict:
    """Score predicted tag sequences against gold ones, sentence by sentence.

    Returns ``precision``/``recall``/``f1`` (micro average over entities), token ``accuracy``,
    ``macro`` and ``weighted`` averages, ``per_type`` scores with support, the ``mode`` and
    ``scheme`` used and the entity ``counts`` (gold, predicted, correct); plain floats and ints.
    """
    flat_gold, flat_pred, lengths = flatten_pair(gold, pred)
    return score_flat_tags(flat_gold, flat_pred, lengths, mode=mode, scheme=scheme)


def score_flat_tags(
    gold: Sequence[str],
    pred: Sequence[str],
    lengths: Sequence[int] | np.ndarray,
    *,
    mode: str = "default",
    scheme: str | None = None,
) -> dict:
    """:func:`score_tags` on tags already laid end to end, with the length of each sentence.

    This is what a file reader can produce without building one list per sentence.
    """
    mode, scheme = check_mode(mode, scheme)
    corpus, type_names, gold_entities, pred_entities = decode_entities(gold, pred, lengths, mode, scheme)
    counts = _count(gold_entities, pred_entities, len(type_names))
    accuracy = corpus.correct / corpus.n_tokens if corpus.n_tokens else 0.0
    return _report(type_names, *counts, accuracy=accuracy, mode=mode, scheme=scheme)


def score_spans(
    gold_spans: Sequence[Iterable[tuple[str, int, int]]],
    pred_spans: Sequence[Iterable[tuple[str, int, int]]],
) -> dict:
    """Score per-sentence lists of ``(label, start, end)`` spans (end-exclusive) by exact match.

    Same dict as :func:`score_tags`; ``accuracy`` is None (spans carry no tokens) and ``mode`` is
    ``"spans"`` (the spans are already decoded, so no reading of tags applies). Duplicate spans in
    one sentence count once, as in seqeval.
    """
    if len(gold_spans) != len(pred_spans):
        raise DataError(
            "gold and predicted spans have different numbers of sentences",
            expected=f"{len(gold_spans)} predicted sentences like the gold", found=str(len(pred_spans)),
            fix="pass one (possibly empty) list of predicted spans per gold sentence, in the same order",
        )
    gold_cols = _span_columns(gold_spans, "gold")
    pred_cols = _span_columns(pred_spans, "predicted")
    type_names = sorted(set(gold_cols[0]) | set(pred_cols[0]))
    type_id = {name: i for i, name in enumerate(type_names)}
    # Lay the sentences end to end, each as wide as its furthest span, so that one (start, end) pair
    # names one place in the corpus; then spans are compared exactly as tag-decoded entities are.
    n = len(gold_spans)
    width = np.zeros(n + 1, dtype=np.int64)
    for _, sentence, _, end in (gold_cols, pred_cols):
        np.maximum.at(width, sentence + 1, end + 1)
    offsets = np.cumsum(width)
    entities = []
    for labels, sentence, start, end in (gold_cols, pred_cols):
        types = np.fromiter(map(type_id.__getitem__, labels), dtype=np.int64, count=len(labels))
        entities.append((offsets[sentence] + start, offsets[sentence] + end, types))
    counts = _count(entities[0], entities[1], len(type_names))
    return _report(type_names, *counts, accuracy=None, mode="spans", scheme=None)


# ---------------------------------------------------------------------------------------------------
# Counting and scores
# ---------------------------------------------------------------------------------------------------
def _entity_keys(gold, pred, n_types: int) -> tuple[np.ndarray, np.ndarray]:
    """One int64 per entity, equal for equal (start, end, type) on both sides."""
    size = 1 + max((int(ends.max()) for _, ends, _ in (gold, pred) if ends.size), default=0)
    if size * size * max(n_types, 1) < 2 ** 62:
        return tuple((s.astype(np.int64) * size + e) * n_types + t for s, e, t in (gold, pred))
    # a corpus too large for that product: number the distinct rows instead (slower, same result)
    rows = np.concatenate([np.stack(side, axis=1).astype(np.int64) for side in (gold, pred)])
    _, dense = np.unique(rows, axis=0, return_inverse=True)
    dense = dense.reshape(-1)
    return dense[: len(gold[0])], dense[len(gold[0]):]


def _count(gold, pred, n_types: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per type: correct (in both), predicted and gold entity counts; duplicates count once."""
    gold_keys, pred_keys = _entity_keys(gold, pred, n_types)
    gold_keys, gold_first = np.unique(gold_keys, return_index=True)
    pred_keys, pred_first = np.unique(pred_keys, return_index=True)
    gold_types = gold[2][gold_first]
    pred_types = pred[2][pred_first]
    _, in_gold, _ = np.intersect1d(gold_keys, pred_keys, assume_unique=True, return_indices=True)
    correct = np.bincount(gold_types[in_gold], minlength=n_types)
    return correct, np.bincount(pred_types, minlength=n_types), np.bincount(gold_types, minlength=n_types)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0.0 where the denominator is 0 (seqeval's zero_division='warn')."""
    zero = denominator == 0
    denominator = denominator.copy()
    denominator[zero] = 1
    result = numerator / denominator
    result[zero] = 0.0
    return result


def _prf(correct: np.ndarray, predicted: np.ndarray, gold: np.ndarray):
    """Precision, recall and F1 with seqeval's exact arithmetic (same operations, same order)."""
    precision = _divide(correct, predicted)
    recall = _divide(correct, gold)
    denominator = precision + recall
    denominator[denominator == 0.0] = 1
    return precision, recall, 2.0 * precision * recall / denominator


def micro_prf(correct: int, predicted: int, gold: int) -> tuple[float, float, float]:
    """Micro precision, recall and F1 of entity counts, to the bit as :func:`score_tags` reports them."""
    precision, recall, f1 = _prf(*(np.array([count]) for count in (correct, predicted, gold)))
    return float(precision[0]), float(recall[0]), float(f1[0])


def _averages(precision, recall, f1, gold) -> tuple[dict, dict]:
    """Macro (plain mean over types) and weighted (by gold support) averages, as seqeval's."""
    if not len(precision):  # seqeval: NaN (mean of nothing); 0.0 keeps reports JSON and comparable
        macro = (0.0, 0.0, 0.0)
    else:
        macro = tuple(float(np.average(v)) for v in (precision, recall, f1))
    if gold.sum() == 0:  # seqeval returns 0.0 for all three when no type has support
        weighted = (0.0, 0.0, 0.0)
    else:
        weighted = tuple(float(np.average(v, weights=gold)) for v in (precision, recall, f1))
    keys = ("precision", "recall", "f1")
    return dict(zip(keys, macro)), dict(zip(keys, weighted))


def _report(type_names, correct, predicted, gold, *, accuracy, mode, scheme) -> dict:
    # seqeval reports every type that some gold or predicted entity has, in sorted order
    present = (gold + predicted) > 0
    names = [name for name, keep in zip(type_names, present) if keep]
    correct, predicted, gold = correct[present], predicted[present], gold[present]
    precision, recall, f1 = _prf(correct, predicted, gold)
    micro = _prf(*(np.array([x.sum()]) for x in (correct, predicted, gold)))
    macro, weighted = _averages(precision, recall, f1, gold)
    per_type = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(names, precision, recall, f1, gold)
    }
    return {
        "precision": float(micro[0][0]),
        "recall": float(micro[1][0]),
        "f1": float(micro[2][0]),
        "accuracy": None if accuracy is None else float(accuracy),
        "macro": macro,
        "weighted": weighted,
        "per_type": per_type,
        "mode": mode,
        "scheme": scheme,
        "counts": {"gold": int(gold.sum()), "predicted": int(predicted.sum()), "correct": int(correct.sum())},
    }


# ---------------------------------------------------------------------------------------------------
# Spans
# ---------------------------------------------------------------------------------------------------
def _span_columns(spans_per_sentence, side: str):
    """(labels, sentence index, start, end) columns of per-sentence span lists, checked."""
    sizes = []
    flat = []
    for spans in spans_per_sentence:
        spans = list(spans)
        sizes.append(len(spans))
        flat.extend(spans)
    if not flat:
        return [], EMPTY, EMPTY, EMPTY
    try:
        labels, starts, ends = zip(*flat)
        start = np.array(starts, dtype=np.int64)
        end = np.array(ends, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{side} spans are not (label, start, end) triples ({err})",
                        expected="per sentence, a list of (label, start, end) with int offsets",
                        fix="pass spans such as ('PER', 0, 2); end is exclusive") from None
    sentence = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    bad = np.flatnonzero((start < 0) | (end <= start))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{side} span {flat[i]!r} in sentence {int(sentence[i])} (0-based) is empty or negative",
            expected="0 <= start < end (end-exclusive word offsets)", found=f"start {start[i]}, end {end[i]}",
            fix="drop empty spans and use end-exclusive offsets",
        )
    return list(labels), sentence, start, end
