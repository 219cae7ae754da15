"""--head-lr-factor: the task layer around the encoder learns at its own rate, in groups of its own."""
from __future__ import annotations

import json

import pytest
import torch

from tokentune.training.crf import own_rate_groups


def recorded_optimizer(monkeypatch) -> dict:
    """The optimizer the Trainer builds, with each parameter's name and trainability at that moment (after
    training the embedding rows are gone and the full matrix is trainable again)."""
    from tokentune.training.hf_trainer import TokentuneTrainer

    seen = {}
    real = TokentuneTrainer.create_optimizer

    def record(self, model=None):
        seen["optimizer"] = optimizer = real(self, model)
        seen["names"] = {id(p): name for name, p in self.model.named_parameters()}
        seen["trainable"] = {name for name, p in self.model.named_parameters() if p.requires_grad}
        return optimizer

    monkeypatch.setattr(TokentuneTrainer, "create_optimizer", record)
    return seen


def groups_by_name(seen) -> dict[str, list[dict]]:
    return {name: [g for g in seen["optimizer"].param_groups if any(id(p) == pid for p in g["params"])]
            for pid, name in seen["names"].items()}


@pytest.mark.parametrize("head,weight_decay", [("crf", 0.0), ("crf", 0.01), ("softmax", 0.01)])
def test_classifier_learns_at_its_own_rate_and_every_weight_is_in_one_group(tiny_data, tiny_base_model, tmp_path,
                                                                           monkeypatch, head, weight_decay):
    import tokentune

    seen = recorded_optimizer(monkeypatch)
    result = tokentune.train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "m"), epochs=1,
                             learning_rate=1e-3, batch_size=8, quiet=True, head=head, max_train_samples=16,
                             weight_decay=weight_decay)  # the default factor, 20
    assert sum(note.startswith("classifier learning rate 0.02: 20 x --learning-rate") for note in result.notes) == 1
    groups = groups_by_name(seen)
    for name, holding in groups.items():
        assert len(holding) == (name in seen["trainable"]), f"{name} is in {len(holding)} groups"
    if weight_decay == 0.0:  # the default: the used embedding rows train as a parameter of their own
        assert "tokentune_embedding_rows.rows" in seen["trainable"]
        assert "bert.embeddings.word_embeddings.weight" not in seen["trainable"]
    rates = {name: holding[0]["initial_lr"] for name, holding in groups.items() if holding}
    assert rates["classifier.weight"] == rates["classifier.bias"] == pytest.approx(2e-2)
    assert groups["classifier.weight"][0]["weight_decay"] == weight_decay  # the decay of the group it came from
    assert groups["classifier.bias"][0]["weight_decay"] == 0.0
    assert rates["bert.encoder.layer.0.attention.self.query.weight"] == pytest.approx(1e-3)
    crf_groups = [g for g in seen["optimizer"].param_groups if g.get("crf")]
    if head == "crf":  # as before the option: one group, the CRF's 100 x, no weight decay
        assert len(crf_groups) == 1 and crf_groups[0]["weight_decay"] == 0.0
        assert rates["crf.transitions"] == rates["crf.start"] == pytest.approx(1e-1)
    else:
        assert not crf_groups and "crf.transitions" not in rates


def test_factor_one_leaves_the_recipes_groups(tiny_data, tiny_base_model, tmp_path, monkeypatch):
    import tokentune

    seen = recorded_optimizer(monkeypatch)
    tokentune.train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "m"), epochs=1, learning_rate=1e-3,
                    batch_size=8, quiet=True, head="softmax", max_train_samples=16, head_lr_factor=1.0)
    assert not any(group.get("head") for group in seen["optimizer"].param_groups)
    assert {group["initial_lr"] for group in seen["optimizer"].param_groups} == {1e-3}


def test_own_rate_groups_moves_each_parameter_once_and_only_once():
    a, b, c = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    optimizer = torch.optim.AdamW([{"params": [a, b], "weight_decay": 0.1}, {"params": [c], "weight_decay": 0.0}],
                                  lr=1.0)
    own_rate_groups(optimizer, [b, c], 5.0, "head")
    own_rate_groups(optimizer, [b, c], 7.0, "head")  # asked again: nothing moves twice
    assert [([id(p) for p in g["params"]], g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [
        ([id(a)], 1.0, 0.1), ([], 1.0, 0.0), ([id(b)], 5.0, 0.1), ([id(c)], 5.0, 0.0)]


def test_config_refuses_a_factor_that_is_not_positive():
    from tokentune.config import TrainConfig
    from tokentune.errors import ConfigError

    with pytest.raises(ConfigError, match="head_lr_factor|head-lr-factor"):
        TrainConfig(train_file="x.txt", head_lr_factor=0.0)


def test_a_run_saved_before_the_setting_resumes_at_the_recipes_rate(tmp_path):
    from tokentune.config import TrainConfig
    from tokentune.errors import ConfigError
    from tokentune.training.checkpoints import resumable_config

    config = TrainConfig(train_file="train.txt", output=str(tmp_path / "o"), learning_rate=1e-3, head_lr_factor=1.0)
    saved = config.to_dict()
    del saved["head_lr_factor"]  # as written by a run begun before the setting existed
    (tmp_path / "tokentune_config.json").write_text(json.dumps(saved))
    assert resumable_config(config, str(tmp_path / "tokentune_config.json")).head_lr_factor == 1.0
    other = TrainConfig(train_file="train.txt", output=str(tmp_path / "o"), learning_rate=1e-3, head_lr_factor=20.0)
    with pytest.raises(ConfigError, match=r"head_lr_factor 1.0 \(now 20.0\).*resume with the settings it ran "
                                          r"with \(--head-lr-factor 1.0\)"):
        resumable_config(other, str(tmp_path / "tokentune_config.json"))


def test_sharded_training_keeps_one_rate_and_says_so():
    from types import SimpleNamespace

    from tokentune.config import TrainConfig
    from tokentune.training.trainer import set_head

    trainer = SimpleNamespace(args=SimpleNamespace(fsdp="full_shard", deepspeed=None), head_learning_rate=None)
    config = TrainConfig(train_file="train.txt", learning_rate=1e-3, head_lr_factor=20.0, head="softmax")
    notes: list[str] = []
    set_head(trainer, config, model=None, labels=["O"], train_features=[], notes=notes)
    set_head(trainer, config, model=None, labels=["O"], train_features=[], notes=notes)  # an OOM retry
    assert trainer.head_learning_rate is None
    assert len(notes) == 1 and notes[0].startswith("--head-lr-factor 20 not applied: FSDP and DeepSpeed")


def test_a_model_without_a_layer_outside_its_encoder_keeps_one_rate_and_says_so():
    from types import SimpleNamespace

    from tokentune.config import TrainConfig
    from tokentune.training.trainer import set_head

    trainer = SimpleNamespace(args=SimpleNamespace(fsdp="", deepspeed=None), head_learning_rate=None)
    config = TrainConfig(train_file="train.txt", learning_rate=1e-3, head="softmax")
    notes: list[str] = []
    set_head(trainer, config, model=torch.nn.Linear(2, 2), labels=["O"], train_features=[], notes=notes)
    assert trainer.head_learning_rate is None
    assert notes == ["--head-lr-factor 20 not applied: the model has no trainable layer outside its encoder "
                     "(model.base_model), so every weight trains at --learning-rate"]
