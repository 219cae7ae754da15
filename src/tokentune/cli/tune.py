"""`tokentune tune`: every `train` flag (the fixed part of each trial) plus the search's own; parse, call
tokentune.tune, print a line per trial and the best trial's figures."""
from __future__ import annotations

import argparse
import importlib.util
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..config import TrainConfig
    from ..settings import add_flags
    from ..tuning import TuneOptions

    add_flags(parser, TuneOptions)
    add_flags(parser, TrainConfig)
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON file with train settings and an optional "
                                                         "'space:' mapping; flags win over it")


def run(args: argparse.Namespace) -> int:
    from ..config import TrainConfig, build_config
    from ..reporting.tables import metrics_table
    from ..settings import flag_values
    from ..tuning import TuneOptions, tune
    from ..tuning.space import default_space, read_space
    from ._common import quiet_libraries

    config = build_config(args.config, allow=("space",), **flag_values(args, TrainConfig))
    options = TuneOptions(**flag_values(args, TuneOptions))
    space = read_space(options.space or args.config, config, in_config=options.space is None)
    given = flag_values(args, TrainConfig)
    if space is None and "epochs" in given:  # the default space draws epochs up to --epochs: the flag is used
        drawn = default_space(config.epochs)["epochs"]
        print(f"note: --epochs {given.pop('epochs'):g}: the default space draws epochs from {drawn.low} to "
              f"{drawn.high}", flush=True)
    _say_drawn_flags(given, space if space is not None else default_space(config.epochs))
    quiet_libraries(True)  # trials train quietly: one line per trial says what matters
    if importlib.util.find_spec("optuna") is not None:  # (without it, tune says what to install)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is reported once, as a user error
    result = tune(config, options, space=space, progress=lambda line: print(line, flush=True))
    for note in result.notes:
        print(f"note: {note}")
    pruned = sum(row["state"] == "pruned" for row in result.trials)
    print(f"\n{len(result.trials)} trials ({pruned} pruned) in {result.seconds:.0f} s, {result.trial_epochs:.1f} "
          f"trial-epochs; best: trial {result.best_trial}", file=sys.stdout)
    for key, value in result.best_params.items():
        print(f"  {key} = {value:.4g}" if isinstance(value, float) else f"  {key} = {value}")
    for split, metrics in result.best_metrics.items():
        print(f"\n{split}: precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  "
              f"f1 {metrics['f1']:.4f}  accuracy {metrics['accuracy']:.4f}")
        print(metrics_table(metrics))
    print(f"\nbest model written to {result.output_dir} (every trial: trials.csv)")
    return 0


def _say_drawn_flags(given: dict, space: dict) -> None:
    """A flag for a setting the space draws is not used: said before the first trial, not found out later."""
    drawn = [name for name in given if name in space]
    if drawn:
        flags = ", ".join("--" + name.replace("_", "-") for name in drawn)
        print(f"note: {flags}: drawn by the search space, so the value given is not used (leave "
              f"{'it' if len(drawn) == 1 else 'them'} out of the space to fix {'it' if len(drawn) == 1 else 'them'})",
              flush=True)
