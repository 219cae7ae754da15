"""JSON Lines and JSON files, in two shapes chosen by the first record's keys.

- pre-split words: ``{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}``; tags may be strings or
  integer ids into ``label_names`` (as Hugging Face exports write them); keys set by ``tokens_key``
  and ``tags_key`` (default: the first of tags, ner_tags, labels, pos_tags that is present);
- raw text with character spans: ``{"text": "EU rejects", "entities": [{"start": 0, "end": 2,
  "label": "ORG"}]}`` (an entity may also be ``[start, end, label]``, as doccano writes); words come
  from :func:`tokentune.words.split_words`, see :mod:`tokentune.data.align` for boundary handling.

A ``.json`` file may hold one array of records; anything else is read as one record per line.
Errors name the file and the line where the record starts.
"""
from __future__ import annotations

import bisect
import json
import os
import re
from collections import Counter
from typing import Any, Iterator

from ..errors import DataError
from ..schemes import spans_to_tags
from .charspans import Alignment, CharSpan, Overlap, alignment_of
from .corpus import Corpus, Sentence
from .documents import DocumentMarks, find_document_key, mark_documents
from .files import read_text
from .tags import corpus_from_tags

TAG_KEYS = ("tags", "ner_tags", "labels", "pos_tags")
ENTITY_KEYS = ("entities", "spans", "label")
_FIX_JSON = "fix the JSON there (each line must be one complete JSON object), e.g. check it with `python -m json.tool`"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def parse_json(text: str, *, path: str, line: int, invalid: str = "invalid JSON") -> Any:
    """``json.loads`` with every failure a located DataError: bad syntax, nesting too deep, a number
    too long to read, and strings holding a lone surrogate (which no UTF-8 file could be written with)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        reason = err.msg.removesuffix(" at")  # "Unterminated string starting at": the column follows
        raise DataError(f"{invalid} ({reason} at column {err.colno})", path=path, line=line + err.lineno - 1,
                        fix=_FIX_JSON) from None
    except (ValueError, RecursionError) as err:
        raise _limit_error(err, path, line) from None
    check_unicode(value, text, path, line)
    return value


def _limit_error(err: Exception, path: str, line: int) -> DataError:
    """json's own limits: integers of more than ``sys.get_int_max_str_digits()`` digits, deep nesting."""
    if isinstance(err, RecursionError):
        return DataError("the JSON is nested too deeply", path=path, line=line, fix="check that this is a data file")
    return DataError("a number in the JSON is too long to read", path=path, line=line,
                     expected="numbers of at most a few hundred digits", found=str(err).split(":")[0],
                     fix="fix that number (label ids and character offsets are small integers)")


def check_unicode(value: Any, raw: str, path: str, line: int) -> None:
    """Refuse strings with a lone surrogate (``"\\ud800"`` escapes that are not half of a pair)."""
    if "\\u" not in raw or not _SURROGATE_ESCAPE.search(raw):
        return
    dumped = json.dumps(value, ensure_ascii=False)
    try:
        dumped.encode("utf-8")
    except UnicodeEncodeError as err:
        raise DataError("a JSON string holds a lone surrogate (half of a UTF-16 pair)", path=path, line=line,
                        expected="valid Unicode (escaped pairs such as \\ud83d\\ude00 are fine)",
                        found=ascii(dumped[max(0, err.start - 20):err.end + 20]),
                        fix="repair that text where the file was made (it was probably cut inside a character)") from None


def iter_records(path: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, record)`` for a JSON array file or a JSON Lines file."""
    text = read_text(path)
    body = text.lstrip()
    try:
        if body.startswith("["):
            yield from _array_records(text, path)
        else:
            yield from _line_records(text, path)
    except RecursionError:
        raise DataError("the JSON is nested too deeply", path=path, fix="check that this is a data file") from None


def _line_records(text: str, path: str) -> Iterator[tuple[int, Any]]:
    seen = False
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = parse_json(line, path=path, line=number)
        except DataError:
            if not seen:
                whole = _whole_object(text, path, number)
                if whole is not None:  # one pretty-printed record
                    yield number, whole
                    return
            raise
        seen = True
        yield number, record


def _whole_object(text: str, path: str, line: int) -> Any:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    check_unicode(value, text, path, line)
    return value


def _array_records(text: str, path: str) -> Iterator[tuple[int, Any]]:
    """Each element of a top-level array with the line it starts on (a whole-file parse loses that)."""
    decoder = json.JSONDecoder()
    pos = _skip_space(text, text.index("[") + 1)
    line, counted = 1, 0
    while pos < len(text) and text[pos] != "]":
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            record, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise DataError(f"invalid JSON ({err.msg} at column {err.colno})", path=path, line=err.lineno,
                            fix=_FIX_JSON) from None
        except ValueError as err:  # RecursionError: reported by iter_records for the whole file
            raise _limit_error(err, path, line) from None
        check_unicode(record, text[pos:end], path, line)
        yield line, record
        pos = _skip_space(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_space(text, pos + 1)
        elif pos < len(text) and text[pos] != "]":
            raise DataError("invalid JSON between array elements", path=path, line=text.count("\n", 0, pos) + 1,
                            expected="',' or ']'", found=repr(text[pos]), fix=_FIX_JSON)
    if pos >= len(text) or text[pos + 1:].strip():
        raise DataError("invalid JSON: the array is not closed, or text follows it", path=path,
                        line=text.count("\n", 0, min(pos, len(text))) + 1, expected="one array ending in ']'",
                        fix=_FIX_JSON)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def read_jsonl(
    path: str | os.PathLike,
    *,
    scheme: str | None = None,
    repair: str | None = "lenient",
    tokens_key: str = "tokens",
    tags_key: str | None = None,
    label_names: list[str] | None = None,
    text_key: str = "text",
    entities_key: str | None = None,
    alignment: str | None = "split",
    overlaps: str | None = "error",
    document_key: str | None = None,
    word_splitter=None,
) -> Corpus:
    """Read JSON Lines / JSON records (pre-split words with tags, or raw text with char spans)."""
    path = os.fspath(path)
    records = iter_records(path)
    first = next(records, None)
    if first is None:
        raise DataError("no records found", path=path, expected="one JSON object per line",
                        found="an empty file", fix="check that this is the right file")
    _check_object(first, path)
    if isinstance(first[1].get("data"), dict) and {"annotations", "predictions"} & set(first[1]):
        raise DataError("this looks like a Label Studio export (tasks with \"data\" and annotations or predictions)",
                        path=path, line=first[0], fix="pass --format label-studio (--input-format for convert)")
    def all_records():
        yield first
        yield from records
    marks = DocumentMarks(find_document_key(list(first[1]), document_key, path=path, line=first[0]), path)
    if tokens_key in first[1] or text_key not in first[1]:
        tags_key = tags_key or next((k for k in TAG_KEYS if k in first[1]), TAG_KEYS[0])
        names = list(label_names) if label_names is not None else None
        rows = token_rows(all_records(), path, tokens_key, tags_key, names, marks)
        corpus = corpus_from_tags(rows, path=path, scheme=scheme, repair=repair, line_per_word=False)
        return mark_documents(note_skipped(corpus, rows), marks)
    entities_key = entities_key or next((k for k in ENTITY_KEYS if k in first[1]), ENTITY_KEYS[0])
    if entities_key not in first[1] and "ents" in first[1]:  # spaCy's Doc.to_json: its entities would be lost
        raise DataError("the records keep their entities under \"ents\", as spaCy writes them", path=path,
                        line=first[0], expected=f"entities under {entities_key!r}",
                        fix="pass --format spacy (or --entities-key ents)")
    how = alignment_of(alignment, overlaps, word_splitter)
    return mark_documents(_read_text_records(all_records(), path, text_key, entities_key, how, marks), marks)


def _check_object(item: tuple[int, Any], path: str) -> None:
    line, record = item
    if not isinstance(record, dict):
        raise DataError("a record is not a JSON object", path=path, line=line,
                        expected='an object such as {"tokens": [...], "tags": [...]}',
                        found=type(record).__name__, fix="write one JSON object per record")


def note_skipped(corpus: Corpus, rows) -> Corpus:
    empty = getattr(rows, "empty", 0)
    if empty:
        corpus.adjustments["empty_records"] += empty
        corpus.notes.append(f"{corpus.path}: skipped {empty} records with no words")
    return corpus


class _Rows(list):
    empty = 0  # records skipped for having no words


def token_rows(records, path: str, tokens_key: str, tags_key: str, names: list[str] | None,
               marks: DocumentMarks | None = None) -> _Rows:
    rows = _Rows()
    for line, record in records:
        _check_object((line, record), path)
        if marks is not None and marks.skip_docstart(record, record.get(tokens_key)):
            continue
        tokens, tags = _field(record, tokens_key, path, line), _field(record, tags_key, path, line)
        if len(tokens) != len(tags):
            raise DataError(f"{tokens_key!r} and {tags_key!r} differ in length", path=path, line=line,
                            expected="one tag per token", found=f"{len(tokens)} tokens and {len(tags)} tags",
                            fix="fix that record so that each token has exactly one tag")
        if not tokens:
            rows.empty += 1
            continue
        for i, token in enumerate(tokens):
            if not isinstance(token, str) or not token.strip():
                raise DataError(f"token at position {i + 1} is not a non-empty string", path=path, line=line,
                                expected="a word", found=json.dumps(token, ensure_ascii=False)[:40],
                                fix="write each token as a JSON string")
        rows.append((line, tokens, [_tag(t, i, names, path, line) for i, t in enumerate(tags)]))
        if marks is not None:
            marks.add(line, record)
    if not rows:
        raise DataError("no sentences found", path=path, expected="records with words",
                        found=f"{rows.empty} records, all without words", fix="check that this is the right file")
    return rows


def _field(record: dict, key: str, path: str, line: int) -> list:
    if key not in record:
        raise DataError(f"the record has no {key!r} key", path=path, line=line, expected=f"a {key!r} list",
                        found=f"keys {sorted(record)[:8]}",
                        fix="add it, or name the right key with --tokens-key/--tags-key/--text-key")
    value = record[key]
    if not isinstance(value, list):
        raise DataError(f"{key!r} is not a list", path=path, line=line, expected="a JSON array",
                        found=type(value).__name__, fix=f"write {key!r} as a list, one item per word")
    return value


def _tag(tag: Any, index: int, names: list[str] | None, path: str, line: int) -> str:
    if isinstance(tag, str) and tag:
        return tag
    if isinstance(tag, int) and not isinstance(tag, bool):
        if names is None:
            raise DataError(f"tag at position {index + 1} is the integer id {_short(tag)} but no label names were given",
                            path=path, line=line, expected="string tags, or label names for the ids",
                            found=_short(tag), fix="pass --label-names O,B-PER,I-PER,... (in id order)")
        if not 0 <= tag < len(names):
            raise DataError(f"tag at position {index + 1} is an unknown label id", path=path, line=line,
                            expected=f"an id from 0 to {len(names) - 1} ({len(names)} label names)",
                            found=_short(tag), fix="check --label-names: one name per id, in id order")
        return names[tag]
    raise DataError(f"tag at position {index + 1} is neither a label nor a label id", path=path, line=line,
                    expected="a non-empty string such as 'B-PER' or an integer id",
                    found=json.dumps(tag)[:40], fix="fix the tag")


def _short(number: int) -> str:
    """An integer for a message: a huge one (10**400 is valid JSON) is cut to its first digits."""
    text = str(number)
    return text if len(text) <= 20 else f"{text[:12]}... ({len(text)} digits)"


def _read_text_records(records, path: str, text_key: str, entities_key: str, how: Alignment,
                       marks: DocumentMarks) -> Corpus:
    sentences: list[Sentence] = []
    counts: Counter = Counter()
    for line, record in records:
        _check_object((line, record), path)
        text = record.get(text_key)
        if not isinstance(text, str):
            raise DataError(f"{text_key!r} is missing or not a string", path=path, line=line,
                            expected=f'{{"{text_key}": "...", "{entities_key}": [...]}}',
                            found=type(text).__name__ if text_key in record else f"keys {sorted(record)[:8]}",
                            fix="add the text, or name its key with --text-key")
        other = next((k for k in ENTITY_KEYS if isinstance(record.get(k), list) and record[k]), entities_key)
        if entities_key not in record and other != entities_key:  # else its entities would be silently lost
            raise DataError(f"this record keeps its entities under {other!r}, the file's first under {entities_key!r}",
                            path=path, line=line, fix="use one key in every record (or name it with --entities-key)")
        entities = char_entities(record.get(entities_key, []), text, path, line, entities_key)
        try:
            words, spans = how.align(text, entities, counts)
        except Overlap as err:
            raise err.located(text, path, line) from None
        if not words:
            counts["empty_records"] += 1
            continue
        sentences.append(Sentence(tuple(words), tuple(spans), line))
        marks.add(line, record)
    if not sentences:
        raise DataError("no sentences found", path=path, expected="records with text",
                        found="only records with empty text", fix="check that this is the right file")
    corpus = Corpus(sentences, path, "IOB2", line_per_word=False)
    corpus.adjustments.update({k: v for k, v in counts.items() if v})
    _note_alignment(corpus)
    return corpus


def char_entities(raw: Any, text: str, path: str, line: int, key: str) -> list[CharSpan]:
    """Character-offset entities of one record (``{"start", "end", "label"}`` or ``[start, end, label]``), checked."""
    if not isinstance(raw, list):
        raise DataError(f"{key!r} is not a list", path=path, line=line, expected="a list of entities",
                        found=type(raw).__name__, fix=f'write {key!r} as [{{"start": 0, "end": 2, "label": "ORG"}}]')
    entities = []
    for index, item in enumerate(raw):
        if isinstance(item, dict):
            start, end, label = item.get("start"), item.get("end"), item.get("label")
        elif isinstance(item, list) and len(item) == 3:
            start, end, label = item
        else:
            start = end = label = None
        ok_ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
        if not ok_ints or not isinstance(label, str) or not label.strip():
            raise DataError(f"entity {index + 1} is malformed", path=path, line=line,
                            expected='{"start": INT, "end": INT, "label": "TYPE"} or [start, end, "TYPE"]',
                            found=json.dumps(item, ensure_ascii=False)[:60], fix="fix that entity")
        if not 0 <= start < end <= len(text):
            raise DataError(f"entity {index + 1} ({label}) is out of range", path=path, line=line,
                            expected=f"0 <= start < end <= {len(text)} (the text's length; end is exclusive)",
                            found=f"start {_short(start)}, end {_short(end)}", fix="fix the character offsets of that entity")
        entities.append(CharSpan(label, start, end, index))
    return entities


_ALIGN_NOTES = {
    "spans_split": "entity boundaries fell inside words: those words were split at the boundary",
    "spans_widened": "entity boundaries fell inside words: those entities were widened to whole words",
    "spans_dropped_blank": "entities covered only whitespace and were dropped",
    "duplicate_spans": "duplicate entities were merged",
    "overlaps_dropped": "overlapping entities were dropped, keeping the longest (overlaps=keep-longest)",
    "empty_records": "records had no words and were skipped",
}


def _note_alignment(corpus: Corpus) -> None:
    for key, message in _ALIGN_NOTES.items():
        if corpus.adjustments.get(key):
            corpus.notes.append(f"{corpus.path}: {corpus.adjustments[key]} {message}")


def write_jsonl(corpus: Corpus, path: str | os.PathLike, *, scheme: str = "IOB2",
                tokens_key: str = "tokens", tags_key: str = "tags") -> None:
    """Write one ``{"tokens": [...], "tags": [...]}`` line per sentence, tags in ``scheme`` (atomically).
    A word that could not be read back (blank, or not valid Unicode) is refused with its sentence and word."""
    from ..io import atomic_write_text

    lines = []
    starts = corpus.document_starts
    for number, sentence in enumerate(corpus, 1):
        record = {tokens_key: list(sentence.words), tags_key: spans_to_tags(sentence.spans, len(sentence.words), scheme)}
        if starts is not None:  # documents are kept as the document_id of each record
            record = {"document_id": bisect.bisect_right(starts, number - 1) - 1, **record}
        line = json.dumps(record, ensure_ascii=False)
        if not line.isascii() or not all(w.strip() for w in sentence.words):
            _check_words(corpus, sentence, number)
        lines.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def _check_words(corpus: Corpus, sentence: Sentence, number: int) -> None:
    for index, word in enumerate(sentence.words):
        problem = None if word.strip() else "it is blank, and reading refuses blank words"
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            problem = "it holds a lone surrogate, which no UTF-8 file can hold"
        if problem:
            line = sentence.line
            if line is not None and corpus.line_per_word:
                line += index
            raise DataError(f"word {word!r} cannot be written as JSON Lines: {problem} (sentence {number}, "
                            f"word {index + 1})", path=corpus.path, line=line, fix="fix that word in the source")
    for label, _, _ in sentence.spans:
        try:
            label.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(f"entity type {label!r} cannot be written: it holds a lone surrogate (sentence {number})",
                            path=corpus.path, line=sentence.line, fix="rename that entity type") from None
