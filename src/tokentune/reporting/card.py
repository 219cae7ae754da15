"""The Hugging Face style model card of a trained model directory (the text tables are in :mod:`.tables`).

The evaluation report of a model directory (errors.jsonl, plots, report.html) is built by
:mod:`tokentune.reporting`; :func:`write_reports` is the hook ``train`` calls to write it.
"""
from __future__ import annotations

import datetime
import os
import re

import yaml

from .. import __version__
from ..config import learning_rate_notes
from .tables import metrics_table

# a Hub model id: "name" or "owner/name". A local path is no valid `base_model` on the Hub, which
# rejects the card's metadata, so a path is named in the text only.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


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


def write_reports(staging: str, result, splits, config) -> None:
    """errors.jsonl, plots/*.png and report.html beside a trained model (see tokentune.reporting)."""
    from . import write_training_reports

    write_training_reports(staging, result, splits, config, curves=split_curves(result.metrics, splits))


def split_curves(metrics: dict, splits) -> dict[str, list[dict]]:
    """The precision/recall curve over score thresholds of each split whose predictions were kept
    (``evaluate_corpus(..., return_predictions=True)``), from those predictions: no model is run."""
    from ..evaluation import THRESHOLDS, threshold_curve

    curves = {}
    for name in ("dev", "test"):
        scores, corpus = metrics.get(name), getattr(splits, name, None)
        predictions = getattr(scores, "predictions", None)
        if getattr(scores, "curve", None):  # computed already (the card and the report both show it)
            curves[name] = scores.curve
        elif corpus is not None and predictions is not None:
            curves[name] = threshold_curve(corpus, predictions, THRESHOLDS, mode=scores.get("mode") or "default",
                                           scheme=scores.get("scheme") or "IOB2")
            scores.curve = curves[name]
    return curves


def _threshold_section(curves: dict[str, list[dict]]) -> list[str]:
    """The curves as one Markdown table (a column group per split), and the plot of the report."""
    from .plots import matplotlib_available

    if not curves:
        return []
    names = list(curves)
    head = "| Threshold | " + " | ".join(f"{n} {k}" for n in names for k in ("Precision", "Recall", "F1")) + " |"
    out = ["## Score threshold", "",
           "Entities whose score (mean probability of their words' labels) is below a threshold are dropped by "
           "`--min-score` (`predict`, `serve`, `evaluate`; `Tagger(min_score=...)`): precision against recall.", "",
           head, "|---" * (1 + 3 * len(names)) + "|"]
    for index, point in enumerate(curves[names[0]]):
        cells = [_fmt(curves[n][index][k]) for n in names for k in ("precision", "recall", "f1")]
        out.append(f"| {point['threshold']:.2f} | " + " | ".join(cells) + " |")
    out.append("")
    if matplotlib_available():
        out += ["![Precision and recall by score threshold](plots/threshold_curve.png)", ""]
    return out


def _model_index(name: str, metrics: dict, dataset: str) -> list[dict]:
    """The Hub's model-index: one result per split, each with task, dataset and metrics (type, value, name)."""
    results = []
    for split in ("test", "dev"):
        if split in metrics:
            m = metrics[split]
            values = [("precision", m.get("precision")), ("recall", m.get("recall")), ("f1", m.get("f1")),
                      ("accuracy", m.get("accuracy"))]
            results.append({
                "task": {"type": "token-classification", "name": "Token Classification"},
                "dataset": {"name": dataset, "type": dataset, "split": split},
                "metrics": [{"type": key, "value": round(float(value), 4), "name": key.title()}
                            for key, value in values if value is not None],
            })
    return [{"name": name, "results": results}]


def dataset_name(config) -> str:
    data = config.data
    if not data:
        return "custom"
    data = str(data)
    return data[3:] if data.startswith("hf:") else os.path.basename(os.path.normpath(data))


def card_metadata(config, base_model: str, metrics: dict) -> dict:
    """The YAML header of the model card."""
    dataset = dataset_name(config)
    name = os.path.basename(os.path.normpath(config.output))
    meta = {"library_name": "transformers", "pipeline_tag": "token-classification"}
    if _HUB_ID.fullmatch(base_model) and not os.path.exists(base_model):
        meta["base_model"] = base_model
    meta.update({"datasets": [dataset], "tags": ["token-classification", "tokentune", "generated_from_trainer"],
                 "metrics": ["precision", "recall", "f1", "accuracy"],
                 "model-index": _model_index(name, metrics, dataset)})
    return meta


def _report_section() -> list[str]:
    from .plots import matplotlib_available

    out = ["## Evaluation report", "",
           "`report.html` (one self-contained page: tables, plots, error examples), `errors.jsonl` (every "
           "false positive and false negative with its sentence, classified as wrong type, wrong boundary, "
           "wrong type and boundary, spurious or missed) and `metrics.json`.", ""]
    if matplotlib_available():
        out += ["![F1 by entity type](plots/per_type_f1.png)", "", "![Learning curves](plots/learning_curves.png)", ""]
    return out


def model_card(config, base_model: str, metrics: dict, log_history: list[dict], splits, notes=()) -> str:
    """README.md in the Hugging Face format, with YAML metadata so the directory can be pushed as is."""
    dataset = dataset_name(config)
    name = os.path.basename(os.path.normpath(config.output))
    meta = card_metadata(config, base_model, metrics)
    out = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "", f"# {name}", "",
           f"A token-classification model fine-tuned from `{base_model}` on {dataset} with tokentune {__version__} "
           f"({datetime.date.today().isoformat()}).", ""]
    for split in ("dev", "test"):
        if split in metrics:
            out += [f"## Results on {split}", "", "```", metrics_table(metrics[split]), "```", ""]
    out += _threshold_section(split_curves(metrics, splits))
    out += _report_section()
    out += ["## Training hyperparameters", ""]
    hp = {"learning_rate": config.learning_rate, "train_batch_size": config.batch_size,
          "eval_batch_size": config.eval_batch_size, "seed": config.seed,
          "gradient_accumulation_steps": config.gradient_accumulation_steps,
          "total_train_batch_size": config.batch_size * config.gradient_accumulation_steps,
          "optimizer": f"Adam with betas=({config.adam_beta1},{config.adam_beta2}) and epsilon={config.adam_epsilon}",
          "lr_scheduler_type": config.lr_scheduler, "num_epochs": config.epochs}
    out += [f"- {k}: {v}" for k, v in hp.items()] + [""]
    out += [line for note in learning_rate_notes(config) for line in (f"Note: {note}.", "")]
    out += ["## Training results", ""]
    out.append("| Training Loss | Epoch | Step | Validation Loss | Precision | Recall | F1 | Accuracy |")
    out.append("|---|---|---|---|---|---|---|---|")
    for row in evaluation_rows(log_history):
        out.append("| " + " | ".join(_fmt(row[k]) for k in ("training_loss", "epoch", "step", "validation_loss",
                                                                  "precision", "recall", "f1", "accuracy")) + " |")
    if notes:  # what the figures above depend on: a label map, part of a split, a type the data lacks
        out += ["", "## Notes from the run", ""] + [f"- {note}" for note in notes]
    out += ["", "## Usage", ""] + _usage(name, config.head == "crf")
    return "\n".join(out)


def _usage(name: str, crf: bool) -> list[str]:
    plain = ["```python", "from transformers import pipeline",
             f"ner = pipeline('token-classification', model='{name}', aggregation_strategy='first')",
             "ner('EU rejects German call to boycott British lamb.')", "```", ""]
    if not crf:
        return plain
    # the transitions are not part of the transformers model: a plain pipeline decodes each token alone
    return ["This model has a CRF head: its learned transitions are in `crf.safetensors`, which tokentune reads "
            "(the figures above are decoded with them).", "", "```python", "import tokentune",
            f"tagger = tokentune.Tagger.from_pretrained('{name}')",
            "tagger.predict_text('EU rejects German call to boycott British lamb.')", "```", "",
            "Plain transformers loads the encoder and its linear layer and decodes every token on its own, "
            "without the transitions:", ""] + plain
