"""The settings of ``tokentune tune`` besides the training settings (the fixed part of every trial)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import TrainConfig
from ..settings import check_fields, setting

TUNE = "search"
TRIALS_DIR = "trials"
STUDY_FILE = "study.txt"  # in TRIALS_DIR: the study its trial-NNNN models belong to
LOCK_FILE = ".tune.lock"
PRUNERS = ("median", "halving", "none")


@dataclass
class TuneOptions:
    trials: int = setting(20, "trials the study holds when the search ends, counting those finished before an "
                              "interruption (the same command resumes)", metavar="N", minimum=1, group=TUNE)
    timeout: float | None = setting(None, "start no new trial after S seconds", metavar="S", above=0.0, group=TUNE)
    storage: str | None = setting(None, "Optuna storage, an SQLAlchemy URL such as postgresql://user@host/db that "
                                        "several processes or machines share (default: the SQLite file study.db in "
                                        "the output directory)", metavar="URL", group=TUNE)
    study: str = setting("tokentune", "the study's name in the storage", metavar="NAME", group=TUNE)
    space: str | None = setting(None, "YAML/JSON file with the search space (default: the 'space:' of --config, "
                                      "else the built-in space: docs/tuning.md)", metavar="FILE", group=TUNE)
    workers: int = setting(1, "trial processes on this machine; the CPU threads are shared out between them",
                           metavar="N", minimum=1, group=TUNE)
    pruner: str = setting("median", "stop unpromising trials early: median (below the median of earlier trials "
                                    "at the same epoch), halving (successive halving) or none", choices=PRUNERS,
                          group=TUNE)
    keep_trials: bool = setting(False, "keep every trial's model under OUTPUT/trials (default: only the best, "
                                       "which becomes OUTPUT)", group=TUNE)

    def __post_init__(self) -> None:
        import os

        if isinstance(self.space, os.PathLike):  # a pathlib.Path, as TrainConfig's paths take
            object.__setattr__(self, "space", os.fspath(self.space))
        check_fields(self)
        from ..errors import ConfigError

        for name, value in (("study", self.study), ("storage", self.storage), ("space", self.space)):
            if value is not None and not value.strip():
                raise ConfigError(f"{name} is empty", fix=f"pass --{name} with a value, or leave it out")


@dataclass
class TuneResult:
    """What a search found: the best trial's settings and figures, and every trial's row."""

    output_dir: str
    study_name: str
    storage: str  # without its password
    best_trial: int
    best_params: dict
    best_metrics: dict  # {"dev": {...}, "test": {...}} of the best trial's model, as `train` wrote them
    trials: list[dict]  # one row per trial: number, state, dev_f1, test_f1, epochs_trained, seconds, params
    seconds: float
    trial_epochs: float  # epochs trained by all finished trials together (what pruning saves shows here)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Search:
    """A search as every worker needs it (picklable: workers are spawned processes)."""

    config: TrainConfig
    space: dict  # name -> space.Param
    url: str
    shared: bool
    study_name: str
    pruner: str
    trials: int
    timeout: float | None
    trials_dir: str
    workers: int
    user_settings: dict = field(default_factory=dict)  # overwrite and quiet as given: trials run with their own
