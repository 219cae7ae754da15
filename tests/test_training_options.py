"""Training options without training: length-grouped batches, precision choice, config and flags."""
from __future__ import annotations

import random

import pytest

from tokentune.config import TrainConfig, build_config
from tokentune.errors import ConfigError
from tokentune.training.batches import LengthGroupedSampler, length_grouped_order, padding_stats


def _lengths(n=1000, seed=0):
    rng = random.Random(seed)
    return [rng.choice([3, 5, 8, 12, 20, 30, 45, 80]) + rng.randint(0, 5) for _ in range(n)]


def test_grouped_order_is_a_seeded_permutation():
    lengths = _lengths()
    order = length_grouped_order(lengths, 16, seed=3)
    assert sorted(order) == list(range(len(lengths)))
    assert order == length_grouped_order(lengths, 16, seed=3), "same seed, same order (resume, every rank)"
    assert order != length_grouped_order(lengths, 16, seed=4)


def test_grouped_batches_carry_little_padding_and_longest_comes_first():
    lengths = _lengths()
    order = length_grouped_order(lengths, 16, seed=0)
    real, padded = padding_stats(lengths, order, 16)
    shuffled = random.Random(0).sample(range(len(lengths)), len(lengths))
    real_random, padded_random = padding_stats(lengths, shuffled, 16)
    assert 1 - real / padded < 0.15 and 1 - real_random / padded_random > 0.4
    assert lengths[order[0]] == max(lengths), "the biggest batch first: out of memory shows at once"
    # only the last batch may be short
    assert len(order) % 16 == len(lengths) % 16


def test_fewer_batches_per_length_group_trade_padding_for_variety():
    lengths = _lengths()
    padding = {}
    for megabatch in (1, 8, 50):
        order = length_grouped_order(lengths, 16, seed=0, megabatch=megabatch)
        assert sorted(order) == list(range(len(lengths)))
        real, padded = padding_stats(lengths, order, 16)
        padding[megabatch] = 1 - real / padded
    assert padding[1] > padding[8] > padding[50], padding
    sampler = LengthGroupedSampler(lengths, 16, seed=0, megabatch=8)
    assert list(sampler) == length_grouped_order(lengths, 16, seed=0, megabatch=8)
    with pytest.raises(ConfigError, match="length_group_batches must be a positive number"):
        TrainConfig(data="x", length_group_batches=0)


def test_sampler_changes_order_each_epoch_and_repeats_it():
    sampler = LengthGroupedSampler(_lengths(200), 8, seed=1)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    sampler.set_epoch(0)
    assert first != second and list(sampler) == first and len(sampler) == 200


def test_tiny_data_still_makes_batches():
    assert sorted(length_grouped_order([4, 2, 9], 16, seed=0)) == [0, 1, 2]
    assert length_grouped_order([], 16, seed=0) == []


def test_new_settings_are_validated():
    config = TrainConfig(data="x")
    assert (config.precision, config.auto_batch_size, config.save_total_limit, config.patience) == ("auto", True, 1, None)
    with pytest.raises(ConfigError, match="unknown precision 'fp8'; expected one of auto, fp32, bf16, fp16.*--bf16"):
        TrainConfig(data="x", precision="fp8")
    with pytest.raises(ConfigError, match="patience must be a positive number"):
        TrainConfig(data="x", patience=0)
    with pytest.raises(ConfigError, match="save_total_limit must be a positive number"):
        TrainConfig(data="x", save_total_limit=0)
    with pytest.raises(ConfigError, match="batch_size must be a whole number"):
        TrainConfig(data="x", batch_size=2.5)


def test_flags_for_the_new_settings(tmp_path):
    import argparse

    from tokentune.cli.train import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", "d", "--bf16", "--patience", "3", "--gradient-checkpointing", "--resume",
                              "--save-total-limit", "2", "--freeze-embeddings", "--no-auto-batch-size",
                              "--length-group-batches", "8", "--torch-compile"])
    settings = {k: v for k, v in vars(args).items() if k != "config"}
    (tmp_path / "c.yaml").write_text("precision: fp32\npatience: 5\n")
    config = build_config(str(tmp_path / "c.yaml"), **settings)
    assert (config.precision, config.patience, config.gradient_checkpointing, config.resume) == ("bf16", 3, True, True)
    assert (config.save_total_limit, config.freeze_embeddings, config.auto_batch_size) == (2, True, False)
    assert (config.length_group_batches, config.torch_compile) == (8, True)
    assert build_config(str(tmp_path / "c.yaml"), data="d").precision == "fp32", "the file beats the default"
    assert parser.parse_args(["--fp16"]).precision == "fp16"


def test_precision_auto_follows_the_hardware(monkeypatch):
    from tokentune.training import hardware

    monkeypatch.setattr(hardware, "has_cuda", lambda: False)
    monkeypatch.setattr(hardware, "cpu_bf16", lambda: "amx")
    assert hardware.resolve_precision("auto")[0] == "bf16"
    monkeypatch.setattr(hardware, "cpu_bf16", lambda: "avx512")
    monkeypatch.setattr(hardware, "bf16_matmul_speedup", lambda: 0.02)  # bf16 on the vector units, emulated
    precision, note = hardware.resolve_precision("auto")
    assert precision == "fp32" and "--bf16 forces" in note and "0.0x as fast as fp32 here, under 1.3x" in note
    monkeypatch.setattr(hardware, "bf16_matmul_speedup", lambda: 2.34)
    precision, note = hardware.resolve_precision("auto")
    assert precision == "bf16" and "2.3x as fast as fp32 here, at least 1.3x" in note and "--precision fp32" in note
    monkeypatch.setattr(hardware, "cpu_bf16", lambda: None)
    assert hardware.resolve_precision("auto")[0] == "fp32"
    assert hardware.resolve_precision("bf16")[0] == "bf16"
    with pytest.raises(ConfigError, match="fp16 mixed precision needs a CUDA GPU.*--bf16"):
        hardware.resolve_precision("fp16")


def test_batch_lengths_rounded_under_mixed_precision_only():
    from tokentune.training.trainer import pad_multiple

    config = TrainConfig(data="x")
    assert pad_multiple(config, "bf16", 512) == 8 and pad_multiple(config, "fp16", 512) == 8
    assert pad_multiple(config, "fp32", 512) is None
    assert pad_multiple(TrainConfig(data="x", pad_to_multiple_of=16), "fp32", 512) == 16
    assert pad_multiple(TrainConfig(data="x", pad_to_multiple_of=1), "bf16", 512) is None
    assert pad_multiple(config, "bf16", 100) is None, "padding must never pass the model's length limit"


def test_token_weighted_loss_does_not_depend_on_how_a_step_is_split(tiny_data, tiny_base_model, tmp_path):
    """Batch 8 in one go and batch 4 with accumulation 2 give the same step: every labelled token
    weighs 1 / (labelled tokens per step on average), whatever batch it sits in."""
    import torch
    from transformers import DataCollatorForTokenClassification

    from tokentune.modeling import build_model, load_tokenizer
    from tokentune.training.run import prepare_data
    from tokentune.training.trainer import build_trainer

    def loss_of(batch_size, accumulation, rows):
        config = TrainConfig(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "o"), quiet=True,
                             batch_size=batch_size, gradient_accumulation_steps=accumulation, precision="fp32")
        prep = prepare_data(config)
        torch.manual_seed(0)
        model = build_model(tiny_base_model, prep.labels)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        trainer = build_trainer(config, model, prep.tokenizer, prep.labels, prep.train_features, None,
                                str(tmp_path), [])
        trainer.current_gradient_accumulation_steps = accumulation
        collate = DataCollatorForTokenClassification(load_tokenizer(tiny_base_model))
        model.train()

        def batch(a, b):  # on the model's device, as the Trainer's loop puts it (a GPU where there is one)
            return {key: value.to(model.device) for key, value in collate(prep.train_features[a:b]).items()}

        return sum(float(trainer.compute_loss(model, batch(a, b))) for a, b in rows), trainer

    whole, trainer = loss_of(8, 1, [(0, 8)])
    halves, other = loss_of(4, 2, [(0, 4), (4, 8)])
    assert trainer.tokens_per_step == pytest.approx(other.tokens_per_step)
    assert whole == pytest.approx(halves, rel=1e-5)


def test_gradient_checkpointing_goes_by_the_name_the_installed_transformers_knows():
    """transformers renamed the argument during 5.x (5.17 knows only gradient_checkpointing): the
    setting goes under whichever name TrainingArguments has, never one it would refuse."""
    import dataclasses

    from transformers import TrainingArguments

    from tokentune.training.trainer import checkpointing_setting

    @dataclasses.dataclass
    class Older:
        gradient_checkpointing: bool = False

    assert checkpointing_setting(Older, True) == {"gradient_checkpointing": True}
    names = {field.name for field in dataclasses.fields(TrainingArguments)}
    (name,) = checkpointing_setting(TrainingArguments, True)
    assert name in names
    if "activation_checkpointing" in names:
        assert name == "activation_checkpointing"  # the new name, not the deprecated alias


def test_quiet_library_training_prints_nothing_and_restores_transformers(tiny_data, tiny_base_model, tmp_path, capfd):
    """tokentune.train(quiet=True) from Python: no weight-loading report, no progress bars, no log lines,
    on stdout or stderr; transformers' verbosity and bars are the caller's again afterwards."""
    from transformers.utils import logging as hf_logging

    from tokentune.training import train

    before = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    capfd.readouterr()
    train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "o"), epochs=1, batch_size=16,
          max_train_samples=32, quiet=True)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == before
