"""The word splitter: CoNLL-like rules, combining marks kept inside words, offsets always exact."""
from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentune.words import mark_class, split_words


def exact(text: str) -> list[str]:
    words, offsets = split_words(text)
    assert [text[a:b] for a, b in offsets] == words
    return words


def test_conll_like_rules():
    assert exact("U.S. e.g. 3.5 1,000 German-born Germany's don't (ok)!") == [
        "U.S.", "e.g.", "3.5", "1,000", "German-born", "Germany", "'s", "don", "'t", "(", "ok", ")", "!"]


@pytest.mark.parametrize("composed", ["Zoé", "México", "Ñandú", "Straße", "Ångström-based", "café's", "É.U."])
def test_decomposed_words_split_like_composed_ones(composed):
    text = f"{composed} visited Zoë in México."
    nfd = unicodedata.normalize("NFD", text)
    assert nfd != text or composed == "Straße"
    assert [unicodedata.normalize("NFC", w) for w in exact(nfd)] == exact(text)


def test_the_examples_of_the_issue():
    assert exact("Zoe\u0301 lives in Me\u0301xico") == ["Zoe\u0301", "lives", "in", "Me\u0301xico"]
    assert exact("हिन्दी भाषा") == ["हिन्दी", "भाषा"]  # spacing marks (Mc) of Devanagari too
    assert exact("😀\ufe0f!") == ["😀\ufe0f", "!"]  # a variation selector stays with its emoji
    assert exact("\u0301abc") == ["\u0301", "abc"]  # a mark with nothing before it is a word of its own


def test_mark_class_covers_every_combining_mark():
    marks = re.compile(f"[{mark_class()}]")
    for code in range(0x110000):
        char = chr(code)
        assert bool(marks.fullmatch(char)) == (unicodedata.category(char)[0] == "M"), hex(code)


TRICKY = st.sampled_from(["\u0301", "\u0308", "\u093e", "\u20dd", "\ufe0f", "\u200d", "\u202e", "\x00", "'", "’",
                          "-", ".", ",", "s", "t", "1", "a", "É", " ", "\t", "\n", "\u2028", "😀", "\ud800"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(TRICKY, st.characters()), max_size=40).map("".join))
def test_offsets_are_exact_and_marks_never_start_a_word_after_a_character(text):
    words = exact(text)
    _, offsets = split_words(text)
    assert "".join(words) == "".join(c for c in text if not c.isspace())  # nothing but whitespace is dropped
    for start, _ in offsets:
        if start and not text[start - 1].isspace():
            assert unicodedata.category(text[start])[0] != "M", (text, start)
