"""Raw text is cut into sentences before a sentence-context model reads it; entities never cross a cut."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentune.inference import Tagger
from tokentune.sentences import sentence_ranges
from tokentune.words import split_words

from conftest import PEOPLE, PLACES

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def sentences_of(text: str) -> list[str]:
    words, offsets = split_words(text)
    return [" ".join(words[a:b]) for a, b in sentence_ranges(text, words, offsets)]


@pytest.mark.parametrize("text, expected", [
    ("Alice met Bob. He left! Did he? Yes.", ["Alice met Bob .", "He left !", "Did he ?", "Yes ."]),
    ('He said: "Fine!" Then he left.', ['He said : " Fine ! "', "Then he left ."]),
    ("Mr. Smith came on Jan. 5. J. R. Ewing did not.", ["Mr . Smith came on Jan . 5 .", "J . R . Ewing did not ."]),
    ("The U.S. economy grew 3.5 percent.", ["The U.S. economy grew 3.5 percent ."]),
    ("first line\nSecond line\nthird, wrapped\n\nnew paragraph", ["first line", "Second line third , wrapped",
                                                                   "new paragraph"]),
    ("it ends. and goes on", ["it ends . and goes on"]),  # no capital after the dot: one sentence
    ("", [""]),
])
def test_sentence_rules(text, expected):
    assert sentences_of(text) == expected


def test_other_splitters_cut_too():
    from tokentune.words import get_splitter

    text = "Mr. Smith saw the U.S. team. He left! 東京に行った。大阪も。"
    words, offsets = get_splitter("whitespace", None)(text)
    assert [" ".join(words[a:b]) for a, b in sentence_ranges(text, words, offsets)] == [
        "Mr. Smith saw the U.S. team.", "He left!", "東京に行った。大阪も。"]
    chars = "東京に行った。「大阪」も。"
    words, offsets = get_splitter("chars", None)(chars)
    assert ["".join(words[a:b]) for a, b in sentence_ranges(chars, words, offsets)] == ["東京に行った。", "「大阪」も。"]


def test_empty_words_from_a_custom_splitter_do_not_break_the_cut():
    assert sentence_ranges("Bob. x", ["Bob", ".", ""], [(0, 3), (3, 4), (5, 5)]) == [(0, 3)]
    assert sentence_ranges("a\n", ["a", ""], [(0, 1), (2, 2)]) == [(0, 1), (1, 2)]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab A.!?\n\"'()")), max_size=60))
def test_sentences_tile_the_words_in_order(text):
    words, offsets = split_words(text)
    ranges = sentence_ranges(text, words, offsets)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(words)
    assert all(a < b for a, b in ranges) or not words
    assert all(prev[1] == nxt[0] for prev, nxt in zip(ranges, ranges[1:]))


@pytest.fixture(scope="module")
def tokenizer(tiny_base_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base_model)


def _context_runner(table, seen):
    """Scores that depend on the token and on how many tokens its window holds, so that reading a
    sentence alone or inside a longer window gives different answers."""
    def run(ids, mask):
        seen.append(mask.sum(axis=1).tolist())
        scale = mask.sum(axis=1, keepdims=True)[..., None].astype(np.float32)
        probs = table[ids] ** (1.0 + scale / 10)
        return probs / probs.sum(axis=-1, keepdims=True)
    return run


def test_a_sentence_model_reads_each_sentence_of_a_text_alone(tokenizer):
    rng = np.random.default_rng(0)
    table = rng.dirichlet(np.ones(len(LABELS)), size=len(tokenizer)).astype(np.float32)
    seen: list = []
    tagger = Tagger(_context_runner(table, seen), tokenizer, LABELS, max_length=64)
    first, second = f"{PEOPLE[0]} met {PEOPLE[1]} in {PLACES[0]} .", f"{PLACES[1]} and {PEOPLE[2]} said ."
    text = f"{first} {second}"
    together = tagger.predict_text(text)
    alone = tagger.predict_text(first) + [replace(e, start=e.start + len(first) + 1, end=e.end + len(first) + 1)
                                          for e in tagger.predict_text(second)]
    assert together == alone
    assert max(max(lengths) for lengths in seen) <= len(split_words(first)[0]) + 2  # never the whole text at once
    whole = Tagger(_context_runner(table, []), tokenizer, LABELS, max_length=64, split_sentences=False)
    assert whole.predict_text(text) != together  # the same text read as one sequence is a different reading


def test_a_document_model_reads_the_sentences_of_a_text_together(tokenizer):
    rng = np.random.default_rng(1)
    table = rng.dirichlet(np.ones(len(LABELS)), size=len(tokenizer)).astype(np.float32)
    text = f"{PEOPLE[0]} met {PEOPLE[1]} . {PLACES[1]} and {PEOPLE[2]} said ."
    for context_size in (0, 4):
        seen: list = []
        tagger = Tagger(_context_runner(table, seen), tokenizer, LABELS, max_length=64, context="document",
                        context_size=context_size)
        entities = tagger.predict_text(text)
        assert all(e.end <= text.index(" . ") or e.start > text.index(" . ") for e in entities)  # none crosses
        assert max(max(lengths) for lengths in seen) > 6  # a window held more than its own sentence


def test_split_sentences_and_context_size_are_checked(tokenizer):
    from tokentune.errors import ConfigError

    with pytest.raises(ConfigError, match="split_sentences must be True or False, found 'no'"):
        Tagger(lambda ids, mask: None, tokenizer, LABELS, max_length=64, split_sentences="no")
    with pytest.raises(ConfigError, match="--context-size must be a whole number of at least 0, found -1"):
        Tagger(lambda ids, mask: None, tokenizer, LABELS, max_length=64, context_size=-1)


@pytest.mark.parametrize("saved, message", [({"max_length": -1}, "max_length must be a whole number of at least 3"),
                                            ({"max_length": "48"}, "max_length must be a whole number"),
                                            ({"context": "document", "context_size": True}, "context_size must be")])
def test_bad_saved_window_settings_are_located_errors(tiny_model, tmp_path, saved, message):
    import json
    import shutil

    from tokentune.errors import ConfigError

    model = tmp_path / "model"
    shutil.copytree(tiny_model.output_dir, model)
    config = json.loads((model / "tokentune_config.json").read_text())
    (model / "tokentune_config.json").write_text(json.dumps({**config, **saved}))
    with pytest.raises(ConfigError, match=f"tokentune_config.json: {message}"):
        Tagger.from_pretrained(str(model))
