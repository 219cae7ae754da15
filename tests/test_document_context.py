"""Document context: CoNLL documents are read, windows over documents label each word once and never
cross a document, and the scores stay per sentence."""
from __future__ import annotations

import numpy as np
import pytest

from tokentune.data import read_corpus
from tokentune.evaluation import evaluate_corpus
from tokentune.inference import Tagger
from tokentune.metrics import score_tags
from tokentune.schemes import spans_to_tags
from tokentune.windows import IGNORE, WindowEncoder

from conftest import ORGS, PEOPLE, PLACES

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


@pytest.fixture(scope="module")
def tokenizer(tiny_base_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base_model)


def test_conll_documents_follow_docstart(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("Alice B-PER\n\nBob B-PER\n\n-DOCSTART- O\n\nParis B-LOC\n\n-DOCSTART- O\n\n"
                    "Rome B-LOC\n\nOslo B-LOC\n\nAcme B-ORG\n")
    corpus = read_corpus(path)
    assert corpus.document_starts == [0, 2, 3]
    assert corpus.documents() == [(0, 2), (2, 3), (3, 6)]
    assert corpus.select(range(4)).documents() == [(0, 2), (2, 3), (3, 4)]  # the first N sentences
    assert corpus.select([5, 0]).document_starts is None  # a sample has no documents left
    plain = tmp_path / "p.conll"
    plain.write_text("Alice B-PER\n\nBob B-PER\n")
    assert read_corpus(plain).document_starts is None and read_corpus(plain).documents() == [(0, 1), (1, 2)]


def _documents():
    """Three documents whose words come from disjoint vocabularies, so a window's words say its document."""
    rng = np.random.default_rng(0)
    vocabularies = [PEOPLE, PLACES, ORGS]
    sentences, starts = [], []
    for vocabulary in vocabularies:
        starts.append(len(sentences))
        for _ in range(int(rng.integers(3, 9))):
            sentences.append([str(w) for w in rng.choice(vocabulary, size=int(rng.integers(1, 12)))])
    return sentences, starts, vocabularies


@pytest.mark.parametrize("context_size", [0, 4])
@pytest.mark.parametrize("max_length", [6, 12, 40])
def test_windows_over_documents_never_cross_one_and_read_each_word_once(tokenizer, max_length, context_size):
    sentences, starts, vocabularies = _documents()
    documents = list(zip(starts, [*starts[1:], len(sentences)]))
    id_sets = [set(tokenizer.convert_tokens_to_ids(v)) for v in vocabularies]
    seen: list[np.ndarray] = []

    def runner(ids, mask):
        seen.append(ids[mask == 1])  # flattens the batch; checked row by row below
        for row, row_mask in zip(ids, mask):
            words = set(row[row_mask == 1].tolist()) - set(tokenizer.all_special_ids)
            assert sum(bool(words & ids_) for ids_ in id_sets) == 1, "a window crosses a document"
        return np.full(ids.shape + (len(LABELS),), 1 / len(LABELS), dtype=np.float32)

    tagger = Tagger(runner, tokenizer, LABELS, max_length=max_length, stride=3, context_size=context_size)
    predictions = tagger.predict_token_batches(sentences, documents)
    assert [p.words for p in predictions] == sentences and seen
    if context_size:  # each sentence its own window, widened: training labels only the words it owns
        encoder = WindowEncoder(tokenizer, max_length=max_length, stride=3)
        features = encoder.features(sentences, [[1] * len(s) for s in sentences], owned_only=True,
                                    documents=documents, context=context_size)
        assert sum(label != IGNORE for f in features for label in f["labels"]) == sum(len(s) for s in sentences)
        assert max(len(f["input_ids"]) for f in features) <= max_length
        return
    # training features over the same documents: windows do not overlap, every word labelled once
    encoder = WindowEncoder(tokenizer, max_length=max_length, stride=0)
    units = [[w for s in sentences[a:b] for w in s] for a, b in documents]
    features = encoder.features(units, [[1] * len(u) for u in units], owned_only=False)
    assert sum(label != IGNORE for f in features for label in f["labels"]) == sum(len(s) for s in sentences)


def _hand_pieces(counts: list[int]):
    from tokentune.windows import Pieces

    word_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    word = np.repeat(np.arange(len(counts)), counts)
    return Pieces(np.zeros(len(word), dtype=np.int64), np.arange(len(word)) == word_start[word], word, word_start)


@pytest.mark.parametrize("max_length, expected", [
    (22, [(0, 6), (3, 8), (4, 10), (10, 11)]),  # room enough: up to 2 pieces each side, whole words
    (7, [(0, 5), (3, 8), (5, 10), (10, 11)]),  # 5 pieces a window: a short side leaves its room to the other
])
def test_context_widens_each_sentence_by_whole_words_inside_its_document(tokenizer, max_length, expected):
    from tokentune.windows import document_offsets, sentence_offsets

    # words of 1, 2, 1 | 1, 1 | 2, 1, 1 pieces in document 0, then one word of 1 piece in document 1
    pieces = _hand_pieces([1, 2, 1, 1, 1, 2, 1, 1, 1])
    offsets = sentence_offsets([["a"] * 3, ["a"] * 2, ["a"] * 3, ["a"]])
    encoder = WindowEncoder(tokenizer, max_length=max_length, stride=0)
    windows = encoder.with_context(pieces, encoder.windows(pieces, offsets),
                                   document_offsets(offsets, [(0, 3), (3, 4)]), context=2)
    assert list(zip(windows.lo.tolist(), windows.hi.tolist())) == expected
    assert list(zip(windows.own_lo.tolist(), windows.own_hi.tolist())) == [(0, 4), (4, 6), (6, 10), (10, 11)]


def test_an_empty_sentence_at_a_document_end_stays_empty(tokenizer):
    encoder = WindowEncoder(tokenizer, max_length=40, stride=0)
    features = encoder.features([["Alice", "met"], [], ["Paris", "Bob"]], [[1, 0], [], [3, 1]], owned_only=True,
                                documents=[(0, 2), (2, 3)], context=4)
    assert [tokenizer.convert_ids_to_tokens(f["input_ids"]) for f in features] == [
        ["[CLS]", "Alice", "met", "[SEP]"], ["[CLS]", "[SEP]"], ["[CLS]", "Paris", "Bob", "[SEP]"]]


def test_one_sentence_documents_are_sentence_context(tokenizer):
    sentences, _, _ = _documents()
    rng = np.random.default_rng(1)
    table = rng.dirichlet(np.ones(len(LABELS)), size=len(tokenizer)).astype(np.float32)

    def runner(ids, mask):  # depends on the token only: the same word gets the same scores anywhere
        return table[ids]

    tagger = Tagger(runner, tokenizer, LABELS, max_length=64)
    alone = tagger.predict_token_batches(sentences)
    as_documents = tagger.predict_token_batches(sentences, [(i, i + 1) for i in range(len(sentences))])
    assert [p.tags for p in alone] == [p.tags for p in as_documents]


def test_document_scores_are_sentence_scores_of_the_same_predictions(tiny_model, tmp_path):
    """evaluate_corpus with document context = score_tags on its predictions, sentence by sentence."""
    path = tmp_path / "docs.conll"
    lines = []
    for d in range(3):
        lines += ["-DOCSTART- O", ""]
        for s in range(4):
            lines += [f"{PEOPLE[(d + s) % 5]} B-PER", "met O", f"{PLACES[s % 5]} B-LOC", ""]
    path.write_text("\n".join(lines) + "\n")
    corpus = read_corpus(path)
    tagger = Tagger.from_pretrained(tiny_model.output_dir)
    scores = evaluate_corpus(tagger, corpus, context="document", return_predictions=True)
    predictions = tagger.predict_token_batches([s.words for s in corpus], corpus.documents())
    assert [p.tags for p in scores.predictions] == [p.tags for p in predictions]
    gold = [spans_to_tags(s.spans, len(s.words)) for s in corpus]
    pred = [spans_to_tags(p.spans, len(p.words)) for p in predictions]
    expected = score_tags(gold, pred)
    assert {k: scores[k] for k in ("precision", "recall", "f1")} == {k: expected[k] for k in ("precision", "recall", "f1")}
    assert all(end <= len(p.words) for p in predictions for _, _, end in p.spans)  # spans stay in their sentence


@pytest.mark.parametrize("context_size", [0, 6])
def test_a_document_context_model_trains_evaluates_and_predicts_with_documents(tiny_base_model, tmp_path, capsys,
                                                                               context_size):
    import json

    from tokentune.cli.main import main

    from conftest import document_splits

    data = document_splits(tmp_path / "data")
    out = tmp_path / "model"
    assert main(["train", "--data", str(data), "--model", tiny_base_model, "--output", str(out), "--context",
                 "document", "--context-size", str(context_size), "--max-length", "48", "--epochs", "3",
                 "--learning-rate", "5e-3", "--quiet"]) == 0
    note = ("document context: each of 120 sentences is read with up to 6 sub-tokens of its document (12)"
            if context_size else "document context: 120 sentences read as 12 documents")
    assert any(note in n for n in json.load(open(out / "metrics.json"))["notes"])
    tagger = Tagger.from_pretrained(str(out))
    assert (tagger.context, tagger.context_size, tagger.max_length) == ("document", context_size, 48)
    corpus = read_corpus(data / "test.txt")
    expected = tagger.predict_token_batches([s.words for s in corpus], corpus.documents())
    capsys.readouterr()
    assert main(["predict", str(out), "--input", str(data / "test.txt"), "--format", "conll", "--quiet"]) == 0
    printed = [line.split()[-1] for line in capsys.readouterr().out.splitlines()
               if line.strip() and not line.startswith("-DOCSTART-")]
    assert printed == [tag for p in expected for tag in p.tags]
    assert main(["evaluate", str(out), "--data", str(data), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["f1"] == pytest.approx(json.load(open(out / "metrics.json"))["test"]["f1"])
