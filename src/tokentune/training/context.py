"""Context dropout (``--context-dropout P``): FLERT's regulariser for sentences read with their neighbours.

With ``--context-size N`` every training window is a sentence widened by up to N sub-tokens of its
document on either side. At each training step, each side's context is left out of a window with
probability P, drawn anew for every window at every step (Flair's FLERT does the same, with P = 0.5 by
default), so the model learns to tag a sentence with full, partial or no context, and the steps get
cheaper. Evaluation and prediction always read the full context. Only context is cut: the sentence's own
sub-tokens, and so every label, stay.
"""
from __future__ import annotations

import random

CONTEXT_KEY = "context"  # the feature key of windows.WindowEncoder.features(mark_context=True)


def cut_context(feature: dict, drop_left: bool, drop_right: bool) -> dict:
    """A copy of ``feature`` without its left and/or right context and without the ``context`` marks
    (the dataset's feature is left as it is: it is read again next epoch)."""
    a, b, c, d = feature[CONTEXT_KEY][:4]
    keep = [(0, a if drop_left else b), (b, d if not drop_right else c), (d, len(feature["input_ids"]))]
    cut = {}
    for key, values in feature.items():
        if key != CONTEXT_KEY:
            cut[key] = [value for start, end in keep for value in values[start:end]]
    return cut


class ContextDropoutCollator:
    """Wraps the training collator: cuts each window's context sides with ``probability``, then collates.

    Each window's draw depends only on (seed, epoch, window number), not on the order or grouping of the
    batches: a run resumed mid-epoch cuts the remaining windows exactly as the uninterrupted run did, and
    data-loader worker processes draw as the main process would. :func:`epoch_callback` keeps ``epoch``."""

    def __init__(self, collator, probability: float, seed: int) -> None:
        self.collator = collator
        self.probability = probability
        self.seed = seed
        self.epoch = 0

    def drops(self, window: int) -> tuple[bool, bool]:
        """(leave the left context out, leave the right out) for this window in this epoch."""
        draw = random.Random(f"{self.seed}/{self.epoch}/{window}")  # str seeds hash the same in every process
        return draw.random() < self.probability, draw.random() < self.probability

    def __call__(self, features: list[dict]) -> dict:
        return self.collator([cut_context(f, *self.drops(f[CONTEXT_KEY][4])) if CONTEXT_KEY in f else f
                              for f in features])


def epoch_callback(collator: ContextDropoutCollator):
    """A TrainerCallback that tells the collator the epoch about to begin (resumed epochs too)."""
    from transformers import TrainerCallback

    class CollatorEpoch(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            collator.epoch = int(state.epoch or 0)

    return CollatorEpoch()
