"""The one in-memory shape of labelled data: sentences of words with entity spans."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator

from ..schemes import InvalidTransition, Span, get_scheme, spans_to_tags


@dataclass(frozen=True, slots=True)
class Sentence:
    words: tuple[str, ...]
    spans: tuple[Span, ...] = ()
    line: int | None = None  # 1-based line (or record number) where the sentence starts in its file

    def tags(self, scheme: str = "IOB2") -> list[str]:
        return spans_to_tags(self.spans, len(self.words), scheme)


@dataclass
class Corpus:
    sentences: list[Sentence]
    path: str | None = None
    scheme: str = "IOB2"  # the scheme the source was written in (detected or declared)
    invalid: list[InvalidTransition] = field(default_factory=list)  # repaired while reading
    notes: list[str] = field(default_factory=list)  # one-line messages the user should see once
    # what reading changed, by kind (e.g. "spans_split": 3); reported by inspect and in notes
    adjustments: Counter = field(default_factory=Counter)
    scheme_detected: bool = False  # True when ``scheme`` was guessed rather than declared
    # CoNLL: word i of a sentence is on line ``line + i``; JSON: a sentence is one record/line
    line_per_word: bool = True
    # where the data marks documents (CoNLL -DOCSTART-): the index of each document's first sentence,
    # ascending from 0; None when the data has no documents (every sentence read alone)
    document_starts: list[int] | None = None

    def __len__(self) -> int:
        return len(self.sentences)

    def __iter__(self) -> Iterator[Sentence]:
        return iter(self.sentences)

    @property
    def num_tokens(self) -> int:
        return sum(len(s.words) for s in self.sentences)

    def entity_counts(self) -> Counter[str]:
        return Counter(label for s in self.sentences for label, _, _ in s.spans)

    def entity_types(self) -> set[str]:
        return {label for s in self.sentences for label, _, _ in s.spans}

    def tag_sequences(self, scheme: str = "IOB2") -> list[list[str]]:
        get_scheme(scheme)
        return [s.tags(scheme) for s in self.sentences]

    def select(self, indices: Iterable[int]) -> "Corpus":
        """The sentences at ``indices`` (in that order); invalid-transition records follow them."""
        indices = list(indices)
        new_index = {old: new for new, old in enumerate(indices)}
        invalid = [replace(item, sentence=new_index[item.sentence]) for item in self.invalid
                   if item.sentence in new_index]
        return Corpus([self.sentences[i] for i in indices], self.path, self.scheme, invalid,
                      list(self.notes), Counter(self.adjustments), self.scheme_detected, self.line_per_word,
                      self._selected_documents(indices))

    def _selected_documents(self, indices: list[int]) -> list[int] | None:
        """Documents survive a selection of whole consecutive runs (the first N sentences); a random
        sample of sentences has no documents left."""
        if self.document_starts is None or indices != list(range(len(indices))):
            return None
        return [start for start in self.document_starts if start < len(indices)]

    def documents(self) -> list[tuple[int, int]]:
        """``[start, end)`` sentence ranges of the documents; one range per sentence without documents."""
        if self.document_starts is None:
            return [(i, i + 1) for i in range(len(self.sentences))]
        bounds = [*self.document_starts, len(self.sentences)]
        return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]

    def map_spans(self, change: Callable[[Span], Span | None]) -> int:
        """Replace every span by ``change(span)`` (None drops it); returns how many changed."""
        changed = 0
        for index, sentence in enumerate(self.sentences):
            spans = []
            for span in sentence.spans:
                new = change(span)
                changed += new != span
                if new is not None:
                    spans.append(new)
            if len(spans) != len(sentence.spans) or any(a != b for a, b in zip(spans, sentence.spans)):
                self.sentences[index] = replace(sentence, spans=tuple(spans))
        return changed

    def invalid_line(self, item: InvalidTransition) -> int | None:
        start = self.sentences[item.sentence].line
        if start is None or not self.line_per_word:
            return start
        return start + item.position

    def invalid_location(self, item: InvalidTransition) -> str:
        """Where an invalid transition is: ``file:line``, plus the word index for one-record-per-line files."""
        line = self.invalid_line(item)
        where = f"{self.path or '<data>'}:{line}" if line is not None else f"{self.path or '<data>'} sentence {item.sentence + 1}"
        return where if self.line_per_word and line is not None else f"{where} word {item.position + 1}"

    def location(self, sentence: Sentence | int) -> str:
        """``file:line`` of a sentence (or of the sentence at that index), for messages."""
        if isinstance(sentence, int):
            sentence = self.sentences[sentence]
        name = self.path or "<data>"
        return name if sentence.line is None else f"{name}:{sentence.line}"
