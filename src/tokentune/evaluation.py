"""evaluate(model_dir, data) -> metrics: a trained model scored on labelled data, whole sentences
(long ones through overlapping windows), entity-level P/R/F1 as seqeval's default mode computes them."""
from __future__ import annotations

import os

from .schemes import spans_to_tags


class Scores(dict):
    """The metrics dict of :func:`evaluate_corpus`, with the predictions it was computed from.

    A dict subclass rather than a (metrics, predictions) pair so that callers that store or print
    the metrics (``train``'s ``final_evaluation``, ``metrics.json``) stay unchanged while the report
    writer can still reach the predictions: ``json.dumps`` sees a plain dict.
    """

    predictions: list  # one TokenPrediction per sentence of the corpus


def evaluate_corpus(tagger, corpus, *, mode: str = "default", return_predictions: bool = False,
                    partial: bool = False) -> dict:
    """Score ``tagger`` on a labelled :class:`~tokentune.data.Corpus`.

    ``return_predictions``: the result is a :class:`Scores` whose ``.predictions`` are the tagger's
    (for reports, without predicting twice). ``partial``: add ``"partial"``, the partial-match report
    (:func:`tokentune.metrics.partial_match_report`).
    """
    from .metrics import partial_match_report, score_tags

    scheme = "PLAIN" if not tagger.scheme.prefixed else "IOB2"
    predictions = tagger.predict_token_batches([s.words for s in corpus])
    gold = [spans_to_tags(s.spans, len(s.words), scheme) for s in corpus]
    pred = [spans_to_tags(p.spans, len(p.words), scheme) for p in predictions]
    # spans were re-encoded in IOB2 (or PLAIN), which also makes strict mode well defined
    scores = score_tags(gold, pred, mode=mode, scheme=scheme)
    if corpus.scheme not in (scheme, "PLAIN"):
        scores["accuracy"] = _token_accuracy(corpus, predictions, corpus.scheme)
    scores["accuracy_scheme"] = corpus.scheme if corpus.scheme != "PLAIN" else scheme
    if partial:
        scores["partial"] = partial_match_report(gold, pred, mode=mode, scheme=scheme)
    if not return_predictions:
        return scores
    result = Scores(scores)
    result.predictions = predictions
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


def evaluate(model_dir: str, data: str, *, split: str = "test", mode: str = "default", backend: str = "torch",
             batch_size: int = 32, decoding: str = "viterbi", device: str | None = None, partial: bool = False,
             report: str | None = None, **read_options) -> dict:
    """Score the model in ``model_dir`` on ``data`` (a file, a data directory and a ``split``, a
    save_to_disk directory or ``hf:ID``), read with the same options as training
    (:class:`~tokentune.data.options.ReadOptions`: ``scheme``, ``format``, ``label_map``, ...).

    ``partial`` adds the partial-match report under ``"partial"``; ``report`` names a directory to
    write metrics.json, errors.jsonl, plots and report.html into (replaced as a whole). Notes on what
    reading changed are under ``"notes"``.
    """
    from .data.options import ReadOptions
    from .data.splits import read_split
    from .inference import Tagger

    options = ReadOptions(**read_options).read_options()
    if report is not None:
        from .io import check_output

        check_output(report, overwrite=True, inputs=(model_dir, data), what="report directory", flag="--report")
    corpus, notes, path = read_split(data, split, options)
    tagger = Tagger.from_pretrained(model_dir, backend=backend, device=device, batch_size=batch_size,
                                    decoding=decoding)
    notes += check_model_labels(tagger, corpus, drop=bool(options.get("drop_unknown_labels")))
    scores = evaluate_corpus(tagger, corpus, mode=mode, partial=partial, return_predictions=report is not None)
    if notes:
        scores["notes"] = notes
    if report is None:
        return scores
    from .reporting import write_evaluation_report

    metrics = dict(scores)
    write_evaluation_report(report, metrics, corpus, scores.predictions, model_dir=model_dir, data=path,
                            split=split if os.path.isdir(data) else None)
    return metrics
