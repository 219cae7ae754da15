"""Reader and split options: :class:`ReadOptions` (the fields, their help and flags, written once and
shared by `train`, `evaluate`, `inspect` and `convert`), which format takes which, and their checks.

``load_splits`` passes one set of options to every file it reads, and splits may come in different
formats (train.conll with dev.jsonl), so an option meant for another format is ignored; a name no
reader knows is refused, because a silently ignored typo would change the data without a word.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigError
from ..settings import check_fields, setting
from .documents import check_document_key

COMMON = {"scheme", "repair"}
# formats whose entities are character offsets into text; word_splitter (not a reading flag: training
# passes the model's --word-splitter, evaluate the model's own) splits their text into words
CHARACTER_SPANS = {"alignment", "overlaps", "word_splitter"}
READER_OPTIONS: dict[str, set[str]] = {
    "conll": COMMON | {"token_column", "label_column", "on_bad_lines"},
    "jsonl": COMMON | CHARACTER_SPANS | {"tokens_key", "tags_key", "label_names", "text_key", "entities_key",
                                         "document_key"},
    "hf": COMMON | {"tokens_key", "tags_key", "label_names", "hf_config", "hf_split", "document_key"},
    "label-studio": CHARACTER_SPANS | {"text_key"},  # Label Studio JSON export (data/labelstudio.py)
    "brat": CHARACTER_SPANS,  # brat standoff: a folder of .txt + .ann pairs (data/brat.py)
    "spacy": CHARACTER_SPANS,  # spaCy DocBin (.spacy) or JSONL with "ents", optional extra (data/spacy_docs.py)
}
SPLIT_OPTIONS = {"label_map", "drop_unknown_labels", "dev_split", "split_seed"}
FORMATS = tuple(READER_OPTIONS)
FORMAT_ALIASES = {"json": "jsonl", "ndjson": "jsonl", "conll": "conll", "conllu": "conll", "tsv": "conll",
                  "txt": "conll", "huggingface": "hf", "datasets": "hf", "labelstudio": "label-studio",
                  "label_studio": "label-studio", "ls": "label-studio", "standoff": "brat", "docbin": "spacy"}


def check_format(fmt: str) -> str:
    key = FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    if key not in READER_OPTIONS:
        raise ConfigError(f"unknown data format {fmt!r}; expected one of {', '.join(FORMATS)}",
                          fix=f"pass --format with one of {', '.join(FORMATS)}, or leave it out to choose by file name")
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


READING = "data reading"


@dataclass
class ReadOptions:
    """How labelled data is read: the same names as flags, config-file keys and keyword arguments."""

    format: str | None = setting(None, "input format (default: from the file name)", choices=FORMATS, group=READING)
    scheme: str | None = setting(None, "tag scheme of the input (IOB1, IOB2/BIO, BIOES, BILOU, IO, PLAIN; "
                                       "default: detected)", group=READING)
    repair: str | None = setting(None, "tag sequences that break the scheme: lenient (default, as conlleval), "
                                       "error or drop-entity", choices=("lenient", "error", "drop-entity"),
                                 group=READING)
    token_column: int | None = setting(None, "CoNLL: index of the word column (default 0)", group=READING)
    label_column: int | None = setting(None, "CoNLL: index of the tag column (default -1, the last)", group=READING)
    tokens_key: str | None = setting(None, "JSON/HF: key of the word list (default tokens)", group=READING)
    tags_key: str | None = setting(None, "JSON/HF: key of the tag list (default: tags, ner_tags, labels or "
                                         "pos_tags)", group=READING)
    label_names: list | str | None = setting(None, "names of integer tag ids, comma-separated in id order",
                                             group=READING)
    document_key: str | None = setting(None, "JSON/HF: key of a document id; consecutive records with one id are a "
                                             "document (default: document_id or doc_id when present)", group=READING)
    text_key: str | None = setting(None, "JSON: key of the raw text (default text)", group=READING)
    entities_key: str | None = setting(None, "JSON: key of the character spans (default entities)", group=READING)
    alignment: str | None = setting(None, "JSON text: split words at entity boundaries (default) or widen "
                                          "entities to words", choices=("split", "widen"), group=READING)
    overlaps: str | None = setting(None, "JSON text: overlapping entities", choices=("error", "keep-longest"),
                                   group=READING)
    hf_config: str | None = setting(None, "Hugging Face dataset config name", group=READING)
    hf_split: str | None = setting(None, "Hugging Face split to read when DATA is one split", group=READING)
    label_map: list | dict | None = setting(None, "rename an entity type (NEW=O drops it); repeatable",
                                            metavar="OLD=NEW", repeat=True, group=READING)
    drop_unknown_labels: bool = setting(False, "drop dev/test entities whose type training (or the model) "
                                               "never saw", group=READING)
    dev_split: float | None = setting(None, "carve a dev set from train when there is no dev file (e.g. 0.1)",
                                      metavar="FRACTION", above=0.0, below=1.0, group=READING)
    split_seed: int | None = setting(None, "seed of --dev-split (default 42)", group=READING)
    on_bad_lines: str | None = setting(None, "CoNLL lines with an empty or whitespace-only token: error (default) "
                                             "or skip (counted per split, first locations named)",
                                       choices=("error", "skip"), group=READING)

    def __post_init__(self) -> None:
        self.check_read_options()

    def check_read_options(self) -> None:
        check_fields(self)
        if self.format is not None:
            self.format = check_format(self.format)
        if self.label_map is not None:
            parse_label_map(self.label_map)
        if self.label_names is not None:
            parse_label_names(self.label_names)
        check_document_key(self.document_key)

    def read_options(self) -> dict[str, Any]:
        """The options that were given, as keyword arguments of ``load_splits``/``read_corpus``."""
        names = [f.name for f in fields(ReadOptions)]
        return {k: getattr(self, k) for k in names if getattr(self, k) not in (None, False)}
