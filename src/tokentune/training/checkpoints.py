"""Checkpoints in the staging directory: which one a resumed run continues from, and whether it may.

The Trainer writes ``checkpoint-STEP/`` with the weights, optimizer, scheduler and RNG states, and
``trainer_state.json`` last; a run killed while saving leaves a directory without a readable state
file, which is skipped in favour of the previous one.
"""
from __future__ import annotations

import json
import os
import re

from ..config import RESUME_FREE, TrainConfig
from ..errors import ConfigError

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"


def step_of(checkpoint: str) -> int:
    match = _CHECKPOINT.match(os.path.basename(os.path.normpath(checkpoint)))
    return int(match.group(1)) if match else 0


def _state(checkpoint: str) -> dict | None:
    try:
        with open(os.path.join(checkpoint, STATE_FILE), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def is_complete(checkpoint: str) -> bool:
    """Weights, optimizer and scheduler present and the state file (written last) readable."""
    names = set(os.listdir(checkpoint))
    weights = any(n.endswith(".safetensors") or n == "pytorch_model.bin" for n in names)
    return weights and {"optimizer.pt", "scheduler.pt"} <= names and _state(checkpoint) is not None


def last_checkpoint(folder: str) -> str | None:
    """The complete checkpoint with the highest step in ``folder``, or None."""
    if not os.path.isdir(folder):
        return None
    found = [(int(m.group(1)), name) for name in os.listdir(folder) if (m := _CHECKPOINT.match(name))]
    for _, name in sorted(found, reverse=True):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and is_complete(path):
            return path
    return None


def trained_epochs(checkpoint: str | None) -> float:
    """Epochs already trained when ``checkpoint`` was saved (0 for a fresh start)."""
    if checkpoint is None:
        return 0.0
    return float((_state(checkpoint) or {}).get("epoch") or 0.0)


def resumable_config(config: TrainConfig, saved_path: str) -> TrainConfig:
    """``config``, checked against the settings the interrupted run was started with.

    A resumed run must train the same thing: any difference (other than output verbosity) is an
    error. The one accepted difference is a batch the out-of-memory finder halved: the saved
    per-device batch and accumulation are taken when they give the same examples per step.
    """
    import dataclasses

    try:
        with open(saved_path, encoding="utf-8") as handle:
            saved = json.load(handle)
    except (OSError, ValueError):
        raise ConfigError(f"--resume: {saved_path} is missing or unreadable, so the interrupted run's settings "
                          f"are unknown", fix="drop --resume to train from the start") from None
    current = config.to_dict()
    if config.auto_batch_size and saved.get("batch_size", 0) * saved.get("gradient_accumulation_steps", 0) == \
            config.batch_size * config.gradient_accumulation_steps:
        current["batch_size"] = saved["batch_size"]
        current["gradient_accumulation_steps"] = saved["gradient_accumulation_steps"]
    changed = [f"{k} {saved.get(k)!r} (now {v!r})" for k, v in current.items()
               if k not in RESUME_FREE and saved.get(k) != v]
    if changed:
        raise ConfigError(f"--resume: the interrupted run in {os.path.dirname(saved_path)} was started with other "
                          f"settings: {', '.join(changed)}",
                          fix="resume with the same settings, or drop --resume to train from the start")
    return dataclasses.replace(config, batch_size=current["batch_size"],
                               gradient_accumulation_steps=current["gradient_accumulation_steps"])
