"""Sentences -> training and evaluation features (sub-token windows with labels), per split.

Sentence context: a sentence is one window (or several overlapping ones when it is longer than the
model). Document context (``--context document``) where the data marks documents: with ``--context-size
0`` a document's sentences fill each window; with ``N`` each sentence is its own window, read with up to
``N`` sub-tokens of its document on either side, and labels only its own words (FLERT).
"""
from __future__ import annotations

import dataclasses

from ..config import TrainConfig
from ..data import Corpus


def word_label_ids(corpus: Corpus, label2id: dict[str, int], scheme: str) -> list[list[int]]:
    return [[label2id[tag] for tag in tags] for tags in corpus.tag_sequences(scheme)]


def encode_split(corpus: Corpus, tokenizer, label2id, config: TrainConfig, max_length: int, *, name: str,
                 evaluation: bool, notes: list[str]) -> list[dict]:
    from ..windows import EncodeReport, WindowEncoder

    report = EncodeReport()
    words, labels = [s.words for s in corpus], word_label_ids(corpus, label2id, config.train_scheme)
    documents = config.context == "document" and corpus.document_starts is not None
    flert = documents and config.context_size > 0  # each sentence its own window, widened by its document
    if flert:
        notes.append(f"{name}: document context: each of {len(corpus)} sentences is read with up to "
                     f"{config.context_size} sub-tokens of its document ({len(corpus.documents())}) on either side"
                     + (", set off from it by separator tokens" if config.context_marker else ""))
        if config.context_dropout and not evaluation:
            notes.append(f"{name}: context dropout {config.context_dropout:g}: at each step each side's context is "
                         f"left out of a sentence's window with that probability")
    elif documents:  # a document is one sequence: consecutive sentences fill each window
        notes.append(f"{name}: document context: {len(corpus)} sentences read as {len(corpus.documents())} documents")
    elif config.context == "document":
        notes.append(f"{name}: the data marks no documents (no -DOCSTART-, no document id: --document-key): "
                     "sentences are read alone")
    elif corpus.document_starts is not None and not evaluation:
        notes.append(f"{name}: the data marks {len(corpus.documents())} documents; sentences are read alone "
                     f"(--context sentence, the default: see docs/benchmarks.md, 'Document context')")
    # training windows do not overlap (every word is labelled once); evaluation windows overlap and
    # each word is read from the window where it has the most context
    # (with context around each sentence, a window labels only the words it owns, in training too)
    stride = config.stride if evaluation or not documents or flert else 0
    encoder = WindowEncoder(tokenizer, max_length=max_length, stride=stride, context_marker=config.context_marker)
    features = encoder.features(words, labels, owned_only=evaluation or flert, report=report,
                                documents=corpus.documents() if documents else None, context=config.context_size,
                                mark_context=flert and not evaluation and config.context_dropout > 0)
    if not documents or flert:
        notes.extend(report.notes(name))
    if evaluation:  # sorted by length: evaluation batches carry little padding
        features.sort(key=lambda f: len(f["input_ids"]))
    return features


def document_batch(config: TrainConfig, train: Corpus, features: list, notes: list[str]) -> TrainConfig:
    """With document context a window holds many sentences: the batch counts windows so that a step
    still holds about ``batch_size`` sentences (the recipe's), and the number of steps stays alike."""
    if config.context != "document" or train.document_starts is None or not features:
        return config
    per_window = len(train) / len(features)
    windows = max(1, round(config.batch_size / per_window))
    notes.append(f"document context: {per_window:.1f} sentences per training window, so {windows} window(s) "
                 f"per batch hold about {config.batch_size} sentences")
    return dataclasses.replace(config, batch_size=windows)
