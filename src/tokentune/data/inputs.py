"""Unlabelled input to predict on: raw texts, JSON lines or CoNLL columns, streamed as :class:`Item`s.

- ``text``: one text per line (a file, or stdin), or texts given as they are;
- ``jsonl``: one JSON object per line with ``"text"`` (raw text) or ``"tokens"``/``"words"``
  (pre-tokenised); the object is kept, so other fields can pass through;
- ``conll``: sentences of word lines (the first column is the word; blank lines between sentences);
  ``-DOCSTART-``, comment and blank lines are kept as raw lines, to be written back (``-DOCSTART-`` with an
  ``O`` column added, as a word's prediction).

Documents (for a model trained with document context): CoNLL ``-DOCSTART-`` lines, and in JSON lines a
change of ``document_id``/``doc_id`` or a ``{"tokens": ["-DOCSTART-"]}`` record (:func:`jsonl_items`).

Lines are streamed (:func:`tokentune.data.files.stream_lines`) and grouped into :func:`chunks`, so
memory stays flat on millions of lines. Every problem is a located
:class:`~tokentune.errors.DataError`: bytes that are not UTF-8, invalid JSON, lone surrogates.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from ..errors import ConfigError, DataError
from .conll import columns, empty_field, is_comment
from .documents import DOCSTART, document_id, find_document_key, is_docstart
from .files import STDIN, stream_lines
from .formats import format_by_name
from .jsonl import parse_json

FORMATS = ("text", "jsonl", "conll")
# a chunk is predicted at once: enough for full, length-sorted batches, small enough to stay flat
CHUNK_ITEMS = 2048
CHUNK_CHARS = 1 << 20
# past its size, a chunk waits this many times as long for a document to end, so that documents are
# read whole by a document-context model; inputs that mark no documents are cut at the size
CHUNK_DOCUMENT_SLACK = 4


@dataclass
class Item:
    """One unit of input: a raw text, a pre-tokenised sentence, or lines passed through as they are."""

    kind: str  # "text", "tokens" or "raw"
    text: str = ""
    tokens: list[str] = field(default_factory=list)
    record: dict | None = None  # the JSON object it came from (jsonl)
    lines: list[str] = field(default_factory=list)  # conll: the original lines (raw: what to write)
    document: str | int | None = None  # jsonl: the record's document id
    docstart: bool = False  # a document starts here: a -DOCSTART- line or record, or a record of a new id


def guess_format(path: str | None) -> str:
    """By the name (see :mod:`tokentune.data.formats`), else ``conll`` when the file reads as CoNLL
    columns (:func:`looks_like_columns`: CoNLL-2003's .txt files), else ``text``; stdin is ``text``."""
    if path in (None, "-"):
        return "text"
    by_name = format_by_name(path)
    if by_name is not None:
        return by_name
    head = []
    for line in stream_lines(path):
        head.append(line)
        if len(head) >= SNIFF_LINES:
            break
    return "conll" if looks_like_columns(head) else "text"


SNIFF_LINES = 200
_TAG = re.compile(r"^(O|[BIESLU]-\S+)$")


def looks_like_columns(lines: Sequence[str]) -> bool:
    """CoNLL columns rather than raw text: a ``-DOCSTART-`` line, or every line (blank and ``# ``
    comment lines aside) of the same two or more fields, the last one a tag (``O``, ``B-PER``, ...)."""
    filled = [line for line in lines if line.strip() and not line.startswith("# ")]
    if any(line.split()[:1] == [DOCSTART] for line in filled):
        return True
    rows = [line.split("\t") if "\t" in line else line.split() for line in filled]
    widths = {len(row) for row in rows}
    return len(widths) == 1 and widths.pop() >= 2 and all(_TAG.match(row[-1].strip()) for row in rows)


def check_readable(path: str | None) -> None:
    """Fail now (before a model is loaded) if ``path`` is missing, a directory or not gzip as named."""
    if path not in (None, "-"):
        next(iter(stream_lines(path)), None)


def read_items(fmt: str, *, texts: Sequence[str] = (), path: str | None = None,
               document_key: str | None = None) -> Iterator[Item]:
    """The items of ``texts`` (raw texts) or else of the file ``path`` (``None`` or ``-``: stdin);
    ``document_key``: the JSON key of a document id (default: ``document_id`` or ``doc_id`` if the first
    record has one)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown input format {fmt!r}", fix=f"use one of {', '.join(FORMATS)}")
    if texts:
        if fmt != "text":
            raise ConfigError(f"TEXT arguments are raw text; --format {fmt} applies to --input",
                              fix="pass the file with --input, or leave --format out")
        return _text_items(texts)
    if path in (None, "-") and sys.stdin.isatty():
        raise DataError("no input given", fix="pass TEXT arguments, --input FILE, or pipe text on stdin")
    lines = stream_lines(path)
    if fmt == "jsonl":
        return jsonl_items(lines, STDIN if path in (None, "-") else path, document_key)
    if fmt == "conll":
        return conll_items(lines, STDIN if path in (None, "-") else path)
    return (Item("text", text=line) for line in lines)


def _text_items(texts: Sequence[str]) -> Iterator[Item]:
    for number, text in enumerate(texts, 1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:  # argv bytes that were not UTF-8 arrive as lone surrogates
            raise DataError(f"TEXT argument {number} is not UTF-8 text", expected="UTF-8 text",
                            found=ascii(text[max(0, err.start - 20):err.end + 20]),
                            fix="pass UTF-8 text, or put the text in a UTF-8 file and use --input") from None
        yield Item("text", text=text)


def jsonl_items(lines: Iterable[str], where: str, document_key: str | None = None) -> Iterator[Item]:
    """One item per JSON line: ``text`` items for ``{"text": ...}``, ``tokens`` for ``{"tokens": [...]}``;
    a ``{"tokens": ["-DOCSTART-"]}`` record is passed through as a raw line where a document starts."""
    key = first = previous = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = parse_json(line, path=where, line=number, invalid="not valid JSON")
        if isinstance(record, dict) and is_docstart(record.get("tokens", record.get("words"))):
            previous = None  # the next record's id starts nothing new: this line did
            yield Item("raw", lines=[line], docstart=True)
            continue
        if isinstance(record, dict) and first is None:  # the document key is settled by the first record
            first, key = number, find_document_key(list(record), document_key, path=where, line=number)
        document = document_id(record, key, path=where, line=number) if key and isinstance(record, dict) else None
        starts, previous = document is not None and document != previous and previous is not None, document
        if isinstance(record, dict) and isinstance(record.get("text"), str):
            yield Item("text", text=record["text"], record=record, document=document, docstart=starts)
            continue
        tokens = record.get("tokens", record.get("words")) if isinstance(record, dict) else None
        if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
            yield Item("tokens", tokens=tokens, record=record, document=document, docstart=starts)
            continue
        raise DataError("a line has neither a \"text\" string nor a \"tokens\" list of strings", path=where,
                        line=number, found=ascii(line[:80]), fix='write {"text": "..."} or {"tokens": ["...", ...]}')


def conll_items(lines: Iterable[str], where: str = STDIN) -> Iterator[Item]:
    """Sentences of token lines, and everything else (blank, ``-DOCSTART-``, comments) as raw lines.
    Every token line must have the columns of the first one, as the CoNLL reader
    (:func:`tokentune.data.conll.read_conll_rows`) requires: otherwise a :class:`DataError` at
    ``where:line``."""
    sentence: list[str] = []
    ncols: tuple[int, int] | None = None  # (columns, line number) of the first token line
    tabbed = False
    for number, line in enumerate(lines, 1):
        fields = columns(line)
        token = fields[0] if fields else ""
        if fields and not token:  # a line starting with a tab: refused, as the CoNLL reader does
            raise empty_field(where, number, line, "token")
        # the reader's comment rule; a file of words alone (which the reader never reads) keeps the rule
        # of its first line, so that '#' and '# ...' stay comments there
        comment = not sentence and is_comment(line, fields, ncols[0] if ncols and ncols[0] > 1 else None, tabbed)
        if not token or token == DOCSTART or comment:
            if sentence:
                yield _conll_sentence(sentence)
                sentence = []
            yield Item("raw", lines=[line], docstart=token == DOCSTART)
            continue
        if ncols is None:
            ncols, tabbed = (len(fields), number), "\t" in line
        elif len(fields) != ncols[0]:
            _wrong_columns(where, number, ncols, len(fields), line)
        sentence.append(line)
    if sentence:
        yield _conll_sentence(sentence)


def _wrong_columns(where: str, number: int, ncols: tuple[int, int], found: int, line: str) -> None:
    count, first = ncols
    raise DataError("wrong number of columns", path=where, line=number,
                    expected=f"{count} column{'s' * (count != 1)} like the file's first word line (line {first})",
                    found=f"{found} in {line[:80]!r}",
                    fix="make every word line have the same columns (the word first), or use tabs if words "
                        "contain spaces")


def _conll_sentence(lines: list[str]) -> Item:
    tokens = [columns(line)[0] for line in lines]
    return Item("tokens", tokens=tokens, lines=lines)


def chunks(items: Iterable[Item]) -> Iterator[list[Item]]:
    """Groups of items, cut at ``CHUNK_ITEMS`` items or ``CHUNK_CHARS`` characters of text; where the
    input marks documents, at the first document start after that (within ``CHUNK_DOCUMENT_SLACK``
    times the size), so that a document is not cut in two."""
    chunk: list[Item] = []
    size, marks_documents = 0, False
    for item in items:
        marks_documents |= item.docstart or item.document is not None
        if item.docstart and (len(chunk) >= CHUNK_ITEMS or size >= CHUNK_CHARS):
            yield chunk  # full, and a document ends here
            chunk, size = [], 0
        chunk.append(item)
        size += len(item.text) + sum(len(t) + 1 for t in item.tokens)
        slack = CHUNK_DOCUMENT_SLACK if marks_documents else 1  # without documents: cut at once, read no further
        if len(chunk) >= CHUNK_ITEMS * slack or size >= CHUNK_CHARS * slack:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk

