"""The one in-memory shape of labelled data: sentences of words with entity spans."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

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

    def select(self, indices) -> "Corpus":
        return Corpus([self.sentences[i] for i in indices], self.path, self.scheme, [])

    def invalid_line(self, item: InvalidTransition) -> int | None:
        start = self.sentences[item.sentence].line
        return None if start is None else start + item.position
