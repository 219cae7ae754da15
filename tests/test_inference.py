"""Tagger: long documents through windows, aggregation and decoding against hand-computed cases, and the
vectorised hot path (windows, batched Viterbi, span cutting) against the reference implementations."""
from __future__ import annotations

import random

import numpy as np
import pytest

from tokentune.errors import ConfigError
from tokentune.inference import Entity, Tagger

from conftest import FILLER, assert_same_entities


def _document(words_total: int = 5000, seed: int = 0) -> tuple[str, set[tuple[str, int, int, str]]]:
    """Filler text with entities at the start, in the middle and at the end, and their char spans."""
    rng = random.Random(seed)
    filler = [w for w in FILLER if w != "."]
    placed = {0: [("Alice", "PER"), ("Smith", "PER")], words_total // 2: [("Berlin", "LOC")],
              words_total - 3: [("Acme", "ORG")]}
    words, labels = [], []
    while len(words) < words_total:
        entity = placed.get(len(words))
        if entity:
            words += [w for w, _ in entity]
            labels += [label for _, label in entity]
        else:
            words.append(rng.choice(filler))
            labels.append(None)
    text, expected, starts = "", set(), []
    for word in words:
        starts.append(len(text))
        text += word + " "
    text = text[:-1]
    i = 0
    while i < len(words):  # consecutive words with the same label are one entity
        if labels[i] is None:
            i += 1
            continue
        j = i
        while j + 1 < len(words) and labels[j + 1] == labels[i]:
            j += 1
        start, end = starts[i], starts[j] + len(words[j])
        expected.add((labels[i], start, end, text[start:end]))
        i = j + 1
    return text, expected


@pytest.fixture(scope="module")
def model_dir(tiny_model):
    return tiny_model.output_dir


OPTION_SETS = [{}, {"stride": 8}, {"stride": 0}, {"aggregation": "average"}, {"aggregation": "max"},
               {"decoding": "argmax"}, {"batch_size": 1}, {"max_length": 16}]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_long_document_entities_at_start_middle_and_end(model_dir, options):
    text, expected = _document()
    tagger = Tagger.from_pretrained(model_dir, **options)
    assert tagger.max_length <= 64  # 5,000 words need ~100 windows: the test is about the windows
    found = {(e.label, e.start, e.end, e.text) for e in tagger.predict_text(text)}
    assert found == expected


def test_transformers_pipeline_without_stride_loses_the_long_document(model_dir):
    """The plain pipeline (no stride) cuts the document at the model's 64 positions in silence and
    finds only the first entity (older versions raised on position ids past the table instead).
    Ours finds all three, with the same character offsets the text has."""
    from transformers import pipeline

    text, expected = _document()
    pipe = pipeline("token-classification", model=model_dir, aggregation_strategy="first", device="cpu")
    try:
        found = {(e["entity_group"], e["start"], e["end"]) for e in pipe(text)}
    except (IndexError, RuntimeError, ValueError):
        found = None
    if found is not None:
        later = {(label, s, e) for label, s, e, _ in expected if s > 100}
        assert later and not later & found
    ours = {(e.label, e.start, e.end, e.text) for e in Tagger.from_pretrained(model_dir).predict_text(text)}
    assert ours == expected


def test_many_texts_at_once_match_one_at_a_time(model_dir):
    tagger = Tagger.from_pretrained(model_dir, batch_size=4)
    texts = ["Alice met Bob in Paris .", "", "   ", "Globex said today", _document(300, seed=3)[0], "Rome"]
    together = tagger.predict_texts(texts)
    assert_same_entities(together, [tagger.predict_text(t) for t in texts])
    assert together[1] == [] and together[2] == []
    for text, entities in zip(texts, together):
        assert all(text[e.start:e.end] == e.text for e in entities)


def test_empty_inputs(model_dir):
    tagger = Tagger.from_pretrained(model_dir)
    assert tagger.predict_token_batches([]) == [] and tagger.predict_texts([]) == []
    empty, alice = tagger.predict_token_batches([[], ["Alice"]])
    assert (empty.tags, empty.spans, alice.tags) == ([], [], ["B-PER"])
    assert tagger.word_probabilities([[]])[0].shape == (0, len(tagger.labels))
    assert tagger.predict_text("") == []


# -- aggregation and decoding: hand-computed cases -------------------------------------------------
LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def _table_runner(tokenizer, table: dict[str, list[float]]):
    """A model whose output at each token depends only on the token: ``table`` piece -> probabilities."""
    vocab = tokenizer.get_vocab()
    lookup = np.full((len(vocab), len(LABELS)), 1 / len(LABELS), dtype=np.float32)
    for piece, probs in table.items():
        lookup[vocab[piece]] = probs

    def run(ids, mask):
        return lookup[ids]

    return run


@pytest.fixture(scope="module")
def tokenizer(tiny_base_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base_model)


PIECES = {"Bob": [0.1, 0.1, 0.1, 0.6, 0.1], "Paris": [0.5, 0.3, 0.1, 0.05, 0.05],
          "##a": [0.1, 0.7, 0.1, 0.05, 0.05], "##b": [0.2, 0.2, 0.5, 0.05, 0.05]}


@pytest.mark.parametrize("aggregation, expected, tag", [
    ("first", [0.5, 0.3, 0.1, 0.05, 0.05], "O"),  # the first piece, "Paris"
    ("average", [0.8 / 3, 1.2 / 3, 0.7 / 3, 0.05, 0.05], "B-LOC"),  # mean of the three pieces
    ("max", [0.1, 0.7, 0.1, 0.05, 0.05], "B-LOC"),  # "##a": its best label (0.7) beats 0.5 and 0.5
])
def test_aggregation_hand_computed(tokenizer, aggregation, expected, tag):
    words = ["Bob", "Parisab"]
    assert tokenizer.tokenize("Parisab") == ["Paris", "##a", "##b"]
    tagger = Tagger(_table_runner(tokenizer, PIECES), tokenizer, LABELS, max_length=64, aggregation=aggregation)
    probs = tagger.word_probabilities([words])[0]
    np.testing.assert_allclose(probs[0], PIECES["Bob"], rtol=1e-6)
    np.testing.assert_allclose(probs[1], expected, rtol=1e-6)
    assert tagger.predict_tokens(words).tags == ["B-PER", tag]


def test_aggregation_across_window_boundaries(tokenizer):
    """Multi-piece words near window edges are read whole from their owner window, in every mode."""
    words = (["Parisab", "Bob", "met"] * 20)[:50]
    for aggregation in ("first", "average", "max"):
        short = Tagger(_table_runner(tokenizer, PIECES), tokenizer, LABELS, max_length=12, stride=4,
                       aggregation=aggregation)
        whole = Tagger(_table_runner(tokenizer, PIECES), tokenizer, LABELS, max_length=512, aggregation=aggregation)
        np.testing.assert_allclose(short.word_probabilities([words])[0], whole.word_probabilities([words])[0])


def test_constrained_viterbi_versus_argmax_hand_computed(tokenizer):
    """O then I-PER is invalid in IOB2. Paths: O O = .6*.4 = .24, B I = .3*.5 = .15, B O = .12 ...
    so Viterbi says no entity, while argmax reads I-PER after O as a new PER entity."""
    labels = ["O", "B-PER", "I-PER"]
    lookup = {"met": [0.6, 0.3, 0.1], "in": [0.4, 0.1, 0.5]}
    vocab = tokenizer.get_vocab()
    table = np.full((len(vocab), 3), 1 / 3, dtype=np.float32)
    for piece, probs in lookup.items():
        table[vocab[piece]] = probs
    runner = lambda ids, mask: table[ids]  # noqa: E731
    best = Tagger(runner, tokenizer, labels, max_length=64).predict_tokens(["met", "in"])
    assert best.tags == ["O", "O"] and best.spans == []
    plain = Tagger(runner, tokenizer, labels, max_length=64, decoding="argmax").predict_tokens(["met", "in"])
    assert plain.tags == ["O", "I-PER"] and plain.spans == [("PER", 1, 2)]
    assert plain.scores == pytest.approx([0.5])


def test_entity_score_is_the_mean_of_its_words(tokenizer):
    tagger = Tagger(_table_runner(tokenizer, {"Bob": [0.1, 0.1, 0.1, 0.6, 0.1], "Smith": [0.1, 0.1, 0.1, 0.1, 0.6]}),
                    tokenizer, LABELS, max_length=64)
    entities = tagger.predict_text("met Bob Smith")
    assert entities == [Entity("PER", 4, 13, "Bob Smith", pytest.approx(0.6))]


def test_bad_options_are_config_errors(tokenizer):
    with pytest.raises(ConfigError):
        Tagger(lambda i, m: i, tokenizer, LABELS, max_length=64, aggregation="mean")
    with pytest.raises(ConfigError):
        Tagger(lambda i, m: i, tokenizer, LABELS, max_length=64, decoding="beam")
    with pytest.raises(ConfigError):
        Tagger(lambda i, m: i, tokenizer, LABELS, max_length=64, batch_size=0)
