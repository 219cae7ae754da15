"""Wiring of transformers.Trainer for tokentune: arguments, metrics, logging, and the files a run writes."""
from __future__ import annotations

import json
import os

import numpy as np

from .alignment import IGNORE
from .config import TrainConfig


def training_arguments(config: TrainConfig, staging: str, has_dev: bool):
    from transformers import TrainingArguments

    if config.eval_steps:
        strategy = {"eval_strategy": "steps", "eval_steps": config.eval_steps,
                    "save_strategy": "steps", "save_steps": config.eval_steps}
    else:
        strategy = {"eval_strategy": "epoch", "save_strategy": "epoch"}
    if not has_dev:
        strategy = {"eval_strategy": "no", "save_strategy": "no"}
    return TrainingArguments(
        output_dir=os.path.join(staging, "checkpoints"),
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        num_train_epochs=config.epochs,
        adam_beta1=config.adam_beta1,
        adam_beta2=config.adam_beta2,
        adam_epsilon=config.adam_epsilon,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of all steps
        lr_scheduler_type=config.lr_scheduler,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        seed=config.seed,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        load_best_model_at_end=has_dev,
        metric_for_best_model="f1" if has_dev else None,
        greater_is_better=True,
        save_total_limit=1 if has_dev else None,  # the best checkpoint is always kept besides this one
        save_only_model=True,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        disable_tqdm=config.quiet,
        dataloader_pin_memory=_has_accelerator(),
        report_to="none",
        **strategy,
    )


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available()


def make_compute_metrics(labels: list[str]):
    """Entity-level metrics on the dev windows: each word is labelled in exactly one window."""
    from .metrics import score_tags

    def compute_metrics(eval_prediction) -> dict:
        predictions, label_ids = eval_prediction.predictions, eval_prediction.label_ids
        gold, pred = [], []
        for pred_row, gold_row in zip(predictions, label_ids):
            keep = gold_row != IGNORE
            gold.append([labels[i] for i in gold_row[keep]])
            pred.append([labels[i] for i in pred_row[keep]])
        scores = score_tags(gold, pred)
        return {k: scores[k] for k in ("precision", "recall", "f1", "accuracy")}

    return compute_metrics


def _argmax_logits(logits, labels):
    return logits.argmax(dim=-1)  # keeps evaluation memory at one id per token


class JsonLinesLog:
    """A TrainerCallback writing every log record (loss, learning rate, eval metrics) as one JSON line."""

    def __init__(self, path: str) -> None:
        from transformers import TrainerCallback

        outer = self

        class _Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if state.is_world_process_zero and logs:
                    outer.write({"step": state.global_step, "epoch": state.epoch, **logs})

        self.path = path
        self.callback = _Callback()

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def build_trainer(config, model, tokenizer, labels, train_features, dev_features, staging, notes):
    from transformers import DataCollatorForTokenClassification, Trainer

    args = training_arguments(config, staging, dev_features is not None)
    log = JsonLinesLog(os.path.join(staging, "training_log.jsonl"))
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=None),
        train_dataset=train_features,
        eval_dataset=dev_features,
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(labels) if dev_features is not None else None,
        preprocess_logits_for_metrics=_argmax_logits,
        callbacks=[log.callback],
    )
    if config.quiet:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer


def final_evaluation(model, tokenizer, labels, splits, config, max_length) -> dict:
    """Dev and test figures of the kept model, on whole sentences (windows merged), as `evaluate` gives."""
    from .evaluation import evaluate_corpus
    from .inference import Tagger, torch_runner

    tagger = Tagger(torch_runner(model, str(model.device)), tokenizer, labels, max_length=max_length,
                    stride=config.stride, batch_size=config.eval_batch_size * 2)
    metrics = {}
    for name in ("dev", "test"):
        corpus = getattr(splits, name)
        if corpus is not None:
            metrics[name] = evaluate_corpus(tagger, corpus, return_predictions=True)  # kept for the report
    return metrics


def write_outputs(staging, trainer, tokenizer, config, result, splits) -> None:
    from .io import atomic_write_json, atomic_write_text
    from .modeling import base_model_name
    from .report import model_card, write_reports

    trainer.model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    atomic_write_json(os.path.join(staging, "tokentune_config.json"), config.to_dict())
    summary = {**result.metrics, "train_seconds": round(result.train_seconds, 1),
               "train_sentences_per_second": round(result.train_sentences_per_second, 2),
               "notes": result.notes}
    atomic_write_json(os.path.join(staging, "metrics.json"), summary)
    card = model_card(config, base_model_name(config.model), result.metrics, result.log_history, splits)
    atomic_write_text(os.path.join(staging, "README.md"), card)
    write_reports(staging, result, splits, config)  # errors.jsonl, plots/, report.html
