"""Train/dev/test: finding the files, reading them alike, and the checks and fixes across splits.

Options that act across splits (all off by default, each says what it did in ``Splits.notes``):

- ``label_map={"OLD": "NEW"}``: rename entity types everywhere (``NEW`` of ``O``/None drops them);
- ``drop_unknown_labels=True``: drop dev/test entities of types that training never saw;
- ``dev_split=0.1`` (or True for 0.1): carve a dev set from train, seeded by ``split_seed``, when
  no dev file is given.
"""
from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, DataError, LabelError
from .corpus import Corpus
from .options import SPLIT_OPTIONS, parse_dev_split, parse_label_map

_SPLIT_PATTERNS = {
    # order matters: testa/testb must win over the plain "test" prefix
    "dev": ("dev", "valid", "val.", "val_", "*testa"),
    "test": ("*testb", "test"),
    "train": ("train",),
}
SPLITS = ("train", "dev", "test")


@dataclass
class Splits:
    train: Corpus | None = None
    dev: Corpus | None = None
    test: Corpus | None = None
    notes: list[str] = field(default_factory=list)  # things the user should be told once

    def items(self):
        return [(n, c) for n, c in (("train", self.train), ("dev", self.dev), ("test", self.test)) if c is not None]


def split_of(filename: str) -> str | None:
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
        if filename.startswith(".") or not (os.path.isfile(full) or is_one_split_folder(full)):
            continue
        split = split_of(filename)
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


def is_one_split_folder(path: str, options: dict[str, Any] | None = None) -> bool:
    """A folder that holds one split in a folder format (brat: .txt/.ann pairs), not train/dev/test files."""
    from .formats import DIRECTORY_FORMATS, guess_format

    if not os.path.isdir(path):
        return False
    chosen = (options or {}).get("format")
    return (chosen in DIRECTORY_FORMATS) if chosen else guess_format(path) in DIRECTORY_FORMATS


def load_splits(
    data: str | os.PathLike | None = None,
    *,
    train: str | None = None,
    dev: str | None = None,
    test: str | None = None,
    require: tuple[str, ...] = ("train",),
    **reader_options,
) -> Splits:
    """Read train/dev/test from a directory, a Hugging Face dataset and/or single files; explicit files win."""
    from .formats import read_corpus
    from .hf import is_hf_source, read_hf_splits

    split_options = {k: reader_options.pop(k) for k in list(reader_options) if k in SPLIT_OPTIONS}
    dev_split = parse_dev_split(split_options.get("dev_split"))
    splits = Splits()
    files: dict[str, str] = {}
    if data is not None and is_hf_source(os.fspath(data)):
        from .options import options_for

        # every split is read here, so the one-split options do not apply
        hf_options = options_for("hf", {k: v for k, v in reader_options.items() if k not in ("format", "hf_split")})
        for name, corpus in read_hf_splits(os.fspath(data), **hf_options).items():
            setattr(splits, name, corpus)
    elif data is not None:
        files = find_split_files(data)
    for name, value in (("train", train), ("dev", dev), ("test", test)):
        if value is not None:
            files[name] = os.fspath(value)
    _require(require, files, splits, data, dev_split)
    for name, path in files.items():
        options = dict(reader_options)
        if path.startswith("hf:") and "hf_split" not in options:
            options["hf_split"] = name  # --dev hf:wnut_17 reads its validation split
        setattr(splits, name, read_corpus(path, **options))
    _apply_split_options(splits, split_options, dev_split)
    return splits


def _require(require, files: dict[str, str], splits: Splits, data, dev_split: float | None) -> None:
    for name in require:
        if name in files or getattr(splits, name) is not None or (name == "dev" and dev_split):
            continue
        where = f" in {os.fspath(data)}" if data is not None else ""
        listing = sorted(os.listdir(data)) if data is not None and os.path.isdir(data) else []
        raise DataError(
            f"no {name} file found{where}",
            expected=f"a file named {name}* (e.g. {name}.txt)" + (" or dev*/valid*/*testa*" if name == "dev" else ""),
            found=", ".join(listing) or "nothing",
            fix=f"rename the file or pass --{name} FILE" + (" (or --dev-split 0.1)" if name == "dev" else ""),
        )


def _apply_split_options(splits: Splits, options: dict, dev_split: float | None) -> None:
    _unify_io(splits)
    detected: dict[str, list[str]] = {}
    for name, corpus in splits.items():
        if corpus.scheme_detected:
            detected.setdefault(corpus.scheme, []).append(name)
    for scheme, names in detected.items():
        splits.notes.append(f"tag scheme {scheme} detected in {', '.join(names)} (pass --scheme to override)")
    for name, corpus in splits.items():
        splits.notes.extend(f"{name}: {note}" for note in corpus.notes)
    if options.get("label_map"):
        _map_labels(splits, parse_label_map(options["label_map"]))
    if dev_split:
        _carve_dev(splits, dev_split, int(options.get("split_seed", 42) or 0))
    if options.get("drop_unknown_labels"):
        _drop_unknown(splits)


def _unify_io(splits: Splits) -> None:
    """A split with no ``B-`` tag looks like IO; next to IOB1 splits it is IOB1 (both decode alike)."""
    schemes = {corpus.scheme for _, corpus in splits.items() if corpus.scheme_detected}
    if schemes == {"IO", "IOB1"}:
        for _, corpus in splits.items():
            if corpus.scheme_detected and corpus.scheme == "IO":
                corpus.scheme = "IOB1"


def _map_labels(splits: Splits, mapping: dict[str, str | None]) -> None:
    splits.notes.extend(map_labels([corpus for _, corpus in splits.items()], mapping))


def map_labels(corpora: list[Corpus], mapping: dict[str, str | None]) -> list[str]:
    """Rename entity types in place (None drops them); returns the notes that say what changed."""
    used: Counter = Counter()

    def change(span):
        label, start, end = span
        if label not in mapping:
            return span
        used[label] += 1
        return None if mapping[label] is None else (mapping[label], start, end)

    for corpus in corpora:
        corpus.adjustments["entities_relabelled"] += corpus.map_spans(change)
    notes = []
    moves = ", ".join(f"{old} -> {mapping[old] or 'O'} ({used[old]})" for old in sorted(mapping) if used[old])
    if moves:
        notes.append(f"label_map: {moves}")
    unused = sorted(old for old in mapping if not used[old])
    if unused:
        notes.append(f"label_map: {', '.join(unused)} matched no entity (check the spelling)")
    return notes


def _carve_dev(splits: Splits, fraction: float, seed: int) -> None:
    if splits.dev is not None:
        splits.notes.append("dev_split ignored: a dev set was given")
        return
    train = splits.train
    if train is None or len(train) < 2:
        raise DataError("cannot carve a dev set from the training data", path=train.path if train else None,
                        expected="at least 2 training sentences", found=f"{len(train) if train else 0}",
                        fix="pass a dev file with --dev")
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    size = min(len(train) - 1, max(1, round(len(train) * fraction)))
    splits.dev = train.select(sorted(order[:size]))
    splits.train = train.select(sorted(order[size:]))
    splits.notes.append(f"dev: no dev file, so {size:,} of {len(train):,} training sentences were set aside as dev "
                        f"(dev_split={fraction:g}, split_seed={seed})")


def _drop_unknown(splits: Splits) -> None:
    if splits.train is None:
        return
    known = splits.train.entity_types()
    for name, corpus in splits.items():
        if name != "train":
            note = drop_unseen(name, corpus, known)
            splits.notes.extend([note] if note else [])


def drop_unseen(name: str, corpus: Corpus, known: set[str]) -> str | None:
    """Drop the entities of types outside ``known``; the note that says so (None: nothing dropped)."""
    unseen = unseen_labels(corpus, known)
    if not unseen:
        return None
    counts = corpus.entity_counts()
    first = min(unseen.values(), key=lambda found: found[0])[1]
    corpus.map_spans(lambda span: None if span[0] in unseen else span)
    dropped = sum(counts[label] for label in unseen)
    corpus.adjustments["entities_dropped_unknown"] += dropped
    return (f"{name}: dropped {dropped} entities of types training never saw: {', '.join(sorted(unseen))} "
            f"(first at {corpus.location(first)}; drop_unknown_labels)")


def check_labels(splits: Splits) -> None:
    """Dev/test entity types that training never saw can never be predicted: refuse them."""
    if splits.train is None:
        return
    known = splits.train.entity_types()
    for name, corpus in splits.items():
        if name != "train":
            refuse_unseen(f"{name} has label(s) never seen in training", corpus, known)


UNSEEN_FIX = ("correct those tags, rename them with --label-map OLD=NEW (label_map={'OLD': 'NEW'}), drop them with "
              "--drop-unknown-labels, or add training examples with them")


def refuse_unseen(problem: str, corpus: Corpus, known: set[str], fix: str = UNSEEN_FIX) -> None:
    """A located :class:`LabelError` naming every entity type of ``corpus`` outside ``known``."""
    unseen = unseen_labels(corpus, known)
    if not unseen:
        return
    first = min(unseen.values(), key=lambda found: found[0])[1]
    listing = ", ".join(f"{label} ({corpus.location(sentence)})" for label, (_, sentence) in sorted(unseen.items()))
    raise LabelError(f"{problem}: {listing}", path=corpus.path, line=first.line,
                     expected=f"only {', '.join(sorted(known)) or 'no entity types'}", fix=fix)


def unseen_labels(corpus: Corpus, known: set[str]) -> dict[str, tuple[int, object]]:
    """Entity types of ``corpus`` outside ``known`` -> (index, sentence) where each first appears."""
    found: dict[str, tuple[int, object]] = {}
    for index, sentence in enumerate(corpus):
        for label, _, _ in sentence.spans:
            if label not in known and label not in found:
                found[label] = (index, sentence)
    return found


def read_data(data: str, options: dict[str, Any]) -> tuple[dict[str, Corpus], list[str]]:
    """``{split name: corpus}`` and the notes, for a directory, a file or a Hugging Face dataset."""
    from .formats import read_corpus
    from .hf import is_hf_source

    if (os.path.isdir(data) and not is_one_split_folder(data, options)) or (is_hf_source(data)
                                                                           and not options.get("hf_split")):
        splits = load_splits(data, require=(), **options)
        if not splits.items():
            raise DataError("no train/dev/test data found", path=data,
                            expected="files named train*, dev*/valid*, test* (or a save_to_disk directory)",
                            found=", ".join(sorted(os.listdir(data))[:10]) if os.path.isdir(data) else "none",
                            fix="rename the files, or inspect one file: tokentune inspect FILE")
        return dict(splits.items()), list(splits.notes)
    reader = {k: v for k, v in options.items() if k not in SPLIT_OPTIONS}
    check_single_file_options(data, options)
    corpus = read_corpus(data, **reader)
    name = split_of(os.path.basename(data)) or os.path.basename(data.rstrip("/")) or data
    notes = [f"{name}: tag scheme {corpus.scheme} detected (pass --scheme to override)"] if corpus.scheme_detected else []
    # a reader's note names the file already: prefixing it again said "spans.jsonl: spans.jsonl: ..."
    notes.extend(note if note.startswith(f"{corpus.path}: ") else f"{name}: {note}" for note in corpus.notes)
    if options.get("label_map"):
        notes.extend(map_labels([corpus], parse_label_map(options["label_map"])))
    return {name: corpus}, notes


def check_single_file_options(data: str, options: dict[str, Any]) -> None:
    for option in ("dev_split", "drop_unknown_labels"):
        if options.get(option):
            raise ConfigError(f"--{option.replace('_', '-')} needs train and dev splits, but {data} is one file",
                              fix="pass the data directory (train/dev/test files) instead")


def read_split(data: str, split: str | None, options: dict[str, Any]) -> tuple[Corpus, list[str], str]:
    """One split to score: ``(corpus, notes, path)`` from a file, a data directory (only ``split``'s file is
    read; default ``test``), a save_to_disk directory or ``hf:ID``. Reader options and ``label_map`` apply
    as in training. A ``split`` named for data that holds one split is refused rather than ignored."""
    from .formats import read_corpus
    from .hf import is_hf_source

    named, split = split, split or "test"

    if os.path.isdir(data) and not is_hf_source(data) and not is_one_split_folder(data, options):
        files = find_split_files(data)
        if split not in files:
            raise DataError(f"no {split} file in {data}", expected=f"a file named {split}*",
                            found=", ".join(sorted(os.path.basename(f) for f in files.values())) or "none",
                            fix="pass --split with one of the splits found, or the file itself")
        reader = {k: v for k, v in options.items() if k not in SPLIT_OPTIONS}
        corpus = read_corpus(files[split], **reader)
        notes = [f"{split}: {note}" for note in corpus.notes]
        if options.get("label_map"):
            notes.extend(map_labels([corpus], parse_label_map(options["label_map"])))
        return corpus, notes, files[split]
    corpora, notes = read_data(data, {k: v for k, v in options.items() if k != "drop_unknown_labels"})
    if len(corpora) == 1 and named is not None and named not in corpora:
        raise ConfigError(f"--split {named} picks a split of a data directory, but {data} holds one set of data "
                          f"({', '.join(corpora)}), which is scored whole", fix="leave --split out, or pass the directory")
    if len(corpora) == 1:
        return next(iter(corpora.values())), notes, data
    if split not in corpora:
        raise DataError(f"no {split} split in {data}", expected=f"one of {', '.join(corpora)}",
                        found=", ".join(corpora), fix="pass --split with one of the splits found")
    return corpora[split], notes, data
