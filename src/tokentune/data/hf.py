"""Hugging Face datasets: a Hub id (``hf:conll2003``, ``hf:wnut_17``, with optional config and split)
or a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``.

Words come from the ``tokens`` column (``tokens_key``), tags from the first of ``tags``, ``ner_tags``,
``labels``, ``pos_tags`` (or ``tags_key``). Integer tags are named by the column's ``ClassLabel``
names, so nothing has to be passed for Hub NER datasets; ``label_names`` overrides them.
Split names map to tokentune's: ``validation``/``valid``/``dev`` -> dev. Documents: a document id
column (``document_key``, default ``document_id`` or ``doc_id``) or ``-DOCSTART-`` rows, as
:mod:`.documents` describes.
"""
from __future__ import annotations

import os
from typing import Any

from ..errors import DataError
from .corpus import Corpus
from .documents import DocumentMarks, find_document_key, mark_documents
from .jsonl import TAG_KEYS, note_skipped, token_rows
from .tags import corpus_from_tags

HF_PREFIX = "hf:"
SPLIT_NAMES = {"train": "train", "validation": "dev", "valid": "dev", "dev": "dev", "test": "test"}
_HF_FILES = ("dataset_dict.json", "state.json")


def is_hf_source(source: str) -> bool:
    """A ``hf:`` Hub id, or a directory that ``save_to_disk`` wrote."""
    return source.startswith(HF_PREFIX) or (
        os.path.isdir(source) and any(os.path.isfile(os.path.join(source, f)) for f in _HF_FILES))


def load_hf(source: str, *, hf_config: str | None = None) -> Any:
    """The ``Dataset`` or ``DatasetDict`` behind ``source`` (downloaded through the Hub cache if an id)."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency; this guards broken installs
        raise DataError("the 'datasets' package is not installed", path=source,
                        fix="pip install datasets") from None
    try:
        if source.startswith(HF_PREFIX):
            name = source[len(HF_PREFIX):]
            return datasets.load_dataset(name, hf_config) if hf_config else datasets.load_dataset(name)
        return datasets.load_from_disk(source)
    except Exception as err:  # noqa: BLE001 - any failure inside datasets means "cannot load it"; say why
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise DataError(f"cannot load the Hugging Face dataset ({type(err).__name__}: {first})", path=source,
                        fix="check the id and config (and the network or HF_HUB_OFFLINE), or the save_to_disk "
                            "directory") from None


def hf_split_names(dataset: Any) -> dict[str, str]:
    """tokentune split name -> the dataset's split name, for the splits tokentune knows."""
    names = {}
    for split in getattr(dataset, "keys", lambda: [])():
        ours = SPLIT_NAMES.get(split.lower())
        if ours and ours not in names:
            names[ours] = split
    return names


def read_hf(source: str, *, hf_split: str | None = None, hf_config: str | None = None, **options) -> Corpus:
    """One split of a Hugging Face dataset as a :class:`Corpus`."""
    dataset = load_hf(source, hf_config=hf_config)
    if hasattr(dataset, "keys"):  # a DatasetDict
        available = list(dataset.keys())
        if hf_split is None and len(available) == 1:
            hf_split = available[0]
        wanted = hf_split_names(dataset).get(SPLIT_NAMES.get(str(hf_split).lower(), ""), hf_split)
        if wanted not in dataset:
            raise DataError("which split to read?" if hf_split is None else f"no split {hf_split!r}", path=source,
                            expected=f"one of {', '.join(available)}", found=str(hf_split),
                            fix="pass --hf-split NAME, or pass the whole dataset as DATA to read every split")
        return dataset_to_corpus(dataset[wanted], name=f"{source}[{wanted}]", **options)
    return dataset_to_corpus(dataset, name=source, **options)


def read_hf_splits(source: str, *, hf_config: str | None = None, **options) -> dict[str, Corpus]:
    """Every split tokentune knows (train, dev, test) of a Hugging Face dataset."""
    dataset = load_hf(source, hf_config=hf_config)
    if not hasattr(dataset, "keys"):
        return {"train": dataset_to_corpus(dataset, name=source, **options)}
    names = hf_split_names(dataset)
    if not names:
        raise DataError("no train/validation/test split in the dataset", path=source,
                        expected="splits named train, validation (or dev) and test",
                        found=", ".join(dataset.keys()), fix="pass --hf-split NAME to read one split")
    return {ours: dataset_to_corpus(dataset[theirs], name=f"{source}[{theirs}]", **options)
            for ours, theirs in names.items()}


def dataset_to_corpus(
    dataset: Any,
    *,
    name: str,
    tokens_key: str = "tokens",
    tags_key: str | None = None,
    label_names: list[str] | None = None,
    scheme: str | None = None,
    repair: str | None = "lenient",
    document_key: str | None = None,
) -> Corpus:
    """Rows of a ``datasets.Dataset`` (record numbers are 1-based row numbers) as a corpus."""
    columns = list(dataset.column_names)
    tags_key = tags_key or next((k for k in TAG_KEYS if k in columns), TAG_KEYS[0])
    for key, option in ((tokens_key, "--tokens-key"), (tags_key, "--tags-key")):
        if key not in columns:
            raise DataError(f"the dataset has no {key!r} column", path=name, expected=f"a {key!r} column",
                            found=f"columns {columns}", fix=f"name the right column with {option}")
    names = list(label_names) if label_names is not None else _class_label_names(dataset.features[tags_key])
    marks = DocumentMarks(find_document_key(columns, document_key, path=name), name)
    keys = [tokens_key, tags_key, *([marks.key] if marks.key else [])]
    data = dataset.select_columns(keys).to_dict()
    records = ((i, dict(zip(keys, values))) for i, values in enumerate(zip(*(data[key] for key in keys)), 1))
    rows = token_rows(records, name, tokens_key, tags_key, names, marks)
    corpus = corpus_from_tags(rows, path=name, scheme=scheme, repair=repair, line_per_word=False)
    return mark_documents(note_skipped(corpus, rows), marks)


def _class_label_names(feature: Any) -> list[str] | None:
    """``ClassLabel`` names of a ``List``/``Sequence`` of class labels, if the column has them."""
    inner = getattr(feature, "feature", feature)
    names = getattr(inner, "names", None)
    return list(names) if names else None
