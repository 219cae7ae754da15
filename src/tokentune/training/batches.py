"""Training batches of similar lengths, in an order fixed by (seed, epoch).

Random batches of CoNLL sentences are mostly padding (2.38 sub-tokens computed per real one with the
embedded MiniLM); batches of similar lengths cut that to a few percent. transformers' own
LengthGroupedSampler draws its order from torch's global random state, which a resumed run or a second
rank cannot reproduce; this sampler's order depends only on the seed and the epoch, so

* every rank of a distributed job draws the same order (each then takes its own batches of it),
* a run resumed mid-epoch skips exactly the batches the interrupted run had trained on.
"""
from __future__ import annotations

from typing import Iterator, Sequence

MEGABATCH = 50  # batches sorted together: enough for little padding, few enough to stay random


def length_grouped_order(lengths: Sequence[int], batch_size: int, seed: int,
                         megabatch: int = MEGABATCH) -> list[int]:
    """Example indices such that each run of ``batch_size`` holds examples of similar lengths.

    The examples are shuffled, cut into megabatches of ``megabatch`` batches, sorted by length inside
    each, cut into batches, and the batches shuffled again (so lengths don't rise or fall steadily
    through an epoch). The batch with the longest example comes first: out of memory shows at once.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(lengths), generator=generator).tolist()
    size = max(1, min(megabatch, len(lengths) // (batch_size * 4))) * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(indices), size):
        mega = sorted(indices[start:start + size], key=lambda i: lengths[i], reverse=True)
        batches.extend(mega[i:i + batch_size] for i in range(0, len(mega), batch_size))
    # A short batch (the remainder of a megabatch) is moved last, so every step but the last is full.
    full = [b for b in batches if len(b) == batch_size]
    short = [b for b in batches if len(b) < batch_size]
    order = torch.randperm(len(full), generator=generator).tolist()
    full = [full[i] for i in order]
    if full:
        longest = max(range(len(full)), key=lambda i: lengths[full[i][0]])
        full[0], full[longest] = full[longest], full[0]
    return [i for batch in full + short for i in batch]


class LengthGroupedSampler:
    """A torch Sampler of :func:`length_grouped_order` with ``set_epoch``, which the Trainer (through
    accelerate's data loader) calls at the start of each epoch."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, megabatch: int = MEGABATCH) -> None:
        self.lengths = list(lengths)
        self.megabatch = megabatch
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        # a large odd multiplier keeps (seed, epoch) pairs from colliding for nearby seeds
        return iter(length_grouped_order(self.lengths, self.batch_size, self.seed + 1_000_003 * self.epoch,
                                         self.megabatch))


def padding_stats(lengths: Sequence[int], order: Sequence[int], batch_size: int) -> tuple[int, int]:
    """(real tokens, tokens computed with padding) for batches taken from ``order``: what grouping saves."""
    real = padded = 0
    for start in range(0, len(order), batch_size):
        batch = [lengths[i] for i in order[start:start + batch_size]]
        real += sum(batch)
        padded += max(batch) * len(batch)
    return real, padded
