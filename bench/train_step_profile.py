"""Where a training step's time goes: torch.profiler over ``tokentune.train``'s steps, grouped.

Runs ``tokentune.train`` on a slice of CoNLL-2003 train (default 640 sentences, 1 epoch, no dev, lr 5e-5) with
the profiler recording the CPU time of every torch operator during ``Trainer.training_step`` and the
optimizer step, then groups the operators: matrix products (forward and backward), attention, the
optimizer update, the loss, and the rest (layer norms, GELU, dropout, copies, ...). Also reports the
optimizer the Trainer built (fused/foreach) and the time of collating batches.

    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/train_step_profile.py [--samples 640]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from small_data_tune import DATA

GROUPS = (
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("attention", ("aten::_scaled_dot_product", "aten::scaled_dot_product", "aten::softmax", "aten::_softmax")),
    ("optimizer update", ("Optimizer.step", "aten::_fused_adam", "aten::_foreach")),
    ("loss", ("aten::cross_entropy", "aten::nll_loss", "aten::log_softmax", "aten::_log_softmax")),
)


def profiled_training(samples: int, *, profile_options: dict | None = None, around=None, seen: dict | None = None,
                      crf_tree: bool | None = None, callbacks=(), **options) -> dict:
    """``tokentune.train`` on ``samples`` CoNLL-2003 training sentences (1 epoch, lr 5e-5, no dev or test:
    training alone) with torch.profiler recording ``Trainer.train``: ``seen`` (a new dict by default) filled
    with ``{"profile", "seconds", "optimizer", "steps"}``, and ``"profiler"`` (the live one) while it runs.
    ``profile_options``: torch.profiler.profile's (default: CPU activity); ``around``: a context manager
    factory entered inside ``Trainer.train`` around the profile; ``crf_tree``: the CRF's log Z as a tree or
    step by step (None: as the device decides); ``callbacks``: TrainerCallbacks; ``options``: more
    ``tokentune.train`` settings."""
    from contextlib import nullcontext
    from functools import partial

    from torch.profiler import ProfilerActivity, profile
    from transformers import Trainer

    import tokentune
    from tokentune.training import crf

    seen = {} if seen is None else seen
    real_train, real_nll = Trainer.train, crf.sequence_nll

    def profiled_train(self, *a, **k):
        with (around or nullcontext)(), profile(**(profile_options or {"activities": [ProfilerActivity.CPU]})) as prof:
            seen["profiler"] = prof
            started = time.perf_counter()
            output = real_train(self, *a, **k)
            seen["seconds"] = time.perf_counter() - started
        seen.update(profile=prof, optimizer=self.optimizer, steps=self.state.global_step)
        return output

    Trainer.train = profiled_train
    if crf_tree is not None and "tree" in (real_nll.__kwdefaults__ or {}):  # an earlier commit's src has one way only
        crf.sequence_nll = partial(real_nll, tree=crf_tree)
    try:
        out = os.path.join(tempfile.mkdtemp(prefix="tokentune-profile-"), "model")
        tokentune.train(train_file=os.path.join(DATA, "train.txt"), output=out, epochs=1, learning_rate=5e-5,
                        max_train_samples=samples, quiet=True, callbacks=callbacks, **options)
    finally:
        Trainer.train, crf.sequence_nll = real_train, real_nll
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=640)
    args = parser.parse_args()
    import torch

    from tokentune.training import packing

    collate_seconds = [0.0]
    real_call = packing.PackingCollator.__call__

    def timed_call(self, features):
        started = time.perf_counter()
        try:
            return real_call(self, features)
        finally:
            collate_seconds[0] += time.perf_counter() - started

    packing.PackingCollator.__call__ = timed_call
    try:
        seen = profiled_training(args.samples)
    finally:
        packing.PackingCollator.__call__ = real_call
    events = seen["profile"].key_averages()
    total = seen["seconds"]
    optimizer = seen["optimizer"]
    inner = getattr(optimizer, "optimizer", optimizer)
    options = {k: inner.defaults.get(k) for k in ("fused", "foreach")}
    print(f"{args.samples} sentences, 1 epoch: Trainer.train {total:.1f} s; optimizer {type(inner).__name__} {options}; "
          f"torch threads {torch.get_num_threads()}; collation {collate_seconds[0]:.2f} s")
    print("\n| part | CPU seconds (self) | share of all operators |\n|---|---:|---:|")
    self_total = sum(e.self_cpu_time_total for e in events) / 1e6
    rows = {name: 0.0 for name, _ in GROUPS}
    rest = 0.0
    for event in events:
        seconds = event.self_cpu_time_total / 1e6
        for name, prefixes in GROUPS:
            if event.key.startswith(prefixes):
                rows[name] += seconds
                break
        else:
            rest += seconds
    for name, seconds in [*rows.items(), ("everything else", rest)]:
        print(f"| {name} | {seconds:.2f} | {seconds / self_total:.0%} |")
    print("\nTop operators by self CPU time:\n")
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
