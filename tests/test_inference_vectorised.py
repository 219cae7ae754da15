"""The array code against the per-sentence reference code it replaces (tests/reference.py): windows and
training features (reference.make_windows), batched Viterbi (reference.viterbi) and span cutting
(tokentune.schemes.tags_to_spans). Same results, ties and repairs included."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokentune.decoding import cut_spans, label_table, viterbi_batch
from tokentune.inference import Tagger
from tokentune.schemes import BILOU, BIOES, IO, IOB1, IOB2, PLAIN, labels_for, tags_to_spans
from tokentune.windows import EncodeReport, WindowEncoder

from conftest import FILLER, ORGS, PEOPLE, PLACES
from reference import make_windows, training_features, viterbi

SCHEMES = [IOB1, IOB2, BIOES, BILOU, IO]


def _random_log_probs(rng: np.random.Generator, words: int, labels: int, ties: bool) -> np.ndarray:
    probs = rng.dirichlet(np.ones(labels), size=words).astype(np.float32)
    if ties:  # coarse values make equal path scores likely: the tie-breaking must match too
        probs = np.round(probs * 4) / 4
    return np.log(np.clip(probs, 1e-12, None))


@settings(max_examples=60, deadline=None)
@given(scheme=st.sampled_from(SCHEMES), types=st.integers(1, 3),
       lengths=st.lists(st.integers(0, 14), min_size=1, max_size=12), seed=st.integers(0, 2**16),
       ties=st.booleans(), group=st.sampled_from([1, 3, 256]))
def test_viterbi_batch_equals_per_sentence_viterbi(scheme, types, lengths, seed, ties, group):
    labels = labels_for([f"T{i}" for i in range(types)], scheme)
    rng = np.random.default_rng(seed)
    log_probs = _random_log_probs(rng, sum(lengths), len(labels), ties)
    got = viterbi_batch(log_probs, np.array(lengths), labels, scheme, group=group)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for i in range(len(lengths)):
        expected = viterbi(log_probs[offsets[i]:offsets[i + 1]], labels, scheme)
        np.testing.assert_array_equal(got[offsets[i]:offsets[i + 1]], expected)


def test_viterbi_batch_without_any_valid_path_falls_back_to_argmax():
    labels = ["B-X"]  # in BIOES a B must be followed by I or E, which this label set lacks
    log_probs = np.log(np.full((5, 1), 1.0))
    np.testing.assert_array_equal(viterbi_batch(log_probs, np.array([2, 3]), labels, BIOES),
                                  np.concatenate([viterbi(log_probs[:2], labels, BIOES),
                                                  viterbi(log_probs[2:], labels, BIOES)]))


def test_viterbi_batch_splits_long_documents_into_small_groups():
    labels = labels_for(["PER"], IOB2)
    rng = np.random.default_rng(0)
    lengths = np.array([3000, 5, 2500, 1])
    log_probs = _random_log_probs(rng, int(lengths.sum()), len(labels), False)
    got = viterbi_batch(log_probs, lengths, labels, IOB2, max_cells=4000)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for i in range(len(lengths)):
        np.testing.assert_array_equal(got[offsets[i]:offsets[i + 1]],
                                      viterbi(log_probs[offsets[i]:offsets[i + 1]], labels, IOB2))


@settings(max_examples=80, deadline=None)
@given(scheme=st.sampled_from(SCHEMES + [PLAIN]), data=st.data())
def test_span_cutting_equals_tags_to_spans(scheme, data):
    """Any label sequence, invalid ones included (argmax output), cut as tags_to_spans cuts it."""
    labels = labels_for(["A", "B"], scheme) + (["ODD"] if scheme.prefixed else [])  # 'ODD': no prefix
    sentences = data.draw(st.lists(st.lists(st.integers(0, len(labels) - 1), max_size=10), min_size=1, max_size=6))
    types, info = label_table(labels, scheme)
    ids = np.array([i for s in sentences for i in s], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])]).astype(np.int64)
    starts, ends, kinds = cut_spans(ids, offsets, info)
    got = [(types[k], int(s), int(e)) for k, s, e in zip(kinds, starts, ends)]
    expected = [(label, offsets[i] + s, offsets[i] + e) for i, sentence in enumerate(sentences)
                for label, s, e in tags_to_spans([labels[j] for j in sentence], scheme)]
    assert got == expected


# -- windows -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer(tiny_base_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base_model)


WORDS = PEOPLE + PLACES + ORGS + FILLER + ["", " ", "\u200b", "🙂", "Parisab", "abcdefghijklmnopqrstuvwxyz", "x"]


def _reference(tokenizer, sentences, max_length, stride):
    """word -> (window ids, column of its first piece), and the windows' ids, from make_windows."""
    owner, inputs = {}, []
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
    for window in make_windows(tokenizer, sentences, max_length=max_length, stride=stride):
        if window.word_end == window.word_start:
            continue  # an empty sentence: the Tagger does not run the model on it
        inputs.append(tuple(window.input_ids))
        for column, (word, first) in enumerate(zip(window.word_index, window.first_piece)):
            if first and window.own_start <= word < window.own_end:
                owner[int(offsets[window.sentence] + word)] = (tuple(window.input_ids), column)
    return owner, inputs


def _ours(tagger, sentences):
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])]).astype(np.int64)
    pieces = tagger.encoder.pieces(sentences, offsets)
    windows = tagger.encoder.windows(pieces, offsets)
    owner, inputs = {}, []
    for i in range(len(windows.lo)):
        ids, mask = tagger.encoder.inputs(pieces, windows, np.array([i]))
        row = tuple(int(x) for x in ids[0][mask[0] == 1])
        inputs.append(row)
        for piece in range(windows.own_lo[i], windows.own_hi[i]):
            if pieces.first[piece]:
                owner[int(pieces.word[piece])] = (row, int(piece - windows.lo[i] + 1))
    return owner, inputs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sentences=st.lists(st.lists(st.sampled_from(WORDS), max_size=40), min_size=1, max_size=6),
       max_length=st.integers(4, 24), stride=st.integers(0, 12))
def test_windows_equal_make_windows(tokenizer, sentences, max_length, stride):
    tagger = Tagger(lambda i, m: None, tokenizer, ["O"], max_length=max_length, stride=stride)
    owner, inputs = _ours(tagger, sentences)
    ref_owner, ref_inputs = _reference(tokenizer, sentences, max_length, stride)
    assert owner == ref_owner
    assert Counter(inputs) == Counter(ref_inputs)
    assert len(owner) == sum(len(s) for s in sentences)  # every word read exactly once


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sentences=st.lists(st.lists(st.sampled_from(WORDS), max_size=40), min_size=1, max_size=6),
       max_length=st.integers(4, 24), stride=st.integers(0, 12), owned_only=st.booleans())
def test_training_features_equal_the_reference(tokenizer, sentences, max_length, stride, owned_only):
    """The features training and dev evaluation use: same windows, same order, same labels, same notes."""
    labels = [[(7 * i + len(word)) % 5 for i, word in enumerate(sentence)] for sentence in sentences]
    report, ref_report = EncodeReport(), EncodeReport()
    encoder = WindowEncoder(tokenizer, max_length=max_length, stride=stride)
    got = encoder.features(sentences, labels, owned_only=owned_only, report=report)
    windows = make_windows(tokenizer, sentences, max_length=max_length, stride=stride, report=ref_report)
    assert got == training_features(windows, labels, owned_only=owned_only)
    assert report == ref_report


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lengths=st.lists(st.integers(1, 200), max_size=80), batch_size=st.integers(1, 40))
def test_batches_cover_every_window_once_with_little_padding(tokenizer, lengths, batch_size):
    tagger = Tagger(lambda i, m: None, tokenizer, ["O"], max_length=64, batch_size=batch_size)
    lengths = np.array(lengths, dtype=np.int64)
    batches = tagger._batches(lengths)
    assert sorted(np.concatenate(batches).tolist() if batches else []) == list(range(len(lengths)))
    for batch in batches:
        sizes = lengths[batch]
        assert 1 <= len(batch) <= batch_size and list(sizes) == sorted(sizes)
        if len(batch) > 1:  # padding stays within 10% of the batch's tokens
            assert len(batch) * sizes.max() - sizes.sum() <= 0.1 * len(batch) * sizes.max()
