"""train(config) -> TrainResult: data preparation, transformers.Trainer wiring, and the output directory.

The output directory is written under a hidden ``.NAME.partial`` sibling and renamed when complete, so
``OUT`` appears whole or not at all; an interrupted run leaves only the ``.partial`` directory.
"""
from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass, field

from .config import TrainConfig
from .data import Corpus, Splits, check_labels, load_splits
from .errors import ConfigError
from .schemes import labels_for

CONFIG_FILE = "tokentune_config.json"
LOG_FILE = "training_log.jsonl"
METRICS_FILE = "metrics.json"


@dataclass
class TrainResult:
    output_dir: str
    metrics: dict  # {"dev": {...}, "test": {...}} final figures of the kept model
    train_seconds: float
    train_sentences_per_second: float
    notes: list[str] = field(default_factory=list)
    log_history: list[dict] = field(default_factory=list)


def prepare_splits(config: TrainConfig) -> Splits:
    """Read the data the config names, check labels across splits, take the quick-run subset."""
    splits = load_splits(config.data, train=config.train_file, dev=config.dev_file, test=config.test_file,
                         scheme=config.scheme)
    check_labels(splits)
    if config.max_train_samples and config.max_train_samples < len(splits.train):
        picked = sorted(random.Random(config.seed).sample(range(len(splits.train)), config.max_train_samples))
        full = len(splits.train)
        splits.train = splits.train.select(picked)
        splits.notes.append(f"train: using {len(picked)} of {full} sentences (--max-train-samples)")
    if splits.dev is None:
        splits.notes.append("no dev split: evaluating only at the end and keeping the last model")
    return splits


def _word_label_ids(corpus: Corpus, label2id: dict[str, int], scheme: str) -> list[list[int]]:
    return [[label2id[tag] for tag in tags] for tags in corpus.tag_sequences(scheme)]


def encode_split(corpus: Corpus, tokenizer, label2id, config: TrainConfig, max_length: int, *, name: str,
                 evaluation: bool, notes: list[str]) -> list[dict]:
    from .alignment import EncodeReport, make_windows, training_features

    report = EncodeReport()
    windows = make_windows(tokenizer, [s.words for s in corpus], max_length=max_length, stride=config.stride,
                           report=report)
    notes.extend(report.notes(name))
    features = training_features(windows, _word_label_ids(corpus, label2id, config.train_scheme),
                                 owned_only=evaluation)
    if evaluation:  # sorted by length: evaluation batches carry little padding
        features.sort(key=lambda f: len(f["input_ids"]))
    return features


def _staging_dir(output: str, *, overwrite: bool, resume: bool = False) -> tuple[str, str]:
    final = os.path.abspath(output)
    if os.path.exists(final) and not overwrite:
        raise ConfigError(f"output directory {final} already exists",
                          fix="choose another --output, or pass --overwrite to replace it")
    staging = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.partial")
    if os.path.exists(staging) and not resume:
        shutil.rmtree(staging)
    os.makedirs(staging, exist_ok=True)
    return final, staging


def _publish(staging: str, final: str) -> None:
    shutil.rmtree(os.path.join(staging, "checkpoints"), ignore_errors=True)
    if os.path.exists(final):
        old = staging + ".old"
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)


def train(config: TrainConfig | None = None, **settings) -> TrainResult:
    """Fine-tune ``config.model`` on ``config.data`` and write a complete model directory.

    Either pass a :class:`TrainConfig` or its fields as keyword arguments.
    """
    from .modeling import build_model, load_tokenizer, model_max_length
    from .trainer_setup import build_trainer, final_evaluation, write_outputs

    config = config if config is not None else TrainConfig(**settings)
    if config.output is None:
        raise ConfigError("no output directory given", fix="pass --output DIR")
    splits = prepare_splits(config)
    labels = labels_for(splits.train.entity_types(), config.train_scheme)
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = load_tokenizer(config.model)
    model = build_model(config.model, labels)
    max_length = model_max_length(tokenizer, model.config, config.max_length)
    notes = list(splits.notes)
    train_features = encode_split(splits.train, tokenizer, label2id, config, max_length, name="train",
                                  evaluation=False, notes=notes)
    dev_features = None
    if splits.dev is not None:
        dev = splits.dev if not config.max_eval_samples else splits.dev.select(range(min(config.max_eval_samples, len(splits.dev))))
        dev_features = encode_split(dev, tokenizer, label2id, config, max_length, name="dev", evaluation=True,
                                    notes=notes)
    final, staging = _staging_dir(config.output, overwrite=config.overwrite)
    trainer = build_trainer(config, model, tokenizer, labels, train_features, dev_features, staging, notes)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    metrics = final_evaluation(trainer.model, tokenizer, labels, splits, config, max_length)
    result = TrainResult(final, metrics, seconds, len(splits.train) * config.epochs / seconds, notes,
                         list(trainer.state.log_history))
    if trainer.is_world_process_zero():
        write_outputs(staging, trainer, tokenizer, config, result, splits)
        _publish(staging, final)
    return result
