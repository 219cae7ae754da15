"""Where JSON and Hugging Face data mark documents (CoNLL files mark them with ``-DOCSTART-`` lines,
read in :mod:`.conll`). Two marks, checked in this order:

- a document id: the ``document_key`` option (``--document-key``) names a key or column; without it the
  first of ``document_id``, ``doc_id`` that the first record has is used. Consecutive records with the
  same id are one document; an id that comes back after another one is refused, because a document's
  sentences must be read in order to give each other context;
- records whose words are exactly ``["-DOCSTART-"]`` (CoNLL's separator kept as a sentence, as some
  conversions of CoNLL files do; Hugging Face's ``conll2003`` drops the separators, so it marks no
  documents): each starts a document and is skipped, as CoNLL reading skips the line, and counted.

Without either the data has no documents (``Corpus.document_starts`` stays None).
"""
from __future__ import annotations

from typing import Any, Hashable, Sequence

from ..errors import DataError

DOCUMENT_KEYS = ("document_id", "doc_id")
DOCSTART = "-DOCSTART-"


def is_docstart(words: Any) -> bool:
    """A record or row whose words are CoNLL's document separator alone."""
    return isinstance(words, list) and len(words) == 1 and words[0] == DOCSTART


def check_document_key(key: str | None) -> str | None:
    """A ``--document-key`` as given: None (detect), or a name that is not blank."""
    if key is not None and (not isinstance(key, str) or not key.strip()):
        from ..errors import ConfigError

        raise ConfigError(f"--document-key must name a key or column, found {key!r}",
                          fix="pass --document-key NAME (e.g. article_id), or leave it out to use document_id or doc_id")
    return key


def find_document_key(keys: Sequence[str], chosen: str | None, *, path: str, line: int | None = None) -> str | None:
    """The key of the document id: ``chosen`` (which the first record must have), else the first of
    :data:`DOCUMENT_KEYS` among ``keys``, else None."""
    if chosen is None:
        return next((key for key in DOCUMENT_KEYS if key in keys), None)
    if chosen not in keys:
        raise DataError(f"document key {chosen!r} is not in the data", path=path, line=line,
                        expected=f"a {chosen!r} key or column holding each sentence's document id",
                        found=f"keys {sorted(keys)[:8]}", fix="name the right key with --document-key, or leave it out")
    return chosen


def document_id(record: dict, key: str, *, path: str, line: int, where: str = "the record"):
    """``record[key]``, a document id (a string or an integer), or a located DataError."""
    if key not in record:
        raise DataError(f"{where} has no document id {key!r}, though earlier records have one", path=path,
                        line=line, expected=f"a {key!r} key in every record", found=f"keys {sorted(record)[:8]}",
                        fix="add the document id to every record, or name another key with --document-key")
    value = record[key]
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise DataError(f"{where}: document id {key!r} is not a string or an integer", path=path, line=line,
                        found=repr(value)[:40], fix="write each document id as a string or an integer")
    return value


class DocumentMarks:
    """Collects, record by record, which document each kept sentence belongs to (in reading order: a
    line number is no key, since a minified JSON array holds every record on line 1)."""

    def __init__(self, key: str | None, path: str) -> None:
        self.key, self.path = key, path
        self.order: list[Hashable] = []  # the document of each kept sentence, in order
        self.docstarts = 0  # -DOCSTART- records skipped
        self._first: dict[Hashable, str] = {}  # document -> where it began
        self._records = 0

    def skip_docstart(self, record: dict, words: Any) -> bool:
        """True (and counted) when the record is a ``-DOCSTART-`` separator, to be skipped."""
        if self.key is not None or not is_docstart(words):
            return False
        self.docstarts += 1
        return True

    def add(self, line: int, record: dict) -> None:
        """Note the document of the sentence read from ``record`` (which starts at ``line``)."""
        self._records += 1
        if self.key is None:
            self.order.append(self.docstarts)
            return
        where = f"record {self._records}"
        value = document_id(record, self.key, path=self.path, line=line, where=where)
        if self.order and value != self.order[-1] and value in self._first:
            raise DataError(f"{where}: document {value!r} comes back after other documents", path=self.path,
                            line=line, expected="the sentences of a document one after the other",
                            found=f"it began at {self._first[value]}",
                            fix="sort the records by document, keeping each document's sentence order")
        self._first.setdefault(value, f"{where}, line {line}")
        self.order.append(value)

    def starts(self, sentences: int) -> list[int] | None:
        """``Corpus.document_starts`` for the ``sentences`` read (one per :meth:`add`); None where nothing
        marked documents."""
        if self.key is None and not self.docstarts:
            return None
        if len(self.order) != sentences:  # a reader that kept other sentences than it noted: a bug, not data
            raise AssertionError(f"{sentences} sentences but {len(self.order)} document marks")
        return [i for i, document in enumerate(self.order) if i == 0 or document != self.order[i - 1]]

    def note(self) -> str | None:
        if self.key is not None:
            return f"{self.path}: documents from the {self.key!r} key ({len(self._first)} documents)"
        if self.docstarts:
            return f"{self.path}: {self.docstarts} -DOCSTART- records mark documents and were skipped"
        return None


def mark_documents(corpus, marks: DocumentMarks | None):
    """Set ``corpus.document_starts`` (and a note) from what ``marks`` collected; returns the corpus."""
    if marks is not None:
        corpus.document_starts = marks.starts(len(corpus))
        note = marks.note()
        if note:
            corpus.notes.append(note)
        if marks.docstarts:
            corpus.adjustments["docstart_records"] += marks.docstarts
    return corpus
