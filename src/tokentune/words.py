"""The word splitter: raw text -> words with character offsets into that text.

Rules, in order of preference at each position (CoNLL-2003-like tokenisation, so that a model trained
on pre-tokenised corpora sees the same kind of words at prediction time):

1. an abbreviation of single letters with dots: ``U.S.``, ``e.g.``
2. a number with inner ``.`` or ``,``: ``3.5``, ``1,000``
3. a word: letters/digits/underscore, with inner hyphens or apostrophes-less joins: ``German-born``
4. a clitic: ``'s``, ``'t``, ``'re`` ... after a word (``Germany's`` -> ``Germany`` + ``'s``)
5. any other single non-space character (punctuation, symbols, emoji)

Offsets are ``(start, end)`` end-exclusive, so ``text[start:end] == word`` always holds.
"""
from __future__ import annotations

import re

WORD_PATTERN = re.compile(
    r"(?:[^\W\d_]\.){2,}"  # U.S. e.g.
    r"|\d+(?:[.,]\d+)+"  # 3.5 1,000
    r"|\w+(?:-\w+)*"  # words, German-born
    r"|['’](?:s|S|t|re|ve|ll|d|m)\b"  # clitics
    r"|\S",  # anything else, one character at a time
)


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Split ``text`` into words and their ``(start, end)`` character offsets."""
    words: list[str] = []
    offsets: list[tuple[int, int]] = []
    for match in WORD_PATTERN.finditer(text):
        words.append(match.group())
        offsets.append(match.span())
    return words, offsets
