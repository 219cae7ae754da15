"""--fast-dropout: numpy-drawn dropout masks for the training forward on a CPU.

Oracles: the mask's statistics (rate, scale, unbiased), torch's SDPA for the attention function with
every element kept, and the plain model in eval mode for a whole forward with every element kept."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tokentune.training import dropout as fast


def test_masks_drop_at_the_rate_with_the_scale_and_keep_the_mean():
    torch.manual_seed(0)
    for p in (0.1, 0.5):
        mask = fast.keep_scale((400, 1000), p, torch.float32)
        threshold = round(p * fast.LEVELS)
        scale = fast.LEVELS / (fast.LEVELS - threshold)
        assert torch.unique(mask).tolist() == [0.0, pytest.approx(scale)]
        assert (mask == 0).float().mean().item() == pytest.approx(threshold / fast.LEVELS, abs=3e-3)
        assert mask.mean().item() == pytest.approx(1.0, abs=5e-3)  # unbiased: E[x * mask] = x


def test_masks_follow_torch_seed_and_differ_between_calls():
    torch.manual_seed(3)
    first, second = fast.keep_scale((64, 64), 0.1, torch.float32), fast.keep_scale((64, 64), 0.1, torch.float32)
    torch.manual_seed(3)
    again = fast.keep_scale((64, 64), 0.1, torch.float32)
    assert torch.equal(first, again)
    assert not torch.equal(first, second)


def test_neighbouring_elements_are_independent():
    """Four elements share a 64-bit word: each must have its own 16 bits (a draw reused would make
    neighbours agree far more often than p^2 + (1 - p)^2)."""
    torch.manual_seed(1)
    kept = fast.keep_scale((1_000_000,), 0.5, torch.float32) > 0
    for lag in (1, 2, 3, 4):
        agree = (kept[lag:] == kept[:-lag]).float().mean().item()
        assert agree == pytest.approx(0.5, abs=3e-3)


def test_edge_probabilities_and_odd_sizes():
    assert torch.equal(fast.keep_scale((3, 5), 0.0, torch.float32), torch.ones(3, 5))
    assert torch.equal(fast.keep_scale((3, 5), 1.0, torch.bfloat16), torch.zeros(3, 5, dtype=torch.bfloat16))
    assert fast.keep_scale((7,), 0.3, torch.bfloat16).shape == (7,)  # not a multiple of the four a word fills
    odd = fast.keep_scale((1001, 999), 0.3, torch.float32)
    assert (odd == 0).float().mean().item() == pytest.approx(0.3, abs=3e-3)
    assert odd[-1].ne(0).any() and odd[-1].eq(0).any()  # the last, partly filled word is drawn too


def where_mask(shape, p: float, dtype: torch.dtype) -> torch.Tensor:
    """The oracle: the mask as tokentune first made it, compared and chosen by torch (same draws)."""
    import math

    import numpy as np

    threshold = round(p * fast.LEVELS)
    count = math.prod(shape)
    seed = int(torch.randint(0, 2 ** 62, (1,)).item())
    words = np.random.PCG64(seed).random_raw((count + 3) // 4)
    bits = torch.from_numpy(words.view(np.int16)[:count]).view(shape)
    keep = bits >= threshold - fast.LEVELS // 2
    scale = torch.tensor(fast.LEVELS / (fast.LEVELS - threshold), dtype=dtype)
    return torch.where(keep, scale, torch.tensor(0, dtype=dtype))


@pytest.mark.parametrize("piece", [None, 8], ids=["one piece", "pieces of 8"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("shape,p", [((7, 12, 48, 48), 0.1), ((7, 48, 384), 0.1), ((5,), 0.3), ((33, 3), 0.0),
                                     ((7, 13), 0.3)])
def test_masks_are_bit_for_bit_those_of_torch_where(dtype, shape, p, piece, monkeypatch):
    """Made in numpy as the scale's bit pattern, drawn in pieces, a mask is the one torch.where made from the
    same draws: a run, and a --resume of a run begun before, drop the same elements with the same scale."""
    if piece is not None:
        monkeypatch.setattr(fast, "PIECE", piece)
    torch.manual_seed(11)
    expected = where_mask(shape, p, dtype)
    torch.manual_seed(11)
    mask = fast.keep_scale(shape, p, dtype)
    assert mask.dtype == dtype and mask.shape == expected.shape
    assert torch.equal(mask.view(fast.INTEGER_OF_SIZE[dtype.itemsize][0]),
                       expected.view(fast.INTEGER_OF_SIZE[dtype.itemsize][0]))
    assert mask.is_contiguous()


def test_gradient_is_the_mask_zero_where_dropped():
    hidden = torch.ones(50, 40, requires_grad=True)
    torch.manual_seed(2)
    out = fast.FastDropout(0.2).train()(hidden)
    out.sum().backward()
    assert torch.equal(hidden.grad, out.detach())  # d(x * mask)/dx = mask, and x = 1
    assert (hidden.grad == 0).any()


def test_fast_dropout_is_identity_in_eval_and_drops_in_training():
    layer = fast.FastDropout(0.5)
    hidden = torch.ones(200, 100)
    assert layer.eval()(hidden) is hidden
    dropped = layer.train()(hidden)
    assert 0.45 < (dropped == 0).float().mean().item() < 0.55
    assert set(torch.unique(dropped).tolist()) == {0.0, 2.0}


def _all_kept(monkeypatch):
    monkeypatch.setattr(fast, "keep_scale", lambda shape, p, dtype: torch.ones(shape, dtype=dtype))


@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive"])
def test_attention_equals_sdpa_when_every_element_is_kept(monkeypatch, mask_kind):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    _all_kept(monkeypatch)
    torch.manual_seed(1)
    module = nn.Module()
    module.is_causal = False
    query, key, value = (torch.randn(2, 4, 10, 8) for _ in range(3))
    allowed = torch.ones(2, 1, 10, 10, dtype=torch.bool)
    allowed[0, :, :, 7:] = False  # padding in the first row
    mask = {"none": None, "bool": allowed,
            "additive": torch.where(allowed, 0.0, torch.finfo(torch.float32).min)}[mask_kind]
    ours, _ = fast.attention_with_dropout(module, query, key, value, mask, dropout=0.1, scaling=0.3)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, dropout=0.0, scaling=0.3)
    assert ours.shape == theirs.shape == (2, 10, 4, 8)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("where", ["module", "argument", "neither"])
def test_causal_attention_is_left_to_sdpa(monkeypatch, where):
    """A decoder-configured model: SDPA applies the causal mask itself (its flag resolved from the
    module when the call passes none), which the math path here would not: such calls go to SDPA."""
    from transformers.integrations import sdpa_attention

    calls = []
    monkeypatch.setattr(sdpa_attention, "sdpa_attention_forward", lambda *a, **k: calls.append(k) or ("sdpa", None))
    module = nn.Module()
    module.is_causal = where == "module"
    query, key, value = (torch.randn(1, 2, 6, 4) for _ in range(3))
    flag = {"is_causal": True} if where == "argument" else {}
    output, _ = fast.attention_with_dropout(module, query, key, value, None, dropout=0.1, **flag)
    if where == "neither":
        assert calls == [] and output.shape == (1, 6, 2, 4)
    else:
        assert output == "sdpa" and calls[0]["dropout"] == 0.1


def test_attention_in_bf16_autocast_computes_in_fp32_like_sdpa(monkeypatch):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    _all_kept(monkeypatch)
    module = nn.Module()
    module.is_causal = False
    query, key, value = (torch.randn(1, 2, 12, 16).bfloat16() for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, _ = fast.attention_with_dropout(module, query, key, value, None, dropout=0.1)
        theirs, _ = sdpa_attention_forward(module, query, key, value, None, dropout=0.0)
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), theirs.float(), atol=2e-2, rtol=2e-2)


def _tiny_bert(**settings):
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=5, **settings)
    config._attn_implementation = "sdpa"
    return BertForTokenClassification(config)


def test_swap_runs_only_inside_the_training_forward_and_restores_the_model():
    model = _tiny_bert()
    plain_layers = [m for m in model.modules() if type(m) is nn.Dropout]
    swap = fast.CpuDropout(model)
    # embeddings, 3 a layer (the attention modules hold one whose p they pass to SDPA), the head
    assert swap.attention and len(swap.layers) == len(plain_layers) == 8
    with swap.training_forward():
        assert model.config._attn_implementation == fast.ATTENTION
        assert not any(type(m) is nn.Dropout for m in model.modules())
        assert sum(isinstance(m, fast.FastDropout) for m in model.modules()) == 8
    assert model.config._attn_implementation == "sdpa"
    assert [m for m in model.modules() if type(m) is nn.Dropout] == plain_layers
    with pytest.raises(RuntimeError, match="in the forward"), swap.training_forward():
        raise RuntimeError("in the forward")
    assert model.config._attn_implementation == "sdpa"  # restored after an error too
    assert [m for m in model.modules() if type(m) is nn.Dropout] == plain_layers


def test_whole_forward_with_every_element_kept_equals_the_model_without_dropout(monkeypatch):
    _all_kept(monkeypatch)
    model = _tiny_bert()
    ids = torch.randint(5, 50, (3, 9))
    attention = torch.ones(3, 9, dtype=torch.long)
    attention[1, 6:] = 0
    expected = model.eval()(input_ids=ids, attention_mask=attention).logits
    model.train()
    with fast.CpuDropout(model).training_forward():
        logits = model(input_ids=ids, attention_mask=attention).logits
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_training_forward_drops_and_backpropagates_through_the_masks(monkeypatch):
    drawn, draw = [], fast.keep_scale
    monkeypatch.setattr(fast, "keep_scale", lambda shape, p, dtype: drawn.append(tuple(shape)) or draw(shape, p, dtype))
    model = _tiny_bert().train()
    ids = torch.randint(5, 50, (2, 8))
    with fast.CpuDropout(model).training_forward():
        torch.manual_seed(4)
        first = model(input_ids=ids).logits
        torch.manual_seed(4)
        again = model(input_ids=ids).logits
        other = model(input_ids=ids).logits
    assert torch.equal(first, again) and not torch.equal(first, other)
    # each forward: the embeddings, 2 hidden a layer and the head (6), and 2 layers' attention probabilities
    assert len(drawn) == 3 * 8 and drawn[:8].count((2, 2, 8, 8)) == 2
    first.sum().backward()
    assert all(p.grad is not None for p in model.bert.encoder.parameters())


def test_families_and_settings_it_leaves_alone(monkeypatch):
    from tokentune.config import TrainConfig
    from tokentune.training import hardware

    monkeypatch.setattr(hardware, "has_cuda", lambda: False)  # on a GPU machine the swap is off

    model = _tiny_bert()
    base = dict(data="d", output="o")
    notes = []
    assert fast.cpu_dropout(TrainConfig(**base), model, notes) is not None
    assert fast.cpu_dropout(TrainConfig(**base), model, notes) is not None
    assert len(notes) == 1 and "hidden and attention masks" in notes[0]  # said once
    for off in ({"fast_dropout": False}, {"gradient_checkpointing": True}, {"torch_compile": True}):
        assert fast.cpu_dropout(TrainConfig(**base, **off), model, []) is None
    monkeypatch.setattr(hardware, "has_cuda", lambda: True)
    assert fast.cpu_dropout(TrainConfig(**base), model, []) is None
    no_dropout = _tiny_bert(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    assert not fast.CpuDropout(no_dropout).layers
    eager = _tiny_bert()
    eager.config._attn_implementation = "eager"  # its own dropout on the weights it returns: left to torch
    assert not fast.CpuDropout(eager).attention
    from transformers import DebertaV2Config, DebertaV2ForTokenClassification

    deberta = DebertaV2ForTokenClassification(DebertaV2Config(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                                                              num_attention_heads=2, intermediate_size=64))
    outside = fast.CpuDropout(deberta)  # a family outside the list: its attention, and its own dropout class
    assert not outside.attention
    assert all(type(child) is nn.Dropout for _, _, child, _ in outside.layers)


def test_train_cli_notes_it_and_no_fast_dropout_turns_it_off(tiny_data, tiny_base_model, tmp_path, capsys):
    from tokentune.cli.main import main
    from tokentune.training.hardware import has_cuda

    if has_cuda():
        pytest.skip("on a GPU the swap is off (test_families_and_settings_it_leaves_alone)")

    common = ["train", "--data", tiny_data, "--model", tiny_base_model, "--epochs", "1", "--batch-size", "16",
              "--max-train-samples", "32", "--quiet"]
    assert main([*common, "--output", str(tmp_path / "fast")]) == 0
    assert "dropout: hidden and attention masks drawn from numpy's PCG64" in capsys.readouterr().out
    assert main([*common, "--output", str(tmp_path / "torch"), "--no-fast-dropout"]) == 0
    assert "PCG64" not in capsys.readouterr().out
