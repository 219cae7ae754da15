"""Character spans on raw text -> word spans on the words of :func:`tokentune.words.split_words`.

An entity boundary that falls inside a word (``"New-York"`` annotated inside ``"New-York-based"``)
is never dropped silently. With ``alignment="split"`` (default) the word is split at the boundary,
so the entity keeps exactly its characters; with ``alignment="widen"`` the entity grows to whole
words. Either way the entity is counted (``spans_split`` / ``spans_widened``) so the user is told.

Overlapping entities cannot be written as one tag per word: ``overlaps="error"`` (default) refuses
them with both entities named; ``overlaps="keep-longest"`` keeps the longer (the first on ties)
and counts the others as ``overlaps_dropped``. Exact duplicates are merged and counted.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from typing import Callable, NamedTuple

from ..errors import ConfigError, DataError
from ..schemes import Span
from ..words import split_words

ALIGNMENTS = ("split", "widen")
OVERLAP_POLICIES = ("error", "keep-longest")


class CharSpan(NamedTuple):
    label: str
    start: int
    end: int
    index: int  # position in the record's entity list, for messages


class Overlap(Exception):
    """Two entities share words; the reader turns this into a DataError with the file and line."""

    def __init__(self, first: CharSpan, second: CharSpan) -> None:
        super().__init__(first, second)
        self.first, self.second = first, second

    def located(self, text: str, path: str, line: int | None, *, where: str = "",
                fix: str = "remove one of them, or pass --overlaps keep-longest") -> DataError:
        """The DataError a reader raises: both entities named with their text and offsets, at ``path:line``."""
        a, b = self.first, self.second
        return DataError(f"{where}overlapping entities", path=path, line=line, expected="entities that share no word",
                         found=f"{a.label} {text[a.start:a.end]!r} ({a.start}-{a.end}) and "
                               f"{b.label} {text[b.start:b.end]!r} ({b.start}-{b.end})", fix=fix)


def check_choice(value: str | None, choices: tuple[str, ...], option: str) -> str:
    choice = (choices[0] if value is None else str(value)).lower().replace("_", "-")
    if choice not in choices:
        raise ConfigError(f"unknown {option} {value!r}; expected one of {', '.join(choices)}",
                          fix=f"pass --{option} with one of those values")
    return choice


Splitter = Callable[[str], tuple[list[str], list[tuple[int, int]]]]


def splitter_of(word_splitter: str | Splitter | None) -> Splitter:
    """``text -> (words, offsets)`` for a reader's ``word_splitter``: None (the default rules), a name of
    :data:`tokentune.words.SPLITTERS`, or such a function (``model`` needs the tokenizer, so only as one:
    ``tokentune.words.get_splitter("model", tokenizer)``)."""
    if word_splitter is None or callable(word_splitter):
        return word_splitter or split_words
    from ..words import check_splitter, get_splitter

    if check_splitter(word_splitter) == "model":
        raise ConfigError("the 'model' word splitter needs the model's tokenizer to read data",
                          fix="pass word_splitter=tokentune.words.get_splitter('model', tokenizer)")
    return get_splitter(word_splitter)


class Alignment(NamedTuple):
    """How a reader turns raw text with character spans into words: ``policy`` (split or widen at entity
    edges inside words), ``overlaps`` and the word splitter ``split``; made by :func:`alignment_of`."""

    policy: str
    overlaps: str
    split: Splitter

    def align(self, text: str, entities: list[CharSpan], counts: Counter) -> tuple[list[str], list[Span]]:
        return align(text, entities, alignment=self.policy, overlaps=self.overlaps, counts=counts, split=self.split)


def alignment_of(alignment: str | None, overlaps: str | None, word_splitter=None) -> Alignment:
    """A reader's ``alignment``, ``overlaps`` and ``word_splitter`` options, checked."""
    return Alignment(check_choice(alignment, ALIGNMENTS, "alignment"), check_choice(overlaps, OVERLAP_POLICIES,
                                                                                     "overlaps"),
                     splitter_of(word_splitter))


def align(text: str, entities: list[CharSpan], *, alignment: str = "split", overlaps: str = "error",
          counts: Counter | None = None, split: Splitter = split_words) -> tuple[list[str], list[Span]]:
    """Words of ``text`` (by ``split``) and the entities as word spans; adjustments are added to ``counts``."""
    counts = Counter() if counts is None else counts
    trimmed = [t for t in (_trim(text, e) for e in entities) if t is not None]
    counts["spans_dropped_blank"] += len(entities) - len(trimmed)
    words, offsets = split(text)
    if alignment == "split":
        words, offsets, moved = _split_words(text, words, offsets, trimmed)
        counts["spans_split"] += moved
    starts = [s for s, _ in offsets]
    ends = [e for _, e in offsets]
    word_spans: list[tuple[int, int, CharSpan]] = []
    widened = 0
    for entity in trimmed:
        first = bisect_right(ends, entity.start)  # first word ending after the entity's start
        last = bisect_left(starts, entity.end)  # words before this one start inside the entity
        widened += starts[first] != entity.start or ends[last - 1] != entity.end
        word_spans.append((first, last, entity))
    counts["spans_widened"] += widened
    return words, _resolve_overlaps(word_spans, overlaps, counts)


def _trim(text: str, entity: CharSpan) -> CharSpan | None:
    """Leading/trailing whitespace in a span is an annotation slip, not a boundary inside a word."""
    start, end = entity.start, entity.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return None if start == end else entity._replace(start=start, end=end)


def _split_words(text, words, offsets, entities):
    """Cut words at entity boundaries that fall inside them; returns how many entities that moved."""
    boundaries = sorted({e.start for e in entities} | {e.end for e in entities})
    inside: set[int] = set()
    new_words, new_offsets = [], []
    for word, (ws, we) in zip(words, offsets):
        lo, hi = bisect_right(boundaries, ws), bisect_left(boundaries, we)
        if lo >= hi:
            new_words.append(word)
            new_offsets.append((ws, we))
            continue
        cuts = [ws] + boundaries[lo:hi] + [we]
        inside.update(boundaries[lo:hi])
        for a, b in zip(cuts, cuts[1:]):
            new_words.append(text[a:b])
            new_offsets.append((a, b))
    moved = sum(1 for e in entities if e.start in inside or e.end in inside)
    return new_words, new_offsets, moved


def _resolve_overlaps(word_spans, policy: str, counts: Counter) -> list[Span]:
    ordered = sorted(word_spans, key=lambda w: (w[0], -(w[1] - w[0]), w[2].index))
    kept: list[tuple[int, int, CharSpan]] = []
    for span in ordered:
        start, end, entity = span
        if kept and start < kept[-1][1]:
            previous = kept[-1]
            if (previous[0], previous[1], previous[2].label) == (start, end, entity.label):
                counts["duplicate_spans"] += 1
                continue
            if policy == "error":
                raise Overlap(previous[2], entity)
            counts["overlaps_dropped"] += 1
            if end - start > previous[1] - previous[0]:
                kept[-1] = span
            continue
        kept.append(span)
    return [(entity.label, start, end) for start, end, entity in kept]
