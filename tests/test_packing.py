"""Packed training batches: several sentences per row, each computed as if it were alone."""
from __future__ import annotations

import pytest

from tokentune.training.packing import PackingCollator, pack_rows


def test_rows_are_filled_first_fit_longest_first():
    rows = pack_rows([5, 3, 2, 4, 1], width=5)
    assert rows == [[0], [3, 4], [1, 2]]
    assert sorted(i for row in rows for i in row) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="does not fit a row of 4"):
        pack_rows([5], width=4)


def test_packed_rows_give_each_sentence_its_own_logits(tiny_base_model):
    import torch
    from transformers import AutoModelForTokenClassification

    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(tiny_base_model, num_labels=3).eval()
    features = [{"input_ids": [2] + [10 + (i + j) % 20 for j in range(n - 2)] + [3],
                 "labels": [-100] + [(i + j) % 3 for j in range(n - 2)] + [-100]}
                for i, n in enumerate([9, 3, 4, 5, 2, 3])]
    for additive in (False, True):
        if additive:
            model.config._attn_implementation = "eager"
        batch = PackingCollator(0, additive_mask=additive)(features)
        assert batch["input_ids"].shape[0] < len(features), "short sentences share rows"
        assert int((batch["labels"] != -100).sum()) == sum(sum(x != -100 for x in f["labels"]) for f in features)
        with torch.no_grad():
            packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            for feature in features:
                alone = model(input_ids=torch.tensor([feature["input_ids"]])).logits[0]
                hits = [(r, s) for r in range(packed.shape[0]) for s in range(packed.shape[1])
                        if batch["input_ids"][r, s:s + len(feature["input_ids"])].tolist() == feature["input_ids"]
                        and batch["position_ids"][r, s] == 0]
                r, s = hits[0]
                torch.testing.assert_close(packed[r, s:s + alone.shape[0]], alone, atol=1e-5, rtol=1e-4)
        assert not torch.isnan(packed).any(), "padding positions attend to themselves: no NaN"


def test_training_with_packing_learns(tiny_data, tiny_base_model, tmp_path):
    import tokentune

    result = tokentune.train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "p"), epochs=3,
                             learning_rate=5e-3, batch_size=8, quiet=True, seed=11, precision="fp32", packing=True)
    assert result.metrics["dev"]["f1"] > 0.3, result.metrics["dev"]
    assert result.run["optimizer_steps"] == 60, "packing keeps the batches: 160 sentences / 8 x 3 epochs"


def test_positions_follow_the_model_family():
    from types import SimpleNamespace

    from tokentune.errors import ConfigError
    from tokentune.training.packing import position_offset

    assert position_offset(SimpleNamespace(model_type="bert")) == 0
    assert position_offset(SimpleNamespace(model_type="roberta", pad_token_id=1)) == 2
    with pytest.raises(ConfigError, match="--packing needs a model whose position ids it knows.*'distilbert'"):
        position_offset(SimpleNamespace(model_type="distilbert"))
    batch = PackingCollator(1, first_position=2)([{"input_ids": [0, 5, 2], "labels": [-100, 1, -100]}])
    assert batch["position_ids"].tolist() == [[2, 3, 4]]


def test_packing_is_the_default_where_positions_are_known(tiny_model):
    import json
    import os

    notes = json.load(open(os.path.join(tiny_model.output_dir, "metrics.json")))["notes"]
    assert any(n.startswith("batches: the recipe's random batches, packed") for n in notes), notes
