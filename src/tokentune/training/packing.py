"""Packed training batches: the recipe's random batches, with the padding taken out.

Length-grouped batches (batching.py) cut padding by putting sentences of similar lengths together;
those batches are less varied than random ones, and in short runs at a low learning rate that costs
dev F1 (docs/benchmarks.md, "Training"). Packing keeps the recipe's batches exactly (the same random
sentences per step) and instead lays several sentences end to end in one row of the batch:

* rows are as wide as the batch's longest sentence; sentences go into rows first-fit, longest first;
* a block-diagonal attention mask keeps every sentence to itself, and position ids restart at 0 for
  each sentence, so each sentence is computed as if it were alone (up to float rounding);
* padding positions attend only to themselves: a fully masked row would give NaN in the softmax,
  and NaN times a zero gradient is still NaN.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..modeling import POSITIONS_AFTER_PADDING, POSITIONS_FROM_ZERO
from ..windows import IGNORE

# Where each architecture's absolute positions start (modeling.py): packing needs them, as every sentence
# restarts at its first position; a model family not listed there is refused rather than trained with
# wrong positions.


def packing_plan(setting: bool | None, model_config) -> tuple[int | None, str]:
    """(first position id, or None for no packing; a note) for the ``packing`` setting: True, False, or
    None = pack where this model family's positions are known, else batches grouped by length."""
    from ..errors import ConfigError

    if setting is False:
        return None, "batches: grouped by length (--no-packing)"
    try:
        first = position_offset(model_config)
    except ConfigError:
        if setting:
            raise
        kind = getattr(model_config, "model_type", None)
        return None, f"batches: grouped by length (packing does not know the positions of {kind!r} models)"
    return first, "batches: the recipe's random batches, packed several sentences per row (--no-packing to turn off)"


def position_offset(model_config) -> int:
    """The first position id of a sentence for this model family (RoBERTa's start after its pad id)."""
    from ..errors import ConfigError

    kind = getattr(model_config, "model_type", None)
    if kind in POSITIONS_FROM_ZERO:
        return 0
    if kind in POSITIONS_AFTER_PADDING:
        return int(model_config.pad_token_id) + 1
    raise ConfigError(f"--packing needs a model whose position ids it knows; this one is of type {kind!r}",
                      fix="drop --packing (batches are then grouped by length), or use a BERT, ELECTRA or "
                          "RoBERTa-family encoder")


def pack_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into rows of at most ``width`` (first fit, longest first)."""
    rows: list[list[int]] = []
    free: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        size = lengths[index]
        if size > width:
            raise ValueError(f"a sequence of {size} does not fit a row of {width}")
        for row, room in enumerate(free):
            if room >= size:
                rows[row].append(index)
                free[row] -= size
                break
        else:
            rows.append([index])
            free.append(width - size)
    return rows


def block_diagonal_mask(segment: np.ndarray) -> np.ndarray:
    """``[rows, 1, width, width]`` bool attention mask from ``segment`` ``[rows, width]`` (each position's
    sequence number in its row, -1 for padding): a sequence attends to itself only, and padding only to
    itself, since a fully masked row of the attention would give NaN."""
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
    return (same | np.eye(segment.shape[1], dtype=bool))[:, None]


def additive_mask(mask, dtype=None):
    """A bool attention mask as eager attention takes it: 0 where attended, the dtype's lowest elsewhere."""
    import torch

    dtype = dtype or torch.float32
    return torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)


class PackingCollator:
    """Collates training features (``input_ids``, ``labels``) into packed rows.

    Returns ``input_ids``, ``labels``, ``position_ids`` and a 4D ``attention_mask`` of shape
    (rows, 1, width, width): boolean for SDPA attention, additive (0 / -inf-like) for eager attention.
    """

    def __init__(self, pad_token_id: int, *, pad_to_multiple_of: int | None = None, additive_mask: bool = False,
                 first_position: int = 0):
        self.pad_token_id = pad_token_id
        self.first_position = first_position
        self.pad_to_multiple_of = pad_to_multiple_of
        self.additive_mask = additive_mask

    def __call__(self, features: list[dict]) -> dict:
        import torch

        lengths = [len(f["input_ids"]) for f in features]
        width = max(lengths)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        rows = pack_rows(lengths, width)
        shape = (len(rows), width)
        input_ids = torch.full(shape, self.pad_token_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE, dtype=torch.long)
        position_ids = torch.zeros(shape, dtype=torch.long)
        segment = np.full(shape, -1, dtype=np.int64)
        for row, members in enumerate(rows):
            start = 0
            for number, index in enumerate(members):
                end = start + lengths[index]
                input_ids[row, start:end] = torch.as_tensor(features[index]["input_ids"])
                labels[row, start:end] = torch.as_tensor(features[index]["labels"])
                position_ids[row, start:end] = torch.arange(end - start) + self.first_position
                segment[row, start:end] = number
                start = end
        mask = torch.from_numpy(block_diagonal_mask(segment))
        if self.additive_mask:
            mask = additive_mask(mask)
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids, "attention_mask": mask}
