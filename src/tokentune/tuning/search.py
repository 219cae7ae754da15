"""tune(config, options) -> TuneResult: a hyperparameter search whose every trial is a tokentune training.

The output directory is staged as ``.NAME.partial`` like ``train``'s: it holds the study's SQLite file
(default storage) and the trials' model directories while the search runs, so that the same command
continues an interrupted search. At the end the best trial's model becomes the output directory, with
``trials.csv``, ``trials.jsonl``, the search plots and the study file beside it.
"""
from __future__ import annotations

import dataclasses
import fcntl
import importlib.util
import json
import os
import shutil
import time
from contextlib import contextmanager
from typing import Callable

from ..config import ADDED_LATER, RESUME_FREE, TrainConfig
from ..errors import ConfigError
from ..io import atomic_write_text, empty_directory, staging_path, writing
from .options import LOCK_FILE, STUDY_FILE, TRIALS_DIR, Search, TuneOptions, TuneResult
from .space import Param, default_space
from .study import check_same_search, default_storage, fail_stale_trials, finished, open_study


def _check_arguments(config, options) -> None:
    """tune(TrainConfig, TuneOptions): a dict in either place is refused by name (it has no attributes)."""
    for given, kind, name in ((config, TrainConfig, "config"), (options, TuneOptions, "options")):
        if not isinstance(given, kind) and not (name == "options" and given is None):
            raise ConfigError(f"tune() takes a {kind.__name__} as {name}, found a {type(given).__name__}",
                              fix=f"build it: {kind.__name__}(**settings) (TrainConfig.from_dict for a mapping)")
    if config.resume:  # each trial trains from the start; the search itself continues without being asked
        raise ConfigError("--resume applies to train: a search continues from its finished trials by itself",
                          fix="leave --resume out: the same tune command continues an interrupted search")


def tune(config: TrainConfig, options: TuneOptions | None = None, *, space: dict[str, Param] | None = None,
         progress: Callable[[str], None] | None = None) -> TuneResult:
    """Search ``space`` (default: ``options.space``'s file, else :func:`~tokentune.tuning.space.default_space`)
    for the training settings with the best dev F1; every other setting is ``config``'s. Writes ``config.output``."""
    from ..training.tracking import check_trackers
    from .space import check_space, read_space

    _check_arguments(config, options)
    options = options or TuneOptions()
    started = time.perf_counter()
    if importlib.util.find_spec("optuna") is None:
        raise ConfigError("tune needs Optuna, which is not installed", fix="pip install 'tokentune[tune]'")
    check_trackers(config)
    final, staging = _paths(config, options)
    if space is None and options.space:
        space = read_space(options.space, config, in_config=False)
    space = check_space(space, config) if space is not None else default_space(config.epochs)
    _check_max_length(space, config, options.space)
    search = _search(config, options, space, staging)  # reads the data once: a dev split is needed
    created = not os.path.isdir(staging)
    with writing(staging):
        os.makedirs(staging, exist_ok=True)
    with _locked(staging) as lock, _optuna_warnings_only():  # nothing is removed or written before the lock
        try:
            return _search_locked(search, final, staging, options, config.overwrite, progress, started)
        except BaseException:
            if (created or config.overwrite) and not _any_finished(search):  # refused or failed at once: nothing left
                lock.remove_staging()
            raise


def _search_locked(search: Search, final: str, staging: str, options, overwrite: bool, progress, started):
    """The same command continues an interrupted search, also with --overwrite (which replaces the finished
    output): only a search this one cannot continue (another study, other settings) is removed by it."""
    from .outputs import finish_search

    notes = []
    _check_study_of_trials(staging, search.study_name, overwrite, notes)
    try:
        study = _open_study(search, notes)
    except ConfigError:
        if not (overwrite and not search.shared):
            raise
        empty_directory(staging, keep=(LOCK_FILE,))
        notes.append(f"--overwrite: removed the interrupted search in {staging}, which searched with other settings")
        _check_study_of_trials(staging, search.study_name, overwrite, notes)
        study = _open_study(search, notes)
    _check_trials_of_this_study(staging, study, overwrite, notes)
    done = len(finished(study))
    if done:
        notes.append(f"continuing study {search.study_name!r}: {done} of {search.trials} trials already finished")
    _run_workers(search, study, progress)
    if len(finished(study)) < search.trials and search.timeout:
        notes.append(f"--timeout {search.timeout:g} s: stopped after {len(finished(study))} of {search.trials} trials")
    return finish_search(study, search, final, staging, options, notes, time.perf_counter() - started)


def _check_study_of_trials(staging: str, study_name: str, overwrite: bool, notes: list[str]) -> None:
    """The trials' models in the staging directory are named by trial number: they belong to one study. A search
    of another study into the same output would take the other's models for its own."""
    marker = os.path.join(staging, TRIALS_DIR, STUDY_FILE)
    earlier = (_marker_lines(marker) or [None])[0]
    if earlier is not None and earlier != study_name:
        if not overwrite:
            raise ConfigError(f"{staging} holds the interrupted search of study {earlier!r}, and its trials' models "
                              f"would be taken for those of study {study_name!r}",
                              fix=f"continue it with --study {earlier}, give study {study_name!r} another --output, or "
                                  f"pass --overwrite to remove it")
        empty_directory(staging, keep=(LOCK_FILE,))
        notes.append(f"--overwrite: removed the interrupted search of study {earlier!r} in {staging}")
    with writing(staging):  # the marker is written once the study is open (_check_trials_of_this_study)
        os.makedirs(os.path.join(staging, TRIALS_DIR), exist_ok=True)


def _marker_lines(marker: str) -> list[str]:
    """The study's name and (since tokentune gave studies an id) its id, as the trials' folder records them."""
    try:
        with open(marker, encoding="utf-8") as handle:
            return [line.strip() for line in handle.read().splitlines() if line.strip()]
    except OSError:
        return []


def _check_trials_of_this_study(staging: str, study, overwrite: bool, notes: list[str]) -> None:
    """A study of the same name in another storage (``--storage`` added or changed) numbers its trials
    from 0 too: the id tokentune gave the study, recorded next to the trials' models, tells them apart."""
    marker = os.path.join(staging, TRIALS_DIR, STUDY_FILE)
    recorded, study_id = _marker_lines(marker)[1:2], study.user_attrs["tokentune_study_id"]
    if recorded and recorded[0] != study_id:
        trials = os.path.join(staging, TRIALS_DIR)
        if not overwrite:
            raise ConfigError(f"{staging} holds the trials' models of another study named {study.study_name!r} "
                              f"(kept in another storage), and they would be taken for this study's",
                              fix="continue that search with the --storage it started with, give this one another "
                                  "--output, or pass --overwrite to remove those models")
        empty_directory(trials, keep=(STUDY_FILE,))
        notes.append(f"--overwrite: removed the trials' models of another study named {study.study_name!r} "
                     f"from {trials}")
    if recorded != [study_id]:
        with writing(staging):
            atomic_write_text(marker, f"{study.study_name}\n{study_id}\n")


def _paths(config: TrainConfig, options: TuneOptions) -> tuple[str, str]:
    """The output and its staging directory (``.NAME.tune.partial``: not train's ``.NAME.partial``)."""
    from ..io import check_output, holds

    if config.output is None:
        raise ConfigError("no output directory given", fix="pass --output DIR")
    inputs = (config.data, config.train_file, config.dev_file, config.test_file, config.model, options.space)
    _refuse_a_finished_search(config.output, config.overwrite)
    final = check_output(config.output, overwrite=config.overwrite, inputs=inputs, earlier=holds("search.json"))
    return final, staging_path(final, "tune")


def _refuse_a_finished_search(output: str, overwrite: bool) -> None:
    """A finished search is not extended with more --trials: say so, and what --overwrite would do to it."""
    try:
        with open(os.path.join(output, "search.json"), encoding="utf-8") as handle:
            summary = json.load(handle)
    except (OSError, ValueError):
        return  # none there: check_output says what the directory holds
    if not overwrite and isinstance(summary, dict):
        trials = summary.get("trials", "?")
        raise ConfigError(f"output directory {output} holds a finished search ({trials} trial{'' if trials == 1 else 's'}"
                          f" of study {summary.get('study', '?')!r}); a finished search is not continued with more "
                          f"trials",
                          fix="choose another --output to keep it; --overwrite starts a new search from trial 0 and "
                              "replaces this one when the new one finishes")


def _any_finished(search: Search) -> bool:
    try:
        return bool(finished(open_study(search)))
    except Exception:  # noqa: BLE001 - the storage itself was the problem: nothing finished in it
        return False


@contextmanager
def _optuna_warnings_only():
    """Optuna logs every trial at INFO to stderr; a library call does not print (``progress`` gives the lines),
    so its verbosity is at least WARNING during the search and restored after."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(previous, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


class _locked:
    """An exclusive lock on the staging directory: one search command at a time per output."""

    def __init__(self, staging: str) -> None:
        self.staging = staging
        self.path = os.path.join(staging, LOCK_FILE)

    def __enter__(self):
        self.handle = open(self.path, "a")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise ConfigError(f"another `tokentune tune` is writing {self.staging}",
                              fix="wait for it to finish, or give this search another --output") from None
        return self

    def remove_staging(self) -> None:
        """Only the lock's holder removes the staging directory (never another command's)."""
        shutil.rmtree(self.staging, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        self.handle.close()  # releases the lock; the file goes with the staging directory


def _search(config, options, space, staging) -> Search:
    if config.dev_file is None:
        _require_dev(config)
    base = dataclasses.replace(config, quiet=True, overwrite=True, resume=False)
    url = options.storage or default_storage(staging)
    return Search(base, space, url, options.storage is not None, options.study, options.pruner, options.trials,
                   options.timeout, os.path.join(staging, TRIALS_DIR), options.workers,
                   {"overwrite": config.overwrite, "quiet": config.quiet})


def _check_max_length(space: dict, config: TrainConfig, where: str | None) -> None:
    """A --max-length the space draws is checked against the model before any trial: a trial drawing more than
    it takes would fail the search after others finished, and fail it again on every continuation."""
    if "max_length" not in space:
        return
    from transformers import AutoConfig

    from ..modeling import load_tokenizer, model_max_length, resolve_model

    limit = model_max_length(load_tokenizer(config.model), AutoConfig.from_pretrained(resolve_model(config.model)))
    largest = max(int(value) for value in space["max_length"].edge_values())
    if largest > limit:
        raise ConfigError(f"{where or 'the search space'}: max_length reaches {largest}, more than the model takes "
                          f"({limit} sub-tokens)", fix=f"keep max_length at {limit} or less in the space")


def _require_dev(config: TrainConfig) -> None:
    """The objective is dev F1: the data must have a dev split (checked once, before any trial)."""
    from ..training.run import prepare_splits

    if prepare_splits(config).dev is None:
        raise ConfigError("tune chooses settings by dev F1, and the data has no dev split",
                          fix="pass --dev FILE, or --dev-split 0.1 to hold out a tenth of the training data")


PATH_SETTINGS = ("data", "train_file", "dev_file", "test_file", "model", "class_weights")


def study_signature(search: Search) -> dict:
    """What must not change when a study is continued: the fixed settings, the space and the pruner.
    Paths count by their last part: another machine may keep the same data elsewhere."""
    fixed = {k: os.path.basename(os.path.normpath(v)) if k in PATH_SETTINGS and isinstance(v, str) else v
             for k, v in search.config.to_dict().items() if k not in (*RESUME_FREE, "output", "report_to")}
    for name, value in ADDED_LATER.items():  # studies begun before these counted have none saved
        if fixed.get(name) == value:
            del fixed[name]
    return {**{f"setting.{k}": v for k, v in fixed.items() if k not in search.space},
            **{f"space.{name}": param.describe() for name, param in search.space.items()}, "pruner": search.pruner}


def _open_study(search: Search, notes: list[str]):
    study = open_study(search)
    check_same_search(study, study_signature(search), search.url)
    if not search.shared:
        stale = fail_stale_trials(study)
        if stale:
            notes.append(f"trial(s) {', '.join(map(str, stale))} were interrupted: marked failed, settings queued again")
    return study


def _run_workers(search: Search, study, progress) -> None:
    from optuna.trial import TrialState

    # on a shared storage, trials running elsewhere count: this command adds only what is missing
    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))) if search.shared else 0
    remaining = max(0, search.trials - len(finished(study)) - running)
    if remaining == 0:
        return
    if search.workers == 1:
        from .trials import run_worker

        run_worker(search, 0, remaining, progress)
        return
    from .workers import run_processes

    run_processes(search, remaining, progress)


