"""Partial-match report (SemEval-2013 task 9.1, as nervaluate counts them): what exact-match
scoring hides, such as right boundaries with a wrong type, or overlaps. Entities are decoded by the
same vectorised code as :func:`tokentune.metrics.score_tags`."""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from .encoding import check_mode, decode_entities, flatten_pair

PARTIAL_KINDS = ("strict", "exact", "partial", "type")
_OUTCOMES = ("correct", "incorrect", "partial", "missed", "spurious")


def partial_match_report(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    *,
    mode: str = "default",
    scheme: str | None = None,
) -> dict:
    """Count what exact-match scoring hides: right boundaries with a wrong type, overlaps, and so on.

    Four readings, as in SemEval-2013 task 9.1 and nervaluate: ``strict`` (boundaries and type),
    ``exact`` (boundaries, any type), ``partial`` (any overlap, half credit unless exact), ``type``
    (any overlap with the right type). Each predicted entity is correct, incorrect, partial or
    spurious, each gold entity left unmatched is missed; precision = credit / predicted ("actual"),
    recall = credit / gold ("possible"). Returns ``{"overall": {kind: counts and P/R/F1},
    "per_type": {TYPE: {kind: ...}}, "mode", "scheme"}``. Entities are decoded as in :func:`score_tags`.
    """
    mode, scheme = check_mode(mode, scheme)
    flat_gold, flat_pred, lengths = flatten_pair(gold, pred)
    _, type_names, gold_entities, pred_entities = decode_entities(flat_gold, flat_pred, lengths, mode, scheme)
    as_tuples = lambda ents: sorted(zip(ents[2].tolist(), ents[0].tolist(), ents[1].tolist()),  # noqa: E731
                                    key=lambda e: (e[1], e[2], e[0]))
    tally = Counter(_match_partial(as_tuples(gold_entities), as_tuples(pred_entities)))
    by_kind = Counter()
    for (_, kind, outcome), n in tally.items():
        by_kind[kind, outcome] += n
    overall = {kind: _partial_scores(kind, {o: by_kind[kind, o] for o in _OUTCOMES}) for kind in PARTIAL_KINDS}
    per_type = {
        type_names[t]: {kind: _partial_scores(kind, {o: tally[t, kind, o] for o in _OUTCOMES})
                        for kind in PARTIAL_KINDS}
        for t in sorted({t for t, _, _ in tally})
    }
    return {"overall": overall, "per_type": per_type, "mode": mode, "scheme": scheme}


def _match_partial(gold: list[tuple], pred: list[tuple]) -> list[tuple[int, str, str]]:
    """(type charged, kind, outcome) for every decision, following nervaluate's compute_metrics.

    Predicted entities are visited by end; each is checked against the gold entities it overlaps, in
    order of start. Same boundaries with another type is one decision and stops the search; other
    overlaps count once per gold entity, so one long prediction can be partial against two.
    """
    gold_set = set(gold)
    starts = np.array([s for _, s, _ in gold], dtype=np.int64)
    # the furthest end among gold entities so far: before the first index where it passes a
    # prediction's start, no gold entity can overlap that prediction
    reach = np.maximum.accumulate(np.array([e for _, _, e in gold], dtype=np.int64)) if gold else starts
    matched: set[tuple] = set()
    out: list[tuple[int, str, str]] = []
    for entity in sorted(pred, key=lambda e: e[2]):
        label, start, end = entity
        if entity in gold_set:
            matched.add(entity)
            out.extend((label, kind, "correct") for kind in PARTIAL_KINDS)
            continue
        found = False
        first = int(np.searchsorted(reach, start, side="right"))
        last = int(np.searchsorted(starts, end, side="left"))
        for other in gold[first:last]:
            g_label, g_start, g_end = other
            if (g_start, g_end) == (start, end):  # right boundaries, wrong type
                out.extend((g_label, k, o) for k, o in zip(PARTIAL_KINDS, ("incorrect", "correct", "correct", "incorrect")))
                matched.add(other)
                found = True
                break
            if g_start < end and start < g_end and other not in matched:
                matched.add(other)
                typed = "correct" if g_label == label else "incorrect"
                out.extend((g_label, k, o) for k, o in zip(PARTIAL_KINDS, ("incorrect", "incorrect", "partial", typed)))
                found = True
        if not found:
            out.extend((label, kind, "spurious") for kind in PARTIAL_KINDS)
    out.extend((g[0], kind, "missed") for g in gold if g not in matched for kind in PARTIAL_KINDS)
    return out


def _partial_scores(kind: str, counts: dict[str, int]) -> dict:
    possible = counts["correct"] + counts["incorrect"] + counts["partial"] + counts["missed"]
    actual = counts["correct"] + counts["incorrect"] + counts["partial"] + counts["spurious"]
    credit = counts["correct"] + (0.5 * counts["partial"] if kind in ("partial", "type") else 0)
    precision = credit / actual if actual else 0.0
    recall = credit / possible if possible else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {**counts, "possible": possible, "actual": actual,
            "precision": float(precision), "recall": float(recall), "f1": float(f1)}
