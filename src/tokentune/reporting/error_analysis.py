"""Error analysis: every entity that exact-match scoring counts as wrong, classified and kept with its sentence.

The taxonomy (each sentence on its own; spans are ``(label, start, end)`` word offsets, end-exclusive):

* exact match (same label, same boundaries): correct, not an error;
* ``wrong_type``: same boundaries, another label;
* ``wrong_boundary``: overlaps an entity of the same label whose boundaries differ;
* ``wrong_type_and_boundary``: overlaps an entity of another label whose boundaries differ;
* ``spurious``: a predicted entity that overlaps no gold entity (a false positive only);
* ``missed``: a gold entity that overlaps no predicted entity (a false negative only).

Pairing is greedy, left to right: each predicted entity that is not an exact match gives exactly one
record, paired with the gold entity it overlaps best (same boundaries first, then same label, then the
longest overlap) among those no earlier prediction took, else among all it overlaps. Each gold entity
left over gives one record of its own. Every record says whether it is a false positive and/or a
false negative for entity-level scoring, so that ``sum(fp) == predicted - correct`` and
``sum(fn) == gold - correct``: the file adds up to the figures in ``metrics.json``.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

from ..schemes import Span, reads_back_in_iob2, spans_to_tags, tags_to_spans

KINDS = ("wrong_type", "wrong_boundary", "wrong_type_and_boundary", "spurious", "missed")
KIND_TITLES = {
    "wrong_type": "Wrong type (right boundaries)",
    "wrong_boundary": "Wrong boundaries (right type)",
    "wrong_type_and_boundary": "Wrong type and boundaries",
    "spurious": "Spurious (false positive, no overlap)",
    "missed": "Missed (false negative, no overlap)",
}
MISSED, SPURIOUS = "missed", "spurious"  # the extra column and row of the confusion matrix


def _overlap(a: Span, b: Span) -> int:
    return max(0, min(a[2], b[2]) - max(a[1], b[1]))


def _closeness(target: Span):
    """Sort key: how well a span matches ``target``: same boundaries, then same label, then overlap."""
    return lambda other: ((other[1], other[2]) == (target[1], target[2]), other[0] == target[0],
                          _overlap(other, target), -other[1])


def _kind(gold: Span | None, pred: Span | None) -> str:
    if gold is None:
        return SPURIOUS
    if pred is None:
        return MISSED
    if (gold[1], gold[2]) == (pred[1], pred[2]):
        return "wrong_type"
    return "wrong_boundary" if gold[0] == pred[0] else "wrong_type_and_boundary"


def classify_sentence(gold: Iterable[Span], pred: Iterable[Span]) -> list[dict]:
    """The errors of one sentence: ``[{"kind", "gold", "predicted", "fp", "fn"}]`` (spans or None).

    Duplicated spans count once, as in the scores.
    """
    gold = sorted(set(gold), key=lambda s: (s[1], s[2], s[0]))
    pred = sorted(set(pred), key=lambda s: (s[1], s[2], s[0]))
    exact = set(gold) & set(pred)
    gold_left = [g for g in gold if g not in exact]
    pred_left = [p for p in pred if p not in exact]
    taken: set[Span] = set()
    records = []
    for p in pred_left:
        touching = [g for g in gold_left if _overlap(g, p)]
        free = [g for g in touching if g not in taken]
        g = max(free or touching, key=_closeness(p), default=None)
        first_pairing = g is not None and g in free  # else its false negative is counted already
        if first_pairing:
            taken.add(g)
        records.append({"kind": _kind(g, p), "gold": g, "predicted": p, "fp": True, "fn": first_pairing})
    for g in gold_left:
        if g not in taken:
            p = max((p for p in pred_left if _overlap(g, p)), key=_closeness(g), default=None)
            records.append({"kind": _kind(g, p), "gold": g, "predicted": p, "fp": False, "fn": True})
    records.sort(key=lambda r: min(s[1] for s in (r["gold"], r["predicted"]) if s is not None))
    return records


def decoded_spans(spans: Iterable[Span], length: int, scheme: str) -> list[Span]:
    """Spans as the scorer sees them: written as tags in ``scheme`` and read back (PLAIN: one word each).
    In IOB2 the spans readers and the Tagger give read back as themselves: the round trip is skipped."""
    spans = [tuple(span) for span in spans]
    if scheme == "IOB2" and reads_back_in_iob2(spans, length):
        return spans
    return tags_to_spans(spans_to_tags(spans, length, scheme), scheme)


def _span_dict(span: Span | None, words: Sequence[str], score: float | None = None) -> dict | None:
    if span is None:
        return None
    out = {"label": span[0], "start": span[1], "end": span[2], "text": " ".join(words[span[1]:span[2]])}
    if score is not None:
        out["score"] = round(float(score), 4)
    return out


def error_records(corpus, predictions, *, scheme: str = "IOB2", split: str | None = None) -> list[dict]:
    """One JSON-ready record per error over a corpus (see the module docstring for the kinds).

    ``predictions`` are :class:`~tokentune.inference.TokenPrediction` objects, one per sentence. Each
    record carries the sentence (``words``, ``text``, ``sentence`` index, ``file`` and ``line``) and
    all its gold and predicted spans, so one line is enough to see the error in context.
    """
    records = []
    for index, (sentence, prediction) in enumerate(zip(corpus, predictions)):
        words = list(sentence.words)
        gold = decoded_spans(sentence.spans, len(words), scheme)
        pred = decoded_spans(prediction.spans, len(words), scheme)
        errors = classify_sentence(gold, pred)
        if not errors:
            continue
        scores = dict(zip(map(tuple, prediction.spans), prediction.scores))
        gold_dicts = [_span_dict(s, words) for s in gold]
        pred_dicts = [_span_dict(s, words, scores.get(s)) for s in pred]
        for error in errors:
            records.append({
                "split": split, "kind": error["kind"],
                "gold": _span_dict(error["gold"], words),
                "predicted": _span_dict(error["predicted"], words, scores.get(error["predicted"])),
                "fp": error["fp"], "fn": error["fn"],
                "sentence": index, "file": corpus.path, "line": sentence.line,
                "text": " ".join(words), "words": words,
                "gold_spans": gold_dicts, "predicted_spans": pred_dicts,
            })
    return records


def confusion_counts(gold_per_sentence: Sequence[Sequence[Span]], pred_per_sentence: Sequence[Sequence[Span]]):
    """Entity-type confusion: ``(labels, counts)`` with ``counts[gold][predicted]`` an int.

    Rows are gold types plus ``spurious``, columns predicted types plus ``missed``. Each gold entity
    counts once in its row: under the type of the predicted entity that overlaps it best (the
    diagonal is the right type, boundaries possibly wrong), or under ``missed``; each predicted
    entity that overlaps no gold entity counts in the ``spurious`` row. Row sums are the supports.
    """
    counts: Counter = Counter()
    labels: set[str] = set()
    for gold, pred in zip(gold_per_sentence, pred_per_sentence):
        gold, pred = set(gold), set(pred)
        labels.update(s[0] for s in gold | pred)
        for g in gold:
            p = max((p for p in pred if _overlap(g, p)), key=_closeness(g), default=None)
            counts[g[0], MISSED if p is None else p[0]] += 1
        for p in pred:
            if not any(_overlap(g, p) for g in gold):
                counts[SPURIOUS, p[0]] += 1
    ordered = sorted(labels)
    rows = {r: {c: counts[r, c] for c in [*ordered, MISSED]} for r in [*ordered, SPURIOUS]}
    return ordered, rows


def corpus_confusion(corpus, predictions, *, scheme: str = "IOB2"):
    """:func:`confusion_counts` of a corpus and its predictions, spans read as the scorer reads them."""
    gold = [decoded_spans(s.spans, len(s.words), scheme) for s in corpus]
    pred = [decoded_spans(p.spans, len(p.words), scheme) for p in predictions]
    return confusion_counts(gold, pred)


def summarize(records: Sequence[dict]) -> dict:
    """Counts by kind (most frequent first) and by (kind, gold label, predicted label)."""
    by_kind = Counter(r["kind"] for r in records)
    by_pair = Counter((r["kind"], (r["gold"] or {}).get("label"), (r["predicted"] or {}).get("label"))
                      for r in records)
    return {"total": len(records), "by_kind": dict(by_kind.most_common()),
            "by_pair": [{"kind": k, "gold": g, "predicted": p, "count": n} for (k, g, p), n in by_pair.most_common()]}


def pick_examples(records: Sequence[dict], kind: str, limit: int = 5, *, max_words: int = 60) -> list[dict]:
    """A few readable examples of one kind: the most frequent label pairs first, in corpus order with
    sentences over ``max_words`` last."""
    of_kind = [r for r in records if r["kind"] == kind]
    pairs = Counter(((r["gold"] or {}).get("label"), (r["predicted"] or {}).get("label")) for r in of_kind)
    rank = {pair: i for i, (pair, _) in enumerate(pairs.most_common())}
    # round-robin over label pairs so that one frequent confusion does not hide the others
    seen: Counter = Counter()
    ordered, shown = [], set()
    for r in sorted(of_kind, key=lambda r: (len(r["words"]) > max_words, r["sentence"])):
        if r["text"] in shown:  # the same sentence twice (e.g. "Group C" headlines) teaches nothing new
            continue
        shown.add(r["text"])
        pair = ((r["gold"] or {}).get("label"), (r["predicted"] or {}).get("label"))
        ordered.append((seen[pair], rank[pair], len(ordered), r))
        seen[pair] += 1
    return [r for *_, r in sorted(ordered, key=lambda t: t[:3])[:limit]]
