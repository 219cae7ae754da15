"""The Tagger's entry points refuse the wrong shape of input with a DataError that names it, instead
of tagging a string one character at a time or passing on the tokenizer's TypeError."""
from __future__ import annotations

import pytest

from tokentune.errors import DataError
from tokentune.inference import Tagger


@pytest.fixture(scope="module")
def tagger(tiny_model):
    return Tagger.from_pretrained(tiny_model.output_dir)


@pytest.mark.parametrize("call, argument, message", [
    ("predict_tokens", "Angela Merkel", r"predict_tokens: expected a list of words, found str 'Angela Merkel'"),
    ("predict_tokens", None, r"predict_tokens: expected a list of words, found NoneType None"),
    ("predict_tokens", ["Angela", 3], r"word 1 of sentence 0 is not a str, found int 3"),
    ("predict_token_batches", [["ok"], "Angela Merkel"], r"sentence 1 must be a list of words, found str"),
    ("predict_token_batches", "Angela Merkel", r"expected a list of sentences \(lists of words\), found a single string"),
    ("predict_token_batches", [["a"], ["b", None]], r"word 1 of sentence 1 is not a str, found NoneType None"),
    ("predict_text", None, r"predict_text: a text must be a str, found NoneType None"),
    ("predict_text", b"bytes", r"predict_text: a text must be a str, found bytes b'bytes'"),
    ("predict_text", ["Angela", "Merkel"], r"a text must be a str, found list.*pre-tokenised words go to predict_tokens"),
    ("predict_texts", "Angela Merkel", r"predict_texts: expected a list of texts, found a single string. "
                                       r"Fix: pass \[text\], or call predict_text\(text\)"),
    ("predict_texts", ["fine", 5], r"predict_texts: item 1: a text must be a str, found int 5"),
])
def test_wrong_input_is_a_located_data_error(tagger, call, argument, message):
    with pytest.raises(DataError, match=message):
        getattr(tagger, call)(argument)


def test_right_input_still_tags(tagger):
    words = ["Alice", "met", "Bob"]
    assert tagger.predict_tokens(words).words == words
    assert tagger.predict_tokens(("Alice", "met")).words == ["Alice", "met"]  # any sequence of str
    assert [p.words for p in tagger.predict_token_batches([words, ["x"]])] == [words, ["x"]]
    assert tagger.predict_texts(iter(["Alice met Bob", ""])) == [tagger.predict_text("Alice met Bob"), []]
