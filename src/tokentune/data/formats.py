"""One entry point per direction: :func:`read_corpus` picks the reader for a file by ``format`` or by
its name; :func:`write_corpus` the writer."""
from __future__ import annotations

import os

from ..errors import ConfigError, DataError
from .conll import read_conll, write_conll
from .corpus import Corpus
from .jsonl import read_jsonl, write_jsonl
from .options import check_format, options_for

# the one table of file-name suffixes (a trailing .gz is looked through); `predict` reads it too
CONLL_SUFFIXES = (".conll", ".conllu", ".txt", ".tsv", ".iob", ".iob2", ".bio", ".bioes", ".col", ".tags")
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
# CoNLL-2003 names its labelled files .txt, but a .txt file given to `predict` is as likely raw text
AMBIGUOUS_SUFFIXES = (".txt",)
SPACY_SUFFIXES = (".spacy",)
# the readers and writers of the annotation tools' formats, imported on first use: "module:function"
TOOL_READERS = {"label-studio": "labelstudio:read_label_studio", "brat": "brat:read_brat",
                "spacy": "spacy_docs:read_spacy"}
TOOL_WRITERS = {"label-studio": "labelstudio:write_label_studio", "brat": "brat:write_brat",
                "spacy": "spacy_docs:write_spacy"}
DIRECTORY_FORMATS = ("brat",)  # formats whose one split is a folder of files


def _tool_function(table: dict[str, str], fmt: str):
    import importlib

    module, name = table[fmt].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def read_corpus(path: str | os.PathLike, *, format: str | None = None, **options) -> Corpus:
    """Read one file (or one Hugging Face split) in any supported format, chosen by ``format`` or the name.

    Options of other formats are ignored, so one option set can serve splits in different formats;
    see :mod:`tokentune.data.options` for the names.
    """
    path = os.fspath(path)
    fmt = check_format(format) if format else guess_format(path)
    if fmt == "hf":
        from .hf import HF_PREFIX, read_hf

        source = path if path.startswith(HF_PREFIX) or os.path.isdir(path) else HF_PREFIX + path
        return read_hf(source, **options_for("hf", options))
    if not os.path.exists(path):
        raise DataError("file not found", path=path,
                        fix="check the path (relative paths start from the current directory); "
                            "for a Hugging Face Hub dataset write hf:NAME, e.g. hf:conll2003")
    if fmt in TOOL_READERS:
        return _tool_function(TOOL_READERS, fmt)(path, **options_for(fmt, options))
    if os.path.isdir(path):
        raise DataError("is a directory, not a file", path=path,
                        fix="pass one file, or the directory as DATA (train/dev/test inside)")
    if fmt == "jsonl":
        return read_jsonl(path, **options_for("jsonl", options))
    return read_conll(path, **options_for("conll", options))


def guess_format(path: str) -> str:
    """``hf`` for ``hf:ID`` and save_to_disk directories, ``jsonl`` for .jsonl/.json(.gz), else ``conll``."""
    from .hf import is_hf_source

    if is_hf_source(path):
        return "hf"
    if os.path.isdir(path) and any(name.endswith(".ann") for name in os.listdir(path)):
        return "brat"
    if path.lower().endswith(SPACY_SUFFIXES):
        return "spacy"
    return "jsonl" if format_by_name(path) == "jsonl" else "conll"


def format_by_name(path: str) -> str | None:
    """``jsonl`` or ``conll`` when the name says so unambiguously (.gz looked through), else ``None``."""
    name = path[:-3] if path.endswith(".gz") else path
    lower = name.lower()
    if lower.endswith(JSON_SUFFIXES):
        return "jsonl"
    if lower.endswith(CONLL_SUFFIXES) and not lower.endswith(AMBIGUOUS_SUFFIXES):
        return "conll"
    return None


def _format_to_write(path: str) -> str:
    if path.lower().endswith(SPACY_SUFFIXES):
        return "spacy"
    return "jsonl" if format_by_name(path) == "jsonl" else "conll"


def write_corpus(corpus: Corpus, path: str | os.PathLike, *, format: str | None = None, scheme: str = "IOB2") -> str:
    """Write ``corpus`` as CoNLL or JSON Lines (chosen by ``format`` or the file name); returns the format."""
    path = os.fspath(path)
    fmt = check_format(format) if format else _format_to_write(path)
    if path.endswith(".gz"):
        raise ConfigError(f"cannot write gzip output {path}", fix="write the plain file, then gzip it")
    if fmt == "jsonl":
        write_jsonl(corpus, path, scheme=scheme)
    elif fmt == "conll":
        write_conll(corpus, path, scheme=scheme)
    elif fmt in TOOL_WRITERS:
        _tool_function(TOOL_WRITERS, fmt)(corpus, path)
    else:
        raise ConfigError(f"cannot write the {fmt!r} format",
                          fix=f"write one of conll, jsonl, {', '.join(TOOL_WRITERS)}")
    return fmt
