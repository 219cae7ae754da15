"""Packed prediction: windows laid end to end in rows (narrow for short windows) give the probabilities of
sorted, padded batches (the oracle, ``packing=False``) up to float rounding, for every model family and option that
changes the windows; models whose positions are unknown fall back to padded batches."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentune.inference import Tagger
from tokentune.inference.packed import NARROW, fill_rows, pack_inputs, plan_batches, row_width
from tokentune.training.packing import pack_rows

from conftest import FILLER, PEOPLE, PLACES


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(2, 200), max_size=300))
def test_rows_hold_every_window_once_within_the_width(lengths):
    lengths = np.array(lengths, dtype=np.int64)
    width = row_width(lengths)
    rows = fill_rows(lengths, width)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(lengths[row].sum() <= width for row in rows)
    # as full as training's first-fit decreasing packing (the reference), or fuller
    assert len(rows) <= len(pack_rows(lengths.tolist(), width))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(2, 90), min_size=1, max_size=200), st.integers(1, 64))
def test_batches_place_windows_side_by_side_without_overlap(lengths, batch_size):
    lengths = np.array(lengths, dtype=np.int64)
    batches = plan_batches(lengths, batch_size)
    assert sorted(np.concatenate([b.chosen for b in batches]).tolist()) == list(range(len(lengths)))
    narrow = lengths <= NARROW
    split = len({b.width for b in batches}) > 1
    for batch in batches:
        # a call of short and long windows puts each kind in rows of its own width
        group = lengths[narrow == narrow[batch.chosen[0]]] if split else lengths
        assert (narrow[batch.chosen] == narrow[batch.chosen[0]]).all() or not split
        budget = int(batch_size * max(64, group.mean()))  # positions: never more than padded windows take
        assert batch.width == row_width(group) and 1 <= batch.rows <= max(1, budget // batch.width)
        cells = np.zeros((batch.rows, batch.width), dtype=np.int64)
        for window, row, start in zip(batch.chosen, batch.row, batch.start):
            cells[row, start:start + lengths[window]] += 1
        assert cells.max() == 1 and cells.sum() == lengths[batch.chosen].sum()


def test_short_windows_get_narrow_rows_beside_long_ones():
    lengths = np.array([20] * 30 + [100, 90, 64, 65])
    batches = plan_batches(lengths, batch_size=32)
    widths = {int(i): b.width for b in batches for i in b.chosen}
    assert sorted(widths) == list(range(len(lengths)))
    assert {widths[i] for i in np.flatnonzero(lengths <= NARROW)} == {NARROW}
    assert {widths[i] for i in np.flatnonzero(lengths > NARROW)} == {128}
    # a serve request whose windows fit one row stays one row, short and long together
    one = plan_batches(np.array([100, 12]), batch_size=32)
    assert len(one) == 1 and one[0].rows == 1 and one[0].width == 112


def test_packed_inputs_rebuild_each_window_and_keep_it_to_itself():
    ids = np.array([[2, 10, 11, 3, 0], [2, 12, 3, 0, 0], [2, 13, 14, 15, 3]])
    mask = (ids > 0).astype(np.int64)
    lengths = mask.sum(1)
    batch = plan_batches(lengths, batch_size=2)[0]
    assert batch.rows == 1 and sorted(batch.chosen.tolist()) == [0, 1, 2]
    # the inputs come in the batch's order, as the Tagger builds them for batch.chosen
    packed, attention, positions = pack_inputs(ids[batch.chosen], mask[batch.chosen], batch, pad_id=0,
                                               first_position=2)
    width = batch.width
    assert width == 16  # 12 positions in all: one row, rounded up to 8
    assert packed.shape == (1, width) and attention.shape == (1, 1, width, width)
    for window, row, start in zip(batch.chosen, batch.row, batch.start):
        span = slice(start, start + lengths[window])
        assert packed[row, span].tolist() == ids[window, :lengths[window]].tolist()
        assert positions[row, span].tolist() == list(range(2, 2 + lengths[window]))
        inside = np.zeros(width, dtype=bool)
        inside[span] = True
        assert (attention[row, 0, start] == inside).all()  # a window sees itself only
    padding = np.flatnonzero(packed[0] == 0)
    assert len(padding) == width - lengths.sum()
    assert all(attention[0, 0, p].sum() == 1 and attention[0, 0, p, p] for p in padding)  # itself: no NaN


def test_row_width_is_shared_by_long_calls_and_tight_for_short_ones():
    assert row_width(np.array([30] * 10)) == NARROW  # 300 positions: rows of 64
    assert row_width(np.array([140, 60, 50])) == 192  # the longest, rounded up to 64
    assert row_width(np.array([140, 20])) == 160  # both fit one row
    assert row_width(np.array([9])) == 16 and row_width(np.array([9, 40])) == 56  # one row: no more than needed
    assert plan_batches(np.array([], dtype=np.int64), 32) == []


def _sentences(count: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    words = PEOPLE + PLACES + [w for w in FILLER if w != "."]
    return [[str(w) for w in rng.choice(words, size=int(rng.integers(1, 40)))] for _ in range(count)]


def _agree(packed: Tagger, padded: Tagger, sentences, documents=None) -> None:
    assert packed.packing and not padded.packing
    ours = packed.predict_with_probabilities(sentences, documents)
    theirs = padded.predict_with_probabilities(sentences, documents)
    np.testing.assert_allclose(ours[1], theirs[1], atol=2e-6)
    assert [p.tags for p in ours[0]] == [p.tags for p in theirs[0]]


@pytest.mark.parametrize("options", [{}, {"max_length": 16, "stride": 4}, {"aggregation": "average"},
                                     {"batch_size": 1}, {"context": "document", "context_size": 6},
                                     {"context": "document", "context_size": 6, "context_marker": True},
                                     {"context": "document"}], ids=str)
def test_packed_equals_padded_batches(tiny_model, options):
    sentences = _sentences(70, seed=4)
    documents = [(0, 30), (30, 31), (31, 70)] if options.get("context") else None
    packed = Tagger.from_pretrained(tiny_model.output_dir, precision="fp32", **options)
    padded = Tagger.from_pretrained(tiny_model.output_dir, precision="fp32", packing=False, **options)
    assert packed.runner.first_position == 0
    _agree(packed, padded, sentences, documents)
    texts = [" ".join(s) for s in sentences[:20]]
    ours, theirs = packed.predict_texts(texts), padded.predict_texts(texts)
    assert [[(e.label, e.start, e.end) for e in found] for found in ours] == \
        [[(e.label, e.start, e.end) for e in found] for found in theirs]
    np.testing.assert_allclose([e.score for found in ours for e in found],
                               [e.score for found in theirs for e in found], atol=2e-6)  # rounded to 6 places


def test_eager_attention_and_roberta_positions_pack_too(tiny_base_model):
    """Eager attention takes an additive mask; RoBERTa's positions start after its padding id."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaForTokenClassification

    from tokentune.inference.runners import torch_runner

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=80, pad_token_id=tokenizer.pad_token_id,
                           num_labels=3, attn_implementation="eager")
    model = RobertaForTokenClassification(config)
    labels = ["O", "B-PER", "I-PER"]
    runner = torch_runner(model, "cpu")
    assert runner.first_position == tokenizer.pad_token_id + 1
    packed = Tagger(runner, tokenizer, labels, max_length=60)
    padded = Tagger(runner, tokenizer, labels, max_length=60, packing=False)
    _agree(packed, padded, _sentences(40, seed=5))


def test_long_windows_keep_batches_of_about_batch_size_windows():
    batches = plan_batches(np.full(100, 500), batch_size=32)  # document context at a 512 limit
    assert batches[0].width == 512 and len(batches[0].chosen) == 31  # 32 x 500 positions in rows of 512


def test_a_bf16_model_with_eager_attention_runs_packed_without_autocast(tiny_base_model):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    from tokentune.inference.runners import torch_runner

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3, attn_implementation="eager")
    model = BertForTokenClassification(config).to(torch.bfloat16)
    tagger = Tagger(torch_runner(model, "cpu"), tokenizer, ["O", "B-PER", "I-PER"], max_length=60)
    probabilities = tagger.word_probabilities(_sentences(6, seed=8))
    assert len(probabilities) == 6 and all(np.isfinite(p).all() for p in probabilities)


def test_roformer_runs_padded_batches():
    """RoFormer's classifier takes no position ids: packed, its rotary positions would be the columns."""
    from types import SimpleNamespace

    from tokentune.inference.runners import packed_positions

    assert packed_positions(SimpleNamespace(model_type="roformer", _attn_implementation="eager")) is None
    assert packed_positions(SimpleNamespace(model_type="bert", _attn_implementation="eager")) == 0
    assert packed_positions(SimpleNamespace(model_type="bert", _attn_implementation="flash_attention_2")) is None


def test_a_model_of_unknown_positions_runs_padded_batches(tiny_base_model):
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForTokenClassification

    from tokentune.inference.runners import torch_runner

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=2, hidden_dim=64, num_labels=3)
    runner = torch_runner(DistilBertForTokenClassification(config), "cpu")
    assert not hasattr(runner, "packed")
    tagger = Tagger(runner, tokenizer, ["O", "B-PER", "I-PER"], max_length=60)
    assert len(tagger.predict_token_batches(_sentences(5, seed=6))) == 5


def test_one_window_runs_as_it_is(tiny_model):
    """A call of one window (a serve request of one sentence) has nothing to pack: its padded batch is
    already exact, and cheaper than building a packed row and its mask."""
    tagger = Tagger.from_pretrained(tiny_model.output_dir, precision="fp32")
    calls = []
    packed = tagger.runner.packed
    tagger.runner.packed = lambda *inputs, **options: calls.append(inputs[0].shape) or packed(*inputs, **options)
    tagger.predict_text("Alice met Bob in Paris")
    assert calls == []
    tagger.predict_texts(["Alice met Bob in Paris", "Globex said today"])
    assert len(calls) == 1 and calls[0][0] == 1  # two windows: one packed row


@pytest.mark.parametrize("value", ["false", None, float("nan"), 0])
def test_packing_takes_true_or_false_only(tiny_model, value):
    """A string "false" would be true: refused with the fix, like the Tagger's other True/False options."""
    from tokentune.errors import ConfigError

    with pytest.raises(ConfigError, match=r"packing must be True or False, found .*pass packing=True"):
        Tagger.from_pretrained(tiny_model.output_dir, packing=value)
