"""Faster dropout for training on a CPU (``--fast-dropout``, the default).

torch draws a CPU dropout mask with ``bernoulli_``, at about 10 ns an element: the 20 dropout layers of
a MiniLM training step (6 of them over attention probabilities) took up to a quarter of the step
(docs/benchmarks.md, "Dropout masks on a CPU"). Here a mask comes from numpy's PCG64 bit generator, 64
random bits for four elements: an element is kept when its 16 bits are at least round(p x 65536), and
kept elements are scaled by 65536 / (65536 - that). So it is dropout with the probability rounded to
1/65536 (0.1 becomes 0.10000610; below 1/131072 it rounds to none), unbiased: the expected output is
the input. Each mask's PCG64 seed is drawn from torch's generator, so a run with a seed repeats, and
so does ``--resume``, which restores torch's generator.

The layers are swapped in only for the training forward (:class:`CpuDropout`), so evaluation, the saved
model and anything else reading the model see the plain modules. Attention dropout happens inside
transformers' SDPA call, which takes no mask: for families whose attention goes through transformers'
attention functions with ``sdpa``, that forward runs :func:`attention_with_dropout`, which does what
SDPA's own math path does when it drops (fp32 scores, softmax, dropout, weighted sum); a causal
(decoder-configured) model keeps transformers' SDPA call and torch's dropout there.

Runs and tune studies begun before this setting existed used torch's dropout: they continue with
``--no-fast-dropout`` (config.ADDED_LATER), so that a resumed run still ends where an uninterrupted one would.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

LEVELS = 1 << 16  # 16 random bits an element
# a float format's bits as the integer of its size: (torch dtype, numpy dtype)
INTEGER_OF_SIZE = {2: (torch.int16, np.int16), 4: (torch.int32, np.int32), 8: (torch.int64, np.int64)}
PIECE = 1 << 20  # mask elements drawn at a time: numpy's arrays stay under 4 MB (a multiple of 4)
ATTENTION = "tokentune_cpu_dropout"  # the name the attention function is registered under in transformers
# families whose attention modules call transformers' attention functions with ``dropout=`` and nothing
# else that SDPA would treat specially (checked in transformers 5: no position bias, no GQA, not causal)
ATTENTION_FAMILIES = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert"})


def keep_scale(shape, p: float, dtype: torch.dtype) -> torch.Tensor:
    """A dropout mask with its scale folded in: 0 where dropped, 65536 / (65536 - round(p x 65536)) elsewhere."""
    threshold = round(p * LEVELS)
    if threshold >= LEVELS:
        return torch.zeros(shape, dtype=dtype)
    count = math.prod(shape)
    generator = np.random.PCG64(int(torch.randint(0, 2 ** 62, (1,)).item()))
    as_int = INTEGER_OF_SIZE[dtype.itemsize]
    scale = as_int[1](torch.tensor(LEVELS / (LEVELS - threshold), dtype=dtype).view(as_int[0]).item())
    mask = torch.empty(count, dtype=dtype)
    bits = mask.view(as_int[0]).numpy()
    # Made in numpy, in torch's memory: numpy's comparison is vectorised where torch's int16 one took 8x as
    # long, and the mask is the scale's bit pattern times 0 or 1 (0 bits are 0.0 in every float format), a
    # third of the time of torch.where with the same values. In pieces, as numpy asks the kernel for huge
    # pages for arrays of 4 MB or more: faulting them in made 2,000-sentence training slower, its peak
    # memory 150 MB higher. The stream of draws is the same in pieces (4 elements a 64-bit word).
    for start in range(0, count, PIECE):
        size = min(PIECE, count - start)
        words = generator.random_raw((size + 3) // 4)
        keep = words.view(np.int16)[:size] >= threshold - LEVELS // 2  # each 16 bits uniform on [-32768, 32767]
        np.multiply(keep.view(np.uint8), scale, out=bits[start:start + size])
    return mask.view(shape)


class FastDropout(nn.Module):
    """``nn.Dropout`` with :func:`keep_scale`'s masks on the CPU (elsewhere torch's own dropout)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return hidden
        if hidden.device.type != "cpu":
            return nn.functional.dropout(hidden, self.p, True)
        return hidden * keep_scale(hidden.shape, self.p, hidden.dtype)


def attention_with_dropout(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                           is_causal=None, **kwargs):
    """transformers' attention-function signature; SDPA's math path with :func:`keep_scale`'s dropout."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    causal = is_causal if is_causal is not None else getattr(module, "is_causal", False)  # as sdpa resolves it
    plain = (not dropout or query.device.type != "cpu" or causal or key.shape[1] != query.shape[1]
             or any(kwargs.get(name) is not None for name in ("position_bias", "softcap", "sliding_window")))
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    with torch.autocast("cpu", enabled=False):  # SDPA's math path computes low-precision inputs in fp32
        scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scale
        if attention_mask is not None and attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        elif attention_mask is not None:
            scores = scores + attention_mask.float()
        probs = torch.softmax(scores, dim=-1)
        probs = probs * keep_scale(probs.shape, dropout, probs.dtype)
        output = torch.matmul(probs, value.float()).to(query.dtype)
    return output.transpose(1, 2).contiguous(), None


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(ATTENTION, attention_with_dropout)
    AttentionMaskInterface.register(ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])  # the same masks as sdpa


class CpuDropout:
    """A model's ``nn.Dropout`` layers and SDPA attention, swapped for :class:`FastDropout` and
    :func:`attention_with_dropout` while :meth:`training_forward` is open."""

    def __init__(self, model: nn.Module):
        self.config = getattr(model, "config", None)
        self.layers = [(parent, name, child, FastDropout(child.p))
                       for parent in model.modules() for name, child in parent.named_children()
                       if type(child) is nn.Dropout and child.p > 0]  # subclasses (DeBERTa's) keep their own
        self.attention = (getattr(self.config, "model_type", None) in ATTENTION_FAMILIES
                          and getattr(self.config, "_attn_implementation", None) == "sdpa")
        if self.attention:
            _register_attention()

    def __bool__(self) -> bool:
        return bool(self.layers) or self.attention

    @contextmanager
    def training_forward(self):
        for parent, name, plain, fast in self.layers:
            fast.training = plain.training  # a layer the user put in eval mode stays so
            setattr(parent, name, fast)
        before = self.config._attn_implementation if self.attention else None
        if self.attention:
            self.config._attn_implementation = ATTENTION
        try:
            yield
        finally:
            if self.attention:
                self.config._attn_implementation = before
            for parent, name, plain, _ in self.layers:
                setattr(parent, name, plain)


def cpu_dropout(config, model: nn.Module, notes: list[str]) -> CpuDropout | None:
    """The swap for this run (its note added to ``notes`` once); None where it does not apply:
    ``--no-fast-dropout``, a GPU, ``--gradient-checkpointing`` (the backward recomputes the forward
    outside the swap, with other masks) or ``--torch-compile`` (a compiled graph would be traced again
    at each swap)."""
    from .hardware import has_cuda

    if not config.fast_dropout or config.gradient_checkpointing or config.torch_compile or has_cuda():
        return None
    swap = CpuDropout(model)
    if not swap:
        return None
    where = "hidden and attention" if swap.attention else "hidden"
    note = (f"dropout: {where} masks drawn from numpy's PCG64, about 3x faster on a CPU than torch's "
            "(--no-fast-dropout for torch's)")
    if note not in notes:  # build_trainer runs again after an out-of-memory halving
        notes.append(note)
    return swap
