"""evaluate(model_dir, data) -> metrics: a trained model scored on labelled data, whole sentences
(long ones through overlapping windows), entity-level P/R/F1 as seqeval's default mode computes them.

A score threshold (``min_score``) drops predicted entities whose score is below it; the trade-off of
precision against recall over thresholds (:func:`threshold_curve`) comes from one prediction pass, by
filtering the kept span scores rather than running the model again."""
from __future__ import annotations

import dataclasses
import os
from collections import Counter
from typing import Sequence

from .decoding import SCORE_DIGITS
from .schemes import reads_back_in_iob2, spans_to_tags

# the thresholds of the curve in reports: 0.0, 0.05, ..., 0.95
THRESHOLDS = tuple(round(0.05 * step, 2) for step in range(20))


class Scores(dict):
    """The metrics dict of :func:`evaluate_corpus`, with the predictions it was computed from.

    A dict subclass rather than a (metrics, predictions) pair so that callers that store or print
    the metrics (``train``'s ``final_evaluation``, ``metrics.json``) stay unchanged while the report
    writer can still reach the predictions: ``json.dumps`` sees a plain dict.
    """

    predictions: list  # one TokenPrediction per sentence of the corpus (after min_score)
    curve: list | None = None  # threshold_curve points, when thresholds were asked for


def filter_predictions(predictions: Sequence, min_score: float, outside: str | None = "O") -> list:
    """Token predictions without their spans scoring below ``min_score``, as ``Tagger(min_score=...)``
    gives them: the words of a dropped span are tagged ``outside`` (``None``: tags left as they are)."""
    out = []
    for prediction in predictions:
        keep = [round(score, SCORE_DIGITS) >= min_score for score in prediction.scores]  # as the Tagger compares
        if all(keep):
            out.append(prediction)
            continue
        tags = list(prediction.tags)
        if outside is not None:
            for (_, start, end), kept in zip(prediction.spans, keep):
                if not kept:
                    tags[start:end] = [outside] * (end - start)
        out.append(dataclasses.replace(
            prediction, tags=tags, spans=[s for s, k in zip(prediction.spans, keep) if k],
            scores=[s for s, k in zip(prediction.scores, keep) if k]))
    return out


def threshold_curve(corpus, predictions: Sequence, thresholds: Sequence[float] = THRESHOLDS, *,
                    mode: str = "default", scheme: str = "IOB2") -> list[dict]:
    """Precision, recall and F1 of ``predictions`` (TokenPredictions with span ``scores``, unfiltered)
    against ``corpus`` at each threshold (sorted; each from 0 to 1): what ``evaluate_corpus(...,
    min_score=threshold)`` scores, from the one set of predictions. Each point: ``threshold``,
    ``precision``, ``recall``, ``f1``, and the ``gold``, ``predicted`` and ``correct`` entity counts."""
    from .inference.tagger import check_min_score
    from .metrics import score_tags

    thresholds = sorted({check_min_score(t, "threshold") for t in thresholds})
    counted = _counted_curve(corpus, predictions, thresholds) if scheme == "IOB2" else None
    if counted is not None:
        return counted
    gold = [spans_to_tags(s.spans, len(s.words), scheme) for s in corpus]
    pred: list = [None] * len(predictions)
    shown = [[round(score, SCORE_DIGITS) for score in p.scores] for p in predictions]  # as --min-score compares
    points, previous = [], None
    for threshold in thresholds:
        for index, p in enumerate(predictions):  # re-encode only the sentences that lost a span
            if previous is None or any(previous <= score < threshold for score in shown[index]):
                spans = [span for span, score in zip(p.spans, shown[index]) if score >= threshold]
                pred[index] = spans_to_tags(spans, len(p.words), scheme)
        scores = score_tags(gold, pred, mode=mode, scheme=scheme)
        points.append({"threshold": threshold, **{key: scores[key] for key in ("precision", "recall", "f1")},
                       **scores["counts"]})
        previous = threshold
    return points


def _counted_curve(corpus, predictions: Sequence, thresholds: list[float]) -> list[dict] | None:
    """:func:`threshold_curve` in IOB2 by counting, without scoring the corpus at each threshold: the same
    figures, about 0.5 s less on CoNLL-2003 test. Where every sentence's spans are in order, apart, non-empty
    and inside it, their IOB2 tags read back as exactly those spans in both modes, so an entity is correct
    at a threshold when it is correct at all and kept; else (None) the caller scores each threshold."""
    import numpy as np

    from .metrics.exact import micro_prf

    if len(corpus) != len(predictions):
        return None
    gold_total, kept_scores, hits = 0, [], []
    for sentence, prediction in zip(corpus, predictions):
        length = len(sentence.words)
        if len(prediction.words) != length or len(prediction.scores) != len(prediction.spans):
            return None
        if not (reads_back_in_iob2(sentence.spans, length) and reads_back_in_iob2(prediction.spans, length)):
            return None
        gold = {tuple(span) for span in sentence.spans}
        gold_total += len(gold)
        kept_scores.extend(round(score, SCORE_DIGITS) for score in prediction.scores)  # as --min-score compares
        hits.extend(tuple(span) in gold for span in prediction.spans)
    scores, hits = np.asarray(kept_scores, dtype=np.float64), np.asarray(hits, dtype=bool)
    points = []
    for threshold in thresholds:
        kept = scores >= threshold
        counts = {"gold": gold_total, "predicted": int(kept.sum()), "correct": int(hits[kept].sum())}
        precision, recall, f1 = micro_prf(counts["correct"], counts["predicted"], counts["gold"])
        points.append({"threshold": threshold, "precision": precision, "recall": recall, "f1": f1, **counts})
    return points


def evaluate_corpus(tagger, corpus, *, mode: str = "default", return_predictions: bool = False,
                    partial: bool = False, context: str | None = None, min_score: float = 0.0,
                    thresholds: Sequence[float] | None = None) -> dict:
    """Score ``tagger`` on a labelled :class:`~tokentune.data.Corpus`.

    ``return_predictions``: the result is a :class:`Scores` whose ``.predictions`` are the tagger's
    (for reports, without predicting twice). ``partial``: add ``"partial"``, the partial-match report
    (:func:`tokentune.metrics.partial_match_report`). ``context="document"`` (default: the tagger's, i.e.
    the model's): sentences are read with the rest of their document where the corpus marks documents; the
    scores stay per sentence.
    ``min_score``: entities scoring below it are dropped before scoring (``"min_score"`` is then in the
    result). ``thresholds``: the result is a :class:`Scores` whose ``.curve`` is :func:`threshold_curve`
    over them, from the same predictions (a tagger with its own ``min_score`` dropped entities already).
    """
    from .inference.tagger import check_min_score
    from .metrics import partial_match_report, score_tags

    min_score = check_min_score(min_score, "min_score")
    scheme = "PLAIN" if not tagger.scheme.prefixed else "IOB2"
    context = context or getattr(tagger, "context", "sentence")  # the model's own, saved when it was trained
    documents = corpus.documents() if context == "document" and corpus.document_starts is not None else None
    sentences = [s.words for s in corpus]  # documents only when there are some: any tagger-like object works
    raw = tagger.predict_token_batches(sentences) if documents is None else tagger.predict_token_batches(
        sentences, documents)
    predictions = filter_predictions(raw, min_score, "O" if "O" in tagger.labels else None) if min_score else raw
    gold = [spans_to_tags(s.spans, len(s.words), scheme) for s in corpus]
    pred = [spans_to_tags(p.spans, len(p.words), scheme) for p in predictions]
    # spans were re-encoded in IOB2 (or PLAIN), which also makes strict mode well defined
    scores = score_tags(gold, pred, mode=mode, scheme=scheme)
    if corpus.scheme not in (scheme, "PLAIN"):
        scores["accuracy"] = _token_accuracy(corpus, predictions, corpus.scheme)
    scores["accuracy_scheme"] = corpus.scheme if corpus.scheme != "PLAIN" else scheme
    if partial:
        scores["partial"] = partial_match_report(gold, pred, mode=mode, scheme=scheme)
    if min_score:
        scores["min_score"] = min_score
    if not return_predictions and thresholds is None:
        return scores
    result = Scores(scores)
    result.predictions = predictions
    if thresholds is not None:
        result.curve = threshold_curve(corpus, raw, thresholds, mode=mode, scheme=scheme)
    return result


def _token_accuracy(corpus, predictions, scheme: str) -> float:
    """Word accuracy with both sides written in ``scheme``, the data's own (IOB1 for CoNLL-2003).

    This is what seqeval's ``accuracy_score`` gives on the file's tags, and what the usual training
    script reports; in IOB2 every entity start is a ``B-`` tag to get right, so the figure is lower.
    """
    correct = total = 0
    for sentence, predicted in zip(corpus, predictions):
        pred_tags = spans_to_tags(predicted.spans, len(sentence.words), scheme)
        correct += sum(g == p for g, p in zip(sentence.tags(scheme), pred_tags))
        total += len(sentence.words)
    return correct / total if total else 0.0


def check_model_labels(tagger, corpus, *, drop: bool = False) -> list[str]:
    """Entity types the model cannot predict: refused (located), or dropped with a note when ``drop``."""
    from .data.splits import drop_unseen, refuse_unseen

    types = {label.split("-", 1)[1] if tagger.scheme.prefixed and "-" in label else label
             for label in tagger.labels if label != "O"}
    if drop:
        note = drop_unseen("data", corpus, types)
        return [note] if note else []
    refuse_unseen("the data has label(s) the model does not know", corpus, types,
                  fix="rename them with --label-map OLD=NEW, drop them with --drop-unknown-labels, or evaluate "
                      "on data with the model's label set")
    return []


def types_the_data_lacks(corpus, predictions) -> list[str]:
    """A note for each entity type predicted but absent from the data (mapped to O by --label-map, or
    not annotated there): its predictions are all false positives, which a reader should know."""
    present = corpus.entity_types()
    counts = Counter(label for prediction in predictions for label, _, _ in prediction.spans if label not in present)
    return [f"the model predicted {count} {label} entities, a type the data does not have (not annotated there, or "
            f"mapped away by --label-map): all count as false positives" for label, count in sorted(counts.items())]


def evaluate(model_dir: str, data: str, *, split: str | None = None, mode: str = "default", backend: str = "torch",
             batch_size: int = 32, decoding: str = "viterbi", device: str | None = None, partial: bool = False,
             report: str | None = None, min_score: float = 0.0, curve: bool = False, clock=None,
             precision: str | None = None, **read_options) -> dict:
    """Score the model in ``model_dir`` on ``data`` (a file, a data directory and a ``split``: test by default, a
    save_to_disk directory or ``hf:ID``), read with the same options as training
    (:class:`~tokentune.data.options.ReadOptions`: ``scheme``, ``format``, ``label_map``, ...).

    ``partial`` adds the partial-match report under ``"partial"``; ``report`` names a directory to
    write metrics.json, errors.jsonl, plots and report.html into (replaced as a whole), the report with
    the precision/recall curve over :data:`THRESHOLDS`. ``min_score`` scores with entities below that
    score dropped; ``curve`` adds that curve to the result as ``"threshold_curve"``. Notes on what
    reading changed are under ``"notes"``. ``precision`` (torch backend): auto (default: bf16 autocast where
    training's auto picks it: AMX, fast AVX512-BF16 or a GPU, unless the model was trained in fp32), fp32,
    bf16 or fp16; the one used is under
    ``"computed_in"``. ``clock``: a :class:`~tokentune.timing.RunClock`; the result
    then holds the seconds of each part (reading, model, evaluation, reports) under ``"time"``.
    """
    from .data.options import ReadOptions
    from .data.splits import read_split
    from .inference import Tagger
    from .inference.saved import reading_splitter
    from .inference.tagger import check_min_score

    min_score = check_min_score(min_score)
    model_dir, data = (os.fspath(p) if isinstance(p, os.PathLike) else p for p in (model_dir, data))
    options = {**ReadOptions(**read_options).read_options(), "word_splitter": reading_splitter(model_dir)}
    if report is not None:
        from .io import check_output

        check_output(report, overwrite=True, inputs=(model_dir, data), what="report directory", flag="--report")
    from .timing import RunClock

    timed, clock = clock is not None, clock or RunClock()
    with clock.part("reading"):
        corpus, notes, path = read_split(data, split, options)
    with clock.part("model"):
        tagger = Tagger.from_pretrained(model_dir, backend=backend, device=device, batch_size=batch_size,
                                        decoding=decoding, precision=precision)
    notes += check_model_labels(tagger, corpus, drop=bool(options.get("drop_unknown_labels")))
    with clock.part("evaluation"):
        scores = evaluate_corpus(tagger, corpus, mode=mode, partial=partial, return_predictions=True,
                                 min_score=min_score, thresholds=THRESHOLDS if curve or report is not None else None)
    notes += types_the_data_lacks(corpus, scores.predictions)
    if notes:
        scores["notes"] = notes
    if curve or report is not None:  # a report draws the curve: its metrics.json keeps the numbers behind it
        scores["threshold_curve"] = scores.curve
    metrics = {**scores, "computed_in": tagger.precision}
    if report is not None:
        from .reporting import write_evaluation_report

        with clock.part("reports"):
            write_evaluation_report(report, metrics, corpus, scores.predictions, model_dir=model_dir, data=path,
                                    split=(split or "test") if os.path.isdir(data) else None, curve=scores.curve)
    if timed:
        metrics["time"] = clock.summary()
    return metrics
