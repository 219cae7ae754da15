"""Experiment tracking (``--report-to``): the Trainer's own integrations log the run as it trains;
tokentune adds what only it knows at the end: the final dev/test figures of the kept model (as
``evaluate`` computes them), its settings, and the report files.

- tensorboard: event files in ``OUTPUT/runs`` (inside the model directory, so they travel with it),
  written by transformers' ``TensorBoardCallback``; the final figures as ``final/<split>/<metric>``.
- mlflow: transformers' ``MLflowCallback`` (``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``...); the
  final figures as ``final_<split>_<metric>``, the settings as ``tokentune_config.json`` and the
  report files as artifacts of the same run.
- wandb: transformers' ``WandbCallback``; the final figures in the run's summary, the report files saved.

A tracker that fails at the end (a server gone away) costs a note, never the trained model.
"""
from __future__ import annotations

import importlib.util
import json
import os

from ..errors import ConfigError

TRACKERS = ("none", "tensorboard", "mlflow", "wandb")
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
REPORT_FILES = ("metrics.json", "README.md", "report.html", "errors.jsonl", "training_log.jsonl")
FINAL_METRICS = ("precision", "recall", "f1", "accuracy")


def trackers(config) -> list[str]:
    return [name for name in dict.fromkeys(config.report_to or []) if name != "none"]


def check_trackers(config) -> None:
    """Each tracker's package is installed: found before any data is read."""
    for name in trackers(config):
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise ConfigError(f"--report-to {name} needs the {PACKAGES[name]} package, which is not installed",
                              fix=f"pip install {PACKAGES[name]}, or drop --report-to {name}")


def trainer_report_to(config) -> list[str] | str:
    """What TrainingArguments.report_to gets: tensorboard is wired by tracking_callbacks instead, so its
    files land in the model directory rather than among the checkpoints (removed at the end)."""
    names = [name for name in trackers(config) if name != "tensorboard"]
    return names or "none"


def tensorboard_dir(staging: str) -> str:
    return os.path.join(staging, "runs")


def tracking_callbacks(config, staging: str) -> list:
    if "tensorboard" not in trackers(config):
        return []
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return [TensorBoardCallback(tb_writer=SummaryWriter(log_dir=tensorboard_dir(staging)))]


def final_figures(metrics: dict) -> dict[str, float]:
    """``{"dev": {"f1": ...}}`` -> ``{"dev/f1": ...}`` for the four headline figures of each split."""
    return {f"{split}/{name}": float(values[name]) for split, values in metrics.items()
            for name in FINAL_METRICS if isinstance(values, dict) and name in values}


def log_final(config, staging: str, metrics: dict, step: int) -> list[str]:
    """Log the final figures, settings and report files (in ``staging``) to every tracker; returns notes
    for what could not be logged."""
    notes = []
    for name in trackers(config):
        try:
            {"tensorboard": _tensorboard, "mlflow": _mlflow, "wandb": _wandb}[name](config, staging, metrics, step)
        except Exception as err:  # noqa: BLE001 - a tracker's failure must not cost the trained model
            notes.append(f"--report-to {name}: could not log the final figures ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200] if str(err) else ''})")
    return notes


def _report_paths(staging: str) -> list[str]:
    return [os.path.join(staging, name) for name in REPORT_FILES if os.path.isfile(os.path.join(staging, name))]


def _tensorboard(config, staging: str, metrics: dict, step: int) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=tensorboard_dir(staging))
    try:
        for tag, value in final_figures(metrics).items():
            writer.add_scalar(f"final/{tag}", value, step)
        writer.add_text("tokentune/settings", json.dumps(config.to_dict(), indent=1), step)
    finally:
        writer.close()


def _mlflow(config, staging: str, metrics: dict, step: int) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    run = mlflow.last_active_run()  # the Trainer's callback started and ended it
    if run is None:
        raise RuntimeError("no MLflow run was started by the Trainer")
    client, run_id = MlflowClient(), run.info.run_id
    for tag, value in final_figures(metrics).items():
        client.log_metric(run_id, "final_" + tag.replace("/", "_"), value, step=step)
    client.log_dict(run_id, config.to_dict(), "tokentune_config.json")
    for path in _report_paths(staging):
        client.log_artifact(run_id, path)
    plots = os.path.join(staging, "plots")
    if os.path.isdir(plots):
        client.log_artifacts(run_id, plots, "plots")


def _wandb(config, staging: str, metrics: dict, step: int) -> None:
    import wandb

    if wandb.run is None:
        raise RuntimeError("no wandb run is active")
    wandb.run.summary.update({f"final/{tag}": value for tag, value in final_figures(metrics).items()})
    wandb.config.update({"tokentune": config.to_dict()}, allow_val_change=True)
    for path in _report_paths(staging):
        wandb.save(path, base_path=staging, policy="now")
    wandb.finish()


def end_failed_runs(config) -> None:
    """A run that failed or was stopped (a pruned trial) ends its tracker runs, so that the next training
    in this process starts its own instead of logging into this one."""
    names = trackers(config)
    try:
        if "mlflow" in names:
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.end_run(status="KILLED")
        if "wandb" in names:
            import wandb

            if wandb.run is not None:
                wandb.finish(exit_code=1)
    except Exception:  # noqa: BLE001 - the failure being raised matters more than the tracker's
        pass
