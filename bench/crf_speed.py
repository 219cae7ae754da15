"""The CRF loss's two ways of computing log Z, timed on this machine's device (a GPU where there is one).

``sequence_nll`` takes log Z step by step on the CPU and as a tree of step-matrix products elsewhere
(training/crf.py): the tree launches a few operators per halving of the chain width instead of about 20
per step, and does ``labels`` times the arithmetic. This times the loss and its backward for both, on
batches shaped as a training step's chains are (CoNLL-2003: 9 labels; packed rows of about 16 sentences,
chains of up to ``--width`` words), so that a GPU session can check the choice in seconds.

    .venv/bin/python bench/crf_speed.py [--device cuda] [--repeats 50]
"""
from __future__ import annotations

import argparse
import time


def timed(function, repeats: int, synchronize) -> float:
    """Median milliseconds of ``function()`` over ``repeats`` runs, after three to warm up."""
    for _ in range(3):
        function()
    synchronize()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        synchronize()
        samples.append((time.perf_counter() - started) * 1e3)
    return sorted(samples)[len(samples) // 2]


def time_shape(count, width, labels, device, repeats, synchronize, generator) -> tuple[float, float]:
    """(step-by-step ms, tree ms) for one batch shape: random chains, the first one of full width."""
    import torch

    from tokentune.training.crf import sequence_nll

    lengths = torch.randint(1, width + 1, (count,), generator=generator)
    lengths[0] = width
    mask = (torch.arange(width)[None] < lengths[:, None]).to(device)
    tags = torch.randint(0, labels, (count, width), generator=generator).to(device) * mask
    emissions = torch.randn(count, width, labels, generator=generator).to(device).requires_grad_(True)
    scores = [torch.randn(*shape, generator=generator).to(device).requires_grad_(True)
              for shape in ((labels,), (labels, labels), (labels,))]

    def loss(tree: bool) -> None:
        sequence_nll(emissions, tags, mask, *scores, tree=tree).sum().backward()

    return timed(lambda: loss(False), repeats, synchronize), timed(lambda: loss(True), repeats, synchronize)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    synchronize = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    print(f"device {args.device}; median ms of the loss and its backward\n")
    print("| chains x width x labels | step by step | tree | tree / stepwise |\n|---|---:|---:|---:|")
    generator = torch.Generator().manual_seed(0)
    for count, width, labels in ((16, 40, 9), (48, 40, 9), (64, 60, 9), (48, 40, 13)):
        stepwise, tree = time_shape(count, width, labels, args.device, args.repeats, synchronize, generator)
        print(f"| {count} x {width} x {labels} | {stepwise:.2f} | {tree:.2f} | {tree / stepwise:.2f} |")

if __name__ == "__main__":
    main()
