"""Tag schemes as data: one declarative table per scheme, spans ``(label, start, end)`` end-exclusive.

Every scheme is described by which prefix marks each position of an entity and which prefixes
must precede or follow which. Decoding (tags -> spans), encoding (spans -> tags), validation and
the transition mask used by constrained decoding are all derived from these tables.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

Span = tuple[str, int, int]
OUTSIDE = "O"


@dataclass(frozen=True)
class Scheme:
    name: str
    single: str  # prefix of a one-word entity
    begin: str  # prefix of the first word of a longer entity
    inside: str  # prefix of a middle word
    last: str  # prefix of the last word of a longer entity
    # IOB1 only: prefix used instead of ``begin``/``single`` when the entity directly follows
    # another entity of the same type.
    after_same: str | None = None
    # prefixes that leave an entity open: the next tag must continue it (BIOES: B and I)
    open_prefixes: frozenset[str] = field(default_factory=frozenset)
    # prefix -> prefixes (same type) of which one must come right before it
    must_follow: dict[str, frozenset[str]] = field(default_factory=dict)
    prefixed: bool = True  # False: plain labels such as POS tags, no prefixes at all

    @property
    def opening(self) -> frozenset[str]:
        """Prefixes that always start a new entity (IOB2's B, IOB1's B, BIOES' B and S)."""
        found = {self.begin, self.single} - {self.inside}
        if self.after_same:
            found.add(self.after_same)
        return frozenset(found)

    @property
    def closing(self) -> frozenset[str]:
        """Prefixes after which an entity has ended (BIOES' E and S; none in IOB1/IOB2)."""
        return frozenset({self.single, self.last} - {self.inside, self.begin})

    @property
    def prefixes(self) -> frozenset[str]:
        found = {self.single, self.begin, self.inside, self.last}
        if self.after_same:
            found.add(self.after_same)
        return frozenset(found)


_f = frozenset
IOB1 = Scheme("IOB1", single="I", begin="I", inside="I", last="I", after_same="B",
              must_follow={"B": _f({"B", "I"})})
IOB2 = Scheme("IOB2", single="B", begin="B", inside="I", last="I",
              must_follow={"I": _f({"B", "I"})})
BIOES = Scheme("BIOES", single="S", begin="B", inside="I", last="E", open_prefixes=_f({"B", "I"}),
               must_follow={"I": _f({"B", "I"}), "E": _f({"B", "I"})})
BILOU = Scheme("BILOU", single="U", begin="B", inside="I", last="L", open_prefixes=_f({"B", "I"}),
               must_follow={"I": _f({"B", "I"}), "L": _f({"B", "I"})})
IO = Scheme("IO", single="I", begin="I", inside="I", last="I")
PLAIN = Scheme("PLAIN", single="", begin="", inside="", last="", prefixed=False)

SCHEMES: dict[str, Scheme] = {s.name: s for s in (IOB1, IOB2, BIOES, BILOU, IO, PLAIN)}
ALIASES = {"BIO": "IOB2", "IOBES": "BIOES", "BMES": "BIOES", "NONE": "PLAIN", "POS": "PLAIN"}


def get_scheme(name: str | Scheme) -> Scheme:
    if isinstance(name, Scheme):
        return name
    key = name.upper()
    key = ALIASES.get(key, key)
    if key not in SCHEMES:
        from .errors import ConfigError

        raise ConfigError(
            f"unknown tag scheme {name!r}; expected one of {', '.join(SCHEMES)} (or BIO, IOBES)",
            fix="pass --scheme with one of those names, or leave it out to detect the scheme",
        )
    return SCHEMES[key]


def split_tag(tag: str, scheme: Scheme) -> tuple[str, str]:
    """``'B-PER'`` -> ``('B', 'PER')``; ``'O'`` -> ``('O', '')``; a plain label is its own type."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    if not scheme.prefixed:
        return "", tag
    prefix, sep, label = tag.partition("-")
    if not sep or len(prefix) != 1 or not label:
        return "?", tag
    return prefix, label


def tags_to_spans(tags: Sequence[str], scheme: str | Scheme = "IOB2") -> list[Span]:
    """Decode tags to spans leniently, as conlleval and seqeval's default mode do.

    An invalid sequence is repaired, never dropped: ``I-X`` after ``O`` starts an entity, an
    entity ends when the type changes, when a beginning prefix comes, or after a last/single prefix.
    """
    scheme = get_scheme(scheme)
    if not scheme.prefixed:
        return [(tag, i, i + 1) for i, tag in enumerate(tags) if tag != OUTSIDE]
    closing, opening = scheme.closing, scheme.opening
    spans: list[Span] = []
    start, label, prev_prefix = -1, "", OUTSIDE
    for i, tag in enumerate(tags):
        prefix, typ = split_tag(tag, scheme)
        starts_new = (
            prefix == OUTSIDE
            or typ != label
            or prefix in opening
            or prev_prefix in closing
        )
        if starts_new and start >= 0:
            spans.append((label, start, i))
            start, label = -1, ""
        if prefix != OUTSIDE and start < 0:
            start, label = i, typ
        prev_prefix = prefix
    if start >= 0:
        spans.append((label, start, len(tags)))
    return spans


def reads_back_in_iob2(spans: Iterable[Span], length: int) -> bool:
    """Whether ``spans`` written as IOB2 tags over ``length`` words read back (:func:`tags_to_spans`, or a
    scorer in either mode) as exactly themselves: each with a non-empty str label, non-empty, inside the
    sentence, in order and apart. Readers and the Tagger give such spans; a caller can then skip the round trip."""
    end = 0
    for label, start, stop in spans:
        if not (isinstance(label, str) and label and end <= start < stop <= length):
            return False
        end = stop
    return True


def spans_to_tags(spans: Iterable[Span], length: int, scheme: str | Scheme = "IOB2") -> list[str]:
    """Encode end-exclusive spans over ``length`` words in ``scheme``. Spans must not overlap."""
    scheme = get_scheme(scheme)
    tags = [OUTSIDE] * length
    prev_end, prev_label = -1, None
    for label, start, end in sorted(spans, key=lambda s: s[1]):
        if not scheme.prefixed:
            for i in range(start, end):
                tags[i] = label
            continue
        adjacent_same = start == prev_end and label == prev_label
        if end - start == 1:
            prefix = scheme.after_same if adjacent_same and scheme.after_same else scheme.single
            tags[start] = f"{prefix}-{label}"
        else:
            first = scheme.after_same if adjacent_same and scheme.after_same else scheme.begin
            tags[start] = f"{first}-{label}"
            for i in range(start + 1, end - 1):
                tags[i] = f"{scheme.inside}-{label}"
            tags[end - 1] = f"{scheme.last}-{label}"
        prev_end, prev_label = end, label
    return tags


def is_valid_transition(prev: str, tag: str, scheme: str | Scheme) -> bool:
    """Whether ``tag`` may follow ``prev`` in ``scheme``; use ``'O'`` for the sequence's edges."""
    scheme = get_scheme(scheme)
    if not scheme.prefixed:
        return True
    p_prefix, p_type = split_tag(prev, scheme)
    c_prefix, c_type = split_tag(tag, scheme)
    if "?" in (p_prefix, c_prefix):
        return False
    if c_prefix != OUTSIDE and c_prefix not in scheme.prefixes:
        return False
    same = p_type == c_type and p_prefix != OUTSIDE
    if p_prefix in scheme.open_prefixes:
        continues = {scheme.inside, scheme.last}
        if not (same and c_prefix in continues):
            return False
    required = scheme.must_follow.get(c_prefix)
    if required is not None and not (same and p_prefix in required):
        return False
    return True


@dataclass(frozen=True)
class InvalidTransition:
    sentence: int  # index of the sentence in its corpus
    position: int  # index of the word whose tag is invalid after the previous (len = end of sentence)
    previous: str
    tag: str


def find_invalid(tags: Sequence[str], scheme: str | Scheme, sentence: int = 0) -> list[InvalidTransition]:
    """Every invalid transition in one tag sequence, including its start and end."""
    scheme = get_scheme(scheme)
    found = []
    prev = OUTSIDE
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        if not is_valid_transition(prev, tag, scheme):
            found.append(InvalidTransition(sentence, i, prev, tag))
        prev = tag
    return found


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> Scheme:
    """Guess the scheme of a corpus from the prefixes it uses and where ``B-`` and ``I-`` begin entities.

    With both ``B-`` and ``I-``: an ``I-X`` that begins an entity (after ``O`` or another type) is wrong in
    IOB2, a ``B-X`` that is not right after ``X`` is wrong in IOB1, so the scheme with fewer such tags is
    chosen (IOB1 on a tie). One ``O I-X`` slip in an IOB2 file used to make it IOB1, and then every correct
    ``B-`` read as broken (``--repair drop-entity`` dropped almost all entities)."""
    prefixes: set[str] = set()
    i_starts = b_free = 0  # I-X beginning an entity (wrong in IOB2); B-X not right after X (wrong in IOB1)
    unprefixed = False
    for tags in tag_sequences:
        prev_type = ""
        for tag in tags:
            if tag == OUTSIDE:
                prev_type = ""
                continue
            prefix, sep, typ = tag.partition("-")
            if not sep or len(prefix) != 1 or not typ:
                unprefixed = True
                break
            prefixes.add(prefix)
            i_starts += prefix == "I" and typ != prev_type
            b_free += prefix == "B" and typ != prev_type
            prev_type = typ
    if unprefixed or not prefixes:
        return PLAIN if unprefixed else IOB2
    if prefixes & {"U", "L"}:
        return BILOU
    if prefixes & {"S", "E"}:
        return BIOES
    if i_starts:
        return IO if "B" not in prefixes else IOB1 if i_starts >= b_free else IOB2
    return IOB2


def labels_for(entity_types: Iterable[str], scheme: str | Scheme = "IOB2") -> list[str]:
    """The model's label list for ``entity_types``: ``O`` first, then each type's tags."""
    scheme = get_scheme(scheme)
    types = sorted(set(entity_types))
    if not scheme.prefixed:
        return [OUTSIDE] + [t for t in types if t != OUTSIDE]
    order = [scheme.begin, scheme.inside, scheme.last, scheme.single]
    if scheme.after_same:
        order.append(scheme.after_same)
    unique = list(dict.fromkeys(order))
    return [OUTSIDE] + [f"{p}-{t}" for t in types for p in unique]


def scheme_of_labels(labels: Sequence[str]) -> Scheme:
    """The scheme a model was trained with, read off its label names."""
    prefixes = {label.split("-", 1)[0] for label in labels if label != OUTSIDE and "-" in label}
    if any(label != OUTSIDE and ("-" not in label or len(label.split("-", 1)[0]) != 1) for label in labels):
        return PLAIN
    if prefixes & {"U", "L"}:
        return BILOU
    if prefixes & {"S", "E"}:
        return BIOES
    return IOB2
