"""Prediction precision: ``auto`` picks bf16 autocast where training's auto does (AMX CPUs, AVX512-BF16
CPUs where bf16 measured faster, GPUs with bf16), a model trained in fp32 predicts in fp32, and every
command says which it used."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tokentune.cli.main import main
from tokentune.errors import ConfigError
from tokentune.inference import Tagger, runners
from tokentune.inference.runners import inference_precision, precision_after_training


@pytest.fixture
def amx_cpu(monkeypatch):
    import tokentune.training.hardware as hardware

    monkeypatch.setattr(hardware, "cpu_bf16", lambda: "amx")


@pytest.fixture
def plain_cpu(monkeypatch):
    """A CPU without native bf16, and no GPU (on a GPU machine auto would pick the GPU and bf16)."""
    import torch

    import tokentune.training.hardware as hardware

    monkeypatch.setattr(hardware, "cpu_bf16", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_is_bf16_with_amx_or_fast_avx512_bf16_and_fp32_without(monkeypatch):
    import tokentune.training.hardware as hardware

    probed = []
    for kind, speedup, expected in (("amx", 0.01, "bf16"), ("avx512", 2.3, "bf16"), ("avx512", 1.2, "fp32"),
                                    ("avx512", 0.02, "fp32"), (None, 4.0, "fp32")):
        monkeypatch.setattr(hardware, "cpu_bf16", lambda kind=kind: kind)
        monkeypatch.setattr(hardware, "bf16_matmul_speedup", lambda speedup=speedup, kind=kind: probed.append(kind) or speedup)
        assert inference_precision("auto", "cpu") == expected
        assert inference_precision(None, "cpu") == expected
    assert set(probed) == {"avx512"}, "only AVX512-BF16 without AMX is measured"
    assert inference_precision("bf16", "cpu") == "bf16"  # asked for: kept, AMX or not
    assert inference_precision("FP32", "cpu") == "fp32"


def test_auto_on_a_gpu_is_bf16_from_ampere_on(monkeypatch):
    """Older GPUs (T4, V100) only emulate bf16, slower than fp32."""
    import torch

    asked = []
    for capability, expected in (((7, 5), "fp32"), ((8, 0), "bf16"), ((9, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability",
                            lambda device=None, capability=capability: asked.append(device) or capability)
        assert inference_precision("auto", "cuda:1") == expected
    assert asked[-1] == torch.device("cuda:1")  # the device asked for, not the current one


def test_auto_on_a_gpu_keeps_fp32_up_to_bert_base_size(monkeypatch):
    """Measured on an H200: the embedded MiniLM trained 2.8x slower in bf16, a model of bert-base's shape
    1.2x; a larger model (bert-large's shape), or one of unknown size, gets bf16."""
    import torch

    from tokentune.training import hardware

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    from types import SimpleNamespace

    from transformers import DistilBertConfig

    minilm = SimpleNamespace(hidden_size=384, num_hidden_layers=6)  # as the light loader reads config.json
    base = SimpleNamespace(hidden_size=768, num_hidden_layers=12)
    large = SimpleNamespace(hidden_size=1024, num_hidden_layers=24)
    distil = DistilBertConfig()  # saves dim and n_layers; its attribute map answers hidden_size
    assert hardware.layer_weights(minilm) == 10_616_832 and hardware.layer_weights(distil) == 12 * 6 * 768 ** 2
    assert hardware.layer_weights(SimpleNamespace(hidden_size=384)) is None
    assert hardware.layer_weights(distil.to_dict()) is None  # a dict misses such names: not what it takes
    for config, expected in ((minilm, "fp32"), (base, "fp32"), (distil, "fp32"), (large, "bf16"), (None, "bf16"),
                             (SimpleNamespace(), "bf16")):
        assert inference_precision("auto", "cuda", config) == expected
        precision, note = hardware.resolve_precision("auto", config)
        assert precision == expected
        assert ("M weights in its layers" in note) == (expected == "fp32")
    assert hardware.resolve_precision("bf16", minilm)[0] == "bf16"  # asked for: kept
    assert inference_precision("bf16", "cuda", minilm) == "bf16"


def test_training_sizes_the_model_from_its_config_before_loading_it(tiny_model, tmp_path):
    """What training's auto reads on a GPU: the model's transformers config, or None (never an error)
    where it cannot be read, so that loading the model gives the usual message."""
    from tokentune.modeling import peek_config

    config = peek_config(tiny_model.output_dir)
    assert config.hidden_size > 0 and config.num_hidden_layers > 0
    (tmp_path / "empty").mkdir()
    assert peek_config(str(tmp_path / "empty")) is None


def test_bad_precisions_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="fp16 prediction needs a CUDA GPU") as caught:
        inference_precision("fp16", "cpu")
    assert "--precision bf16 or fp32" in caught.value.fix
    with pytest.raises(ConfigError, match="unknown precision 'fp8'; expected one of auto, fp32, bf16, fp16"):
        inference_precision("fp8", "cpu")


def test_a_model_trained_in_fp32_predicts_in_fp32():
    assert precision_after_training("fp32") == "fp32"
    for trained in ("auto", "bf16", "fp16", None):  # a forced bf16 is not kept: slow on CPUs without AMX
        assert precision_after_training(trained) == "auto"


def test_bf16_runner_is_close_to_fp32_and_its_probabilities_are_fp32(tiny_model):
    from tokentune.modeling import load_trained

    model, tokenizer = load_trained(tiny_model.output_dir)
    encoded = tokenizer(["Alice met Bob in Paris .", "Acme ."], padding=True, return_tensors="np")
    ids, mask = encoded["input_ids"].astype(np.int64), encoded["attention_mask"].astype(np.int64)
    fp32 = runners.torch_runner(model, "cpu", "fp32")(ids, mask)
    bf16 = runners.torch_runner(model, "cpu", "bf16")(ids, mask)
    assert fp32.dtype == bf16.dtype == np.float32
    assert np.allclose(bf16.sum(-1), 1.0, atol=1e-5)
    assert not np.array_equal(fp32, bf16)  # bf16 autocast really ran
    assert np.abs(fp32 - bf16).max() < 0.05


def test_tagger_precision_follows_the_machine_and_the_saved_training(tiny_model, tmp_path, amx_cpu):
    directory = tiny_model.output_dir
    assert Tagger.from_pretrained(directory).precision == "bf16"  # trained with auto, loaded on an AMX CPU
    assert Tagger.from_pretrained(directory, precision="fp32").precision == "fp32"
    copy = tmp_path / "fp32-model"
    copy.mkdir()
    for name in os.listdir(directory):
        if name != "tokentune_config.json" and os.path.isfile(os.path.join(directory, name)):
            os.symlink(os.path.join(directory, name), copy / name)
    with open(os.path.join(directory, "tokentune_config.json"), encoding="utf-8") as handle:
        saved = json.load(handle)
    (copy / "tokentune_config.json").write_text(json.dumps({**saved, "precision": "fp32"}))
    assert Tagger.from_pretrained(str(copy)).precision == "fp32"  # its user asked for fp32 figures
    assert Tagger.from_pretrained(str(copy), precision="auto").precision == "fp32"  # auto said aloud: the same
    assert Tagger.from_pretrained(str(copy), precision="bf16").precision == "bf16"
    (copy / "tokentune_config.json").write_text(json.dumps({**saved, "precision": "fp64"}))
    with pytest.raises(ConfigError, match="tokentune_config.json: unknown precision 'fp64'"):
        Tagger.from_pretrained(str(copy))
    assert Tagger.from_pretrained(str(copy), precision="fp32").precision == "fp32"  # the file is not needed then


def test_onnx_backend_refuses_a_torch_precision(tiny_model):
    with pytest.raises(ConfigError, match="precision bf16 applies to the torch backend") as caught:
        Tagger.from_pretrained(tiny_model.output_dir, backend="onnx", precision="BF16")
    assert "--backend torch" in caught.value.fix


def test_evaluate_says_what_it_computed_in(tiny_model, tiny_data, capsys, plain_cpu):
    assert main(["evaluate", tiny_model.output_dir, "--data", tiny_data, "--precision", "bf16", "--json"]) == 0
    bf16 = json.loads(capsys.readouterr().out)
    assert bf16["computed_in"] == "bf16"
    assert main(["evaluate", tiny_model.output_dir, "--data", tiny_data]) == 0
    out = capsys.readouterr().out
    assert "computed in fp32" in out  # auto on a CPU without native bf16
    assert main(["predict", tiny_model.output_dir, "Alice met Bob .", "--precision", "fp16"]) == 2
    err = capsys.readouterr().err
    assert "fp16 prediction needs a CUDA GPU" in err and "Traceback" not in err


def test_training_evaluates_in_the_precision_evaluate_picks(tiny_data, tiny_base_model, tmp_path, amx_cpu):
    """On an AMX CPU a model trained with precision auto is scored in bf16 during training, and
    `tokentune evaluate` of the saved model on the same machine gives the same figures to the last bit."""
    import tokentune

    output = tmp_path.parent / f"{tmp_path.name}-o"
    result = tokentune.train(data=tiny_data, model=tiny_base_model, output=str(output), epochs=2,
                             learning_rate=5e-3, batch_size=8, quiet=True, seed=7)
    again = tokentune.evaluate(str(output), tiny_data, split="dev")
    assert again["computed_in"] == "bf16"
    keys = ("precision", "recall", "f1", "accuracy")
    assert {key: again[key] for key in keys} == {key: result.metrics["dev"][key] for key in keys}
    fp32 = tokentune.evaluate(str(output), tiny_data, split="dev", precision="fp32")
    assert fp32["computed_in"] == "fp32"


def test_serve_refuses_fp16_on_a_cpu_and_frees_the_port(tiny_model, capsys, plain_cpu):
    import socket

    pytest.importorskip("fastapi")  # without it serve stops earlier, saying so

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["serve", tiny_model.output_dir, "--port", str(port), "--precision", "fp16"]) == 2
    assert "fp16 prediction needs a CUDA GPU" in capsys.readouterr().err
    with socket.socket() as again:  # the port bound before the model loaded was closed
        again.bind(("127.0.0.1", port))


def test_the_cpu_bf16_probe_measures_once_per_process():
    from tokentune.training import hardware

    hardware.bf16_matmul_speedup.cache_clear()
    speedup = hardware.bf16_matmul_speedup()
    assert speedup > 0 and hardware.bf16_matmul_speedup() == speedup
    assert hardware.bf16_matmul_speedup.cache_info().misses == 1


def test_the_cpu_bf16_probe_stops_early_where_bf16_is_emulated(monkeypatch):
    """Where bf16 runs at a fraction of fp32's speed each call is long: one timed turn is enough."""
    import time

    import torch

    from tokentune.training import hardware

    calls = []

    def linear(rows, weight):
        calls.append(rows.dtype)
        time.sleep(0.02 if rows.dtype == torch.bfloat16 else 0.001)

    monkeypatch.setattr(torch.nn.functional, "linear", linear)
    hardware.bf16_matmul_speedup.cache_clear()
    try:
        assert hardware.bf16_matmul_speedup() < 0.2
    finally:
        hardware.bf16_matmul_speedup.cache_clear()
    assert calls.count(torch.bfloat16) == 2, "the call that builds the kernels, then one timed turn"


def test_every_rank_trains_in_the_precision_rank_0_chose(tiny_data, tiny_base_model, tmp_path, monkeypatch):
    """Under torchrun each process would measure bf16 on its own; rank 0's choice is broadcast and kept."""
    import tokentune
    from tokentune.training import distributed

    sent = []

    def rank_0s(value):
        if isinstance(value, tuple):  # the (precision, note) pair; other broadcasts pass through
            sent.append(value)
            return "fp32", "precision: fp32 (rank 0's choice)"
        return value

    monkeypatch.setattr(distributed, "broadcast", rank_0s)
    output = tmp_path.parent / f"{tmp_path.name}-o"
    result = tokentune.train(data=tiny_data, model=tiny_base_model, output=str(output), epochs=1,
                             learning_rate=5e-3, batch_size=8, quiet=True, seed=7)
    assert len(sent) == 1 and sent[0][0] in ("fp32", "bf16") and sent[0][1].startswith("precision: ")
    assert "precision: fp32 (rank 0's choice)" in result.notes


def test_the_help_of_auto_states_the_rule_the_code_applies():
    """`train --help` and `predict/evaluate --help` share one text, held to hardware's thresholds."""
    from tokentune.cli.main import build_parser
    from tokentune.config import AUTO_PRECISION
    from tokentune.training.hardware import CPU_BF16_MIN_SPEEDUP, GPU_BF16_MIN_WEIGHTS

    assert f"{CPU_BF16_MIN_SPEEDUP}x as fast as fp32" in AUTO_PRECISION
    assert f"{GPU_BF16_MIN_WEIGHTS // 1_000_000}M weights" in AUTO_PRECISION
    for command in ("train", "predict", "evaluate"):
        parser = build_parser(command)
        sub = next(a for a in parser._actions if a.dest == "command").choices[command]
        help_text = next(a.help for a in sub._actions if "--precision" in a.option_strings)
        assert AUTO_PRECISION in help_text, command
