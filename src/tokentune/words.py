"""The word splitter: raw text -> words with character offsets into that text.

Rules, in order of preference at each position (CoNLL-2003-like tokenisation, so that a model trained
on pre-tokenised corpora sees the same kind of words at prediction time):

1. an abbreviation of single letters with dots: ``U.S.``, ``e.g.``
2. a number with inner ``.`` or ``,``: ``3.5``, ``1,000``
3. a word: letters/digits/underscore, with inner hyphens or apostrophes-less joins: ``German-born``
4. a clitic: ``'s``, ``'t``, ``'re`` ... after a word (``Germany's`` -> ``Germany`` + ``'s``)
5. any other single non-space character (punctuation, symbols, emoji)

Combining marks (Unicode categories Mn, Mc, Me) stay with the character before them, so text in
decomposed form (NFD: ``Zoe\u0301``, Devanagari vowel signs) splits like its composed form.
Offsets are ``(start, end)`` end-exclusive, so ``text[start:end] == word`` always holds.
"""
from __future__ import annotations

import re
import unicodedata

# where Unicode puts combining marks: the first two planes and the variation selectors supplement
_MARK_PLANES = (range(0x20000), range(0xE0000, 0xE1000))


def mark_class() -> str:
    """A regex character class body with every combining mark (category M*) of this Python's Unicode."""
    ranges: list[list[int]] = []
    for block in _MARK_PLANES:
        for code in block:
            if unicodedata.category(chr(code))[0] == "M":
                if ranges and ranges[-1][1] == code - 1:
                    ranges[-1][1] = code
                else:
                    ranges.append([code, code])
    return "".join(f"\\U{a:08x}" + (f"-\\U{b:08x}" if b > a else "") for a, b in ranges)


_MARKS = mark_class()
_M = f"[{_MARKS}]"  # a combining mark: it belongs to the character before it
WORD_PATTERN = re.compile(
    rf"(?:[^\W\d_]{_M}*\.){{2,}}"  # U.S. e.g.
    rf"|\d+(?:{_M}+\d*)*(?:[.,]\d+(?:{_M}+\d*)*)+"  # 3.5 1,000
    rf"|\w+(?:{_M}+\w*)*(?:-\w+(?:{_M}+\w*)*)*"  # words, German-born
    rf"|['’](?:s|S|t|re|ve|ll|d|m)(?![\w{_MARKS}])"  # clitics
    rf"|\S{_M}*",  # anything else, one character (and its marks) at a time
)


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Split ``text`` into words and their ``(start, end)`` character offsets."""
    words: list[str] = []
    offsets: list[tuple[int, int]] = []
    for match in WORD_PATTERN.finditer(text):
        words.append(match.group())
        offsets.append(match.span())
    return words, offsets
