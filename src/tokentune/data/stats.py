"""Corpus statistics for ``tokentune inspect``: counts, scheme, repairs and sentence lengths,
in words and (given a tokenizer) in sub-tokens including special tokens.

Percentiles use the nearest-rank method (the smallest length that at least p% of sentences do not
exceed), so every reported length is one that occurs in the data.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from .corpus import Corpus

PERCENTILES = (50, 90, 99)
NO_LIMIT = 1_000_000  # tokenizers without a limit report model_max_length as a huge sentinel (1e30)


def percentiles(values: Sequence[int]) -> dict[str, int]:
    """``{"p50", "p90", "p99", "max"}`` of ``values`` (all 0 when empty)."""
    ordered = sorted(values)
    if not ordered:
        return {**{f"p{p}": 0 for p in PERCENTILES}, "max": 0}
    result = {f"p{p}": ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] for p in PERCENTILES}
    result["max"] = ordered[-1]
    return result


def corpus_stats(corpus: Corpus, *, locations: int = 3) -> dict[str, Any]:
    """Counts and checks of one corpus as plain JSON-ready data."""
    counts = corpus.entity_counts()
    return {
        "file": corpus.path,
        "sentences": len(corpus),
        "tokens": corpus.num_tokens,
        "entities": sum(counts.values()),
        "per_type": dict(sorted(counts.items())),
        "scheme": corpus.scheme,
        "scheme_detected": corpus.scheme_detected,
        "invalid_transitions": {
            "count": len(corpus.invalid),
            "first": [corpus.invalid_location(item) for item in corpus.invalid[:locations]],
        },
        "length_words": percentiles([len(s.words) for s in corpus]),
        "adjustments": {k: v for k, v in sorted(corpus.adjustments.items()) if v},
    }


def subtoken_lengths(corpus: Corpus, tokenizer, *, batch_size: int = 1024) -> list[int]:
    """Sub-tokens per sentence, special tokens included, as the model would see it untruncated."""
    from transformers.utils import logging as hf_logging

    lengths: list[int] = []
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "sequence longer than the maximum" is what we are counting
    try:
        for start in range(0, len(corpus), batch_size):
            batch = [list(s.words) for s in corpus.sentences[start:start + batch_size]]
            encoded = tokenizer(batch, is_split_into_words=True, add_special_tokens=True, truncation=False)
            lengths.extend(len(ids) for ids in encoded["input_ids"])
    finally:
        hf_logging.set_verbosity(verbosity)
    return lengths


def subtoken_stats(corpus: Corpus, tokenizer) -> dict[str, Any]:
    lengths = subtoken_lengths(corpus, tokenizer)
    limit = getattr(tokenizer, "model_max_length", None)
    limit = int(limit) if limit and limit < NO_LIMIT else None
    return {
        **percentiles(lengths),
        "max_length": limit,
        "over_max_length": sum(1 for n in lengths if limit is not None and n > limit),
    }


def inspect_data(data: str, options: dict[str, Any], *, model: str | None = None) -> dict[str, Any]:
    """What `tokentune inspect` reports: per split counts, scheme, problems and lengths (and sub-token
    lengths with ``model``'s tokenizer; ``""`` is the embedded default model), and the notes."""
    from ..modeling import embedded_model_path, load_tokenizer
    from .splits import read_data, unseen_labels

    if model is not None:  # raw-text data is split into words as the model splits text
        from ..inference.saved import reading_splitter

        model = model or str(embedded_model_path())
        options = {**options, "word_splitter": reading_splitter(model)}
    corpora, notes = read_data(data, options)
    report: dict[str, Any] = {"splits": {name: corpus_stats(corpus) for name, corpus in corpora.items()}}
    if model is not None:
        report["model"] = model
        tokenizer = load_tokenizer(report["model"])
        for name, corpus in corpora.items():
            report["splits"][name]["subtokens"] = subtoken_stats(corpus, tokenizer)
    known = corpora["train"].entity_types() if "train" in corpora else None
    for name, corpus in corpora.items():
        unseen = unseen_labels(corpus, known) if known is not None and name != "train" else {}
        if unseen:
            listing = ", ".join(f"{label} ({corpus.location(sentence)})" for label, (_, sentence) in sorted(unseen.items()))
            notes.append(f"{name}: labels never seen in training: {listing}; training would refuse them "
                         f"(--label-map OLD=NEW or --drop-unknown-labels)")
    report["notes"] = notes
    return report
