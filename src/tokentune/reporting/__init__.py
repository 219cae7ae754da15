"""Evaluation reports people can read: error analysis, plots and one self-contained HTML page.

* :mod:`.errors`: every false positive / false negative classified (wrong type, wrong boundary, ...);
* :mod:`.plots`: learning curves, F1 by type, entity-type confusion matrix (PNG; matplotlib, optional);
* :mod:`.html`: report.html, images embedded, nothing fetched;
* :mod:`.writer`: the files a training run and ``tokentune evaluate --report DIR`` write.

Importing this package imports neither matplotlib nor torch.
"""
from __future__ import annotations

from .error_analysis import KINDS, classify_sentence, confusion_counts, error_records, summarize
from .writer import Report, SplitReport, write_evaluation_report, write_report_files, write_training_reports

__all__ = ["KINDS", "classify_sentence", "confusion_counts", "error_records", "summarize", "Report", "SplitReport",
           "write_evaluation_report", "write_report_files", "write_training_reports"]
