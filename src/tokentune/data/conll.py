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
from ..settings import check_choice
from .corpus import Corpus
from .documents import DOCSTART
from .files import text_lines
from .tags import corpus_from_tags

__all__ = ["DOCSTART", "read_conll", "read_conll_rows", "write_conll", "corpus_from_tags"]

BAD_LINE_POLICIES = ("error", "skip")  # pandas' on_bad_lines names


def columns(line: str) -> list[str]:
    """A line's columns: at tabs when there are any, so words may contain spaces (a trailing tab is
    whitespace, not an empty column), else at runs of whitespace."""
    if "\t" not in line:
        return line.split()
    line = line.rstrip()
    return [f.strip() for f in line.split("\t")] if line else []  # a line of only blanks has none


def is_comment(line: str, fields: list[str], ncols: int | None, tabbed: bool) -> bool:
    """Whether a line opening a sentence is a ``#`` comment: one that cannot be a word line, its column count
    not the file's (``ncols``; None before the first word line: ``#`` or ``# ...``), or no tab in a
    tab-separated file, so that hashtags such as ``#NFL<TAB>O`` stay words."""
    if line[:1] != "#":
        return False
    if ncols is None:
        return line == "#" or line.startswith("# ")
    return len(fields) != ncols or (tabbed and "\t" not in line)


def read_conll_rows(
    path: str, *, token_column: int = 0, label_column: int = -1, on_bad_lines: str = "error",
    skipped: list[tuple[int, bool]] | None = None, documents: list[int] | None = None,
) -> Iterator[tuple[int, list[str], list[str]]]:
    """Yield ``(first_line, words, tags)`` per sentence, validating columns as it goes. A line with an
    empty token is an error, or with ``on_bad_lines="skip"`` left out and ``(line, mid-sentence)`` put in ``skipped``."""
    ncols: int | None = None
    tabbed = False  # in a tab-separated file a '#' line without tabs is a comment
    words: list[str] = []
    tags: list[str] = []
    start = sentences = 0  # sentences yielded so far: where a -DOCSTART- puts a document boundary
    for number, line in enumerate(text_lines(path), 1):
        if "\t" in line:
            line = line.rstrip()  # a trailing tab is whitespace, not an empty column
        fields = columns(line)
        if not fields:
            if words:
                yield start, words, tags
                words, tags, sentences = [], [], sentences + 1
            continue
        if not words and is_comment(line, fields, ncols, tabbed):
            continue
        if fields[0] == DOCSTART:
            if words:
                yield start, words, tags
                words, tags, sentences = [], [], sentences + 1
            if documents is not None:
                documents.append(sentences)
            continue
        if ncols is None:
            ncols, tabbed = len(fields), "\t" in line
            _check_columns(path, number, ncols, token_column, label_column)
        if _no_token(line, fields, ncols, token_column):
            if on_bad_lines != "skip":
                raise empty_field(path, number, line, "token", skippable=True)
            if skipped is not None:
                skipped.append((number, bool(words)))
            continue
        if len(fields) != ncols:
            raise DataError(
                "wrong number of columns", path=path, line=number,
                expected=f"{ncols} columns like the file's first word line", found=f"{len(fields)} in {line[:80]!r}",
                fix="make every word line have the same columns (token ... tag), or use tabs if tokens contain spaces",
            )
        token = fields[token_column]
        if not fields[label_column]:
            raise empty_field(path, number, line, "tag")
        if not words:
            start = number
        words.append(token)
        tags.append(fields[label_column])
    if words:
        yield start, words, tags


def _no_token(line: str, fields: list[str], ncols: int, token_column: int) -> bool:
    """An empty or whitespace-only token: an empty first field of a tab-separated line, or (split at
    spaces) a line that starts with whitespace and is one column short, its token being only spaces."""
    if len(fields) == ncols:
        return not fields[token_column]
    return (len(fields) == ncols - 1 and "\t" not in line and line[:1].isspace()
            and token_column in (0, -ncols))


def empty_field(path: str, number: int, line: str, what: str, *, skippable: bool = False) -> DataError:
    """The located error for an empty column (``skippable``: the command has ``--on-bad-lines skip``)."""
    fix = "remove the stray tab, or write the missing value"
    if skippable:
        fix += ", or pass --on-bad-lines skip to leave such lines out (counted in the notes)"
    return DataError(f"empty {what} column", path=path, line=number, expected=f"a non-empty {what}",
                     found=repr(line[:80]), fix=fix)


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
    on_bad_lines: str | None = "error",
) -> Corpus:
    """Read a CoNLL column file into a :class:`Corpus` (tags decoded to spans once, here).

    ``on_bad_lines``: a line with an empty or whitespace-only token is an error (``"error"``, the
    default) or left out (``"skip"``; counted in ``adjustments["bad_lines_skipped"]``, with one note
    naming the first locations). When such a line was inside a sentence, the file's later line numbers
    no longer follow the word index, so locations then name the sentence's line and the word.
    """
    path = os.fspath(path)
    policy = check_choice(on_bad_lines, BAD_LINE_POLICIES, "on_bad_lines policy", "--on-bad-lines")
    skipped: list[tuple[int, bool]] = []
    documents: list[int] = []
    rows = list(read_conll_rows(path, token_column=int(token_column), label_column=int(label_column),
                                on_bad_lines=policy, skipped=skipped, documents=documents))
    if not rows:
        raise DataError("no sentences found", path=path, expected="word lines such as 'EU B-ORG'",
                        found="an empty file (or only blank, comment, -DOCSTART- or skipped lines)",
                        fix="check that this is the right file")
    shifted = any(inside for _, inside in skipped)
    corpus = corpus_from_tags(rows, path=path, scheme=scheme, repair=repair, line_per_word=not shifted)
    if documents:  # the first document may start without a -DOCSTART- line
        corpus.document_starts = sorted({0, *(d for d in documents if d < len(rows))})
    if skipped:
        corpus.adjustments["bad_lines_skipped"] += len(skipped)
        first = ", ".join(f"{path}:{line}" for line, _ in skipped[:3])
        corpus.notes.append(f"{path}: skipped {len(skipped)} line{'s' * (len(skipped) != 1)} with an empty token "
                            f"(on_bad_lines=skip); first at {first}")
    return corpus


def write_conll(corpus: Corpus, path: str | os.PathLike, *, scheme: str = "IOB2", separator: str = "\t") -> None:
    """Write ``word<sep>tag`` lines in ``scheme``, a blank line after each sentence (atomically).

    A word or tag that would not read back as written (a line break, the separator or edge whitespace
    in it, ``-DOCSTART-``, a first line that reads as a comment, text that is not valid Unicode) is
    refused with a :class:`DataError` naming the sentence and word: nothing is changed silently.
    """
    from ..io import atomic_write_text

    lines: list[str] = []
    document_starts = set(corpus.document_starts or ())  # documents are kept as -DOCSTART- lines
    for number, sentence in enumerate(corpus, 1):
        if number - 1 in document_starts:
            lines += [f"{DOCSTART}{separator}O", ""]
        tags = spans_to_tags(sentence.spans, len(sentence.words), scheme)
        for index, (word, tag) in enumerate(zip(sentence.words, tags)):
            line = f"{word}{separator}{tag}"
            problem = column_problem(word, separator, line if not lines else None, is_word=True)
            if problem is not None:
                _refuse(corpus, sentence, (number, index), f"word {word!r}", problem, separator)
            problem = column_problem(tag, separator, None, is_word=False)
            if problem is not None:
                _refuse(corpus, sentence, (number, index), f"tag {tag!r} (of word {word!r})", problem, separator)
            lines.append(line)
        lines.append("")
    atomic_write_text(path, "\n".join(lines) + "\n" if lines else "")


def column_problem(value: str, separator: str, first_line: str | None, *, is_word: bool) -> str | None:
    """Why ``value`` would not read back as one column written with ``separator`` (None: it would).
    ``first_line``: the whole line, when it is the file's first (a BOM or a comment there is dropped)."""
    if not value or value != value.strip():
        return "it is empty or starts or ends with whitespace, which reading strips"
    if "\n" in value or "\r" in value:
        return "it holds a line break"
    if separator != "\t" and separator.isspace() and len(value.split()) > 1:
        return "it holds whitespace that separates columns"
    if "\t" in value or separator in value:  # a tab makes the reader split that line at tabs
        return "it holds a tab" if "\t" in value else "it holds the separator"
    if is_word and value == DOCSTART:
        return "it is the document separator -DOCSTART-, which reading skips"
    if first_line is not None and first_line[0] == "\ufeff":
        return "it starts with a byte-order mark (U+FEFF), which reading drops at the start of a file"
    if first_line is not None and first_line[0] == "#" and (len(first_line) == 1 or first_line[1] == " "):
        return "as the file's first line it reads as a '#' comment"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "it holds a lone surrogate, which no UTF-8 file can hold"
    return None


def _refuse(corpus: Corpus, sentence, where: tuple[int, int], value: str, problem: str, separator: str) -> None:
    number, index = where
    line = sentence.line
    if line is not None and corpus.line_per_word:
        line += index
    fix = "write JSON Lines instead (--format jsonl), or fix that word in the source"
    if problem.startswith("it holds whitespace"):
        fix = "write JSON Lines instead (--format jsonl), or use the tab separator"
    elif "DOCSTART" in problem or "comment" in problem:
        fix = "rename that word (e.g. add a character to it), or write JSON Lines instead (--format jsonl)"
    raise DataError(f"{value} cannot be written as a CoNLL column: {problem} (sentence {number}, word {index + 1})",
                    path=corpus.path, line=line, expected=_expected(separator), fix=fix)


def _expected(separator: str) -> str:
    name = {"\t": "tabs", " ": "spaces"}.get(separator, repr(separator))
    return f"words and tags without line breaks, edge whitespace or {name}"
