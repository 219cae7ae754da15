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
    a, b, c, d = feature[CONTEXT_KEY]
    keep = [(0, a if drop_left else b), (b, d if not drop_right else c), (d, len(feature["input_ids"]))]
    cut = {}
    for key, values in feature.items():
        if key != CONTEXT_KEY:
            cut[key] = [value for start, end in keep for value in values[start:end]]
    return cut


class ContextDropoutCollator:
    """Wraps the training collator: cuts each window's context sides with ``probability``, then collates.

    The draws come from a generator seeded with the run's seed, so a run repeats exactly (with the
    default of no data loader worker processes)."""

    def __init__(self, collator, probability: float, seed: int) -> None:
        self.collator = collator
        self.probability = probability
        self.random = random.Random(seed)

    def __call__(self, features: list[dict]) -> dict:
        cut = []
        for feature in features:
            if CONTEXT_KEY not in feature:
                cut.append(feature)
                continue
            drop_left = self.random.random() < self.probability
            drop_right = self.random.random() < self.probability
            cut.append(cut_context(feature, drop_left, drop_right))
        return self.collator(cut)

