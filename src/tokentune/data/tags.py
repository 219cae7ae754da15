"""From tag sequences to a :class:`Corpus`: scheme detection, tag checks and the repair policy.

Every reader that sees per-word tags (CoNLL columns, JSON tokens/tags, Hugging Face datasets) ends
here, so detection, validation and repair behave the same whatever the file format.

Repair policies for sequences that break their scheme (``I-PER`` after ``O`` in IOB2, ``B-PER``
followed by ``O`` in BIOES, ...):

- ``lenient`` (default): decode as conlleval and seqeval's default mode do, keeping every entity;
- ``error``: refuse the file at the first invalid transition;
- ``drop-entity``: drop the entities whose tags are broken; their words become ``O``.
"""
from __future__ import annotations

from itertools import chain
from typing import Iterable, Sequence

from ..errors import DataError
from ..schemes import (
    OUTSIDE,
    SCHEMES,
    InvalidTransition,
    Scheme,
    Span,
    detect_scheme,
    find_invalid,
    get_scheme,
    is_valid_transition,
    split_tag,
    tags_to_spans,
)
from ..settings import check_choice
from .corpus import Corpus, Sentence

REPAIR_POLICIES = ("lenient", "error", "drop-entity")
Row = tuple[int, Sequence[str], Sequence[str]]  # (line where the sentence starts, words, tags)


def check_repair(repair: str | None) -> str:
    return check_choice(repair, REPAIR_POLICIES, "repair policy", "--repair")


def corpus_from_tags(
    rows: Iterable[Row],
    *,
    path: str | None,
    scheme: str | None,
    repair: str | None = "lenient",
    line_per_word: bool = True,
) -> Corpus:
    """Build a corpus from ``(line, words, tags)`` rows: detect the scheme, check, repair, decode."""
    policy = check_repair(repair)
    rows = rows if isinstance(rows, list) else list(rows)
    chosen = get_scheme(scheme) if scheme else detect_scheme(tags for _, _, tags in rows)
    if chosen.prefixed:
        _check_tags(rows, chosen, path, line_per_word)
    elif not scheme:
        _check_mixed(rows, path, line_per_word)
    invalid: list[InvalidTransition] = []
    sentences = []
    dropped = 0
    is_valid = _transition_checker(chosen)
    for index, (line, words, tags) in enumerate(rows):
        found = find_invalid(tags, chosen, sentence=index) if not is_valid(tags) else ()
        spans = tags_to_spans(tags, chosen)
        if found:
            invalid.extend(found)
            if policy == "drop-entity":
                kept = _drop_broken(spans, tags, found, chosen)
                dropped += len(spans) - len(kept)
                spans = kept
        sentences.append(Sentence(tuple(words), tuple(spans), line))
    corpus = Corpus(sentences, path, chosen.name, invalid, scheme_detected=not scheme, line_per_word=line_per_word)
    if invalid:
        _report_invalid(corpus, policy, dropped)
    return corpus


def _check_tags(rows: list[Row], scheme: Scheme, path: str | None, line_per_word: bool) -> None:
    """Every tag must be ``O`` or a prefix of ``scheme`` + ``-TYPE``; checked once per distinct tag."""
    distinct: set[str] = set()
    for _, _, tags in rows:
        distinct.update(tags)
    allowed = scheme.prefixes
    bad = {t for t in distinct if t != OUTSIDE and split_tag(t, scheme)[0] not in allowed}
    if not bad:
        return
    _raise_at(rows, bad, path, line_per_word, f"does not fit the {scheme.name} scheme",
              f"'O' or one of {sorted(allowed)} + '-TYPE' (e.g. '{scheme.begin}-PER')",
              "fix the tag, or pass --scheme (PLAIN for tags without prefixes such as POS)")


def _transition_checker(scheme: Scheme):
    """A fast "is this whole sequence valid?" that asks ``is_valid_transition`` once per distinct pair.

    ``find_invalid`` on every sentence dominated reading time; sentences are almost always valid,
    so the pairs of a sentence are compared as a set against the pairs known to be valid.
    """
    valid_pairs: set[tuple[str, str]] = set()
    invalid_pairs: set[tuple[str, str]] = set()

    def is_valid(tags: Sequence[str]) -> bool:
        if not scheme.prefixed:
            return True
        pairs = set(zip(chain((OUTSIDE,), tags), chain(tags, (OUTSIDE,))))
        unknown = pairs - valid_pairs
        if not unknown:
            return True
        for pair in unknown - invalid_pairs:
            (valid_pairs if is_valid_transition(*pair, scheme) else invalid_pairs).add(pair)
        return not (unknown & invalid_pairs)

    return is_valid


def _looks_prefixed(tag: str) -> bool:
    prefix, sep, typ = tag.partition("-")
    return bool(sep) and len(prefix) == 1 and bool(typ)


def _check_mixed(rows: list[Row], path: str | None, line_per_word: bool) -> None:
    """Plain labels were detected because some tag has no prefix: if most tags have one, that is a typo."""
    distinct: set[str] = set()
    for _, _, tags in rows:
        distinct.update(tags)
    distinct.discard(OUTSIDE)
    if "B" in distinct and distinct <= set().union(*(s.prefixes for s in SCHEMES.values())):  # untyped B/I tags
        _raise_at(rows, distinct, path, line_per_word, "is a scheme prefix without an entity type, so it would be "
                  "read as an entity type of its own (one-word entities typed 'B' and 'I')",
                  "PREFIX-TYPE such as 'B-KEY' and 'I-KEY'",
                  "give the entities a type (e.g. sed -E 's/\\t([BI])$/\\t\\1-KEY/' on tab-separated files), or "
                  "pass --scheme PLAIN if B and I are labels of their own")
    no_type = {t for t in distinct if len(t) == 2 and t[1] == "-"}
    if no_type:
        _raise_at(rows, no_type, path, line_per_word, "has a prefix but no entity type", "PREFIX-TYPE such as 'B-PER'",
                  "write the entity type after the prefix")
    prefixed = {t for t in distinct if _looks_prefixed(t)}
    if len(prefixed) * 2 <= len(distinct):
        return
    if "o" in distinct and all(t[0].islower() for t in prefixed):  # b-per, i-per, o
        _raise_at(rows, {"o"}, path, line_per_word, f"is the outside tag in lower case, as are the prefixes (e.g. "
                  f"{min(prefixed)!r})", "'O' and upper-case prefixes such as 'B-per'",
                  "write O and the prefixes in upper case, e.g. sed -E 's/\\t([a-z])(-|$)/\\t\\U\\1\\E\\2/' "
                  "on tab-separated files")
    _raise_at(rows, distinct - prefixed, path, line_per_word,
              f"has no scheme prefix while most tags have one (e.g. {min(prefixed)!r})",
              "'O' or PREFIX-TYPE such as 'B-PER'", "add the prefix, or pass --scheme PLAIN if the tags are plain labels")


def _raise_at(rows: list[Row], bad: set[str], path: str | None, line_per_word: bool, problem: str,
              expected: str, fix: str) -> None:
    line, offset, tag = next((line, i, t) for line, _, tags in rows for i, t in enumerate(tags) if t in bad)
    where = line + offset if line_per_word and line is not None else line
    word = "" if line_per_word else f" (word {offset + 1})"
    raise DataError(f"tag {tag!r}{word} {problem}", path=path, line=where, expected=expected, found=repr(tag), fix=fix)


def _drop_broken(spans: list[Span], tags: Sequence[str], found: list[InvalidTransition], scheme: Scheme) -> list[Span]:
    """The spans not touched by a broken transition: an entity left open, or one that starts illegally."""
    broken_positions: set[int] = set()
    for item in found:
        prev_prefix, prev_type = split_tag(item.previous, scheme)
        prefix, typ = split_tag(item.tag, scheme)
        left_open = prev_prefix in scheme.open_prefixes and not (
            typ == prev_type and prefix in (scheme.inside, scheme.last))
        if left_open or "?" in (prev_prefix, prefix):
            broken_positions.add(item.position - 1)
        if prefix != OUTSIDE and (not left_open or prefix in scheme.must_follow):
            broken_positions.add(item.position)
    return [s for s in spans if not any(s[1] <= p < s[2] for p in broken_positions)]


def _report_invalid(corpus: Corpus, policy: str, dropped: int) -> None:
    name = corpus.path or "the data"
    count = len(corpus.invalid)
    first = ", ".join(corpus.invalid_location(item) for item in corpus.invalid[:3])
    item = corpus.invalid[0]
    example = f"{item.previous!r} -> {item.tag if item.position < len(corpus.sentences[item.sentence].words) else 'end'!r}"
    if policy == "error":
        raise DataError(
            f"invalid {corpus.scheme} tag sequence ({count} in the file, first {example})",
            path=corpus.path, line=corpus.invalid_line(item),
            expected=f"tags that follow the {corpus.scheme} scheme", found=f"{count} invalid transitions at {first}",
            fix="fix the tags, or pass --repair lenient to decode them as conlleval does",
        )
    corpus.adjustments["invalid_transitions"] += count
    if policy == "drop-entity":
        corpus.adjustments["entities_dropped_invalid"] += dropped
        corpus.notes.append(f"{name}: {count} invalid {corpus.scheme} transitions; dropped the {dropped} entities "
                            f"they touch (repair=drop-entity); first at {first}")
    else:
        corpus.notes.append(f"{name}: {count} invalid {corpus.scheme} transitions repaired leniently as conlleval "
                            f"does (e.g. {example}; first at {first}); pass --repair error or drop-entity to change this")

