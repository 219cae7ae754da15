"""`tokentune train`: flags derived from TrainConfig's fields; build the config (flag > file > default),
call tokentune.train, print the metrics."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..config import TrainConfig
    from ..settings import add_flags

    add_flags(parser, TrainConfig)
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON file with these settings; flags win over it")


def run(args: argparse.Namespace) -> int:
    from ..config import TrainConfig, build_config
    from ..reporting.tables import metrics_table
    from ..settings import flag_values
    from ..timing import RunClock, describe
    from ..training import train
    from ..training.distributed import is_main
    from ._common import quiet_libraries

    clock = RunClock(startup=True)
    config = build_config(args.config, **flag_values(args, TrainConfig))
    quiet_libraries(config.quiet)
    try:
        result = train(config, clock=clock)
    except KeyboardInterrupt as stop:
        raise _with_resume_hint(stop, config.output) from None
    if not is_main():  # under torchrun / accelerate launch, rank 0 speaks for the job
        return 0
    for note in result.notes:
        print(f"note: {note}")
    for split, metrics in result.metrics.items():
        print(f"\n{split}: precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  "
              f"f1 {metrics['f1']:.4f}  accuracy {metrics['accuracy']:.4f}")
        print(metrics_table(metrics))
    print(f"\ntrained in {result.train_seconds:.0f} s ({result.train_sentences_per_second:.1f} sentences/s); "
          f"model written to {result.output_dir}")
    if result.time:
        print(describe(result.time))
    return 0


def _with_resume_hint(stop: KeyboardInterrupt, output: str | None) -> KeyboardInterrupt:
    """A stop that came while train was already failing (under torchrun the launcher's SIGTERM can land while a
    lost peer's error is handled) still says which checkpoint --resume continues from."""
    import os

    from ..io import staging_path
    from ..training.checkpoints import resumable
    from ..training.failures import interrupted

    if str(stop) or output is None:  # train said it already (errors.Interrupted)
        return stop
    staging = staging_path(os.path.abspath(output))
    kept = resumable(staging)
    return stop if kept is None else interrupted(kept, staging)
