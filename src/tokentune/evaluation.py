"""evaluate(model_dir, data) -> metrics: a trained model scored on labelled data, whole sentences
(long ones through overlapping windows), entity-level P/R/F1 as seqeval's default mode computes them."""
from __future__ import annotations

import os

from .errors import DataError, LabelError
from .schemes import spans_to_tags


def evaluate_corpus(tagger, corpus, *, mode: str = "default") -> dict:
    """Score ``tagger`` on a labelled :class:`~tokentune.data.Corpus`."""
    from .metrics import score_tags

    scheme = "PLAIN" if not tagger.scheme.prefixed else "IOB2"
    predictions = tagger.predict_token_batches([s.words for s in corpus])
    gold = [spans_to_tags(s.spans, len(s.words), scheme) for s in corpus]
    pred = [spans_to_tags(p.spans, len(p.words), scheme) for p in predictions]
    # spans were re-encoded in IOB2 (or PLAIN), which also makes strict mode well defined
    return score_tags(gold, pred, mode=mode, scheme=scheme)


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
             backend: str = "torch", batch_size: int = 32, decoding: str = "viterbi", device: str | None = None) -> dict:
    """Score the model in ``model_dir`` on ``data`` (a file, or a directory and a ``split``)."""
    from .data import read_corpus
    from .inference import Tagger

    corpus = read_corpus(_pick_split(data, split), scheme=scheme)
    tagger = Tagger.from_pretrained(model_dir, backend=backend, device=device, batch_size=batch_size,
                                    decoding=decoding)
    check_model_labels(tagger, corpus)
    return evaluate_corpus(tagger, corpus, mode=mode)
