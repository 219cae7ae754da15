"""Reader and split options: which format takes which, their checks, and the matching CLI flags.

``load_splits`` passes one set of options to every file it reads, and splits may come in different
formats (train.conll with dev.jsonl), so an option meant for another format is ignored; a name no
reader knows is refused, because a silently ignored typo would change the data without a word.
"""
from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError

COMMON = {"scheme", "repair"}
READER_OPTIONS: dict[str, set[str]] = {
    "conll": COMMON | {"token_column", "label_column"},
    "jsonl": COMMON | {"tokens_key", "tags_key", "label_names", "text_key", "entities_key", "alignment", "overlaps"},
    "hf": COMMON | {"tokens_key", "tags_key", "label_names", "hf_config", "hf_split"},
}
SPLIT_OPTIONS = {"label_map", "drop_unknown_labels", "dev_split", "split_seed"}
FORMATS = tuple(READER_OPTIONS)
FORMAT_ALIASES = {"json": "jsonl", "ndjson": "jsonl", "conll": "conll", "conllu": "conll", "tsv": "conll",
                  "txt": "conll", "huggingface": "hf", "datasets": "hf"}


def check_format(fmt: str) -> str:
    key = FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    if key not in READER_OPTIONS:
        raise ConfigError(f"unknown data format {fmt!r}; expected one of {', '.join(FORMATS)}",
                          fix="pass --format conll, jsonl or hf, or leave it out to choose by file name")
    return key


def options_for(fmt: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options ``fmt``'s reader takes, normalised; refuses names that no reader takes."""
    known = set().union(*READER_OPTIONS.values())
    unknown = sorted(k for k, v in options.items() if v is not None and k not in known)
    if unknown:
        raise ConfigError(f"unknown data option(s) {', '.join(unknown)}",
                          fix=f"use only {', '.join(sorted(known | SPLIT_OPTIONS))}")
    chosen = {k: v for k, v in options.items() if v is not None and k in READER_OPTIONS[fmt]}
    if "label_names" in chosen:
        chosen["label_names"] = parse_label_names(chosen["label_names"])
    for key in ("token_column", "label_column"):
        if key in chosen:
            chosen[key] = _int(chosen[key], key)
    return chosen


def parse_label_names(value: Any) -> list[str]:
    """``'O,B-PER,I-PER'`` or a list of strings -> the list (id order)."""
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"label_names must be a non-empty list of label strings, got {value!r}",
                          fix="pass --label-names O,B-PER,I-PER (one name per id, in id order)")
    return list(names)


def parse_label_map(value: Any) -> dict[str, str | None]:
    """``{"OLD": "NEW"}`` or ``["OLD=NEW", ...]``; a target of ``O``/empty/None drops the entities."""
    if isinstance(value, (list, tuple)):
        pairs = {}
        for item in value:
            old, sep, new = str(item).partition("=")
            if not sep or not old.strip():
                raise ConfigError(f"label map entry {item!r} is not OLD=NEW", fix="write --label-map OLD=NEW")
            pairs[old.strip()] = new.strip()
        value = pairs
    if not isinstance(value, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, str))
                                              for k, v in value.items()):
        raise ConfigError(f"label_map must map entity types to entity types, got {value!r}",
                          fix='pass label_map={"OLD": "NEW"} or --label-map OLD=NEW (NEW=O drops them)')
    return {k: (None if v in (None, "", "O") else v) for k, v in value.items()}


def parse_dev_split(value: Any) -> float | None:
    if value is None or value is False:
        return None
    fraction = 0.1 if value is True else value
    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        fraction = -1.0
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"dev_split must be a fraction between 0 and 1, got {value!r}",
                          fix="pass --dev-split 0.1 (10% of the training sentences)")
    return fraction


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer column index, got {value!r}",
                          fix=f"pass --{name.replace('_', '-')} 0 (first column) or -1 (last)") from None


def add_reader_arguments(parser: argparse.ArgumentParser, *, splits: bool = True, format_flag: str = "--format") -> None:
    """The data-reading flags shared by commands that read labelled data (``format_flag`` renames --format)."""
    group = parser.add_argument_group("data reading")
    group.add_argument(format_flag, dest="format", choices=FORMATS, help="input format (default: from the file name)")
    group.add_argument("--scheme", help="tag scheme of the input (IOB1, IOB2/BIO, BIOES, BILOU, IO, PLAIN; "
                                        "default: detected)")
    group.add_argument("--repair", choices=("lenient", "error", "drop-entity"),
                       help="what to do with tag sequences that break the scheme (default: lenient, as conlleval)")
    group.add_argument("--token-column", type=int, help="CoNLL: index of the word column (default 0)")
    group.add_argument("--label-column", type=int, help="CoNLL: index of the tag column (default -1, the last)")
    group.add_argument("--tokens-key", help="JSON/HF: key of the word list (default tokens)")
    group.add_argument("--tags-key", help="JSON/HF: key of the tag list (default: tags, ner_tags, labels or pos_tags)")
    group.add_argument("--label-names", help="names of integer tag ids, comma-separated in id order")
    group.add_argument("--text-key", help="JSON: key of the raw text (default text)")
    group.add_argument("--entities-key", help="JSON: key of the character spans (default entities)")
    group.add_argument("--alignment", choices=("split", "widen"),
                       help="JSON text: split words at entity boundaries (default) or widen entities to words")
    group.add_argument("--overlaps", choices=("error", "keep-longest"), help="JSON text: overlapping entities")
    group.add_argument("--hf-config", help="Hugging Face dataset config name")
    group.add_argument("--hf-split", help="Hugging Face split to read when DATA is one split")
    if splits:
        group.add_argument("--label-map", action="append", metavar="OLD=NEW",
                           help="rename an entity type (NEW=O drops it); repeatable")
        group.add_argument("--drop-unknown-labels", action="store_true",
                           help="drop dev/test entities whose type training never saw")
        group.add_argument("--dev-split", type=float, metavar="FRACTION",
                           help="carve a dev set from train when there is no dev file (e.g. 0.1)")
        group.add_argument("--split-seed", type=int, help="seed of --dev-split (default 42)")


def reader_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of :func:`add_reader_arguments` that were given, as keyword arguments."""
    names = set().union(*READER_OPTIONS.values()) | SPLIT_OPTIONS | {"format"}
    options = {k: getattr(args, k) for k in names if getattr(args, k, None) not in (None, False)}
    return options
