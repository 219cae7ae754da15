"""One trial of ``tokentune tune``: a tokentune training with the trial's settings, dev F1 its value; and a
worker, which runs trials one after another on a shared study."""
from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import time

from ..errors import TokentuneError
from .study import TrialStopped, open_study, pruning_callback, trial_line


def run_worker(search, worker: int, n_trials: int, progress=None) -> None:
    """One worker: ``n_trials`` trials one after another (fewer if the study reaches its total first)."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    study = open_study(search, worker)
    callbacks = [MaxTrialsCallback(search.trials, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))]
    if progress is not None:
        callbacks.append(lambda study, trial: progress(trial_line(study, trial, search.trials)))
    study.optimize(lambda trial: run_trial(trial, search), n_trials=n_trials, timeout=search.timeout,
                   callbacks=callbacks, catch=())


def run_trial(trial, search) -> float:
    """Train with the trial's settings; the objective is the kept model's dev F1, as `evaluate` computes it."""
    import optuna

    from ..training import train

    params = {name: param.suggest(trial) for name, param in search.space.items()}
    output = os.path.join(search.trials_dir, f"trial-{trial.number:04d}")
    config = dataclasses.replace(search.config, **params, output=output)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    started = time.perf_counter()
    try:
        result = train(config, callbacks=[pruning_callback(trial)], test_when=lambda dev: _leads(trial, dev["f1"]))
    except TrialStopped as stop:
        _discard(output)
        trial.set_user_attr("epochs_trained", round(stop.epoch, 4))
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
        raise optuna.TrialPruned(str(stop)) from None
    except (TokentuneError, KeyboardInterrupt):
        _discard(output)  # an interrupted trial leaves no partial checkpoints behind (--keep-trials included)
        raise
    for key, value in (("test_f1", result.metrics.get("test", {}).get("f1")),
                       ("epochs_trained", result.run.get("epochs_trained")),
                       ("seconds", round(time.perf_counter() - started, 1)),
                       ("train_seconds", round(result.train_seconds, 1))):
        trial.set_user_attr(key, value)
    return float(result.metrics["dev"]["f1"])


def _leads(trial, dev_f1: float) -> bool:
    """A trial is evaluated on test only if its dev F1 beats every finished trial's: the search never
    looks at test to choose, and the chosen model has its test figures."""
    try:
        return dev_f1 > trial.study.best_value
    except ValueError:  # no trial finished yet
        return True


def _discard(output: str) -> None:
    """A pruned or failed trial leaves nothing: its staging directory (train's) and any output."""
    from ..io import staging_path

    for path in (output, staging_path(output)):
        shutil.rmtree(path, ignore_errors=True)
