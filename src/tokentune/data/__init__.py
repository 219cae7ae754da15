"""Reading labelled data: one reader per format, split discovery, and checks across splits."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import DataError, LabelError
from .conll import read_conll, write_conll
from .corpus import Corpus, Sentence

__all__ = ["Corpus", "Sentence", "read_corpus", "read_conll", "write_conll", "find_split_files",
           "load_splits", "Splits", "check_labels"]

CONLL_SUFFIXES = (".conll", ".conllu", ".txt", ".tsv", ".iob", ".iob2", ".bio", ".bioes", ".col", ".tags")
_SPLIT_PATTERNS = {
    # order matters: testa/testb must win over the plain "test" prefix
    "dev": ("dev", "valid", "val.", "val_", "*testa"),
    "test": ("*testb", "test"),
    "train": ("train",),
}


def read_corpus(path: str | os.PathLike, *, format: str | None = None, **options) -> Corpus:
    """Read one file in any supported format (chosen by ``format`` or the file name)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError("file not found", path=path, fix="check the path (relative paths start from the current directory)")
    fmt = format or _guess_format(path)
    if fmt == "conll":
        allowed = {"scheme", "token_column", "label_column"}
        return read_conll(path, **{k: v for k, v in options.items() if k in allowed and v is not None})
    raise DataError(f"unsupported data format {fmt!r}", path=path, expected="conll",
                    fix="convert the file to CoNLL columns (token ... tag)")


def _guess_format(path: str) -> str:
    name = path[:-3] if path.endswith(".gz") else path
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    return "conll"


def _split_of(filename: str) -> str | None:
    lower = filename.lower()
    for split, patterns in _SPLIT_PATTERNS.items():
        for pattern in patterns:
            if pattern.startswith("*") and pattern[1:] in lower:
                return split
            if not pattern.startswith("*") and lower.startswith(pattern):
                return split
    return None


def find_split_files(directory: str | os.PathLike) -> dict[str, str]:
    """Map ``train``/``dev``/``test`` to files in ``directory`` by their usual names."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise DataError("not a directory", path=directory,
                        fix="pass a directory holding train/dev/test files, or use --train/--dev/--test FILE")
    found: dict[str, str] = {}
    for filename in sorted(os.listdir(directory)):
        full = os.path.join(directory, filename)
        if filename.startswith(".") or not os.path.isfile(full):
            continue
        split = _split_of(filename)
        if split is None:
            continue
        if split in found:
            raise DataError(
                f"two files look like the {split} split", path=directory,
                found=f"{os.path.basename(found[split])} and {filename}",
                fix=f"pass --{split} FILE to choose one",
            )
        found[split] = full
    return found


@dataclass
class Splits:
    train: Corpus | None = None
    dev: Corpus | None = None
    test: Corpus | None = None
    notes: list[str] = field(default_factory=list)  # things the user should be told once

    def items(self):
        return [(n, c) for n, c in (("train", self.train), ("dev", self.dev), ("test", self.test)) if c is not None]


def load_splits(
    data: str | os.PathLike | None = None,
    *,
    train: str | None = None,
    dev: str | None = None,
    test: str | None = None,
    require: tuple[str, ...] = ("train",),
    **reader_options,
) -> Splits:
    """Read train/dev/test from a directory and/or single files; explicit files win."""
    files: dict[str, str] = find_split_files(data) if data is not None else {}
    for name, value in (("train", train), ("dev", dev), ("test", test)):
        if value is not None:
            files[name] = os.fspath(value)
    for name in require:
        if name not in files:
            where = f" in {os.fspath(data)}" if data is not None else ""
            raise DataError(
                f"no {name} file found{where}",
                expected=f"a file named {name}* (e.g. {name}.txt)" + (" or dev*/valid*/*testa*" if name == "dev" else ""),
                found=", ".join(sorted(os.listdir(data))) if data is not None and os.path.isdir(data) else "nothing",
                fix=f"rename the file or pass --{name} FILE",
            )
    splits = Splits()
    for name, path in files.items():
        setattr(splits, name, read_corpus(path, **reader_options))
    return splits


def check_labels(splits: Splits) -> None:
    """Dev/test entity types that training never saw can never be predicted: refuse them."""
    if splits.train is None:
        return
    known = splits.train.entity_types()
    for name, corpus in splits.items():
        if name == "train":
            continue
        unseen = corpus.entity_types() - known
        if unseen:
            first = next(s for s in corpus if any(label in unseen for label, _, _ in s.spans))
            raise LabelError(
                f"{name} has label(s) never seen in training: {', '.join(sorted(unseen))}",
                path=corpus.path, line=first.line,
                expected=f"only {', '.join(sorted(known))}",
                fix="correct those tags, or add training examples with them",
            )
