"""Where a tokentune process takes its memory from: glibc's thresholds for returning freed blocks.

Set by the processes tokentune itself runs for a job (the ``tokentune`` command, ``predict --workers``
processes, Ray actors of ``predict_dataset``); the library never sets it in a user's process.
"""
from __future__ import annotations

import sys

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


_keeping = False  # whether this process keeps freed memory (reuse_freed_memory)


def reuse_freed_memory() -> bool:
    """Keep freed memory in the process for the next allocation of its size, instead of mapping fresh pages.

    glibc hands blocks above its mmap threshold (at most 32 MB by default) to the kernel on free, so each
    training step faults in fresh zeroed pages for the word-embedding gradient (30,522 x 384 floats, 47 MB,
    allocated and freed every step): bench/allocator_speed.py measured the embedded MiniLM's step 3-9%
    faster with the blocks kept. Prediction's batches free blocks of several MB, which glibc's trimming
    hands back as well: `predict --workers 2` tagged 4% more words/s with its workers set so. It changes
    no result, only where memory comes from. A process-wide setting, so the processes tokentune runs for
    a job set it (the command, its ``--workers`` processes, Ray actors), never the library in a user's
    process (docs/benchmarks.md says how to, for API users).
    256 MB: above the largest block a step frees (the 47 MB gradient, or a larger model's), and a bound
    on the free memory the process keeps. Returns whether the C library took it.
    """
    global _keeping
    kept = malloc_thresholds(256 << 20, 256 << 20)
    _keeping = _keeping or kept
    return kept


def give_back_kept_memory() -> bool:
    """Where this process keeps freed memory (:func:`reuse_freed_memory`), hands what is free now back to the
    system once (glibc's ``malloc_trim``): after training, the steps' freed buffers would otherwise stay in the
    process under what the final evaluation, reports and writing take, and count in its peak memory; after a
    prediction model's linear weights are kept in bf16, so would their fp32 copies. Nothing elsewhere (a
    user's process chose its own allocator settings). Returns whether it did."""
    if not _keeping:
        return False
    libc = _c_library()
    try:
        return bool(libc.malloc_trim(0)) if libc is not None else False
    except AttributeError:  # no malloc_trim in this C library
        return False


def malloc_thresholds(mmap_bytes: int, trim_bytes: int) -> bool:
    """Set glibc's mmap and trim thresholds (mallopt); False where the C library has no such setting
    (not Linux, or musl, whose mallopt is a no-op returning 0)."""
    libc = _c_library()
    if libc is None:
        return False
    try:
        return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_bytes)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim_bytes))
    except AttributeError:  # no mallopt in this C library
        return False


def _c_library():
    """The C library the process runs on (its own symbols), or None where that is not Linux's."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def release_moments(optimizer) -> None:
    """Frees a finished run's optimizer state (AdamW: two floats for every trained weight, about 90 MB for the
    embedded MiniLM), which no one reads after the last step and which the final evaluation, reports and
    writing would otherwise run beside. A torch optimizer only (accelerate wraps one); others are left."""
    import torch

    inner = getattr(optimizer, "optimizer", optimizer)
    if isinstance(inner, torch.optim.Optimizer):
        inner.state.clear()
