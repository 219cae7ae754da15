"""Where a training step's time goes on a GPU: the host's launches and waits against the device's work.

For a model as small as the embedded MiniLM a GPU step can wait on the host (Python, dispatch, kernel
launches) rather than on the device's arithmetic, and every host-device synchronisation inside the step
stops the host from queueing ahead. This runs ``tokentune.train`` on ``--samples`` CoNLL-2003 sentences
(batch 16, 1 epoch, no dev) with torch.profiler (CUDA activity) recording ``--active`` steps, for
tokentune's defaults and with options turned back to the plain recipe's choices (the configurations of
``ops_per_step.py``; "defaults" is bf16, as ``auto`` picked on GPUs before), and prints per optimizer
step: wall milliseconds (median of the steps after ``--warmup`` and outside the recorded window), the
device's busy milliseconds (its kernels and copies, as the profiler's table sums them), kernel launches,
synchronisations (stream, device, event) with the host's milliseconds spent in them, and where
``torch.cuda.set_sync_debug_mode`` saw the synchronising calls (per step, over all steps).

    python3 bench/gpu_step_profile.py [--samples 320] [--only defaults fp32 softmax plain]

On a machine without CUDA it profiles the CPU only (launches and device time then read 0).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections import Counter

from ops_per_step import GPU, PLAIN
from train_step_profile import profiled_training

CONFIGS = {"defaults": GPU, "fp32": {**GPU, "precision": "fp32"}, "softmax": {**GPU, "head": "softmax"},
           "plain": PLAIN}
SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def profiled_steps(samples: int, options: dict, warmup: int, active: int) -> dict:
    """``tokentune.train`` with the profiler recording ``active`` steps after ``warmup``:
    ``{"profile", "step_ends", "steps", "all_steps", "sync_sites"}`` (``steps``: those recorded)."""
    from contextlib import contextmanager

    import torch
    from torch.profiler import ProfilerActivity, schedule
    from transformers import TrainerCallback

    import tokentune

    seen = {"step_ends": [], "sync_sites": Counter()}
    cuda = torch.cuda.is_available()

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen["step_ends"].append(time.perf_counter())
            seen["profiler"].step()

    @contextmanager
    def sync_warnings():  # where torch's sync debug mode saw a synchronising call, by file and line
        if cuda:
            torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                yield
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
        root = os.path.dirname(tokentune.__path__[0])
        for warning in caught:
            if "synchroniz" in str(warning.message):
                seen["sync_sites"][f"{os.path.relpath(warning.filename, root)}:{warning.lineno}"] += 1

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    profiled_training(samples, seen=seen, around=sync_warnings, callbacks=[StepClock()],
                      profile_options={"activities": activities,
                                       "schedule": schedule(wait=warmup, warmup=1, active=active)}, **options)
    seen["all_steps"] = max(1, seen["steps"])
    seen["steps"] = min(active, max(1, seen["steps"] - warmup - 1))
    return seen


def summarise(seen: dict, warmup: int) -> dict:
    steps = seen["steps"]
    ends = seen["step_ends"]
    gaps = [(b - a) * 1e3 for a, b in zip(ends, ends[1:])]
    # the steps after the warm-up and outside the recorded window (recording slows a step)
    recorded = range(warmup, warmup + 1 + seen["steps"] + 1)
    gaps = [gap for index, gap in enumerate(gaps, 1) if index >= warmup and index not in recorded] or [float("nan")]
    events = seen["profile"].key_averages()
    from torch.autograd import DeviceType

    # as the profiler's own table sums it: the device's events only (a CPU operator's device time repeats
    # its kernels', and user annotations such as ProfilerStep span whole steps)
    device_us = sum(e.self_device_time_total for e in events
                    if e.device_type == DeviceType.CUDA and not e.is_user_annotation)
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel"))
    syncs = [e for e in events if e.key in SYNCS]
    return {"wall_ms": statistics.median(gaps), "device_ms": device_us / 1e3 / steps,
            "launches": launches / steps, "syncs": sum(e.count for e in syncs) / steps,
            "sync_ms": sum(e.cpu_time_total for e in syncs) / 1e3 / steps,
            "sites": [(site, count / seen["all_steps"]) for site, count in seen["sync_sites"].most_common(8)],
            "events": events}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=320, help="training sentences (batch 16)")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the wall-time median and the profile")
    parser.add_argument("--active", type=int, default=8, help="steps profiled after the warm-up (and one more)")
    parser.add_argument("--only", nargs="+", choices=tuple(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--table", action="store_true", help="also print the top operators of each configuration")
    args = parser.parse_args()
    rows = {name: summarise(profiled_steps(args.samples, CONFIGS[name], args.warmup, args.active), args.warmup)
            for name in args.only}
    print(f"\n{args.samples} CoNLL-2003 sentences, batch 16, embedded MiniLM; per optimizer step\n")
    print("| configuration | wall ms (median) | device busy ms | kernel launches | syncs | host ms in syncs |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['wall_ms']:.1f} | {row['device_ms']:.1f} | {row['launches']:.0f} | {row['syncs']:.1f} "
              f"| {row['sync_ms']:.1f} |")
    for name, row in rows.items():
        sites = ", ".join(f"{site} x{count:.1f}" for site, count in row["sites"]) or "none seen"
        print(f"\n{name}: synchronising calls per step: {sites}")
        if args.table:
            print(row["events"].table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=60))


if __name__ == "__main__":
    main()
