"""Trainer pass-through: ``--trainer-arg KEY=VALUE`` (repeatable) and the config file's ``trainer:``
mapping reach any :class:`transformers.TrainingArguments` field that tokentune does not set itself.

Values are parsed to the field's annotated type (``label_smoothing_factor=0.1`` is a float,
``lr_scheduler_kwargs={"num_cycles": 2}`` a dict, ``optim=adafactor`` one of the optimizer names). An
unknown key names the closest field; a field tokentune sets from its own settings names that setting,
and a field it needs as it is (where checkpoints go, how the best model is chosen) says why.
"""
from __future__ import annotations

import difflib
import enum
import json
import math
import types
import typing
from typing import Any

from .errors import ConfigError

# TrainingArguments fields that tokentune sets from its own settings: the setting to use instead
OWN_SETTINGS = {
    "learning_rate": "--learning-rate", "per_device_train_batch_size": "--batch-size",
    "per_device_eval_batch_size": "--eval-batch-size", "num_train_epochs": "--epochs",
    "adam_beta1": "--adam-beta1", "adam_beta2": "--adam-beta2", "adam_epsilon": "--adam-epsilon",
    "weight_decay": "--weight-decay", "warmup_steps": "--warmup-ratio", "lr_scheduler_type": "--lr-scheduler",
    "gradient_accumulation_steps": "--gradient-accumulation-steps", "seed": "--seed", "eval_steps": "--eval-steps",
    "save_steps": "--eval-steps (a checkpoint is written at each evaluation)", "logging_steps": "--logging-steps",
    "save_total_limit": "--save-total-limit", "torch_compile": "--torch-compile",
    "activation_checkpointing": "--gradient-checkpointing", "gradient_checkpointing": "--gradient-checkpointing",
    "bf16": "--precision bf16", "fp16": "--precision fp16", "disable_tqdm": "--quiet", "report_to": "--report-to",
    "train_sampling_strategy": "--group-by-length / --packing", "auto_find_batch_size": "--auto-batch-size",
    "resume_from_checkpoint": "--resume", "max_steps": "--epochs (a fraction is allowed)",
    "run_name": "--output (the run is named after the output directory)",
    "use_cpu": "--precision (tokentune picks the device itself; hide GPUs with CUDA_VISIBLE_DEVICES= to train "
               "on the CPU)",
}
# what the Trainer passes to a schedule itself, never through lr_scheduler_kwargs
SCHEDULER_OWN_ARGUMENTS = ("optimizer", "num_warmup_steps", "num_training_steps", "last_epoch")
# transformers' schedule names (SchedulerType; tests/test_training_options.py checks them against it)
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
              "warmup_stable_decay", "greedy")
# fields tokentune needs as they are: why
FIXED = {
    "output_dir": "checkpoints go under the output's staging directory, renamed into --output when complete",
    "eval_strategy": "dev F1 is computed at the evaluations tokentune schedules (each epoch, or --eval-steps)",
    "save_strategy": "a checkpoint is written at each evaluation, so that the best one is kept and --resume works",
    "load_best_model_at_end": "the kept model is the checkpoint with the best dev F1",
    "metric_for_best_model": "the kept model is the checkpoint with the best dev F1",
    "greater_is_better": "the kept model is the checkpoint with the best dev F1",
    "save_only_model": "--resume needs the optimizer, scheduler and RNG states in every checkpoint",
    "logging_strategy": "the training log (training_log.jsonl) records every --logging-steps steps",
    "remove_unused_columns": "tokentune's features hold only the model's inputs",
    "label_names": "the labels are the data's, in the model's config (id2label)",
    "local_rank": "set by torchrun / accelerate launch",
    "prediction_loss_only": "dev F1 is computed from the predictions at every evaluation",
    "include_for_metrics": "dev F1 is computed from the predictions and labels alone",
    "batch_eval_metrics": "dev F1 is computed over the whole dev split at once",
    "dataloader_pin_memory": "batches are pinned wherever a GPU is used, and only there",
}


def _fields() -> dict[str, Any]:
    """TrainingArguments' settable fields -> their resolved annotations."""
    import dataclasses

    from transformers import TrainingArguments

    hints = typing.get_type_hints(TrainingArguments)
    return {f.name: hints.get(f.name, str) for f in dataclasses.fields(TrainingArguments) if f.init}


def parse_pairs(pairs: list[str], flag: str = "--trainer-arg") -> dict[str, str]:
    """``["KEY=VALUE", ...]`` -> ``{KEY: VALUE}`` (values stay text until checked against their field)."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {pair!r}: expected KEY=VALUE", fix=f"write e.g. {flag} label_smoothing_factor=0.1")
        parsed[key.strip().replace("-", "_")] = value.strip()
    return parsed


def check_trainer_args(values: dict | list | None, source: str = "--trainer-arg",
                       lr_scheduler: str = "linear") -> dict[str, Any]:
    """The pass-through settings, each key checked and each value parsed to its field's type;
    ``lr_scheduler_kwargs`` also against what ``lr_scheduler`` (--lr-scheduler) takes."""
    if values is None:
        return {}
    if isinstance(values, (list, tuple)):
        values = parse_pairs(list(values), source)
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of TrainingArguments fields, found {type(values).__name__}",
                          fix="write 'trainer: {label_smoothing_factor: 0.1}' in the config, or --trainer-arg KEY=VALUE")
    known = _fields()
    checked = {}
    for key, value in values.items():
        _check_key(str(key), known, source)
        checked[str(key)] = _convert(str(key), value, known[str(key)], source)
    if checked.get("lr_scheduler_kwargs") is not None:  # None is transformers' own default
        check_scheduler_kwargs(checked["lr_scheduler_kwargs"], lr_scheduler, source)
    return checked


def check_scheduler_kwargs(kwargs: Any, scheduler: str, source: str = "--trainer-arg") -> None:
    """``lr_scheduler_kwargs`` must be a mapping of arguments that the --lr-scheduler's function takes
    (the Trainer would pass the others on, and fail with a TypeError when training starts)."""
    import inspect

    from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION
    from transformers.trainer_utils import SchedulerType

    example = 'lr_scheduler_kwargs=\'{"num_cycles": 2}\' with --lr-scheduler cosine'
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{source} lr_scheduler_kwargs={kwargs}: expected a JSON object of the schedule's "
                          f"arguments", fix=f"write e.g. {example}")
    parameters = inspect.signature(TYPE_TO_SCHEDULER_FUNCTION[SchedulerType(scheduler)]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # the schedule takes any keyword (reduce_lr_on_plateau passes them to torch)
    takes = [name for name in parameters if name not in SCHEDULER_OWN_ARGUMENTS]
    unknown = sorted(set(kwargs) - set(takes))
    if unknown:
        raise ConfigError(f"{source} lr_scheduler_kwargs: the {scheduler} schedule takes no {', '.join(unknown)} "
                          f"(it takes {', '.join(takes) or 'no arguments'})",
                          fix="choose the schedule with --lr-scheduler (polynomial takes power and lr_end; cosine "
                              "takes num_cycles), or drop those arguments")


def _check_key(key: str, known: dict[str, Any], source: str) -> None:
    if key in OWN_SETTINGS:
        raise ConfigError(f"{source} {key}: tokentune sets this TrainingArguments field itself",
                          fix=f"use {OWN_SETTINGS[key]}")
    if key in FIXED:
        raise ConfigError(f"{source} {key}: tokentune needs this TrainingArguments field as it is: {FIXED[key]}",
                          fix=f"drop {key}")
    if key not in known:
        close = difflib.get_close_matches(key, list(known), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see the fields of transformers.TrainingArguments"
        raise ConfigError(f"{source}: {key!r} is not a TrainingArguments field", fix=hint)


def _members(annotation) -> tuple:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _convert(key: str, value: Any, annotation, source: str) -> Any:
    """Text (from a flag) or a YAML/JSON value (from the config file) -> the field's type."""
    text = value if isinstance(value, str) else json.dumps(value)
    members = _members(annotation)
    plain = [typing.get_origin(m) or m for m in members]
    if any(isinstance(k, type) and issubclass(k, enum.Enum) for k in plain):
        plain = [k for k in plain if k is not str]  # `Names | str` fields: the names are what works
    if dict in plain and text.lstrip()[:1] in ("{", "["):  # `dict | str` fields: the text is JSON or a file path
        plain = [dict]
    if type(None) in plain and text.lower() in ("none", "null"):
        return None
    for kind in plain:
        converted = _as(kind, text)
        if converted is not _NO:
            return converted
    raise ConfigError(f"{source} {key}={text}: expected {_describe(plain)}",
                      fix=f"give {key} a value of that type{_enum_hint(plain, text)}")


_NO = object()
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def _as(kind, text: str) -> Any:
    """``text`` as ``kind``, or _NO when it is not one."""
    if kind is bool:
        lowered = text.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else _NO
    if kind in (int, float):
        try:
            number = kind(text)
        except ValueError:
            return _NO
        return number if math.isfinite(number) else _NO
    if kind in (dict, list):
        try:
            parsed = json.loads(text)
        except ValueError:
            return text.split(",") if kind is list and text else _NO
        return parsed if isinstance(parsed, kind) else _NO
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return text if text in {str(m.value) for m in kind} else _NO
    if kind is str:
        return text
    return _NO


def _describe(kinds) -> str:
    names = []
    for kind in kinds:
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            names.append("one of " + ", ".join(str(m.value) for m in kind))
        elif kind is type(None):
            names.append("none")
        else:
            names.append({dict: "a JSON object", list: "a JSON list"}.get(kind, getattr(kind, "__name__", str(kind))))
    return " or ".join(names)


def _enum_hint(kinds, text: str) -> str:
    for kind in kinds:
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            close = difflib.get_close_matches(text, [str(m.value) for m in kind], n=1)
            if close:
                return f" (did you mean {close[0]!r}?)"
    return ""
