"""Experiment tracking (--report-to) read back with each tracker's own reader, and the Trainer
pass-through (--trainer-arg, the config's trainer: mapping) with its errors."""
from __future__ import annotations

import json
import os

import pytest

from tokentune.cli.main import main
from tokentune.config import TrainConfig, build_config
from tokentune.errors import ConfigError
from tokentune.trainer_args import check_trainer_args

TINY = ["--epochs", "2", "--batch-size", "8", "--learning-rate", "5e-3", "--quiet"]


@pytest.fixture(scope="module")
def tracked_run(tiny_data, tiny_base_model, tmp_path_factory):
    """One tiny training logged to TensorBoard and to MLflow (SQLite tracking store), with pass-through args."""
    root = tmp_path_factory.mktemp("tracked")
    output = root.parent / f"{root.name}-model"
    store = f"sqlite:///{root / 'mlflow.db'}"
    old_cwd, old_uri = os.getcwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = store  # what a user sets; the Trainer's MLflowCallback reads it
    os.chdir(root)  # MLflow's default artifact root is relative to the working directory
    try:
        code = main(["train", "--data", tiny_data, "--model", tiny_base_model, "--output", str(output), *TINY,
                     "--report-to", "tensorboard", "--report-to", "mlflow",
                     "--trainer-arg", "label_smoothing_factor=0.1", "--trainer-arg", "max_grad_norm=0.5"])
    finally:
        os.chdir(old_cwd)
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri
    assert code == 0
    metrics = json.load(open(output / "metrics.json"))
    return output, store, metrics


def test_tensorboard_events_read_back(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    output, _, metrics = tracked_run
    events = EventAccumulator(str(output / "runs"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert "eval/f1" in scalars and "train/train_loss" in scalars  # the Trainer's own logging
    assert len(events.Scalars("eval/f1")) == 2  # one evaluation per epoch
    final = events.Scalars("final/dev/f1")
    assert final[-1].value == pytest.approx(metrics["dev"]["f1"], abs=1e-6)
    assert events.Scalars("final/test/f1")[-1].value == pytest.approx(metrics["test"]["f1"], abs=1e-6)
    assert "tokentune/settings/text_summary" in events.Tags()["tensors"]


def test_mlflow_run_read_back(tracked_run):
    from mlflow.tracking import MlflowClient

    output, store, metrics = tracked_run
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == output.name
    assert run.data.metrics["final_dev_f1"] == pytest.approx(metrics["dev"]["f1"])
    assert run.data.metrics["final_test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert float(run.data.params["label_smoothing_factor"]) == 0.1  # the pass-through reached the Trainer
    assert float(run.data.params["max_grad_norm"]) == 0.5
    history = client.get_metric_history(run.info.run_id, "eval_f1")
    assert len(history) == 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "metrics.json", "README.md", "tokentune_config.json", "plots"} <= artifacts


def test_saved_config_keeps_the_pass_through(tracked_run):
    output, _, _ = tracked_run
    saved = json.load(open(output / "tokentune_config.json"))
    assert saved["trainer"] == {"label_smoothing_factor": 0.1, "max_grad_norm": 0.5}
    assert saved["report_to"] == ["tensorboard", "mlflow"]
    assert TrainConfig.from_dict(saved).trainer == saved["trainer"]  # the saved run repeats


@pytest.mark.parametrize("pair, message", [
    ("label_smoothing=0.1", r"'label_smoothing' is not a TrainingArguments field.*did you mean 'label_smoothing_factor'"),
    ("learning_rate=1e-4", r"tokentune sets this TrainingArguments field itself. Fix: use --learning-rate"),
    ("output_dir=/tmp/x", r"needs this TrainingArguments field as it is: checkpoints go"),
    ("label_smoothing_factor=high", r"label_smoothing_factor=high: expected float"),
    ("optim=adamw_torhc", r"optim=adamw_torhc: expected one of .*did you mean 'adamw_torch'"),
    ("lr_scheduler_kwargs=[1]", r"lr_scheduler_kwargs=\[1\]: expected a JSON object"),
    ("no-equals-sign", r"expected KEY=VALUE"),
])
def test_bad_trainer_args_exit_2_naming_the_fix(pair, message, tiny_data, tmp_path, capsys):
    code = main(["train", "--data", tiny_data, "--output", str(tmp_path / "m"), "--trainer-arg", pair])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "m").exists()


def test_values_are_parsed_to_the_fields_types():
    parsed = check_trainer_args(["label_smoothing_factor=0.1", "lr_scheduler_kwargs={\"num_cycles\": 2}",
                                 "dataloader_drop_last=yes", "optim=adafactor", "hub_model_id=me/ner",
                                 "eval_accumulation_steps=7", "fsdp=none"], lr_scheduler="cosine")
    assert parsed == {"label_smoothing_factor": 0.1, "lr_scheduler_kwargs": {"num_cycles": 2},
                      "dataloader_drop_last": True, "optim": "adafactor", "hub_model_id": "me/ner",
                      "eval_accumulation_steps": 7, "fsdp": None}
    # a config file's typed values go through the same check
    assert check_trainer_args({"label_smoothing_factor": 0.2, "push_to_hub": False}) == {
        "label_smoothing_factor": 0.2, "push_to_hub": False}
    with pytest.raises(ConfigError, match="eval_accumulation_steps=1.5: expected int"):
        check_trainer_args({"eval_accumulation_steps": 1.5})
    # fields tokentune passes itself would reach TrainingArguments twice: refused, naming the setting
    for key, flag in (("run_name", "--output"), ("max_steps", "--epochs"), ("dataloader_pin_memory", "pinned")):
        with pytest.raises(ConfigError, match=flag):
            check_trainer_args({key: "1"})


def test_flag_beats_the_config_files_trainer_mapping(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: somewhere\ntrainer:\n  label_smoothing_factor: 0.2\n  max_grad_norm: 2.0\n")
    config = build_config(str(path), trainer=["label_smoothing_factor=0.05"])
    assert config.trainer == {"label_smoothing_factor": 0.05, "max_grad_norm": 2.0}
    path.write_text("data: somewhere\ntrainer:\n  label_smothing_factor: 0.2\n")
    with pytest.raises(ConfigError, match="did you mean 'label_smoothing_factor'"):
        build_config(str(path))


def test_pass_through_reaches_training_arguments(tmp_path):
    from tokentune.training.trainer import training_arguments

    config = TrainConfig(data="x", output=str(tmp_path / "m"), lr_scheduler="polynomial",
                         trainer={"label_smoothing_factor": 0.1, "lr_scheduler_kwargs": {"power": 2.0}})
    args = training_arguments(config, str(tmp_path / "staging"), has_dev=True)
    assert args.label_smoothing_factor == 0.1 and args.lr_scheduler_kwargs == {"power": 2.0}
    assert args.report_to == [] or args.report_to == "none" or args.report_to == ["none"]
    tracked = TrainConfig(data="x", output=str(tmp_path / "m"), report_to=["tensorboard", "mlflow"])
    # tensorboard is wired by tokentune (files inside the model directory); mlflow by the Trainer
    assert training_arguments(tracked, str(tmp_path / "s"), has_dev=True).report_to == ["mlflow"]


def test_missing_tracker_package_is_a_clear_error(tiny_data, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    code = main(["train", "--data", tiny_data, "--output", str(tmp_path / "m"), "--report-to", "wandb"])
    err = capsys.readouterr().err
    assert code == 2 and "--report-to wandb needs the wandb package" in err and "pip install wandb" in err
    assert main(["train", "--data", tiny_data, "--output", str(tmp_path / "m"), "--report-to", "neptune"]) == 2
    assert "invalid choice: 'neptune'" in capsys.readouterr().err


def test_every_field_tokentune_passes_is_refused_as_a_pass_through():
    """A pass-through key tokentune also passes would reach TrainingArguments twice (a TypeError after the
    data is read); each such key must be refused up front, naming the setting to use or why."""
    import ast
    import inspect

    from tokentune.trainer_args import FIXED, OWN_SETTINGS
    from tokentune.training import trainer

    tree = ast.parse(inspect.getsource(trainer.training_arguments))
    passed = {keyword.arg for node in ast.walk(tree) if isinstance(node, ast.Call)
              and getattr(node.func, "id", "") == "TrainingArguments" for keyword in node.keywords if keyword.arg}
    passed |= {"eval_strategy", "eval_steps", "save_strategy", "save_steps"}  # the **strategy mapping
    assert len(passed) > 30 and passed <= set(OWN_SETTINGS) | set(FIXED)
