"""brat standoff: a folder of ``NAME.txt`` documents, each with its annotations in ``NAME.ann``.

Format (https://brat.nlplab.org/standoff.html): a text-bound annotation is one ``.ann`` line
``T1<TAB>Organization 0 4<TAB>Sony``, offsets in characters of the ``.txt`` file, end exclusive.

- Only continuous text-bound annotations become entities. Discontinuous ones (``0 5;10 15``),
  relations (``R``), events (``E``), attributes (``A``/``M``), normalisations (``N``), notes (``#``)
  and equivalences (``*``) are skipped and counted in ``corpus.adjustments`` and one note.
- A ``T`` line whose text differs from the ``.txt`` slice at its offsets (whitespace runs aside) is an
  error located at ``NAME.ann:LINE``; so is an offset outside the text or a line of no known kind.
- Sentences are the document's lines (brat shows one line per line); blank lines are skipped. An
  entity that crosses a line break joins those lines into one sentence (counted: ``lines_joined``).
- Words come from :func:`tokentune.data.charspans.align` with the ``alignment``/``overlaps`` policies;
  an overlap error names the ``.ann`` lines of both entities.

:func:`write_brat` writes ``doc-0001.txt``/``.ann`` pairs of :data:`SENTENCES_PER_FILE` sentences (one
per line, words joined by single spaces) and an ``annotation.conf`` listing the entity types.
"""
from __future__ import annotations

import os
import re
from bisect import bisect_right
from collections import Counter

from ..errors import DataError
from .charspans import CharSpan, Overlap, alignment_of
from .corpus import Corpus, Sentence
from .files import decode_utf8, read_bytes, read_text

SENTENCES_PER_FILE = 100
SKIPPED_KINDS = {"R": "relations", "E": "events", "A": "attributes", "M": "attributes", "N": "normalizations",
                 "#": "notes", "*": "equivalences"}
_TEXT_BOUND = re.compile(r"(\S+) (\d+ \d+(?:;\d+ \d+)*)")
_FIX_ANN = "fix that line: ID<TAB>TYPE START END<TAB>TEXT, offsets in characters of the .txt file"
NOTES = {
    "spans_split": "entity boundaries fell inside words: those words were split at the boundary",
    "spans_widened": "entity boundaries fell inside words: those entities were widened to whole words",
    "spans_dropped_blank": "entities covered only whitespace and were dropped",
    "duplicate_spans": "duplicate entities were merged",
    "overlaps_dropped": "overlapping entities were dropped, keeping the longest (overlaps=keep-longest)",
    "lines_joined": "line breaks fell inside entities: those lines were read as one sentence",
    "texts_without_ann": ".txt files have no .ann beside them and were not read",
}


def read_brat(path: str | os.PathLike, *, alignment: str = "split", overlaps: str = "error",
              word_splitter=None) -> Corpus:
    """Read every ``.ann`` file under the folder ``path`` (sorted by name) with its ``.txt``."""
    path = os.fspath(path)
    how = alignment_of(alignment, overlaps, word_splitter)
    if not os.path.isdir(path):
        raise DataError("a brat collection is a folder of .txt and .ann files", path=path,
                        fix="pass the folder that holds the NAME.txt and NAME.ann pairs")
    counts: Counter = Counter()
    sentences: list[Sentence] = []
    for ann_path, txt_path in find_documents(path, counts):
        text = read_document(txt_path)
        entities = read_ann(ann_path, text, counts)
        sentences.extend(_sentences(text, entities, ann_path, how, counts))
    if not sentences:
        raise DataError("no sentences found", path=path, expected="NAME.txt and NAME.ann pairs with text",
                        found=f"{sum(1 for _ in find_documents(path, Counter()))} documents, none with words",
                        fix="check that this is the right folder")
    corpus = Corpus(sentences, path, "IOB2", line_per_word=False)
    corpus.adjustments.update({k: v for k, v in counts.items() if v})
    _note(corpus)
    return corpus


def find_documents(path: str, counts: Counter) -> list[tuple[str, str]]:
    """``(NAME.ann, NAME.txt)`` pairs under ``path``, subfolders included, sorted by relative name."""
    pairs, texts = [], 0
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = set(files)
        for name in sorted(files):
            stem, suffix = os.path.splitext(name)
            if suffix == ".txt" and stem + ".ann" not in names:
                texts += 1
            if suffix != ".ann" or name.startswith("."):
                continue
            if stem + ".txt" not in names:
                raise DataError("this .ann file has no .txt beside it", path=os.path.join(root, name),
                                expected=f"{stem}.txt in the same folder", found="none",
                                fix="add the document's text, or remove the .ann file")
            pairs.append((os.path.join(root, name), os.path.join(root, stem + ".txt")))
    if not pairs:
        raise DataError("no .ann files found", path=path, expected="NAME.txt and NAME.ann pairs (brat standoff)",
                        found=", ".join(sorted(os.listdir(path))[:8]) or "nothing",
                        fix="pass the folder of a brat collection")
    counts["texts_without_ann"] += texts
    return sorted(pairs, key=lambda pair: os.path.relpath(pair[0], path))


def read_document(txt_path: str) -> str:
    """The document exactly as brat counts it: UTF-8, line ends untouched (a ``\\r`` is one character)."""
    text = decode_utf8(read_bytes(txt_path), txt_path)
    return " " + text[1:] if text[:1] == "\ufeff" else text  # a BOM would be a word; offsets stay put


def read_ann(ann_path: str, text: str, counts: Counter) -> list[CharSpan]:
    """The continuous text-bound annotations of one ``.ann`` file; each CharSpan's index is its line."""
    entities = []
    for number, line in enumerate(read_text(ann_path).split("\n"), 1):
        if not line.strip():
            continue
        kind = line[0]
        if kind in SKIPPED_KINDS:
            counts[f"brat_{SKIPPED_KINDS[kind]}_skipped"] += 1
        elif kind != "T":
            raise DataError("not a brat annotation line", path=ann_path, line=number,
                            expected="an ID starting with T, R, E, A, M, N, # or *", found=repr(line[:40]),
                            fix=_FIX_ANN)
        else:
            entity = _text_bound(line, text, ann_path, number)
            if entity is None:
                counts["brat_discontinuous_skipped"] += 1
            else:
                entities.append(entity)
    return entities


def _text_bound(line: str, text: str, ann_path: str, number: int) -> CharSpan | None:
    parts = line.split("\t")
    match = _TEXT_BOUND.fullmatch(parts[1]) if len(parts) >= 3 else None
    if match is None:
        raise DataError("malformed text-bound annotation", path=ann_path, line=number,
                        expected="T1<TAB>TYPE START END<TAB>TEXT", found=repr(line[:60]), fix=_FIX_ANN)
    label, offsets = match.groups()
    if ";" in offsets:
        return None
    start, end = (int(n) for n in offsets.split())
    if not 0 <= start < end <= len(text):
        raise DataError(f"text-bound annotation {parts[0]} ({label}) is out of range", path=ann_path, line=number,
                        expected=f"0 <= START < END <= {len(text)} (the length of the .txt)",
                        found=f"{start} {end}", fix=_FIX_ANN)
    written, actual = "\t".join(parts[2:]), text[start:end]
    if written != actual and written.split() != actual.split():
        raise DataError(f"the text of {parts[0]} ({label}) does not match the .txt at {start}-{end}",
                        path=ann_path, line=number, expected=repr(written[:60]), found=repr(actual[:60]),
                        fix="fix the offsets (characters, not bytes) or the .txt file the .ann belongs to")
    return CharSpan(label, start, end, number)


def _trimmed(text: str, entity: CharSpan) -> CharSpan | None:
    inner = text[entity.start:entity.end]
    start = entity.start + len(inner) - len(inner.lstrip())
    end = entity.end - (len(inner) - len(inner.rstrip()))
    return entity._replace(start=start, end=end) if start < end else None


def _segments(text: str, entities: list[CharSpan], counts: Counter) -> list[tuple[int, int, int]]:
    """``(start, end, line)`` of each sentence: a line, or several joined by an entity crossing them."""
    crossed = set()
    for entity in entities:
        found = text.find("\n", entity.start, entity.end)
        while found != -1:
            crossed.add(found)
            found = text.find("\n", found + 1, entity.end)
    counts["lines_joined"] += len(crossed)
    segments, start, line = [], 0, 1
    for number, position in enumerate([i for i, c in enumerate(text) if c == "\n"] + [len(text)], 2):
        if position not in crossed:
            segments.append((start, position, line))
            start, line = position + 1, number
    return segments


def _sentences(text, entities, ann_path, how, counts) -> list[Sentence]:
    trimmed = [t for t in (_trimmed(text, e) for e in entities) if t is not None]
    counts["spans_dropped_blank"] += len(entities) - len(trimmed)
    segments = _segments(text, trimmed, counts)
    starts = [s for s, _, _ in segments]
    owned: list[list[CharSpan]] = [[] for _ in segments]
    for entity in trimmed:
        owned[bisect_right(starts, entity.start) - 1].append(entity)
    sentences = []
    for (start, end, line), mine in zip(segments, owned):
        piece = text[start:end]
        if not piece.strip():
            continue
        shifted = [e._replace(start=e.start - start, end=e.end - start) for e in mine]
        try:
            words, spans = how.align(piece, shifted, counts)
        except Overlap as err:
            a, b = err.first, err.second
            raise DataError("overlapping entities", path=ann_path, line=b.index,
                            expected="entities that share no word",
                            found=f"{a.label} {piece[a.start:a.end]!r} (line {a.index}) and "
                                  f"{b.label} {piece[b.start:b.end]!r} (line {b.index})",
                            fix="remove one of them, or pass --overlaps keep-longest") from None
        sentences.append(Sentence(tuple(words), tuple(spans), line))
    return sentences


def _note(corpus: Corpus) -> None:
    skipped = {k: v for k, v in corpus.adjustments.items() if k.startswith("brat_")}
    if skipped:
        listing = ", ".join(f"{v} {k[5:-8].replace('_', ' ')}" for k, v in sorted(skipped.items()))
        corpus.notes.append(f"{corpus.path}: skipped brat annotations that are not continuous entities: {listing}")
    for key, message in NOTES.items():
        if corpus.adjustments.get(key):
            corpus.notes.append(f"{corpus.path}: {corpus.adjustments[key]} {message}")


def write_brat(corpus: Corpus, path: str | os.PathLike, *, sentences_per_file: int = SENTENCES_PER_FILE) -> None:
    """Write ``corpus`` as a brat collection in the folder ``path`` (replaced as a whole, atomically)."""
    from ..io import atomic_directory, atomic_write_text

    groups = [corpus.sentences[i:i + sentences_per_file] for i in range(0, len(corpus), sentences_per_file)]
    width = max(4, len(str(len(groups))))
    documents = [_document(corpus, group, index * sentences_per_file) for index, group in enumerate(groups)]
    with atomic_directory(path, overwrite=True, earlier=_brat_folder) as folder:
        for number, (text, ann) in enumerate(documents, 1):
            atomic_write_text(os.path.join(folder, f"doc-{number:0{width}d}.txt"), text)
            atomic_write_text(os.path.join(folder, f"doc-{number:0{width}d}.ann"), ann)
        types = "".join(f"{label}\n" for label in sorted(corpus.entity_types()))
        atomic_write_text(os.path.join(folder, "annotation.conf"),
                          f"[entities]\n{types}\n[relations]\n\n[events]\n\n[attributes]\n")


def _brat_folder(path: str) -> bool:
    """What a conversion to brat wrote (its annotation.conf, and brat documents alone), which may be replaced
    whole: a folder of other .txt files is not one."""
    names = os.listdir(path)
    return "annotation.conf" in names and all(os.path.isfile(os.path.join(path, name))
                                              and name.endswith((".txt", ".ann", ".conf")) for name in names)


def _document(corpus: Corpus, sentences: list[Sentence], first: int) -> tuple[str, str]:
    """One document's text (a sentence per line) and its ``.ann`` (``T1`` ... in order)."""
    lines, annotations, offset = [], [], 0
    for number, sentence in enumerate(sentences, first + 1):
        _check_sentence(corpus, sentence, number)
        line = " ".join(sentence.words)
        starts, position = [], offset
        for word in sentence.words:
            starts.append(position)
            position += len(word) + 1
        for label, start, end in sentence.spans:
            a, b = starts[start], starts[end - 1] + len(sentence.words[end - 1])
            annotations.append(f"T{len(annotations) + 1}\t{label} {a} {b}\t{line[a - offset:b - offset]}\n")
        lines.append(line + "\n")
        offset += len(line) + 1
    return "".join(lines), "".join(annotations)


def _check_sentence(corpus: Corpus, sentence: Sentence, number: int) -> None:
    for index, word in enumerate(sentence.words):
        if "\n" in word or "\r" in word:
            raise DataError(f"word {word!r} holds a line break, which would split the sentence in brat "
                            f"(sentence {number}, word {index + 1})", path=corpus.path, line=sentence.line,
                            fix="fix that word in the source")
    for label, _, _ in sentence.spans:
        if not label or any(c.isspace() for c in label):
            raise DataError(f"entity type {label!r} holds whitespace, which brat types cannot (sentence {number})",
                            path=corpus.path, line=sentence.line, fix="rename it with --label-map OLD=NEW")
