"""evaluate(model_dir, data) -> metrics: a trained model scored on labelled data, whole sentences
(long ones through overlapping windows), entity-level P/R/F1 as seqeval's default mode computes them."""
from __future__ import annotations

import os

from .errors import DataError, LabelError
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


def _pick_split(data: str, split: str) -> str:
    from .data import find_split_files

    if not os.path.isdir(data):
        return data
    files = find_split_files(data)
    if split not in files:
        raise DataError(f"no {split} file in {data}", expected=f"a file named {split}*",
                        found=", ".join(sorted(os.path.basename(f) for f in files.values())) or "none",
                        fix="pass --split with one of the splits found, or the file itself")
    return files[split]


def check_model_labels(tagger, corpus) -> None:
    types = {label.split("-", 1)[1] if tagger.scheme.prefixed and "-" in label else label
             for label in tagger.labels if label != "O"}
    unseen = corpus.entity_types() - types
    if unseen:
        first = next(s for s in corpus if any(label in unseen for label, _, _ in s.spans))
        raise LabelError(f"the data has label(s) the model does not know: {', '.join(sorted(unseen))}",
                         path=corpus.path, line=first.line, expected=f"only {', '.join(sorted(types))}",
                         fix="evaluate on data with the model's label set")


def evaluate(model_dir: str, data: str, *, split: str = "test", mode: str = "default", scheme: str | None = None,
             backend: str = "torch", batch_size: int = 32, decoding: str = "viterbi", device: str | None = None,
             partial: bool = False, report: str | None = None) -> dict:
    """Score the model in ``model_dir`` on ``data`` (a file, or a directory and a ``split``).

    ``partial`` adds the partial-match report under ``"partial"``; ``report`` names a directory to
    write metrics.json, errors.jsonl, plots and report.html into (replaced as a whole).
    """
    from .data import read_corpus
    from .inference.tagger import Tagger

    path = _pick_split(data, split)
    corpus = read_corpus(path, scheme=scheme)
    tagger = Tagger.from_pretrained(model_dir, backend=backend, device=device, batch_size=batch_size,
                                    decoding=decoding)
    check_model_labels(tagger, corpus)
    scores = evaluate_corpus(tagger, corpus, mode=mode, partial=partial, return_predictions=report is not None)
    if report is None:
        return scores
    from .reporting import write_evaluation_report

    metrics = dict(scores)
    write_evaluation_report(report, metrics, corpus, scores.predictions, model_dir=model_dir, data=path,
                            split=split if os.path.isdir(data) else None)
    return metrics
