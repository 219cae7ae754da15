"""CoNLL-style column files: one word per line, columns split by tabs or spaces, blank lines between
sentences, ``-DOCSTART-`` separators and ``#`` comment lines skipped, gzip read as it is.

A ``#`` line is a comment only at the start of a sentence and only when it cannot be a data line
(its column count differs from the file's, or it is ``#`` followed by a space before the column
count is known), so hashtags such as WNUT-17's ``#NFL<TAB>O`` stay words.
"""
from __future__ import annotations

import gzip
import os
from typing import Iterable, Iterator

from ..errors import DataError
from ..schemes import OUTSIDE, detect_scheme, find_invalid, get_scheme, spans_to_tags, tags_to_spans
from .corpus import Corpus, Sentence

DOCSTART = "-DOCSTART-"


def _open_text(path: str):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        # utf-8-sig drops a BOM; newline=None folds CRLF into \n
        return opener(path, "rt", encoding="utf-8-sig", newline=None)
    except FileNotFoundError:
        raise DataError("file not found", path=path, fix="check the path, or pass the data directory with --data") from None
    except IsADirectoryError:
        raise DataError("is a directory, not a file", path=path, fix="pass a file, or use --data DIR") from None


def _iter_lines(path: str) -> Iterator[tuple[int, str]]:
    handle = _open_text(path)
    try:
        with handle:
            for number, line in enumerate(handle, 1):
                yield number, line.rstrip()
    except UnicodeDecodeError as err:
        raise DataError("the file is not UTF-8 text", path=path, expected="UTF-8 text",
                        found=f"byte {err.object[err.start:err.start + 1]!r}",
                        fix="convert it with `iconv -t utf-8`") from None
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"cannot read the file ({err})", path=path, fix="check that it is complete and not corrupt") from None


def read_conll_rows(
    path: str, *, token_column: int = 0, label_column: int = -1
) -> Iterator[tuple[int, list[str], list[str]]]:
    """Yield ``(first_line, words, tags)`` per sentence, validating columns as it goes."""
    ncols: int | None = None
    words: list[str] = []
    tags: list[str] = []
    start = 0
    for number, line in _iter_lines(path):
        if not line.strip():
            if words:
                yield start, words, tags
                words, tags = [], []
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if not words and line.startswith("#") and (
            (ncols is None and (len(line) == 1 or line[1] == " ")) or (ncols is not None and len(fields) != ncols)
        ):
            continue
        if fields[0] == DOCSTART:
            if words:
                yield start, words, tags
                words, tags = [], []
            continue
        if ncols is None:
            ncols = len(fields)
            _check_columns(path, number, ncols, token_column, label_column)
        if len(fields) != ncols:
            raise DataError(
                "wrong number of columns", path=path, line=number,
                expected=f"{ncols} columns like the file's first line", found=f"{len(fields)} in {line[:80]!r}",
                fix="make every word line have the same columns (token ... tag), or use tabs if tokens contain spaces",
            )
        if not words:
            start = number
        words.append(fields[token_column])
        tags.append(fields[label_column])
    if words:
        yield start, words, tags


def _check_columns(path: str, number: int, ncols: int, token_column: int, label_column: int) -> None:
    if ncols < 2:
        raise DataError(
            "a word line needs at least a token and a tag column", path=path, line=number,
            expected="2 or more columns separated by tabs or spaces", found="1 column",
            fix="add the tag column (e.g. 'EU<TAB>B-ORG')",
        )
    for name, col in (("token", token_column), ("label", label_column)):
        if not -ncols <= col < ncols:
            raise DataError(
                f"the {name} column does not exist", path=path, line=number,
                expected=f"a column index between {-ncols} and {ncols - 1}", found=str(col),
                fix=f"pass --{name}-column with an index that exists",
            )


def read_conll(
    path: str | os.PathLike,
    *,
    scheme: str | None = None,
    token_column: int = 0,
    label_column: int = -1,
) -> Corpus:
    """Read a CoNLL column file into a :class:`Corpus` (tags decoded to spans once, here)."""
    path = os.fspath(path)
    rows = list(read_conll_rows(path, token_column=token_column, label_column=label_column))
    if not rows:
        raise DataError("no sentences found", path=path, expected="word lines such as 'EU B-ORG'",
                        found="an empty file (or only blank, comment or -DOCSTART- lines)",
                        fix="check that this is the right file")
    return corpus_from_tags(rows, path=path, scheme=scheme)


def corpus_from_tags(rows: Iterable[tuple[int, list[str], list[str]]], *, path: str | None, scheme: str | None) -> Corpus:
    """Build a corpus from ``(line, words, tags)`` rows: detect the scheme, repair, decode to spans."""
    rows = list(rows)
    chosen = get_scheme(scheme) if scheme else detect_scheme(tags for _, _, tags in rows)
    if chosen.prefixed:
        _check_tags(rows, chosen, path)
    invalid = []
    sentences = []
    for index, (line, words, tags) in enumerate(rows):
        invalid.extend(find_invalid(tags, chosen, sentence=index))
        sentences.append(Sentence(tuple(words), tuple(tags_to_spans(tags, chosen)), line))
    return Corpus(sentences, path, chosen.name, invalid)


def _check_tags(rows, scheme, path) -> None:
    allowed = scheme.prefixes
    for line, _, tags in rows:
        for offset, tag in enumerate(tags):
            if tag == OUTSIDE:
                continue
            prefix, sep, typ = tag.partition("-")
            if not sep or prefix not in allowed or not typ:
                raise DataError(
                    f"tag {tag!r} does not fit the {scheme.name} scheme", path=path, line=line + offset,
                    expected=f"'O' or one of {sorted(allowed)} + '-TYPE' (e.g. '{scheme.begin}-PER')",
                    found=repr(tag),
                    fix="fix the tag, or pass --scheme (PLAIN for tags without prefixes such as POS)",
                )


def write_conll(corpus: Corpus, path: str | os.PathLike, *, scheme: str = "IOB2", separator: str = "\t") -> None:
    """Write ``word<sep>tag`` lines, a blank line after each sentence (atomically)."""
    from ..io import atomic_write_text

    lines = []
    for sentence in corpus:
        tags = spans_to_tags(sentence.spans, len(sentence.words), scheme)
        lines.extend(f"{w}{separator}{t}" for w, t in zip(sentence.words, tags))
        lines.append("")
    atomic_write_text(path, "\n".join(lines) + "\n")
