"""What a training run that failed says, so that the user's next step is the right one.

Three failures were reported as something else:

* any error while a resumed run trained (a peer process dying, memory running out) blamed the checkpoint
  and told the user to delete it, throwing away good progress; only an error while the checkpoint loads
  says that now (:class:`CheckpointLoaded` tells the two apart);
* another process of a distributed run dying ended in the backend's traceback (gloo: "Connection reset by
  peer") with no word of the checkpoints kept for ``--resume``;
* running out of memory where the batch-size finder does not retry (several processes, a batch of 1,
  ``--no-auto-batch-size``) ended in a raw traceback.
"""
from __future__ import annotations

import os

from ..errors import ConfigError, Interrupted, TokentuneError
from . import distributed

# what gloo, NCCL and torch's store say when another process of the job went away
_PEER_GONE = ("connection reset by peer", "connection closed by peer", "broken pipe", "gloo", "nccl",
              "socket timeout", "connection refused")


class RunStopped(TokentuneError):
    """A distributed run stopped because another of its processes failed or was killed."""


def checkpoint_loaded_callback():
    """A Trainer callback whose ``loaded`` turns True once the Trainer has loaded everything it resumes from
    (weights, optimizer, scheduler) and begins to train: later errors are not the checkpoint's."""
    from transformers import TrainerCallback

    class CheckpointLoaded(TrainerCallback):
        loaded = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.loaded = True

    return CheckpointLoaded()


def lost_peer(err: BaseException) -> bool:
    """Whether ``err`` says that another process of this distributed run is gone."""
    if distributed.world_size() <= 1:
        return False
    import torch.distributed as dist

    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(sign in text for sign in _PEER_GONE)


def interrupted(kept: str, staging: str) -> Interrupted:
    """The stop of a run that left ``kept`` to continue from: what the command says."""
    return Interrupted(f"{os.path.basename(kept)} is kept in {staging}: run the same command with --resume to "
                       f"continue from it")


def missing_package_error(err: ImportError) -> ConfigError:
    """An optional package a setting needs (e.g. --trainer-arg optim=adamw_bnb_8bit needs bitsandbytes)."""
    return ConfigError(first_line(err), fix="install the package it names, or choose another setting "
                                            "(e.g. --trainer-arg optim=adamw_torch)")


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def stopped_by_peer(err: BaseException, kept: str | None, staging: str) -> RunStopped:
    """The error of a run whose peer process died: what the backend said, and how to continue."""
    if kept is not None:
        then = f"{os.path.basename(kept)} is kept in {staging}"
    elif distributed.is_main():
        then = "no checkpoint had been written yet"
    else:
        then = f"the checkpoints written so far are in {staging}"
    return RunStopped(f"another process of this run stopped ({first_line(err)}); {then}",
                      fix="find why in the other processes' output (killed, out of memory, a lost machine), then run "
                          "the same command with --resume" + ("" if kept or not distributed.is_main() else
                                                               " (or without it: nothing was kept)"))


def out_of_memory_error(err: BaseException, batch: int, accumulation: int, auto_batch_size: bool) -> ConfigError:
    """Out of memory where the batch-size finder did not start again: why, and the batch to try."""
    if distributed.world_size() > 1:
        why = (f"in one of {distributed.world_size()} processes; the batch-size finder halves the batch in a single "
               f"process only")
    elif batch <= 1:
        why = "with batch size 1 already"
    else:
        why = "with --no-auto-batch-size" if not auto_batch_size else ""
    smaller = max(1, batch // 2)
    return ConfigError(f"out of memory with batch size {batch} per device{' ' + why if why else ''} ({first_line(err)})",
                       fix=(f"pass --batch-size {smaller} --gradient-accumulation-steps {accumulation * 2} (the same "
                            f"examples per step)" if batch > 1 else
                            "use a smaller --max-length, --gradient-checkpointing, or a device with more memory"))


def check_processes(checkpoint: str) -> None:
    """A run resumes with the number of processes that wrote its checkpoint: with another, the effective batch,
    the number of optimizer steps and the learning-rate schedule would change, and data would be replayed.
    The Trainer writes one RNG state per process (``rng_state_<rank>.pth``), or ``rng_state.pth`` for one."""
    names = os.listdir(checkpoint)
    ranks = sum(1 for name in names if name.startswith("rng_state_") and name.endswith(".pth"))
    wrote = ranks or (1 if "rng_state.pth" in names else None)
    now = distributed.world_size()
    if wrote is not None and wrote != now:
        def launch(n):
            return f"{n} process{'es' if n > 1 else ''}"

        raise ConfigError(f"--resume: {os.path.basename(checkpoint)} was written by a run of {launch(wrote)}, this one "
                          f"has {launch(now)}: the effective batch and the learning-rate schedule would change",
                          fix=(f"resume with {launch(wrote)} (torchrun --nproc_per_node {wrote} ...)" if wrote > 1 else
                               "resume without torchrun / accelerate launch") +
                              ", or train from the start: --overwrite in place of --resume")


def wait_after_output() -> list[str]:
    """The last barrier of a run, once rank 0 has published the output: there, a process that stopped in the
    meantime leaves a complete output, so it is a note rather than a failure (notes to add to the run's)."""
    try:
        distributed.barrier()
    except Exception as err:  # noqa: BLE001 - only a lost peer on rank 0 is forgiven, the rest re-raised
        if distributed.is_main() and lost_peer(err):
            return [f"another process stopped after the output was complete ({first_line(err)})"]
        raise
    return []
