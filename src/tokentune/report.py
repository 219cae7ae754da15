"""Human-readable reports: the Hugging Face style model card and the metrics table printed by the CLI."""
from __future__ import annotations

import datetime

import yaml

from . import __version__


def _fmt(value) -> str:
    return "-" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))


def evaluation_rows(log_history: list[dict]) -> list[dict]:
    """One row per dev evaluation: the training loss logged last before it, and its metrics."""
    rows, last_loss = [], None
    for record in log_history:
        if "loss" in record:
            last_loss = record["loss"]
        if "eval_f1" in record:
            rows.append({"training_loss": last_loss, "epoch": record.get("epoch"), "step": record.get("step"),
                         "validation_loss": record.get("eval_loss"), "precision": record.get("eval_precision"),
                         "recall": record.get("eval_recall"), "f1": record.get("eval_f1"),
                         "accuracy": record.get("eval_accuracy")})
    return rows


def metrics_table(metrics: dict) -> str:
    """Overall and per-type figures as an aligned text table."""
    lines = [f"{'type':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, row in sorted(metrics.get("per_type", {}).items()):
        lines.append(f"{name:<16}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>10}")
    support = sum(r["support"] for r in metrics.get("per_type", {}).values())
    lines.append(f"{'micro avg':<16}{metrics['precision']:>10.4f}{metrics['recall']:>10.4f}{metrics['f1']:>10.4f}{support:>10}")
    if metrics.get("accuracy") is not None:
        lines.append(f"token accuracy: {metrics['accuracy']:.4f}")
    return "\n".join(lines)


def _model_index(name: str, metrics: dict, dataset: str) -> list[dict]:
    results = []
    for split in ("test", "dev"):
        if split in metrics:
            m = metrics[split]
            results.append({
                "task": {"type": "token-classification", "name": "Token Classification"},
                "dataset": {"name": dataset, "type": dataset, "split": split},
                "metrics": [{"type": key, "value": round(float(m[key]), 4), "name": key.title()}
                            for key in ("precision", "recall", "f1", "accuracy") if m.get(key) is not None],
            })
    return [{"name": name, "results": results}]


def model_card(config, base_model: str, metrics: dict, log_history: list[dict], splits) -> str:
    """README.md in the Hugging Face format, with YAML metadata so the directory can be pushed as is."""
    import os

    dataset = os.path.basename(os.path.normpath(config.data)) if config.data else "custom"
    name = os.path.basename(os.path.normpath(config.output))
    meta = {"library_name": "transformers", "pipeline_tag": "token-classification", "base_model": base_model,
            "datasets": [dataset], "tags": ["token-classification", "tokentune", "generated_from_trainer"],
            "metrics": ["precision", "recall", "f1", "accuracy"], "model-index": _model_index(name, metrics, dataset)}
    out = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "", f"# {name}", "",
           f"A token-classification model fine-tuned from `{base_model}` on {dataset} with tokentune {__version__} "
           f"({datetime.date.today().isoformat()}).", ""]
    for split in ("dev", "test"):
        if split in metrics:
            out += [f"## Results on {split}", "", "```", metrics_table(metrics[split]), "```", ""]
    out += ["## Training hyperparameters", ""]
    hp = {"learning_rate": config.learning_rate, "train_batch_size": config.batch_size,
          "eval_batch_size": config.eval_batch_size, "seed": config.seed,
          "gradient_accumulation_steps": config.gradient_accumulation_steps,
          "total_train_batch_size": config.batch_size * config.gradient_accumulation_steps,
          "optimizer": f"Adam with betas=({config.adam_beta1},{config.adam_beta2}) and epsilon={config.adam_epsilon}",
          "lr_scheduler_type": config.lr_scheduler, "num_epochs": config.epochs}
    out += [f"- {k}: {v}" for k, v in hp.items()] + ["", "## Training results", ""]
    out.append("| Training Loss | Epoch | Step | Validation Loss | Precision | Recall | F1 | Accuracy |")
    out.append("|---|---|---|---|---|---|---|---|")
    for row in evaluation_rows(log_history):
        out.append("| " + " | ".join(_fmt(row[k]) for k in ("training_loss", "epoch", "step", "validation_loss",
                                                                  "precision", "recall", "f1", "accuracy")) + " |")
    out += ["", "## Usage", "", "```python", "from transformers import pipeline",
            f"ner = pipeline('token-classification', model='{name}', aggregation_strategy='first')",
            "ner('EU rejects German call to boycott British lamb.')", "```", ""]
    return "\n".join(out)
