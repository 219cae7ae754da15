"""Raw text -> sentences, as word ranges over the words the word splitter found.

A model trained on sentences read alone (``--context sentence``, the default) tags a long text best one
sentence at a time: handed a whole CoNLL-2003 document as one text it lost 4.8 F1 points
(docs/benchmarks.md, "Long raw texts"). So ``predict`` cuts raw text into sentences first; a model
trained with document context reads them with the rest of their text. Entities never cross a cut.

The rules are deliberately few, so that they are predictable:

1. a line break ends a sentence, unless the next line starts with a lower-case letter (text wrapped
   inside a sentence); a blank line always does;
2. ``.``, ``!`` or ``?`` (and the closing quotes or brackets right after it) end a sentence when
   whitespace and a word that starts with an upper-case or caseless letter, a digit or an opening quote
   follow, except after an abbreviation (``Mr.``, ``Jan.``, a single-letter initial such as ``J.``). A word that
   carries the mark itself (``whitespace`` or ``model`` splitters: ``Bob.``) counts as well, unless it is
   an abbreviation or has an inner dot (``U.S.``);
3. the full-width marks ``。！？`` end a sentence wherever they stand (Chinese and Japanese put no space
   after them).

With the ``chars`` splitter a ``.`` always follows a one-letter word, so only rules 1 and 3 cut.
"""
from __future__ import annotations

from typing import Sequence

FINAL = {".", "!", "?", "…"}
WIDE_FINAL = {"。", "！", "？"}
CLOSING = {'"', "'", "”", "’", ")", "]", "»", "」", "』"}
OPENING = {'"', "'", "“", "‘", "(", "[", "«"}
# words that a dot follows without ending the sentence (the word splitter cuts "Mr." into "Mr" + ".")
ABBREVIATIONS = frozenset("""mr mrs ms dr prof st jr sr gen col lt sgt capt cmdr gov sen rep rev hon pres
    inc corp co ltd plc bros no nos vs etc approx dept est fig jan feb mar apr jun jul aug sep sept oct nov dec
    mt ft ave blvd rd""".split())


def _not_abbreviation(stem: str) -> bool:
    return stem.lower() not in ABBREVIATIONS and not (len(stem) == 1 and stem.isalpha())


def _ends_sentence(words: Sequence[str], index: int) -> bool:
    """Whether ``words[index]`` ends a sentence if the text breaks after it: a sentence-final mark (not an
    abbreviation's dot), or a word that carries one (``Bob.``, not ``U.S.``)."""
    word = words[index]
    if word in FINAL:
        return word != "." or index == 0 or _not_abbreviation(words[index - 1])
    if len(word) > 1 and word[-1] in "!?…":
        return True
    stem = word[:-1]
    return len(word) > 1 and word[-1] == "." and "." not in stem and _not_abbreviation(stem)


def _starts_sentence(word: str) -> bool:
    # an upper-case letter, a letter of a script without case (Chinese, Arabic, Thai...), a digit, a quote
    return bool(word) and (word[0].isalnum() and not word[0].islower() or word in OPENING)


def sentence_ranges(text: str, words: Sequence[str], offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[start, end)`` word ranges of the sentences of ``text`` (whose ``words`` sit at ``offsets``);
    they tile the words in order. A text without words is one empty sentence."""
    if not words:
        return [(0, 0)]
    cuts = [0]
    final = False  # the previous word ends a sentence if the text breaks there (a mark, or its closing quote)
    for index in range(1, len(words)):
        previous, word = words[index - 1], words[index]
        joined = index > 1 and offsets[index - 2][1] == offsets[index - 1][0]
        final = _ends_sentence(words, index - 1) or (previous in CLOSING and final and joined)
        gap = text[offsets[index - 1][1]:offsets[index][0]]
        wide = previous in WIDE_FINAL and word not in CLOSING
        if wide or "\n" in gap and (gap.count("\n") > 1 or not word[:1].islower()):
            cuts.append(index)
        elif final and gap and _starts_sentence(word):
            cuts.append(index)
    cuts.append(len(words))
    return list(zip(cuts, cuts[1:]))
