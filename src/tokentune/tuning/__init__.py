"""Hyperparameter search (``tokentune tune``) on Optuna: every trial a tokentune training, dev F1 the
objective, unpromising trials pruned, the study in a real database (SQLite file or PostgreSQL)."""
from .options import TuneOptions
from .search import TuneResult, tune
from .space import Param, default_space, parse_space

__all__ = ["Param", "TuneOptions", "TuneResult", "default_space", "parse_space", "tune"]
