"""train(config) -> TrainResult: data preparation, transformers.Trainer wiring, and the output directory.

The output directory is written under a hidden ``.NAME.partial`` sibling and renamed when complete, so
``OUT`` appears whole or not at all; an interrupted run leaves only the ``.partial`` directory, whose
checkpoints (weights, optimizer, scheduler and RNG states) ``--resume`` continues from.

Under ``torchrun``/``accelerate launch`` every rank reads the data and trains; only rank 0 prepares,
writes and renames the directory, and the others wait for it at barriers (distributed.py).
"""
from __future__ import annotations

import dataclasses
import errno
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field

from ..config import TrainConfig, learning_rate_notes
from ..data import Corpus, Splits, check_labels, load_splits
from ..errors import ConfigError, ModelError
from ..io import staging_path, writing
from ..schemes import labels_for
from ..timing import RunClock
from ..windows import words_get_a_prefix_space
from . import distributed, failures
from .checkpoints import (
    check_checkpoint,
    check_discardable,
    drop_later_checkpoints,
    drop_unresumable,
    last_checkpoint,
    raise_resume_error,
    resumable_config,
    skipped_checkpoints,
    step_of,
    trained_epochs,
)
from .encoding import document_batch, encode_split
from .hardware import free_memory, is_out_of_memory
from .weights import head_notes

CONFIG_FILE = "tokentune_config.json"
# failures of the disk, not of the run: a located OutputError instead of a traceback
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
LOG_FILE = "training_log.jsonl"
METRICS_FILE = "metrics.json"


@dataclass
class TrainResult:
    output_dir: str
    metrics: dict  # {"dev": {...}, "test": {...}} final figures of the kept model ({} on ranks other than 0)
    train_seconds: float
    train_sentences_per_second: float
    notes: list[str] = field(default_factory=list)
    log_history: list[dict] = field(default_factory=list)
    # how it ran: precision, per-device and effective batch size, processes, steps, early stop, resume
    run: dict = field(default_factory=dict)
    # where the time went (timing.RunClock.summary): seconds per part, bytes written, peak memory
    time: dict = field(default_factory=dict)


@dataclass
class _Prepared:
    """Everything built once before training (and reused if the batch-size finder starts again)."""

    splits: Splits
    labels: list[str]
    tokenizer: object
    max_length: int
    train_features: list[dict]
    dev_features: list[dict] | None
    notes: list[str]
    dev: Corpus | None = None  # what training evaluates: the dev split, or its first N (--max-eval-samples)


def prepare_splits(config: TrainConfig) -> Splits:
    """Read the data the config names, check labels across splits, take the quick-run subset."""
    from ..words import splitter_for_reading

    def tokenizer():
        from ..modeling import load_tokenizer

        return load_tokenizer(config.model)

    splits = load_splits(config.data, train=config.train_file, dev=config.dev_file, test=config.test_file,
                         word_splitter=splitter_for_reading(config.word_splitter, tokenizer), **config.read_options())
    check_labels(splits)
    if config.max_train_samples and config.max_train_samples < len(splits.train):
        picked = sorted(random.Random(config.seed).sample(range(len(splits.train)), config.max_train_samples))
        full = len(splits.train)
        splits.train = splits.train.select(picked)
        splits.notes.append(f"train: using {len(picked)} of {full} sentences (--max-train-samples)")
    if splits.dev is None:
        splits.notes.append("no dev split: evaluating only at the end and keeping the last model")
    return splits


def prepare_data(config: TrainConfig) -> _Prepared:
    """Read and encode the data once: features are plain lists reused by every epoch and attempt."""
    from transformers import AutoConfig

    from ..modeling import load_tokenizer, model_max_length, resolve_model

    splits = prepare_splits(config)
    labels = labels_for(splits.train.entity_types(), config.train_scheme)
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = load_tokenizer(config.model)
    try:  # the model itself is built per attempt (_make_trainer); its limits are needed now
        model_config = AutoConfig.from_pretrained(resolve_model(config.model))
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read the configuration of model {config.model!r}: {str(err).splitlines()[0]}",
                         fix="pass --model with a directory holding config.json, or a Hub id") from None
    max_length = model_max_length(tokenizer, model_config, config.max_length)
    notes = list(splits.notes) + learning_rate_notes(config)
    if words_get_a_prefix_space(tokenizer):
        notes.append("tokenizer: every word is read with a leading space, as inside a text (byte-level "
                     "add_prefix_space, as run_ner.py sets it); the model's tokenizer is saved with it")
    train_features = encode_split(splits.train, tokenizer, label2id, config, max_length, name="train",
                                  evaluation=False, notes=notes)
    notes.extend(head_notes(config, labels, train_features))  # a bad --class-weights file fails here
    dev_features = dev = None
    if splits.dev is not None:
        dev = splits.dev
        if config.max_eval_samples:
            dev = dev.select(range(min(config.max_eval_samples, len(dev))))
        dev_features = encode_split(dev, tokenizer, label2id, config, max_length, name="dev", evaluation=True,
                                    notes=notes)
    elif config.patience:
        raise ConfigError("--patience needs a dev split to watch", fix="pass --dev FILE, or drop --patience")
    return _Prepared(splits, labels, tokenizer, max_length, train_features, dev_features, notes, dev)


def _staging_dir(config: TrainConfig, notes: list[str] | None = None) -> tuple[str, str]:
    """The final directory and its ``.NAME.partial`` staging sibling (made by rank 0 only); the output
    may not be, hold or lie inside the data or the model it reads."""
    final = _check_output(config)
    staging = staging_path(final)
    with distributed.main_first() as main:
        if main:
            if os.path.exists(staging) and not config.resume:  # (train() checked it holds nothing to resume)
                shutil.rmtree(staging)
                if notes is not None:
                    notes.append(f"removed {staging}, left by an interrupted run (--resume continues one)")
            with writing(final):
                os.makedirs(staging, exist_ok=True)
    return final, staging


def _check_model_files(config: TrainConfig) -> None:
    """A local --model directory is checked (config, weights) before any data is read or written."""
    from ..modeling import check_model_dir, resolve_model

    path = resolve_model(config.model)
    if os.path.isdir(path):
        check_model_dir(path, head=False)


def _check_output(config: TrainConfig) -> str:
    from ..io import check_output, holds

    inputs = (config.data, config.train_file, config.dev_file, config.test_file, config.model)
    return check_output(config.output, overwrite=config.overwrite, inputs=inputs, earlier=holds(CONFIG_FILE))


def _publish(staging: str, final: str) -> None:
    from ..io import publish_tree, replace_with

    shutil.rmtree(os.path.join(staging, "checkpoints"), ignore_errors=True)
    publish_tree(staging)
    replace_with(staging, final)


def _start_or_resume(config: TrainConfig, staging: str, notes: list[str]) -> tuple[TrainConfig, str | None]:
    """The checkpoint to continue from (``--resume``), checked against the settings it was made with."""
    from ..io import atomic_write_json

    checkpoint = None
    if config.resume:
        folder = os.path.join(staging, "checkpoints")
        found = last_checkpoint(folder) if distributed.is_main() else None
        checkpoint = distributed.broadcast(found)
        notes.extend(f"--resume: skipped {os.path.basename(s)} (written only in part)" for s in skipped_checkpoints(folder))
        if checkpoint is None:
            notes.append(f"--resume: no complete checkpoint in {staging}; training from the start")
            if distributed.is_main():  # best-model weights of the interrupted run: not this run's
                drop_later_checkpoints(folder, -1)
        else:
            config = resumable_config(config, os.path.join(staging, CONFIG_FILE))
            check_checkpoint(checkpoint)  # damaged state: one line naming it, before any model is built
            failures.check_processes(checkpoint)
            notes.append(f"resumed from {os.path.basename(checkpoint)} (step {step_of(checkpoint)}) in {staging}")
            if distributed.is_main():
                drop_later_checkpoints(folder, step_of(checkpoint))
    if distributed.is_main():  # what this run trains with, for a later --resume to check against
        atomic_write_json(os.path.join(staging, CONFIG_FILE), config.to_dict())
    return config, checkpoint


def _fit(config: TrainConfig, prep: _Prepared, staging: str, precision: str, checkpoint: str | None, callbacks,
         clock):
    """Train; on out-of-memory halve the per-device batch and double accumulation (the same examples
    per optimizer step) and start again, down to batch 1. Returns (trainer, seconds)."""
    from ..memory import give_back_kept_memory, release_moments  # light: transformers is imported in the "model" part
    from .rows import finish_rows

    batch, accumulation = config.batch_size, config.gradient_accumulation_steps
    while True:
        with clock.part("model"):
            trainer = _make_trainer(config, prep, staging, precision, batch, accumulation, checkpoint, callbacks)
        trainer.clock, loading = clock, failures.checkpoint_loaded_callback()
        trainer.add_callback(loading)
        started, inside = time.perf_counter(), clock.inside_training()
        try:
            with writing(staging, only=DISK_ERRORS):  # a full or read-only disk while checkpointing
                trainer.train(resume_from_checkpoint=checkpoint)
            finish_rows(trainer.model)  # the kept model is a plain one again
            release_moments(trainer.optimizer)  # read by no one after the last step
            give_back_kept_memory()  # the steps' freed buffers: not under the final evaluation's and reports' memory
            seconds = time.perf_counter() - started
            clock.add("training", seconds - (clock.inside_training() - inside))
            return trainer, seconds
        except Exception as err:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
            retry = (config.auto_batch_size and batch > 1 and distributed.world_size() == 1
                     and is_out_of_memory(err))
            if not retry:
                if not loading.loaded:  # an error once training began is not the checkpoint's
                    raise_resume_error(err, checkpoint)
                if is_out_of_memory(err):
                    raise failures.out_of_memory_error(err, batch, accumulation, config.auto_batch_size) from None
                if isinstance(err, ImportError):
                    raise failures.missing_package_error(err) from None
                raise
        # outside the except block, so the traceback's frames (holding activations) can be freed
        clock.add("training", time.perf_counter() - started - (clock.inside_training() - inside))
        del trainer
        free_memory()
        message = (f"out of memory with batch size {batch} per device: started again with {batch // 2} and "
                   f"gradient accumulation {accumulation * 2} (the same {batch * accumulation} examples per step)")
        prep.notes.append(message)
        print(f"tokentune train: {message}", file=sys.stderr, flush=True)
        batch, accumulation, checkpoint = batch // 2, accumulation * 2, None
        if distributed.is_main():  # a later --resume continues with the batch that fits
            from ..io import atomic_write_json

            shutil.rmtree(os.path.join(staging, "checkpoints"), ignore_errors=True)
            used = dataclasses.replace(config, batch_size=batch, gradient_accumulation_steps=accumulation)
            atomic_write_json(os.path.join(staging, CONFIG_FILE), used.to_dict())


def _make_trainer(config, prep: _Prepared, staging, precision, batch, accumulation, checkpoint, callbacks=()):
    from transformers import set_seed

    from ..modeling import build_model
    from .trainer import build_trainer

    set_seed(config.seed)  # the new classification head is drawn from the global RNG: same seed, same head
    model = build_model(config.model, prep.labels)
    trainer = build_trainer(config, model, prep.tokenizer, prep.labels, prep.train_features, prep.dev_features,
                            staging, prep.notes, precision=precision, batch_size=batch, accumulation=accumulation,
                            max_length=prep.max_length, extra_callbacks=callbacks)
    from .devscore import attach_dev_and_checkpoints

    attach_dev_and_checkpoints(trainer, config, prep)
    if distributed.is_main():
        if checkpoint is None:  # a fresh start: the log of an earlier attempt is stale
            open(trainer.tokentune_log.path, "w").close()
        else:
            trainer.tokentune_log.truncate_after(step_of(checkpoint))
    return trainer


def _run_info(trainer, precision: str, checkpoint: str | None) -> tuple[dict, str]:
    from .trainer import effective_batch_size

    args, state = trainer.args, trainer.state
    info = {"precision": precision, "per_device_batch_size": args.per_device_train_batch_size,
            "processes": args.world_size, "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "effective_batch_size": effective_batch_size(args), "optimizer_steps": state.global_step,
            "epochs_trained": round(state.epoch or 0.0, 4), "resumed_from_step": step_of(checkpoint) if checkpoint else None}
    if state.best_model_checkpoint:
        info["best_step"] = step_of(state.best_model_checkpoint)
    note = (f"effective batch size {info['effective_batch_size']} = {info['per_device_batch_size']} per device x "
            f"{args.world_size * max(1, args.n_gpu)} device(s) x {info['gradient_accumulation_steps']} accumulation step(s)")
    return info, note


def train(config: TrainConfig | None = None, *, callbacks=(), test_when=None, clock: RunClock | None = None,
          **settings) -> TrainResult:
    """Fine-tune ``config.model`` on ``config.data`` and write a complete model directory.

    Either pass a :class:`TrainConfig` or its fields as keyword arguments. ``callbacks`` are
    ``transformers.TrainerCallback`` objects added to the Trainer's (``tokentune tune`` prunes with one).
    ``test_when(dev_metrics) -> bool`` decides whether the test split is evaluated at the end (default:
    always; ``tune`` evaluates it only for a trial that is the best so far). ``clock``: a
    :class:`~tokentune.timing.RunClock` started earlier (a command's, counting its start-up).
    """
    from ..quiet import quiet_while

    config = _as_config(config, settings)
    with quiet_while(config.quiet):
        return _train(config, callbacks, test_when, clock or RunClock())


def _as_config(config, settings: dict) -> TrainConfig:
    """train()'s settings: a TrainConfig or its fields, never both (the fields would be ignored)."""
    if config is None:
        return TrainConfig.from_dict(settings, source="train()")  # a misspelt name gets the closest one
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"train() takes a TrainConfig or its fields as keywords, found a {type(config).__name__}",
                          fix="call train(data=..., output=...) or train(TrainConfig(data=..., output=...))")
    if settings:
        raise ConfigError(f"train() was given a TrainConfig and also {', '.join(sorted(settings))}, which would be "
                          f"ignored", fix="pass one or the other, e.g. train(dataclasses.replace(config, epochs=3))")
    return config


def _train(config: TrainConfig, callbacks, test_when, clock: RunClock) -> TrainResult:
    from ..modeling import peek_config
    from .hardware import has_cuda, resolve_precision
    from .tracking import check_trackers, end_failed_runs

    if config.output is None:
        raise ConfigError("no output directory given", fix="pass --output DIR")
    final = _check_output(config)  # before anything is read: a refused output costs nothing
    if not (config.resume or config.overwrite) and distributed.is_main() and os.path.exists(staging_path(final)):
        check_discardable(staging_path(final))
    _check_model_files(config)
    check_trackers(config)
    distributed.setup()
    with clock.part("reading"):
        prep = prepare_data(config)
    config = document_batch(config, prep.splits.train, prep.train_features, prep.notes)
    # rank 0's choice on every rank: on a CPU with AVX512-BF16, auto measures, and ranks could measure apart
    precision, precision_note = distributed.broadcast(
        resolve_precision(config.precision, peek_config(config.model) if has_cuda() else None))
    prep.notes.append(precision_note)
    final, staging = _staging_dir(config, notes=prep.notes)
    try:
        config, checkpoint = _start_or_resume(config, staging, prep.notes)
        start_epoch = trained_epochs(checkpoint)
        trainer, seconds = _fit(config, prep, staging, precision, checkpoint, callbacks, clock)
    except BaseException as failure:
        kept = drop_unresumable(staging) if distributed.is_main() else None
        end_failed_runs(config)
        if isinstance(failure, KeyboardInterrupt) and kept is not None:
            raise failures.interrupted(kept, staging) from None
        if failures.lost_peer(failure):
            raise failures.stopped_by_peer(failure, kept, staging) from None
        raise
    return _finish(config, prep, trainer, seconds, start_epoch, precision, checkpoint, (final, staging), clock,
                   test_when)


def _finish(config, prep: _Prepared, trainer, seconds, start_epoch, precision, checkpoint, paths, clock,
            test_when) -> TrainResult:
    """Final evaluation of the kept model, the output directory, and the result."""
    from .devscore import reusable_dev_scores
    from .tracking import log_final
    from .trainer import final_evaluation, write_outputs

    final, staging = paths
    run, batch_note = _run_info(trainer, precision, checkpoint)
    prep.notes.append(batch_note)
    if trainer.state.global_step < trainer.state.max_steps and config.patience:
        prep.notes.append(f"stopped early after epoch {trainer.state.epoch:.2f}: no better dev F1 in "
                          f"{config.patience} evaluations (--patience)")
    sentences = len(prep.splits.train) * max(0.0, (trainer.state.epoch or 0.0) - start_epoch)
    used = dataclasses.replace(config, batch_size=run["per_device_batch_size"],
                               gradient_accumulation_steps=run["gradient_accumulation_steps"])
    metrics = {}
    if distributed.is_main():
        with clock.part("final evaluation"):
            metrics = final_evaluation(trainer.model, prep.tokenizer, prep.labels, prep.splits, used, prep.max_length,
                                       test_when=test_when, dev_scores=reusable_dev_scores(trainer, prep.notes))
        if prep.splits.test is not None and "test" not in metrics:
            prep.notes.append("test not evaluated: this trial's dev F1 is not the best of its search")
    result = TrainResult(final, metrics, seconds, sentences / seconds if seconds else 0.0, prep.notes,
                         list(trainer.state.log_history), run)
    if distributed.is_main():
        with writing(final):
            write_outputs(staging, trainer, prep.tokenizer, used, result, prep.splits, clock)
            result.notes.extend(log_final(used, staging, metrics, trainer.state.global_step))
            with clock.part("writing"):
                _publish(staging, final)
    result.time = clock.summary()
    result.notes.extend(failures.wait_after_output())  # train() returns on every rank once the directory is complete
    return result
