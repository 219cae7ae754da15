"""CoNLL-style column files: one word per line, columns split by tabs or spaces, blank lines between
sentences, ``-DOCSTART-`` separators and ``#`` comment lines skipped, gzip read as it is.

Any number of columns is fine (CoNLL-2003 has four); ``token_column``/``label_column`` pick the two
that matter (default: first and last). CRLF line ends, a BOM, trailing whitespace and runs of blank
lines are tolerated.

A ``#`` line is a comment only at the start of a sentence and only when it cannot be a data line
(its column count differs from the file's, it has no tab in a tab-separated file, or it is ``#``
followed by a space before the column count is known), so hashtags such as WNUT-17's ``#NFL<TAB>O`` stay words.
"""
from __future__ import annotations

import os
from typing import Iterator

from ..errors import DataError
from ..schemes import spans_to_tags
from .corpus import Corpus
from .files import text_lines
from .tags import corpus_from_tags

__all__ = ["DOCSTART", "read_conll", "read_conll_rows", "write_conll", "corpus_from_tags"]

DOCSTART = "-DOCSTART-"


def read_conll_rows(
    path: str, *, token_column: int = 0, label_column: int = -1
) -> Iterator[tuple[int, list[str], list[str]]]:
    """Yield ``(first_line, words, tags)`` per sentence, validating columns as it goes."""
    ncols: int | None = None
    tabbed = False  # in a tab-separated file a '#' line without tabs is a comment
    words: list[str] = []
    tags: list[str] = []
    start = 0
    for number, line in enumerate(text_lines(path), 1):
        # tabs win when present, so tokens may contain spaces in tab-separated files
        if "\t" in line:
            line = line.rstrip()  # a trailing tab is whitespace, not an empty column
        fields = [f.strip() for f in line.split("\t")] if "\t" in line else line.split()
        if not fields or not fields[0] and len(fields) == 1:
            if words:
                yield start, words, tags
                words, tags = [], []
            continue
        if not words and line[0] == "#" and (
            (ncols is None and (len(line) == 1 or line[1] == " "))
            or (ncols is not None and (len(fields) != ncols or (tabbed and "\t" not in line)))
        ):
            continue
        if fields[0] == DOCSTART:
            if words:
                yield start, words, tags
                words, tags = [], []
            continue
        if ncols is None:
            ncols, tabbed = len(fields), "\t" in line
            _check_columns(path, number, ncols, token_column, label_column)
        if len(fields) != ncols:
            raise DataError(
                "wrong number of columns", path=path, line=number,
                expected=f"{ncols} columns like the file's first word line", found=f"{len(fields)} in {line[:80]!r}",
                fix="make every word line have the same columns (token ... tag), or use tabs if tokens contain spaces",
            )
        token = fields[token_column]
        if not token or not fields[label_column]:
            _empty_field(path, number, line, "token" if not token else "tag")
        if not words:
            start = number
        words.append(token)
        tags.append(fields[label_column])
    if words:
        yield start, words, tags


def _empty_field(path: str, number: int, line: str, what: str) -> None:
    raise DataError(f"empty {what} column", path=path, line=number, expected=f"a non-empty {what}",
                    found=repr(line[:80]), fix="remove the stray tab, or write the missing value")


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
                fix=f"pass --{name}-column with an index that exists (0 is the first column, -1 the last)",
            )


def read_conll(
    path: str | os.PathLike,
    *,
    scheme: str | None = None,
    token_column: int = 0,
    label_column: int = -1,
    repair: str | None = "lenient",
) -> Corpus:
    """Read a CoNLL column file into a :class:`Corpus` (tags decoded to spans once, here)."""
    path = os.fspath(path)
    rows = list(read_conll_rows(path, token_column=int(token_column), label_column=int(label_column)))
    if not rows:
        raise DataError("no sentences found", path=path, expected="word lines such as 'EU B-ORG'",
                        found="an empty file (or only blank, comment or -DOCSTART- lines)",
                        fix="check that this is the right file")
    return corpus_from_tags(rows, path=path, scheme=scheme, repair=repair)


def write_conll(corpus: Corpus, path: str | os.PathLike, *, scheme: str = "IOB2", separator: str = "\t") -> None:
    """Write ``word<sep>tag`` lines in ``scheme``, a blank line after each sentence (atomically)."""
    from ..io import atomic_write_text

    lines = []
    for sentence in corpus:
        _check_writable(sentence.words, separator, corpus, sentence)
        tags = spans_to_tags(sentence.spans, len(sentence.words), scheme)
        lines.extend(f"{w}{separator}{t}" for w, t in zip(sentence.words, tags))
        lines.append("")
    atomic_write_text(path, "\n".join(lines) + "\n" if lines else "")


def _check_writable(words, separator: str, corpus: Corpus, sentence) -> None:
    """A word with the separator, a line break or nothing in it would corrupt the columns."""
    for word in words:
        if not word.strip() or separator in word or "\n" in word or (separator == " " and word != "".join(word.split())):
            raise DataError(
                f"word {word!r} cannot be written as a CoNLL column", path=corpus.path,
                line=sentence.line, expected="words without separators or line breaks",
                found=repr(word), fix="write JSON Lines instead (--format jsonl), or use the tab separator",
            )
