"""Operators per training step, by tokentune option: what a GPU pays in kernel launches.

On a GPU the embedded model (MiniLM, 22M parameters) is too small to keep the device busy: each operator
is a kernel launch of a few microseconds, and a step's time follows the number of operators rather than
their arithmetic. On the H200, ``tokentune train`` trained 2.5x slower than the plain recipe (13.2 s
against 5.3 s on 2,000 sentences, docs/benchmarks.md). This counts, on any machine, the operators of one
optimizer step (forward, backward, optimizer) for tokentune's defaults and with each option turned back
to the plain recipe's choice, so that each option's share of the launches is visible without a GPU.

Counted: the ``aten::`` operators under ``Trainer.train`` that launch a kernel (none of their descendants
does, and they do more than make a view or allocate), outside the data loader, on ``--samples``
CoNLL-2003 sentences, batch 16, no dev set, divided by the optimizer steps (the optimizer's one-off
set-up is spread over them). A proxy: the CPU runs the model's operators as a GPU would (its autocast
dtype is bf16 too), but splits some that CUDA runs as one (``_foreach_*`` in the optimizer, the norms of
the gradient clipping: the same in every row), and the tree of the CRF is chosen off the CPU only.

    .venv/bin/python bench/ops_per_step.py [--samples 128]
    PYTHONPATH=/tmp/before/src .venv/bin/python bench/ops_per_step.py   # an earlier commit, for comparison
"""
from __future__ import annotations

import argparse

from train_step_profile import profiled_training

# operators that launch no kernel: views, metadata, allocation
NO_KERNEL = {
    "aten::view", "aten::_unsafe_view", "aten::as_strided", "aten::t", "aten::transpose", "aten::permute",
    "aten::expand", "aten::reshape", "aten::_reshape_alias", "aten::unsqueeze", "aten::squeeze", "aten::slice",
    "aten::select", "aten::detach", "aten::detach_", "aten::alias", "aten::empty", "aten::empty_strided",
    "aten::empty_like", "aten::resize_", "aten::split", "aten::split_with_sizes", "aten::chunk", "aten::unbind",
    "aten::narrow", "aten::lift_fresh", "aten::result_type", "aten::is_nonzero", "aten::item",
    "aten::_local_scalar_dense", "aten::set_", "aten::unflatten", "aten::flatten", "aten::view_as",
    "aten::numpy_T", "aten::expand_as", "aten::_has_compatible_shallow_copy_type", "aten::size", "aten::stride",
    "aten::to", "aten::resolve_conj", "aten::resolve_neg",  # leaves only where they return their input as it is
}
# as on a GPU: auto picks bf16 there, and the CRF's log Z is taken as a tree (training/crf.py)
GPU = {"precision": "bf16", "crf_tree": True}
PLAIN = {"head": "softmax", "packing": False, "embedding_rows": False, "precision": "fp32", "head_lr_factor": 1.0}
VARIANTS = (
    ("tokentune defaults, as on a GPU", GPU),
    ("CRF log Z step by step (as on a CPU)", {**GPU, "crf_tree": False}),
    ("--head softmax", {**GPU, "head": "softmax"}),
    ("--no-packing", {**GPU, "packing": False}),
    ("--no-embedding-rows", {**GPU, "embedding_rows": False}),
    ("--precision fp32", {**GPU, "precision": "fp32"}),
    ("--head-lr-factor 1", {**GPU, "head_lr_factor": 1.0}),
    ("all five (the plain recipe's choices)", PLAIN),
)


def count_launches(event, launches) -> int:
    """Adds to ``launches`` the operators under ``event`` that launch a kernel: an ``aten::`` operator
    none of whose descendants does, and that is not a view or an allocation (``aten::mm`` calls
    ``resolve_conj`` and ``clone`` on the CPU, yet is the product). The data loader's work is the host's."""
    if event.name.startswith("enumerate(DataLoader)"):
        return 0
    below = sum(count_launches(child, launches) for child in event.cpu_children)
    if below or not event.name.startswith("aten::") or event.name in NO_KERNEL:
        return below
    launches[event.name] += 1
    return 1


def count_ops(samples: int, options: dict) -> tuple[float, dict]:
    """(kernel-launching operators per optimizer step, the 8 commonest of them per step)."""
    from collections import Counter

    seen = profiled_training(samples, **options)
    launches = Counter()
    for event in seen["profile"].events():
        if event.cpu_parent is None:
            count_launches(event, launches)
    steps = max(seen["steps"], 1)
    return sum(launches.values()) / steps, {name: count / steps for name, count in launches.most_common(8)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=128, help="training sentences (batch 16: samples / 16 steps)")
    args = parser.parse_args()
    rows = [(label, *count_ops(args.samples, options)) for label, options in VARIANTS]
    base = rows[0][1]
    print(f"\n{args.samples} CoNLL-2003 sentences, batch 16, embedded MiniLM\n")
    print("| configuration | operators per step (kernel launches on a GPU) | x defaults | commonest |\n|---|---:|---:|---|")
    for label, per_step, common in rows:
        top = ", ".join(f"{name[6:]} {count:.0f}" for name, count in list(common.items())[:5])
        print(f"| {label} | {per_step:,.0f} | {per_step / base:.2f}x | {top} |")


if __name__ == "__main__":
    main()
