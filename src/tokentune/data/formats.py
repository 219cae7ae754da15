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


def write_corpus(corpus: Corpus, path: str | os.PathLike, *, format: str | None = None, scheme: str = "IOB2") -> str:
    """Write ``corpus`` as CoNLL or JSON Lines (chosen by ``format`` or the file name); returns the format."""
    path = os.fspath(path)
    fmt = check_format(format) if format else ("jsonl" if guess_format(path) == "jsonl" else "conll")
    if path.endswith(".gz"):
        raise ConfigError(f"cannot write gzip output {path}", fix="write the plain file, then gzip it")
    if fmt == "jsonl":
        write_jsonl(corpus, path, scheme=scheme)
    elif fmt == "conll":
        write_conll(corpus, path, scheme=scheme)
    else:
        raise ConfigError(f"cannot write the {fmt!r} format", fix="pass --format conll or jsonl")
    return fmt
