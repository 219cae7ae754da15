"""Checkpoints in the staging directory: which one a resumed run continues from, and whether it may.

The Trainer writes ``checkpoint-STEP/`` with the weights, optimizer, scheduler and RNG states, and
``trainer_state.json`` last; a run killed while saving leaves a directory without a readable state
file. Only the newest checkpoint can be such a half-written one: it is skipped in favour of the
previous one (:func:`skipped_checkpoints` says which were). Anything else wrong in the checkpoint a
run resumes from (an unreadable state file in an older one, weights or optimizer states that are
truncated or not what they claim to be) is a :class:`~tokentune.errors.ModelError` naming it, found
before the Trainer reads it. Nothing here unpickles: the ``.pt``/``.pth`` files are only checked to be
whole torch archives; transformers then reads them with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import time
import zipfile

from ..config import ADDED_LATER, RESUME_FREE, TrainConfig
from ..errors import ConfigError, ModelError
from ..settings import flag_for_value
from . import distributed

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
TORCH_STATES = ("optimizer.pt", "scheduler.pt")  # needed; scaler.pt and rng_state*.pth are checked when present
# without --resume a run refuses to delete an interrupted one it could continue (run.py), unless told to
FRESH_START = "--overwrite in place of --resume (deletes the interrupted run)"


def step_of(checkpoint: str) -> int:
    match = _CHECKPOINT.match(os.path.basename(os.path.normpath(checkpoint)))
    return int(match.group(1)) if match else 0


def _state(checkpoint: str) -> dict | None:
    try:
        with open(os.path.join(checkpoint, STATE_FILE), encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def is_complete(checkpoint: str) -> bool:
    """Weights, optimizer and scheduler present and the state file (written last) readable."""
    names = set(os.listdir(checkpoint))
    weights = any(n.endswith(".safetensors") or n == "pytorch_model.bin" for n in names)
    return weights and set(TORCH_STATES) <= names and _state(checkpoint) is not None


def _checkpoints(folder: str) -> list[str]:
    """The ``checkpoint-STEP`` directories in ``folder``, newest first."""
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(folder) if (m := _CHECKPOINT.match(name))]
    return [os.path.join(folder, name) for _, name in sorted(found, reverse=True)
            if os.path.isdir(os.path.join(folder, name))]


def last_checkpoint(folder: str) -> str | None:
    """The complete checkpoint with the highest step in ``folder``, or None.

    Incomplete ones are skipped: a save interrupted by a kill, or an old checkpoint the Trainer was
    deleting. A state file that is there but unreadable is skipped only in the newest checkpoint (the
    one a kill can interrupt); in an older one it is damage, and a ModelError.
    """
    for index, path in enumerate(_checkpoints(folder)):
        if is_complete(path):
            return path
        if index and os.path.exists(os.path.join(path, STATE_FILE)) and _state(path) is None:
            raise _damaged(path, f"{STATE_FILE} is not a readable JSON object")
    return None


def resumable(staging: str) -> str | None:
    """The checkpoint a --resume of the run staged in ``staging`` would continue from (for a damaged
    older one, the checkpoints folder: still worth a look)."""
    try:
        return last_checkpoint(os.path.join(staging, "checkpoints"))
    except ModelError:
        return os.path.join(staging, "checkpoints")


def check_discardable(staging: str) -> None:
    """A new run deletes an interrupted one's staging directory only if it holds nothing to ``--resume``
    from (or with ``--overwrite``): hours of training are not lost to a command repeated without --resume."""
    if (checkpoint := resumable(staging)) is not None:
        raise ConfigError(f"{staging} holds an interrupted run that can be continued ({os.path.basename(checkpoint)})",
                          fix="add --resume to continue it, or --overwrite to delete it and train from the start")


def drop_unresumable(staging: str) -> str | None:
    """A run that failed before its first full checkpoint leaves nothing (there is nothing to --resume);
    otherwise the checkpoint a --resume would continue from."""
    checkpoint = resumable(staging)
    if checkpoint is None:
        shutil.rmtree(staging, ignore_errors=True)
    return checkpoint


def is_weights_only(checkpoint: str) -> bool:
    """A checkpoint written for its weights alone (the best model between full checkpoints): its state file
    is readable and it has no optimizer state, by design rather than by an interrupted save."""
    return _state(checkpoint) is not None and not os.path.exists(os.path.join(checkpoint, TORCH_STATES[0]))


class CheckpointPolicy:
    """What each of the Trainer's saves (one per evaluation, or per epoch without dev) writes.

    A full checkpoint (weights, optimizer, scheduler, RNG: what ``--resume`` needs, about 3x the model's
    size) once ``minutes`` of training have passed since the last one (0: at every save). Between full
    checkpoints a new best evaluation's weights are kept in memory (:class:`KeptWeights`), not written
    (written alone, as the Trainer saves them, where DeepSpeed or FSDP shard them):
    the end of training loads them back from there (``TokentuneTrainer._load_best_model``), and a full
    checkpoint first writes them as the weights-only checkpoint its state records as the best, which a run
    resumed from it may load. Old checkpoints are then removed: kept are the newest ``keep`` full ones, the
    best, and the best that each kept full checkpoint recorded.
    """

    def __init__(self, minutes: float, keep: int) -> None:
        self.interval, self.keep = minutes * 60.0, keep
        self.last_full = time.monotonic()
        self.kept: KeptWeights | None = None  # the best evaluation's weights, when no checkpoint holds them
        self.kept_step: int | None = None  # its step, on every process (only rank 0, which writes the model, keeps a copy)

    def save(self, trainer, save) -> None:
        """``save()``: the Trainer's own checkpoint save, full unless ``args.save_only_model``. Under a launcher
        every process calls it at the same step and must take the same branch (the Trainer's save waits for
        all of them): rank 0's clock decides for all."""
        state, args = trainer.state, trainer.args
        best_now = state.best_global_step == state.global_step
        if distributed.broadcast(self.interval <= 0 or time.monotonic() - self.last_full >= self.interval):
            if self.kept is not None and not best_now:
                self.kept.write(trainer.model, os.path.join(args.output_dir, f"checkpoint-{self.kept.step}"))
            self.kept = self.kept_step = None
            save()
            self.last_full = time.monotonic()
            self.rotate(args.output_dir, state.best_model_checkpoint)
        elif best_now and (getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False)):
            only_model, args.save_only_model = args.save_only_model, True  # sharded weights: the Trainer's own save
            try:
                save()
            finally:
                args.save_only_model = only_model
            self.rotate(args.output_dir, state.best_model_checkpoint)
        elif best_now:
            # where the Trainer looks for the best at the end (it records only folders that exist): our
            # _load_best_model finds the kept weights for it, and a later full checkpoint writes them there
            state.best_model_checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            self.kept, self.kept_step = None, state.global_step  # one copy in memory at a time
            if distributed.is_main():
                self.kept = KeptWeights(trainer.model, state)

    def best_weights(self, step: int | None) -> KeptWeights | None:
        """The weights kept in memory for the evaluation at ``step``, if they are that one's."""
        return self.kept if self.kept is not None and self.kept.step == step else None

    def holds_best(self, step: int | None) -> bool:
        """The evaluation at ``step`` is the one kept in memory (on rank 0: other processes hold no copy)."""
        return step is not None and self.kept_step == step

    def rotate(self, folder: str, best: str | None) -> None:
        if not distributed.is_main():
            return
        found = _checkpoints(folder)
        full = [path for path in found if is_complete(path)][:self.keep]
        kept = {os.path.basename(path) for path in full}
        if best:
            kept.add(os.path.basename(os.path.normpath(best)))
        for path in full:
            recorded = (_state(path) or {}).get("best_model_checkpoint")
            if recorded:
                kept.add(os.path.basename(os.path.normpath(recorded)))
        for path in found:
            if os.path.basename(path) not in kept:
                shutil.rmtree(path, ignore_errors=True)


class KeptWeights:
    """A copy of the model's weights on the CPU, taken at a new best evaluation. A word-embedding matrix
    whose used rows train as their own parameter (training/rows.py) is left out: its other rows never
    change, and the rows are in the copy (about half of MiniLM's weights are that matrix)."""

    def __init__(self, model, state) -> None:
        from .rows import rows_of

        self.step, self.state = state.global_step, copy.deepcopy(state)  # the Trainer's state at that evaluation
        rows = rows_of(model)
        named = model.state_dict(keep_vars=True)
        self.matrix_name = None if rows is None else _name_of(named, rows.embedding[0].weight)
        self.rows_name = None if rows is None else _name_of(named, rows.rows)
        self.weights = {name: tensor.detach().to("cpu", copy=True)
                        for name, tensor in named.items() if name != self.matrix_name}

    def load_into(self, model) -> None:
        """Make ``model`` the one these weights were taken from (its matrix rebuilt from the kept rows)."""
        from .rows import rows_of

        missing, unexpected = model.load_state_dict(self.weights, strict=False)
        if unexpected or missing != ([self.matrix_name] if self.matrix_name else []):
            raise ModelError(f"the best weights kept in memory do not fit the model (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})", fix="train with --checkpoint-minutes 0")
        if self.matrix_name is not None:
            rows_of(model).copy_into_matrix()

    def write(self, model, path: str) -> None:
        """A weights-only checkpoint of these weights at ``path``, as the Trainer writes one (weights, then
        ``trainer_state.json``), for a run resumed from a later full checkpoint that records it as the best."""
        from .rows import rows_of

        weights = dict(self.weights)
        if self.matrix_name is not None:  # the matrix as it was: today's, with the kept rows written in
            rows = rows_of(model)
            matrix = rows.embedding[0].weight.detach().to("cpu", copy=True)
            matrix[rows.ids.cpu()] = self.weights[self.rows_name].to(matrix.dtype)
            weights[self.matrix_name] = matrix
        os.makedirs(path, exist_ok=True)
        model.save_pretrained(path, state_dict=weights, safe_serialization=True)
        self.state.save_to_json(os.path.join(path, STATE_FILE))


def _name_of(named: dict, tensor) -> str:
    """The state-dict name under which ``tensor`` is held (a module's own tensors, found by identity)."""
    name = next((key for key, value in named.items() if value is tensor), None)
    if name is None:
        raise ModelError("the word-embedding rows are not among the model's weights, so the best weights cannot "
                         "be kept in memory", fix="train with --no-embedding-rows")
    return name


def drop_later_checkpoints(folder: str, step: int) -> None:
    """Checkpoints saved after ``step`` (best-model weights from the part of the run a resume trains
    again): removed, so that only what the resumed run saves itself is loaded at its end."""
    for path in _checkpoints(folder):
        if step_of(path) > step:
            shutil.rmtree(path, ignore_errors=True)


def skipped_checkpoints(folder: str) -> list[str]:
    """What :func:`last_checkpoint` passed over, newest first, e.g. ``"checkpoint-15 (no readable
    trainer_state.json: its save was interrupted)"``, for a note on a resumed run."""
    chosen = last_checkpoint(folder)
    skipped = []
    for path in _checkpoints(folder):
        if path == chosen:
            break
        if is_weights_only(path):  # written without optimizer state on purpose (CheckpointPolicy)
            continue
        why = "weights, optimizer or scheduler state missing" if _state(path) is not None else \
            f"no readable {STATE_FILE}: its save was interrupted"
        skipped.append(f"{os.path.basename(path)} ({why})")
    return skipped


def _damaged(checkpoint: str, what: str) -> ModelError:
    return ModelError(f"--resume: checkpoint {checkpoint} is damaged: {what}",
                      fix=f"delete {checkpoint} (the run then resumes from an earlier checkpoint, if any), or train from "
                          f"the start: {FRESH_START}")


def _check_torch_archive(checkpoint: str, name: str) -> None:
    """A file written by torch.save is a zip archive with a data.pkl in it; a truncated one has lost
    the archive's directory, which is at its end. Read as a zip only: never unpickled here."""
    path = os.path.join(checkpoint, name)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError) as err:
        raise _damaged(checkpoint, f"{name} is truncated or not a torch file ({str(err).splitlines()[0]})") from None
    if not any(member.endswith("data.pkl") for member in members):
        raise _damaged(checkpoint, f"{name} is a zip archive but not one written by torch.save")


def check_checkpoint(checkpoint: str) -> dict:
    """Check every file of the checkpoint a run resumes from without loading it; returns its state."""
    from dataclasses import fields

    from transformers import TrainerState

    from ..modeling import safetensors_header

    state = _state(checkpoint)
    if state is None:
        raise _damaged(checkpoint, f"{STATE_FILE} is missing or not a readable JSON object")
    unknown = sorted(set(state) - {f.name for f in fields(TrainerState)})
    if unknown or not isinstance(state.get("global_step", 0), int) or \
            not isinstance(state.get("epoch") or 0, (int, float)):
        raise _damaged(checkpoint, f"{STATE_FILE} is not a trainer state"
                                   + (f" (unknown keys {', '.join(unknown[:4])})" if unknown else ""))
    names = sorted(os.listdir(checkpoint))
    missing = [name for name in TORCH_STATES if name not in names]
    weights = [name for name in names if name.endswith(".safetensors")]
    if not weights and "pytorch_model.bin" not in names:
        missing.insert(0, "model.safetensors")
    if missing:
        raise _damaged(checkpoint, f"{', '.join(missing)} missing")
    for name in weights:
        try:
            safetensors_header(os.path.join(checkpoint, name))
        except ModelError as err:
            raise _damaged(checkpoint, err.message) from None
    for name in names:
        if name.endswith((".pt", ".pth")) or name == "pytorch_model.bin":
            _check_torch_archive(checkpoint, name)
    return state


def trained_epochs(checkpoint: str | None) -> float:
    """Epochs already trained when ``checkpoint`` was saved (0 for a fresh start). The checkpoint is
    checked whole first (:func:`check_checkpoint`): this is read just before the Trainer resumes."""
    if checkpoint is None:
        return 0.0
    return float(check_checkpoint(checkpoint).get("epoch") or 0.0)


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
                          f"are unknown", fix=f"train from the start: {FRESH_START}") from None
    current = config.to_dict()
    if config.auto_batch_size and saved.get("batch_size", 0) * saved.get("gradient_accumulation_steps", 0) == \
            config.batch_size * config.gradient_accumulation_steps:
        current["batch_size"] = saved["batch_size"]
        current["gradient_accumulation_steps"] = saved["gradient_accumulation_steps"]
    before = {k: saved.get(k, ADDED_LATER.get(k)) for k in current}  # a setting added later: its old value
    keys = [k for k, v in current.items() if k not in RESUME_FREE and before[k] != v]
    if keys:
        later = [flag_for_value(TrainConfig.__dataclass_fields__[k], before[k])
                 for k in keys if k not in saved and k in ADDED_LATER]
        same = f"resume with the settings it ran with ({' '.join(later)})" if later else "resume with the same settings"
        raise ConfigError(f"--resume: the interrupted run in {os.path.dirname(saved_path)} was started with other "
                          f"settings: {', '.join(f'{k} {before[k]!r} (now {current[k]!r})' for k in keys)}",
                          fix=f"{same}, or train from the start: {FRESH_START}")
    return dataclasses.replace(config, batch_size=current["batch_size"],
                               gradient_accumulation_steps=current["gradient_accumulation_steps"])


def raise_resume_error(err: Exception, checkpoint: str | None) -> None:
    """A checkpoint whose state does not fit the model (another model or label set): one line naming it."""
    import pickle

    if checkpoint is not None and isinstance(err, (ValueError, KeyError, RuntimeError, pickle.UnpicklingError)):
        raise ModelError(f"--resume: checkpoint {checkpoint} does not fit this run "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})",
                         fix=f"delete {checkpoint}, or train from the start: {FRESH_START}") from None
