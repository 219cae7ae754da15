"""Running under ``torchrun`` / ``accelerate launch``: who is rank 0, and waiting for each other.

The launchers start one process per device and describe the job in environment variables (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...). Every rank reads the data and trains its shard of each
batch; only rank 0 touches the output directory and prints, so ranks never race on files.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True in a single process and on rank 0 of a distributed job."""
    return rank() == 0


def setup() -> None:
    """Join the process group now, before any filesystem work, so ranks can wait for rank 0.

    On machines without a GPU the group must be created for the CPU (gloo); transformers would
    otherwise run each rank as an independent single-process job.
    """
    if world_size() <= 1:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())


def barrier() -> None:
    if world_size() > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()


@contextmanager
def main_first() -> Iterator[bool]:
    """Rank 0 runs the block first (e.g. preparing a directory); the others run it after, seeing its result.

    Yields whether this process is rank 0. An error on rank 0 is raised there; the others would
    wait at the barrier until the launcher stops the job, which torchrun does when a rank fails.
    """
    if not is_main():
        barrier()
    yield is_main()
    if is_main():
        barrier()


def broadcast(value):
    """Rank 0's ``value`` on every rank (e.g. the checkpoint rank 0 found); a picklable object."""
    if world_size() <= 1:
        return value
    import torch.distributed as dist

    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(value) -> list:
    """Every rank's ``value``, in rank order, on every rank (a picklable object)."""
    if world_size() <= 1:
        return [value]
    import torch.distributed as dist

    if not dist.is_initialized():
        return [value]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered
