"""FLERT's options for sentences read with context: ``--context-dropout`` (windows lose their context sides
in training only) and ``--context-marker`` (the sentence set off from its context by separator tokens)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tokentune.config import TrainConfig
from tokentune.errors import ConfigError
from tokentune.training.context import ContextDropoutCollator, cut_context
from tokentune.windows import IGNORE, WindowEncoder

SENTENCES = [["Alice", "met", "Bob"], ["in", "Paris"], ["Acme", "hired", "Alice"]]
LABELS = [[1, 0, 1], [0, 3], [5, 0, 1]]


@pytest.fixture(scope="module")
def tokenizer(tiny_base_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base_model)


def _features(tokenizer, marker=False, **options):
    encoder = WindowEncoder(tokenizer, max_length=40, stride=0, context_marker=marker)
    return encoder.features(SENTENCES, LABELS, owned_only=True, documents=[(0, 3)], context=8, **options)


def _tokens(tokenizer, feature):
    return tokenizer.convert_ids_to_tokens(feature["input_ids"])


def _pieces(tokenizer, *sentences):
    return [piece for number in sentences for word in SENTENCES[number] for piece in tokenizer.tokenize(word)]


def test_marks_locate_each_windows_context(tokenizer):
    features = _features(tokenizer, mark_context=True)
    middle = features[1]
    left, own, right = (len(_pieces(tokenizer, n)) for n in range(3))
    assert _tokens(tokenizer, middle) == ["[CLS]", *_pieces(tokenizer, 0, 1, 2), "[SEP]"]
    assert middle["context"] == [1, 1 + left, 1 + left + own, 1 + left + own + right, 1]  # ..., window number
    assert features[0]["context"][:2] == [1, 1]  # a document's first sentence has no left context
    assert "context" not in _features(tokenizer)[0]  # marked only when asked


@pytest.mark.parametrize("drop_left, drop_right, kept", [
    (False, False, (0, 1, 2)), (True, False, (1, 2)), (False, True, (0, 1)), (True, True, (1,))])
def test_cutting_context_keeps_the_sentence_and_every_label(tokenizer, drop_left, drop_right, kept):
    feature = _features(tokenizer, mark_context=True)[1]
    before = json.dumps(feature)
    cut = cut_context(feature, drop_left, drop_right)
    assert _tokens(tokenizer, cut) == ["[CLS]", *_pieces(tokenizer, *kept), "[SEP]"]
    assert [label for label in cut["labels"] if label != IGNORE] == LABELS[1]
    assert set(cut) == {"input_ids", "attention_mask", "labels"}
    assert len(cut["attention_mask"]) == len(cut["labels"]) == len(cut["input_ids"])
    assert json.dumps(feature) == before  # the dataset's feature is read again next epoch


def test_the_collator_draws_each_side_anew_each_epoch_whatever_the_batches(tokenizer):
    window = _features(tokenizer, mark_context=True)[1]
    left, own, right = (len(_pieces(tokenizer, n)) for n in range(3))
    full = 2 + left + own + right
    lengths = []
    collator = ContextDropoutCollator(lambda batch: lengths.append(len(batch[0]["input_ids"])), 0.5, seed=7)
    for epoch in range(200):
        collator.epoch = epoch
        collator([window])
    assert set(lengths) == {full, full - left, full - right, 2 + own}  # full, one side, none
    assert 0.15 < lengths.count(full) / len(lengths) < 0.35  # both sides kept: (1 - 0.5) ** 2
    # a window's cut depends on (seed, epoch, window) alone: not on its batch, nor on what came before,
    # so a run resumed mid-epoch cuts the rest as the uninterrupted run did
    features = [dict(f, context=[*f["context"][:4], number]) for number, f in
                enumerate(_features(tokenizer, mark_context=True) * 30)]
    one_batch, batches = [], []
    first = ContextDropoutCollator(lambda batch: one_batch.extend(f["input_ids"] for f in batch), 0.5, seed=7)
    second = ContextDropoutCollator(lambda batch: batches.extend(f["input_ids"] for f in batch), 0.5, seed=7)
    first.epoch = second.epoch = 3
    first(features)
    for start in range(len(features) - 1, -1, -7):  # other batches, in another order
        second(features[max(0, start - 6):start + 1])
    order = [i for start in range(len(features) - 1, -1, -7) for i in range(max(0, start - 6), start + 1)]
    assert [one_batch[i] for i in order] == batches
    kept = []
    ContextDropoutCollator(lambda batch: kept.append([len(f["input_ids"]) for f in batch]), 0.0, seed=7)(features)
    assert kept == [[len(f["input_ids"]) for f in features]]


def test_the_epoch_reaches_the_collator_also_in_a_resumed_epoch():
    from types import SimpleNamespace

    from tokentune.training.context import epoch_callback

    collator = ContextDropoutCollator(lambda batch: batch, 0.5, seed=1)
    callback = epoch_callback(collator)
    for epoch, expected in ((0.0, 0), (1.0, 1), (2.4375, 2)):  # a resumed run begins mid-epoch
        callback.on_epoch_begin(None, SimpleNamespace(epoch=epoch), None)
        assert collator.epoch == expected


def test_context_dropout_needs_context_around_sentences(tmp_path):
    with pytest.raises(ConfigError, match=r"--context-dropout 0.5 .* --context-size is 0.*--context-size N"):
        TrainConfig(data=str(tmp_path), context="document", context_dropout=0.5)
    with pytest.raises(ConfigError, match="context_dropout"):
        TrainConfig(data=str(tmp_path), context="document", context_size=8, context_dropout=1.0)


def test_a_model_trained_with_context_dropout_and_markers_reads_as_trained(tiny_base_model, tmp_path, capsys):
    from tokentune.cli.main import main
    from tokentune.inference import Tagger

    from conftest import document_splits

    data = document_splits(tmp_path / "data", 60, 20, 20)
    out = tmp_path / "model"
    assert main(["train", "--data", str(data), "--model", tiny_base_model, "--output", str(out), "--context",
                 "document", "--context-size", "6", "--context-dropout", "0.5", "--context-marker", "--max-length",
                 "48", "--epochs", "2", "--learning-rate", "5e-3", "--quiet"]) == 0
    notes = json.load(open(out / "metrics.json"))["notes"]
    assert any("train: context dropout 0.5" in n for n in notes)
    assert not any("dev: context dropout" in n for n in notes)
    saved = json.load(open(out / "tokentune_config.json"))
    assert saved["context_dropout"] == 0.5 and saved["context_marker"] is True
    tagger = Tagger.from_pretrained(str(out))
    assert (tagger.context, tagger.context_size, tagger.context_marker) == ("document", 6, True)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(data), "--json"]) == 0  # read as in training's scoring
    assert json.loads(capsys.readouterr().out)["f1"] == json.load(open(out / "metrics.json"))["test"]["f1"]


def test_markers_set_each_sentence_off_from_its_context(tokenizer):
    features = _features(tokenizer, marker=True, mark_context=True)
    middle = features[1]
    assert _tokens(tokenizer, middle) == ["[CLS]", *_pieces(tokenizer, 0), "[SEP]", *_pieces(tokenizer, 1), "[SEP]",
                                          *_pieces(tokenizer, 2), "[SEP]"]
    assert _tokens(tokenizer, features[0])[:len(_pieces(tokenizer, 0)) + 3] == [
        "[CLS]", "[SEP]", *_pieces(tokenizer, 0), "[SEP]"]  # no left context: the marker stays
    assert [label for label in middle["labels"] if label != IGNORE] == LABELS[1]
    for drop_left, drop_right, kept in ((True, True, ()), (True, False, (2,)), (False, True, (0,))):
        cut = _tokens(tokenizer, cut_context(middle, drop_left, drop_right))
        left = _pieces(tokenizer, 0) if 0 in kept else []
        right = _pieces(tokenizer, 2) if 2 in kept else []
        assert cut == ["[CLS]", *left, "[SEP]", *_pieces(tokenizer, 1), "[SEP]", *right, "[SEP]"]


@pytest.mark.parametrize("documents", [None, [(0, 3)]])
def test_markers_move_no_prediction_of_a_token_only_model(tokenizer, documents):
    """A model whose scores depend on the token alone tags the same with and without markers: the
    Tagger reads each word from the position the markers moved it to."""
    from tokentune.inference import Tagger

    rng = np.random.default_rng(2)
    table = rng.dirichlet(np.ones(7), size=len(tokenizer)).astype(np.float32)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    tagged = []
    for marker in (False, True):
        tagger = Tagger(lambda ids, mask: table[ids], tokenizer, labels, max_length=40, context_size=8,
                        context_marker=marker)
        tagged.append([(p.tags, np.round(p.scores, 6).tolist()) for p in
                       tagger.predict_token_batches(SENTENCES, documents)])
    assert tagged[0] == tagged[1]


def test_a_marker_needs_context_around_sentences(tmp_path):
    with pytest.raises(ConfigError, match=r"--context-marker .* --context-size is 0.*--context-size N"):
        TrainConfig(data=str(tmp_path), context="document", context_marker=True)
