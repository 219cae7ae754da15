"""The Optuna side of ``tokentune tune``: storage, sampler, pruner, stale trials, and the callback that
reports dev F1 to the pruner at each evaluation.

Storage: an SQLite file in the output's staging directory by default, so an interrupted search resumes
with the same command; any SQLAlchemy URL (PostgreSQL) lets processes on several machines share one
study. With the default file, the command holds a lock on it, so a trial still marked running from an
interrupted run is stale for certain: it is marked failed and its settings queued again. On a shared
storage, trials send heartbeats and one silent for two minutes is failed and retried once (Optuna's
``RetryHeartbeatStaleTrialCallback``), since another machine may still be running it.
"""
from __future__ import annotations

import os
import re
import time
import uuid
import warnings

from ..errors import ConfigError

STUDY_FILE = "study.db"
HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 120
EPOCH_STEPS = 100  # a trial reports at step = epochs trained x 100, comparable across batch sizes


class TrialStopped(Exception):
    """Raised from the Trainer's evaluation when the pruner stops a trial."""

    def __init__(self, epoch: float, f1: float) -> None:
        super().__init__(f"pruned at epoch {epoch:.2f} (dev F1 {f1:.4f})")
        self.epoch, self.f1 = epoch, f1


def default_storage(staging: str) -> str:
    return "sqlite:///" + os.path.abspath(os.path.join(staging, STUDY_FILE))


def shown_url(url: str) -> str:
    """The URL without its password, for messages and the model card."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def open_storage(url: str, *, shared: bool):
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    kwargs = {}
    if url.startswith("sqlite"):  # trial processes write the same file: wait for its lock, don't fail
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    if shared:
        with warnings.catch_warnings():  # Optuna calls its retry callback "experimental" when it is built
            warnings.simplefilter("ignore", category=ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=1)
        kwargs.update(heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                      heartbeat_stale_trial_callback=retry)
    try:
        return _storage_creating_tables_once(RDBStorage, url, kwargs)
    except ImportError as err:
        raise ConfigError(f"the storage {shown_url(url)} needs a database driver that is not installed "
                          f"({err.name or str(err).splitlines()[0]})",
                          fix="pip install 'psycopg[binary]' for postgresql:// URLs") from None
    except Exception as err:  # noqa: BLE001 - SQLAlchemy's errors are many; all mean the same to the user
        raise ConfigError(f"cannot open the Optuna storage {shown_url(url)}: {str(err).splitlines()[0][:300]}",
                          fix="check the URL, that the database server runs and that the user may create tables "
                              "(e.g. postgresql://user:password@host:5432/dbname)") from None


# Two processes opening a new storage at once (workers, machines, a reader) both create Optuna's tables;
# the loser sees "already exists" or a duplicate version row. Opening again finds the tables made.
# ("database is locked" is not retried: SQLite already waits 120 s for the lock on each try)
_CREATION_RACE = re.compile(r"already exists|UNIQUE constraint|duplicate key", re.IGNORECASE)
_OPEN_ATTEMPTS = 5


def _storage_creating_tables_once(storage_class, url: str, kwargs: dict):
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats: "experimental"
        for attempt in range(1, _OPEN_ATTEMPTS):
            try:
                return storage_class(url, **kwargs)
            except ImportError:
                raise
            except Exception as err:  # noqa: BLE001 - SQLAlchemy's errors are many; only the creation race is retried
                if not _CREATION_RACE.search(str(err)):
                    raise
                time.sleep(0.2 * attempt)
        return storage_class(url, **kwargs)


def sampler(seed: int, trials: int, offset: int, parallel: bool):
    """TPE, seeded by ``--seed`` plus ``offset`` (the worker, the trials already in the study, and on a shared
    storage the process: a continued search or another machine draws anew); random for the first quarter
    of the trials (at least 4, at most 10); with parallel workers a running trial counts as a poor result
    (constant liar), so workers spread out."""
    from optuna.samplers import TPESampler

    startup = min(10, max(4, trials // 4))
    return TPESampler(seed=(seed + offset) % 2**32, n_startup_trials=startup, constant_liar=parallel, multivariate=True)


def pruner(name: str, max_epochs: float):
    """median: after 4 finished trials, a trial whose dev F1 is below the median of the earlier trials at
    the same epoch stops; it is never stopped within its first quarter of the largest epoch budget
    (early dev F1 says little). halving: successive halving from one epoch, keeping the best third."""
    import optuna

    warmup = max(1, int(max_epochs / 4)) * EPOCH_STEPS
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=warmup - 1)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=EPOCH_STEPS, reduction_factor=3)
    return optuna.pruners.NopPruner()


def pruning_callback(trial):
    """A TrainerCallback reporting dev F1 at each evaluation and stopping the trial when the pruner says so."""
    from transformers import TrainerCallback

    class ReportToPruner(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if not metrics or "eval_f1" not in metrics:
                return
            epoch, f1 = float(state.epoch or 0.0), float(metrics["eval_f1"])
            trial.report(f1, int(round(epoch * EPOCH_STEPS)))
            if trial.should_prune():
                raise TrialStopped(epoch, f1)

    return ReportToPruner()


def fail_stale_trials(study) -> list[int]:
    """Trials marked running in a study this command owns are left from an interrupted run: mark them
    failed and queue their settings again. Returns their numbers."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # noqa: SLF001 - Optuna's own API
        if "retry_of" not in trial.user_attrs:  # once: settings that kill the process are not tried forever
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
    return [trial.number for trial in stale]


def finished(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def check_same_search(study, signature: dict, url: str) -> None:
    """A study continued (after an interruption, or from another machine) must search the same way."""
    saved = study.user_attrs.get("tokentune_search")
    if "tokentune_study_id" not in study.user_attrs:  # names the study wherever it is stored (search.py)
        study.set_user_attr("tokentune_study_id", uuid.uuid4().hex)
    if saved is None:
        study.set_user_attr("tokentune_search", signature)
        return
    differing = sorted(key for key in set(saved) | set(signature) if saved.get(key) != signature.get(key))
    if differing:
        raise ConfigError(f"study {study.study_name!r} in {shown_url(url)} was started with other settings "
                          f"({', '.join(differing[:6])} differ)",
                          fix="repeat the command that started it, or pass --study NEW_NAME"
                              + ("" if url.startswith("sqlite") else " (optuna delete-study removes the old one)")
                              + (" (or --overwrite to start again)" if url.startswith("sqlite") else ""))


def open_study(search, worker: int = 0):
    import optuna

    study = optuna.create_study(storage=open_storage(search.url, shared=search.shared), study_name=search.study_name,
                                direction="maximize", load_if_exists=True,
                                pruner=pruner(search.pruner, _most_epochs(search)))
    offset = worker + 7919 * len(study.trials) + (os.getpid() * 31 if search.shared else 0)
    study.sampler = sampler(search.config.seed, search.trials, offset, search.workers > 1 or search.shared)
    return study


def _most_epochs(search) -> float:
    """The largest epoch budget a trial may draw (the pruner's warm-up is a quarter of it)."""
    epochs = search.space.get("epochs")
    return float(max(epochs.edge_values())) if epochs is not None else search.config.epochs


def trial_line(study, trial, total: int) -> str:
    """One progress line per finished trial."""
    from optuna.trial import TrialState

    shown = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    seconds = trial.user_attrs.get("seconds")
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    if trial.state == TrialState.COMPLETE:
        try:
            best = study.best_trial
            lead = f" (best {best.value:.4f}, trial {best.number})"
        except ValueError:
            lead = ""
        outcome = f"dev F1 {trial.value:.4f}{lead}"
    elif trial.state == TrialState.PRUNED:
        outcome = f"pruned at epoch {trial.user_attrs.get('epochs_trained', 0):.2f}"
    else:
        outcome = trial.state.name.lower()
    return f"trial {trial.number} ({len(finished(study))} of {total} done): {outcome}{took}; {shown}"
