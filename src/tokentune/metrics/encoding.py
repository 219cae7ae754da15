"""The shared encoding of entity-level scoring: tags laid out as flat int arrays, seqeval's rules as
lookup tables, and entities found by array operations (used by :mod:`.exact` and :mod:`.partial`).

This module imports NumPy and nothing heavy: ``tokentune score`` must start fast, without torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Sequence

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["STRICT_SCHEMES", "InvalidTagError", "check_mode", "decode_entities", "flatten_pair", "EMPTY"]

# ---------------------------------------------------------------------------------------------------
# Prefix classes and the rules of each reading, as data.
#
# Every tag is reduced to (prefix class, type id). A rule is (previous prefixes, current prefixes,
# type condition: any, same type as the previous tag, or a different one). ``?`` stands for any first
# character the reading does not know (seqeval's default mode still lets such tags start and end
# entities on a type change). Each rule set is compiled once into a lookup table (_rule_table), so
# applying it to a million tokens is one NumPy indexing operation.
# ---------------------------------------------------------------------------------------------------
_CLASSES = "OBIESUL.?"
_CLASS_ID = {c: i for i, c in enumerate(_CLASSES)}
_O = _CLASS_ID["O"]
ANY, SAME, DIFF = "any", "same", "diff"
_ALL = _CLASSES
_TYPED = "BIESUL?"  # seqeval default mode: every prefix but O and '.' ends/starts on a type change

# seqeval.metrics.sequence_labeling.end_of_chunk / start_of_chunk, rule by rule.
_DEFAULT_END = (("ES", _ALL, ANY), ("BI", "BSO", ANY), (_TYPED, _ALL, DIFF))
_DEFAULT_START = ((_ALL, "BS", ANY), ("ESO", "EI", ANY), (_ALL, _TYPED, DIFF))


@dataclass(frozen=True)
class _StrictRules:
    """One of seqeval.scheme's Token classes: allowed prefixes and start/inside/end patterns."""

    allowed: str
    start: tuple
    inside: tuple
    end: tuple


STRICT_SCHEMES: dict[str, _StrictRules] = {
    "IOB2": _StrictRules(
        "IOB", start=((_ALL, "B", ANY),), inside=(("B", "I", SAME), ("I", "I", SAME)),
        end=(("I", "O", ANY), ("I", "I", DIFF), ("I", "B", ANY), ("B", "O", ANY), ("B", "I", DIFF), ("B", "B", ANY)),
    ),
    "IOE2": _StrictRules(
        "IOE",
        start=(("O", "I", ANY), ("O", "E", ANY), ("E", "I", ANY), ("E", "E", ANY), ("I", "I", DIFF), ("I", "E", DIFF)),
        inside=(("I", "E", SAME), ("I", "I", SAME)), end=(("E", _ALL, ANY),),
    ),
    "BIOES": _StrictRules(
        "IOBES", start=((_ALL, "B", ANY), (_ALL, "S", ANY)),
        inside=(("B", "I", SAME), ("B", "E", SAME), ("I", "I", SAME), ("I", "E", SAME)),
        end=(("S", _ALL, ANY), ("E", _ALL, ANY)),
    ),
    "BILOU": _StrictRules(
        "BILOU", start=((_ALL, "B", ANY), (_ALL, "U", ANY)),
        inside=(("B", "I", SAME), ("B", "L", SAME), ("I", "I", SAME), ("I", "L", SAME)),
        end=(("U", _ALL, ANY), ("L", _ALL, ANY)),
    ),
}
SCHEME_ALIASES = {"IOE": "IOE2"}  # IOE2 is scored in strict mode only; other names as schemes.get_scheme reads them


class InvalidTagError(DataError):
    """A tag that cannot be scored; knows the sentence and position so a reader can name file:line."""

    def __init__(self, message: str, *, sentence: int, position: int, tag: str, side: str, **kwargs) -> None:
        self.sentence = sentence  # 0-based index of the sentence
        self.position = position  # 0-based index of the word in it
        self.tag = tag
        self.side = side  # "gold" or "predicted"
        super().__init__(message, **kwargs)



def flatten_pair(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]):
    """Both sides laid end to end, and the sentence lengths, once checked to line up."""
    if len(gold) != len(pred):
        raise DataError(
            "gold and predicted tags have different numbers of sentences",
            expected=f"{len(gold)} predicted sentences like the gold", found=str(len(pred)),
            fix="pass one predicted tag sequence per gold sentence, in the same order",
        )
    lengths = np.fromiter(map(len, gold), dtype=np.int64, count=len(gold))
    pred_lengths = np.fromiter(map(len, pred), dtype=np.int64, count=len(pred))
    differ = np.flatnonzero(lengths != pred_lengths)
    if differ.size:
        i = int(differ[0])
        raise DataError(
            f"gold and predicted tags differ in length at sentence {i} (0-based)",
            expected=f"{lengths[i]} predicted tags like the gold sentence", found=str(pred_lengths[i]),
            fix="predict one tag per gold word (check tokenisation and sub-word aggregation)",
        )
    flat_gold = list(chain.from_iterable(gold))
    flat_pred = list(chain.from_iterable(pred))
    return flat_gold, flat_pred, lengths




def decode_entities(gold, pred, lengths, mode: str, scheme: str | None):
    """Encode both sides and find their entities: (corpus, type names, gold and pred entities)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(gold) != len(pred) or int(lengths.sum()) != len(gold):
        raise DataError(
            "gold tags, predicted tags and sentence lengths do not add up",
            expected=f"{int(lengths.sum())} tags on each side (the sum of the sentence lengths)",
            found=f"{len(gold)} gold and {len(pred)} predicted",
            fix="pass one predicted tag per gold tag",
        )
    corpus = _encode(gold, pred, lengths)
    _check_tag_types(corpus)
    if scheme == "PLAIN":
        classes, types, type_names = _plain_tables(corpus.vocab)
        chunker = _plain_chunks
    elif mode == "strict":
        rules = STRICT_SCHEMES[scheme]
        classes, types, type_names = _strict_tables(corpus.vocab, rules)
        _check_strict_tags(corpus, classes, scheme)
        chunker = lambda c, t: _strict_chunks(c, t, rules)  # noqa: E731
    else:
        classes, types, type_names = _default_tables(corpus.vocab, bilou=scheme == "BILOU")
        chunker = _default_chunks
    gold_entities = chunker(classes[corpus.gold], types[corpus.gold])
    pred_entities = chunker(classes[corpus.pred], types[corpus.pred])
    return corpus, type_names, gold_entities, pred_entities


# ---------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------
def check_mode(mode: str | None, scheme: str | None) -> tuple[str, str | None]:
    mode = "default" if mode is None else str(mode).lower()
    if mode not in ("default", "strict"):
        raise ConfigError(f"unknown scoring mode {mode!r}; expected 'default' or 'strict'",
                          fix="use mode 'default' (lenient, conlleval) or 'strict' with a scheme")
    name = _scheme_name(scheme) if scheme is not None else None
    # PLAIN tags are one-word entities: nothing to be lenient about, so strict mode reads them as well
    if mode == "strict" and name not in STRICT_SCHEMES and name != "PLAIN":
        found = "no scheme" if name is None else f"scheme {name}"
        raise ConfigError(
            f"strict mode needs one of the schemes {', '.join(STRICT_SCHEMES)}; found {found}",
            fix="pass --scheme IOB2 (or IOE2, BIOES, BILOU) with --mode strict, or use --mode default",
        )
    return mode, name


def _scheme_name(scheme: str) -> str:
    key = str(scheme).upper()
    key = SCHEME_ALIASES.get(key, key)
    if key in STRICT_SCHEMES:
        return key
    from ..schemes import SCHEMES, get_scheme  # pure Python, no heavy imports

    try:
        return get_scheme(key).name
    except ConfigError:
        raise ConfigError(
            f"unknown tag scheme {scheme!r}; expected one of {', '.join([*SCHEMES, 'IOE2'])} (or BIO, IOBES)",
            fix="pass --scheme with one of those names, or leave it out in the default mode",
        ) from None


# ---------------------------------------------------------------------------------------------------
# Encoding: the corpus as flat int arrays
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Corpus:
    vocab: list[str]  # tag strings; vocab[0] is "O", the separator
    gold: np.ndarray  # tag ids, every sentence followed by one "O", as seqeval lays out a corpus
    pred: np.ndarray
    lengths: np.ndarray  # words per sentence
    n_tokens: int
    correct: int  # tokens whose predicted tag equals the gold tag


def _encode(gold: Sequence[str], pred: Sequence[str], lengths: np.ndarray) -> _Corpus:
    """Give every distinct tag an id and lay both sides out with one ``O`` after each sentence.

    The separator makes the corpus one sequence without letting an entity run across sentences, and
    puts every entity at the position seqeval gives it (seqeval flattens a corpus the same way).
    """
    vocab = ["O", *sorted(set(gold).union(pred) - {"O"}, key=str)]
    ids = {tag: i for i, tag in enumerate(vocab)}
    n = len(gold)
    gold_ids = np.fromiter(map(ids.__getitem__, gold), dtype=np.int32, count=n)
    pred_ids = np.fromiter(map(ids.__getitem__, pred), dtype=np.int32, count=n)
    # word k of sentence s sits at k + s in the laid-out corpus: one separator per earlier sentence
    positions = np.arange(n, dtype=np.int64) + np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    laid_out = []
    for ids_ in (gold_ids, pred_ids):
        full = np.zeros(n + len(lengths), dtype=np.int32)
        full[positions] = ids_
        laid_out.append(full)
    correct = int(np.count_nonzero(gold_ids == pred_ids))
    return _Corpus(vocab, laid_out[0], laid_out[1], lengths, n, correct)


def _where_tag(corpus: _Corpus, bad_ids: np.ndarray) -> tuple[int, int, str, str]:
    """(sentence, position, tag, side) of the first occurrence of any of ``bad_ids``."""
    best = None
    for side, laid_out in (("gold", corpus.gold), ("predicted", corpus.pred)):
        hits = np.flatnonzero(np.isin(laid_out, bad_ids))
        if hits.size and (best is None or hits[0] < best[0]):
            best = (int(hits[0]), side, corpus.vocab[laid_out[hits[0]]])
    flat, side, tag = best
    sentence_ends = np.cumsum(corpus.lengths + 1)  # separator positions + 1
    sentence = int(np.searchsorted(sentence_ends, flat, side="right"))
    start = int(sentence_ends[sentence - 1]) if sentence else 0
    return sentence, flat - start, tag, side


def _check_tag_types(corpus: _Corpus) -> None:
    """seqeval would crash on an empty or non-string tag; say where it is instead."""
    bad = [i for i, tag in enumerate(corpus.vocab) if not isinstance(tag, str) or not tag]
    if bad:
        sentence, position, tag, side = _where_tag(corpus, np.asarray(bad))
        raise InvalidTagError(
            f"{side} tag {tag!r} at sentence {sentence}, word {position} (0-based) is not a tag",
            sentence=sentence, position=position, tag=tag, side=side,
            expected="a non-empty string such as 'O' or 'B-PER'", found=repr(tag),
            fix="give every word a tag ('O' outside entities)",
        )


# ---------------------------------------------------------------------------------------------------
# Per-tag tables: prefix class and type id of every distinct tag
# ---------------------------------------------------------------------------------------------------
def _type_ids(type_strings: list[str]) -> tuple[np.ndarray, list[str]]:
    names = sorted(set(type_strings))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[t] for t in type_strings], dtype=np.int32), names


def _default_tables(vocab: list[str], *, bilou: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """seqeval default mode: prefix = first character, type = after the first '-' (or '_')."""
    known = {"O", "B", "I", "E", "S", "."}
    renamed = {"U": "S", "L": "E"} if bilou else {}
    classes, types = [], []
    for tag in vocab:
        if not isinstance(tag, str) or not tag:
            classes.append(_O)
            types.append("_")
            continue
        first = renamed.get(tag[0], tag[0])
        classes.append(_CLASS_ID[first] if first in known else _CLASS_ID["?"])
        types.append(tag[1:].split("-", maxsplit=1)[-1] or "_")
    type_array, names = _type_ids(types)
    return np.array(classes, dtype=np.int8), type_array, names


def _strict_tables(vocab: list[str], rules: _StrictRules) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """seqeval.scheme.Token: prefix = first character, type = the rest stripped of '-' (or '_').

    A tag whose prefix the scheme does not allow gets class -1 (reported by _check_strict_tags).
    """
    classes, types = [], []
    for tag in vocab:
        ok = isinstance(tag, str) and tag and tag[0] in rules.allowed + "O"
        classes.append(_CLASS_ID[tag[0]] if ok else -1)
        types.append((tag[1:].strip("-") or "_") if ok else "_")
    type_array, names = _type_ids(types)
    return np.array(classes, dtype=np.int8), type_array, names


def _plain_tables(vocab: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """PLAIN (e.g. POS): the whole tag is the type; only "O" is outside."""
    classes = np.array([_O if tag == "O" else _CLASS_ID["?"] for tag in vocab], dtype=np.int8)
    type_array, names = _type_ids([str(tag) for tag in vocab])
    # "O" is not an entity type: renumber the others densely, sorted
    names_wo = [name for name in names if name != "O"]
    remap = np.array([names_wo.index(n) if n != "O" else -1 for n in names], dtype=np.int32)
    return classes, remap[type_array], names_wo


def _check_strict_tags(corpus: _Corpus, classes: np.ndarray, scheme: str) -> None:
    bad = np.flatnonzero(classes < 0)
    if not bad.size:
        return
    sentence, position, tag, side = _where_tag(corpus, bad)
    allowed = STRICT_SCHEMES[scheme].allowed
    raise InvalidTagError(
        f"{side} tag {tag!r} at sentence {sentence}, word {position} (0-based) does not fit the {scheme} scheme",
        sentence=sentence, position=position, tag=tag, side=side,
        expected=f"'O' or a tag starting with one of {', '.join(p for p in allowed if p != 'O')}",
        found=repr(tag), fix="use the default (lenient) mode, or pass the scheme the tags are written in",
    )


# ---------------------------------------------------------------------------------------------------
# Chunking: (start, end, type) arrays of entities, in laid-out corpus positions, end-exclusive
# ---------------------------------------------------------------------------------------------------
EMPTY = np.zeros(0, dtype=np.int64)


@lru_cache(maxsize=None)
def _rule_table(rules: tuple) -> np.ndarray:
    """Compile rules into one lookup table over (previous class, class, same type): applying a whole
    rule set to the corpus is then a single indexing operation."""
    n = len(_CLASSES)
    table = np.zeros((n, n, 2), dtype=bool)
    for prev_prefixes, prefixes, condition in rules:
        same = {ANY: [0, 1], SAME: [1], DIFF: [0]}[condition]
        table[np.ix_([_CLASS_ID[c] for c in prev_prefixes], [_CLASS_ID[c] for c in prefixes], same)] = True
    return table.ravel()


def _transitions(classes: np.ndarray, types: np.ndarray, first_type: int) -> np.ndarray:
    """Each position's (previous class, class, same type as the previous) as one index into a rule table.

    Before the corpus comes an ``O`` whose type is ``first_type``.
    """
    prev_classes = _shifted(classes, _O).astype(np.intp)
    same_type = _shifted(types, first_type) == types
    return (prev_classes * len(_CLASSES) + classes) * 2 + same_type


def _shifted(values: np.ndarray, first) -> np.ndarray:
    """``values`` moved one place right: the value before each position (``first`` before the start)."""
    before = np.empty_like(values)
    if values.size:
        before[0] = first
        before[1:] = values[:-1]
    return before


def _default_chunks(classes: np.ndarray, types: np.ndarray):
    """seqeval's get_entities on the whole corpus at once.

    An entity ends before position i when end_of_chunk(i-1, i) holds, and began at the last position
    j < i where start_of_chunk held. seqeval never resets that start, so on ill-formed input (e.g. a
    tag with an unknown prefix after ``E-X``) an entity can reuse an old start; keeping the same rule
    keeps those cases identical too.
    """
    if not classes.size:
        return EMPTY, EMPTY, EMPTY
    # before the corpus seqeval's "previous type" is '', which no tag has: -1 plays that part
    types = types.astype(np.int64)
    at = _transitions(classes, types, -1)
    ends = np.flatnonzero(_rule_table(_DEFAULT_END)[at])
    starts = np.flatnonzero(_rule_table(_DEFAULT_START)[at])
    prev_types = _shifted(types, -1)
    if not starts.size:
        return np.zeros(ends.size, dtype=np.int64), ends, prev_types[ends]
    last_start = np.searchsorted(starts, ends, side="left") - 1
    begins = np.where(last_start >= 0, starts[np.maximum(last_start, 0)], 0)
    return begins, ends, prev_types[ends]


def _strict_chunks(classes: np.ndarray, types: np.ndarray, rules: _StrictRules):
    """seqeval.scheme.Tokens.entities on the whole corpus at once.

    An entity starts where a start pattern holds, runs while inside patterns hold, and counts only if
    an end pattern holds where the run stops. Start and inside patterns never hold at the same place,
    so every start is visited exactly as seqeval's loop visits it. Rules that look at an ``O`` never
    look at its type, so the type given to the place before the corpus does not matter.
    """
    if not classes.size:
        return EMPTY, EMPTY, EMPTY
    at = _transitions(classes, types, -1)
    starts = np.flatnonzero(_rule_table(rules.start)[at])
    not_inside = np.flatnonzero(~_rule_table(rules.inside)[at])
    # every sentence is followed by an "O", never inside an entity: a stop exists after every start
    stops = not_inside[np.searchsorted(not_inside, starts, side="right")]
    closed = _rule_table(rules.end)[at[stops]]
    starts = starts[closed]
    return starts, stops[closed], types[starts].astype(np.int64)


def _plain_chunks(classes: np.ndarray, types: np.ndarray):
    """Each non-``O`` tag is a one-word entity of its own type."""
    at = np.flatnonzero(classes != _O)
    return at, at + 1, types[at].astype(np.int64)
