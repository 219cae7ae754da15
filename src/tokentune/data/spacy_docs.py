"""spaCy's training data: ``.spacy`` files (a serialised ``DocBin``) and spaCy's JSON Lines.

- ``.spacy`` (read and written through spaCy, an optional extra: ``pip install 'tokentune[spacy]'``):
  each ``Doc`` is one sentence; its tokens are the words (a spaCy user's tokenisation is kept) and
  ``doc.ents`` the entities, so reading is exact. Whitespace tokens (spaCy keeps runs of spaces and
  newlines as tokens) are dropped and counted; span groups (``doc.spans``, spancat data) are counted
  and not read. Errors name the Doc's 1-based number as the line (``train.spacy:12``).
- JSON Lines (no spaCy needed), one record per line as ``Doc.to_json()`` writes it:
  ``{"text": ..., "ents": [{"start": 0, "end": 4, "label": "ORG"}], "tokens": [{"start": 0, "end": 4}, ...]}``.
  Entities may also be ``[start, end, label]`` and sit under ``spans`` (Prodigy) or ``entities``.
  With ``tokens`` the words are those tokens; without, words come from :func:`~tokentune.data.charspans.align`.
  Entity boundaries inside a token follow ``alignment`` (split the token, or widen the entity) and
  overlapping entities ``overlaps``, as for raw text. Prodigy records answered ``reject``/``ignore``
  are skipped and counted.

The file's first bytes decide: ``{`` or ``[`` is JSON, anything else a DocBin. :func:`write_spacy`
writes a DocBin, or JSON Lines when the name ends in ``.jsonl``/``.json``.
"""
from __future__ import annotations

import json
import os
from bisect import bisect_left, bisect_right
from collections import Counter
from typing import Any

from ..errors import ConfigError, DataError
from .brat import NOTES
from .charspans import Alignment, CharSpan, Overlap, alignment_of
from .corpus import Corpus, Sentence
from .files import read_bytes
from .jsonl import char_entities, iter_records

ENTITY_KEYS = ("ents", "spans", "entities")
SPACY_NOTES = {**NOTES, "whitespace_tokens_dropped": "whitespace tokens were dropped (spaCy keeps spaces as tokens)",
               "span_groups_skipped": "spans in span groups (doc.spans) were not read; only doc.ents are entities",
               "empty_records": "Docs or records had no words and were skipped",
               "records_not_accepted": "Prodigy records answered reject or ignore were skipped"}


def require_spacy():
    """The ``spacy`` module, or a ConfigError that says how to install it."""
    try:
        import spacy
    except ImportError:
        raise ConfigError("spaCy .spacy (DocBin) files need spaCy, which is not installed",
                          fix="pip install 'tokentune[spacy]'") from None
    return spacy


def read_spacy(path: str | os.PathLike, *, alignment: str = "split", overlaps: str = "error",
               word_splitter=None) -> Corpus:
    """Read a ``.spacy`` DocBin or spaCy JSON Lines (chosen by the file's first bytes)."""
    path = os.fspath(path)
    how = alignment_of(alignment, overlaps, word_splitter)
    raw = read_bytes(path)
    counts: Counter = Counter()
    if raw.lstrip()[:1] in (b"{", b"["):
        sentences = _read_records(path, how, counts)
    else:
        sentences = _read_docbin(path, raw, counts)
    if not sentences:
        raise DataError("no sentences found", path=path, expected="Docs or records with words",
                        found=f"{counts['empty_records']} without words", fix="check that this is the right file")
    corpus = Corpus(sentences, path, "IOB2", line_per_word=False)
    corpus.adjustments.update({k: v for k, v in counts.items() if v})
    for key, message in SPACY_NOTES.items():
        if corpus.adjustments.get(key):
            corpus.notes.append(f"{path}: {corpus.adjustments[key]} {message}")
    return corpus


def _read_docbin(path: str, raw: bytes, counts: Counter) -> list[Sentence]:
    spacy = require_spacy()
    from spacy.tokens import DocBin

    vocab = spacy.blank("xx").vocab
    try:
        docs = list(DocBin().from_bytes(raw).get_docs(vocab))
    except Exception as err:  # zlib, msgpack and spaCy's own errors: all mean "not a DocBin"
        raise DataError(f"not a spaCy DocBin file ({type(err).__name__})", path=path,
                        expected="a .spacy file written by DocBin.to_disk, or spaCy JSON Lines",
                        found=f"bytes {raw[:8]!r}", fix="check that this is the right file") from None
    sentences = []
    for number, doc in enumerate(docs, 1):
        words, spans = doc_words(doc, counts)
        if words:
            sentences.append(Sentence(tuple(words), tuple(spans), number))
        else:
            counts["empty_records"] += 1
    return sentences


def doc_words(doc, counts: Counter) -> tuple[list[str], list[tuple[str, int, int]]]:
    """A Doc's non-whitespace tokens and its ``ents`` as word spans over them."""
    keep = [token.i for token in doc if token.text.strip()]
    index = {old: new for new, old in enumerate(keep)}
    spans = []
    for ent in doc.ents:
        inside = [index[i] for i in range(ent.start, ent.end) if i in index]
        if inside:
            spans.append((ent.label_, inside[0], inside[-1] + 1))
        else:
            counts["spans_dropped_blank"] += 1
    counts["whitespace_tokens_dropped"] += len(doc) - len(keep)
    counts["span_groups_skipped"] += sum(len(group) for group in doc.spans.values())
    return [doc[i].text for i in keep], spans


def _read_records(path: str, how: Alignment, counts: Counter) -> list[Sentence]:
    sentences = []
    for line, record in iter_records(path):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise DataError("a spaCy record is an object with a \"text\" string", path=path, line=line,
                            expected='{"text": "...", "ents": [...]}', found=json.dumps(record)[:60],
                            fix="fix that record")
        if record.get("answer") in ("reject", "ignore"):
            counts["records_not_accepted"] += 1
            continue
        text = record["text"]
        entities = _entities(record, text, path, line)
        try:
            if record.get("tokens") is not None:
                offsets = _tokens(record["tokens"], text, path, line)
                words, spans = token_spans(text, offsets, entities, how.policy, how.overlaps, counts)
            else:
                words, spans = how.align(text, entities, counts)
        except Overlap as err:
            raise err.located(text, path, line) from None
        if words:
            sentences.append(Sentence(tuple(words), tuple(spans), line))
        else:
            counts["empty_records"] += 1
    return sentences


def _entities(record: dict, text: str, path: str, line: int) -> list[CharSpan]:
    key = next((k for k in ENTITY_KEYS if k in record), None)
    return char_entities(record[key], text, path, line, key) if key else []


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tokens(raw: Any, text: str, path: str, line: int) -> list[tuple[int, int]]:
    offsets, previous = [], 0
    for index, token in enumerate(raw if isinstance(raw, list) else [None]):
        start, end = (token.get("start"), token.get("end")) if isinstance(token, dict) else (None, None)
        if not (_is_int(start) and _is_int(end) and previous <= start < end <= len(text)):
            raise DataError(f"token {index + 1} is malformed or out of order", path=path, line=line,
                            expected=f'{{"start": INT, "end": INT}} in text order, within 0-{len(text)}',
                            found=json.dumps(token, ensure_ascii=False)[:60], fix="fix that token, or drop \"tokens\"")
        if text[start:end].strip():
            offsets.append((start, end))
        previous = end
    return offsets


def token_spans(text: str, offsets: list[tuple[int, int]], entities: list[CharSpan], alignment: str,
                overlaps: str, counts: Counter) -> tuple[list[str], list[tuple[str, int, int]]]:
    """Given tokens' offsets, the words and the entities as word spans (policies as in ``align``)."""
    trimmed = [e._replace(start=s, end=t) for e in entities
               for s, t in [_trim(text, e.start, e.end)] if s < t]
    counts["spans_dropped_blank"] += len(entities) - len(trimmed)
    if alignment == "split":
        cuts = sorted({e.start for e in trimmed} | {e.end for e in trimmed})
        pieces, moved = [], set()
        for start, end in offsets:
            inner = [c for c in cuts[bisect_right(cuts, start):bisect_left(cuts, end)]
                     if text[start:c].strip() and text[c:end].strip()]  # not a cut that only sheds spaces
            moved.update(inner)
            pieces.extend(zip([start] + inner, inner + [end]))
        counts["spans_split"] += sum(1 for e in trimmed if e.start in moved or e.end in moved)
        offsets = pieces
    starts, ends = [s for s, _ in offsets], [e for _, e in offsets]
    inner = [_trim(text, s, e) for s, e in offsets]  # a token's edge spaces never make an entity wider
    placed = []
    for entity in trimmed:
        first, last = bisect_right(ends, entity.start), bisect_left(starts, entity.end)
        if first >= last:  # between tokens only
            counts["spans_dropped_blank"] += 1
            continue
        counts["spans_widened"] += inner[first][0] != entity.start or inner[last - 1][1] != entity.end
        placed.append((first, last, entity))
    return [text[s:e] for s, e in offsets], _resolve(placed, overlaps, counts)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _resolve(placed, policy: str, counts: Counter) -> list[tuple[str, int, int]]:
    kept: list = []
    for start, end, entity in sorted(placed, key=lambda p: (p[0], p[0] - p[1], p[2].index)):
        if kept and start < kept[-1][1]:
            previous = kept[-1]
            if (previous[0], previous[1], previous[2].label) == (start, end, entity.label):
                counts["duplicate_spans"] += 1
            elif policy == "error":
                raise Overlap(previous[2], entity)
            else:
                counts["overlaps_dropped"] += 1
                if end - start > previous[1] - previous[0]:
                    kept[-1] = (start, end, entity)
            continue
        kept.append((start, end, entity))
    return [(entity.label, start, end) for start, end, entity in kept]


def write_spacy(corpus: Corpus, path: str | os.PathLike) -> None:
    """A ``.spacy`` DocBin (one Doc per sentence, ``doc.ents`` the entities), or spaCy JSON Lines for a
    ``.jsonl``/``.json`` name; written atomically."""
    from ..io import atomic_write_bytes, atomic_write_text

    path = os.fspath(path)
    if path.lower().endswith((".jsonl", ".json")):
        atomic_write_text(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in to_records(corpus)))
        return
    spacy = require_spacy()
    from spacy.tokens import Doc, DocBin, Span

    vocab = spacy.blank("xx").vocab
    docs = DocBin(store_user_data=False)
    for sentence in corpus:
        doc = Doc(vocab, words=list(sentence.words), spaces=[True] * (len(sentence.words) - 1) + [False])
        doc.ents = [Span(doc, start, end, label=label) for label, start, end in sentence.spans]
        docs.add(doc)
    try:
        data = docs.to_bytes()
    except UnicodeEncodeError:
        raise DataError("a word or entity type holds a lone surrogate, which a .spacy file cannot hold",
                        path=corpus.path, fix="fix that text in the source") from None
    atomic_write_bytes(path, data)


def to_records(corpus: Corpus) -> list[dict]:
    """``Doc.to_json()``-shaped records: words joined by single spaces, character offsets."""
    records = []
    for sentence in corpus:
        tokens, position = [], 0
        for index, word in enumerate(sentence.words):
            tokens.append({"id": index, "start": position, "end": position + len(word)})
            position += len(word) + 1
        ents = [{"start": tokens[start]["start"], "end": tokens[end - 1]["end"], "label": label}
                for label, start, end in sentence.spans]
        records.append({"text": " ".join(sentence.words), "ents": ents, "tokens": tokens})
    return records
