"""``tune --workers N``: N trial processes on one machine sharing one study.

Each worker is a spawned process (a fresh interpreter: no forked torch threads) with its share of the
CPU threads, running its share of the remaining trials. The parent reports each finished trial as it
appears in the storage, and re-raises a worker's error as the same tokentune error.
"""
from __future__ import annotations

import multiprocessing
import os
import time

from ..errors import ConfigError, TokentuneError

POLL_SECONDS = 2.0


def shares(remaining: int, workers: int) -> list[int]:
    """``remaining`` trials split as evenly as possible (no worker gets none unless there are fewer trials)."""
    workers = max(1, min(workers, remaining))
    return [remaining // workers + (i < remaining % workers) for i in range(workers)]


def _die_with_parent() -> None:
    """A worker whose parent is killed (even with SIGKILL) is killed too, rather than writing on alone."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's finally block still ends its workers
        pass


def _worker_main(search, worker: int, n_trials: int, threads: int, errors) -> None:
    _die_with_parent()
    from ..threads import sleep_at_barriers

    sleep_at_barriers()  # its share of the cores: waiting threads sleep at once, as predict --workers' do
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # a fresh process: before torch starts its pool
    import optuna
    import torch

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the parent's progress lines say what matters
    from .trials import run_worker

    try:
        run_worker(search, worker, n_trials)
    except TokentuneError as err:
        errors.put((type(err).__name__, err.message, err.fix))
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # the parent was interrupted too and says so
        raise SystemExit(130) from None
    except BaseException as err:
        errors.put(("RuntimeError", f"worker {worker}: {type(err).__name__}: {err}", None))
        raise


def run_processes(search, remaining: int, progress) -> None:
    context = multiprocessing.get_context("spawn")
    errors = context.Queue()
    counts = shares(remaining, search.workers)
    threads = max(1, (os.cpu_count() or 1) // len(counts))
    processes = [context.Process(target=_worker_main, args=(search, i, n, threads, errors), daemon=False)
                 for i, n in enumerate(counts)]
    study = None
    if progress is not None:
        from .study import open_study

        study = open_study(search)
    reported = {trial.number for trial in finished_trials(study)}  # an earlier run's trials: said by it
    for process in processes:
        process.start()
    try:
        watch_trials(study, processes, progress, search.trials, reported)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    _raise_worker_error(errors, processes)


def finished_trials(study) -> list:
    """``study``'s finished trials (complete, pruned or failed), in order; none without a study."""
    if study is None:
        return []
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sorted(study.get_trials(deepcopy=False, states=states), key=lambda trial: trial.number)


def watch_trials(study, processes, progress, total: int, reported: set[int]) -> None:
    """Report each trial of ``study`` once it is finished (``reported``: the numbers said already), until
    every worker has exited or one has failed."""
    from .study import trial_line

    while True:
        alive = any(p.is_alive() for p in processes)
        for trial in finished_trials(study):
            if trial.number not in reported:
                reported.add(trial.number)
                progress(trial_line(study, trial, total))
        if not alive or any(p.exitcode not in (None, 0) for p in processes):
            return  # a worker that failed ends the search (the others are stopped; the same command continues)
        time.sleep(POLL_SECONDS)


def _raise_worker_error(errors, processes) -> None:
    import queue

    try:
        kind, message, fix = errors.get_nowait()
    except queue.Empty:
        failed = [p.exitcode for p in processes if p.exitcode]
        if failed:
            how = (f"was killed by signal {-failed[0]}" + (" (SIGKILL: often the system running out of memory)"
                                                             if failed[0] == -9 else "")
                   if failed[0] < 0 else f"exited with code {failed[0]}")
            raise TokentuneError(f"a trial worker {how}", fix="run the same command again to continue the search "
                                                             "(the trial is retried once), or with --workers 1 "
                                                             "to see its error") from None
        return
    from .. import errors as error_types

    error_class = getattr(error_types, kind, None)
    if isinstance(error_class, type) and issubclass(error_class, TokentuneError):
        try:
            error = error_class(message, fix=fix)
        except TypeError:  # an error class with other arguments (OutputError): the message is already whole
            error = TokentuneError(message, fix=fix)
        raise error
    raise ConfigError(message, fix=fix or "run with --workers 1 to see the full error")
