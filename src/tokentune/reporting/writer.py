"""Assemble and write a report: errors.jsonl, plots/*.png, report.html (and metrics.json on demand).

Two entry points: :func:`write_training_reports` (called at the end of ``train``, into the staging
directory that is renamed into place as a whole) and :func:`write_evaluation_report` (``tokentune
evaluate --report DIR``, which writes DIR as one atomic directory).
"""
from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field

from .. import __version__
from ..errors import ConfigError
from .error_analysis import corpus_confusion, error_records, summarize

ERRORS_FILE = "errors.jsonl"
HTML_FILE = "report.html"
METRICS_FILE = "metrics.json"
PLOTS_DIR = "plots"
# file name -> (alt text, caption) in the order the page shows them
PLOTS = {
    "learning_curves.png": ("Learning curves", "Training and dev loss, and dev F1, over training steps."),
    "per_type_f1.png": ("F1 by entity type", "Entity-level F1 per type (exact match); support = gold entities."),
    "confusion_matrix.png": ("Entity-type confusion matrix",
                             "Each gold entity under the type of the predicted entity overlapping it best (the "
                             "diagonal: right type, boundaries may differ) or under missed; predicted entities "
                             "overlapping no gold entity in the spurious row."),
    "threshold_curve.png": ("Precision and recall by score threshold",
                            "Entities whose score (mean probability of their words' labels) is below the threshold "
                            "are dropped (--min-score): left, precision, recall and F1 against the threshold; "
                            "right, precision against recall, one point per threshold that leaves any entity "
                            "(precision counts as 0 where none is left)."),
}
REPORT_NAMES = {ERRORS_FILE, HTML_FILE, METRICS_FILE, PLOTS_DIR}


@dataclass
class SplitReport:
    """The scores of one split with what the page and errors.jsonl need: errors, confusion, partial matches."""

    name: str
    metrics: dict
    errors: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=lambda: summarize([]))
    confusion: tuple | None = None  # (labels, rows) from errors.confusion_counts
    partial: dict | None = None
    curve: list[dict] | None = None  # tokentune.evaluation.threshold_curve points

    @classmethod
    def build(cls, name: str, metrics: dict, corpus=None, predictions=None, partial: dict | None = None,
              curve: list[dict] | None = None):
        """Analyse ``predictions`` against ``corpus`` (both optional: without them, only scores)."""
        if corpus is None or predictions is None:
            return cls(name, metrics, partial=partial, curve=curve)
        scheme = metrics.get("scheme") or "IOB2"
        errors = error_records(corpus, predictions, scheme=scheme, split=name)
        if partial is None and metrics.get("mode") in ("default", "strict"):
            partial = _partial(corpus, predictions, metrics, scheme)
        return cls(name, metrics, errors, summarize(errors), corpus_confusion(corpus, predictions, scheme=scheme),
                   partial, curve)


def _partial(corpus, predictions, metrics: dict, scheme: str) -> dict:
    from ..metrics import partial_match_report
    from ..schemes import spans_to_tags

    gold = [spans_to_tags(s.spans, len(s.words), scheme) for s in corpus]
    pred = [spans_to_tags(p.spans, len(p.words), scheme) for p in predictions]
    return partial_match_report(gold, pred, mode=metrics["mode"], scheme=scheme)


@dataclass
class Report:
    title: str
    info: dict  # shown under the title: model, data, date, ...
    splits: list[SplitReport]
    log_history: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG

    @property
    def main(self) -> SplitReport:
        """The split the plots and examples are about: test when there is one (the held-out figure)."""
        return next((s for s in self.splits if s.name == "test"), self.splits[-1])

    def draw_plots(self) -> None:
        from . import plots

        if not plots.matplotlib_available():
            self.notes.append("plots skipped: matplotlib is not installed (pip install 'tokentune[report]')")
            return
        main = self.main
        drawn = {"learning_curves.png": plots.learning_curves_png(self.log_history),
                 "per_type_f1.png": plots.per_type_f1_png(main.metrics, main.name),
                 "confusion_matrix.png": plots.confusion_png(*main.confusion, main.name) if main.confusion else None,
                 "threshold_curve.png": plots.threshold_curve_png({s.name: s.curve for s in self.splits if s.curve},
                                                                  main.metrics.get("min_score"))}
        self.plots = {name: png for name, png in drawn.items() if png is not None}

    def figures(self):
        """(png, alt, caption) of each drawn plot, in page order."""
        return [(self.plots[name], *PLOTS[name]) for name in PLOTS if name in self.plots]


def write_report_files(directory: str, report: Report, *, metrics: dict | None = None) -> list[str]:
    """Draw the plots and write every report file into ``directory``; returns the paths written."""
    from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text
    from .html import render_report

    report.draw_plots()
    written = []
    if metrics is not None:
        atomic_write_json(os.path.join(directory, METRICS_FILE), metrics)
        written.append(METRICS_FILE)
    lines = [json.dumps(record, ensure_ascii=False) + "\n" for split in report.splits for record in split.errors]
    atomic_write_text(os.path.join(directory, ERRORS_FILE), "".join(lines))
    written.append(ERRORS_FILE)
    for name, png in report.plots.items():
        atomic_write_bytes(os.path.join(directory, PLOTS_DIR, name), png)
        written.append(f"{PLOTS_DIR}/{name}")
    atomic_write_text(os.path.join(directory, HTML_FILE), render_report(report))
    written.append(HTML_FILE)
    return [os.path.join(directory, name) for name in written]


def read_log(path: str) -> list[dict]:
    """Records of a training_log.jsonl; unreadable lines are skipped (a log is a help, not an input)."""
    records = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
    except OSError:
        return []
    return records


def _today() -> str:
    return datetime.date.today().isoformat()


def write_training_reports(staging: str, result, splits, config, curves: dict | None = None) -> None:
    """errors.jsonl, plots and report.html beside the model, from the final evaluation of ``train``.

    ``result.metrics[split]`` carries the predictions when ``final_evaluation`` asked for them
    (``evaluate_corpus(..., return_predictions=True)``); without them the page has scores and plots only.
    ``curves``: split name -> threshold curve, for the precision/recall trade-off plot and table.
    A failure here is reported as a warning, never raised: the trained model is the expensive part
    and must still be written.
    """
    import warnings

    from ..modeling import base_model_name

    try:
        parts = []
        for name in ("dev", "test"):
            if name in result.metrics:
                scores = result.metrics[name]
                parts.append(SplitReport.build(name, dict(scores), getattr(splits, name, None),
                                               getattr(scores, "predictions", None), curve=(curves or {}).get(name)))
        if not parts:
            return
        report = Report(f"{os.path.basename(os.path.normpath(config.output))}: evaluation report",
                        {"base model": base_model_name(config.model), "data": config.data, "date": _today(),
                         "tokentune": __version__}, parts, list(result.log_history),
                        list(getattr(result, "notes", None) or []))  # the run's notes: a label map, a cut split
        if parts[-1].confusion is None:
            report.notes.append("no predictions were kept: errors and the confusion matrix are left out")
        write_report_files(staging, report)
    except Exception as err:  # noqa: BLE001 - see the docstring: the model matters more than its report
        warnings.warn(f"tokentune: the evaluation report was not written: {type(err).__name__}: {err}", stacklevel=2)


def _check_report_dir(directory: str) -> None:
    """The directory is replaced as a whole: refuse one that holds anything else (e.g. a model)."""
    if not os.path.exists(directory):
        return
    if not os.path.isdir(directory):
        raise ConfigError(f"report directory {directory} is a file", fix="pass a new or empty directory to --report")
    others = sorted(set(os.listdir(directory)) - REPORT_NAMES)
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise ConfigError(f"report directory {directory} holds other files ({shown}); a report replaces the "
                          "whole directory", fix="pass a new or empty directory to --report (not the model directory)")


def write_evaluation_report(directory: str, metrics: dict, corpus, predictions, *, model_dir: str,
                            data: str, split: str | None = None, curve: list[dict] | None = None) -> list[str]:
    """``tokentune evaluate --report DIR``: metrics.json, errors.jsonl, plots and report.html, atomically.

    Learning curves come from the model's ``training_log.jsonl`` when it has one; ``curve`` (a
    threshold curve) gives the precision/recall trade-off plot and table.
    """
    from ..io import atomic_directory

    directory = os.path.abspath(directory)
    _check_report_dir(directory)
    name = split or "data"
    part = SplitReport.build(name, metrics, corpus, predictions, partial=metrics.get("partial"), curve=curve)
    info = {"model": model_dir, "data": data if split is None else f"{data} ({split})",
            "min score": metrics.get("min_score"), "date": _today(), "tokentune": __version__}
    # what reading and scoring said (a label map, a type the data lacks), as --json gives them
    notes = list(dict.fromkeys([*getattr(corpus, "notes", []), *metrics.get("notes", [])]))
    report = Report(f"{os.path.basename(os.path.normpath(model_dir))}: evaluation report", info, [part],
                    read_log(os.path.join(model_dir, "training_log.jsonl")), notes)
    with atomic_directory(directory, overwrite=True) as tmp:
        written = write_report_files(tmp, report, metrics=metrics)
    return [os.path.join(directory, os.path.relpath(path, tmp)) for path in written]
