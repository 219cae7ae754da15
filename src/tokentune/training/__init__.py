"""Training: :func:`train` reads the data, fine-tunes with transformers' Trainer and writes a model
directory. Modules: run (the steps), trainer (the Trainer subclass and its arguments), batches and
packing (how examples become batches), outputs (staging and the files a run writes), checkpoints,
distributed (torchrun/accelerate ranks), hardware (precision), dropout and rows (cheaper steps)."""
from __future__ import annotations

from .run import TrainResult, prepare_splits, train

__all__ = ["train", "TrainResult", "prepare_splits"]
