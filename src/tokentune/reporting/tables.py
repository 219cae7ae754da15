"""Text tables for every command: metrics (train, evaluate), partial matches, and the data report of
`inspect`. One aligned-table helper; the HTML versions are in :mod:`.html`."""
from __future__ import annotations

import os
from typing import Any

SCORE_KEYS = ("precision", "recall", "f1")
PARTIAL_OUTCOMES = ("correct", "incorrect", "partial", "missed", "spurious")
SCORING_MODES = {"default": "default (lenient, as conlleval and seqeval's default)",
                 "strict": "strict (only entities that follow the scheme)"}


def _number(value: float, percent: bool) -> str:
    return f"{100 * value:.2f}" if percent else f"{value:.4f}"


def type_rows(metrics: dict, *, percent: bool = False) -> list[str]:
    """Header, one row per entity type, then the micro/macro/weighted averages (those present), as an
    aligned table. ``percent``: figures in percent (conlleval style) rather than fractions."""
    per_type = metrics.get("per_type", {})
    support = metrics["counts"]["gold"] if "counts" in metrics else sum(r["support"] for r in per_type.values())
    averages = [(label, row) for label, row in (("micro avg", metrics), ("macro avg", metrics.get("macro")),
                                                ("weighted avg", metrics.get("weighted"))) if row]
    rows = [(name, row, row["support"]) for name, row in sorted(per_type.items())]
    rows += [(label, row, support) for label, row in averages]
    body = [[name, *(_number(row[k], percent) for k in SCORE_KEYS), f"{count:,}" if percent else str(count)]
            for name, row, count in rows]
    header = ["type", *SCORE_KEYS, "support"]
    lines = aligned_table(header, [(cells[0], cells[1:]) for cells in body])
    return [lines[0] + ("   (percent)" if percent else ""), *lines[1:]]


def metrics_table(metrics: dict) -> str:
    """Overall and per-type figures as an aligned text table (micro, and macro/weighted when known)."""
    lines = type_rows(metrics)
    if metrics.get("accuracy") is not None:
        on = f" ({metrics['accuracy_scheme']} tags)" if metrics.get("accuracy_scheme") not in (None, "PLAIN") else ""
        lines.append(f"token accuracy{on}: {metrics['accuracy']:.4f}")
    return "\n".join(lines)


def partial_table(partial: dict, *, percent: bool = False) -> str:
    """The overall part of :func:`tokentune.metrics.partial_match_report` as an aligned text table."""
    title = "partial matches (SemEval-2013 task 9.1" + ("; precision, recall and f1 in percent)" if percent else ")")
    rows = [(kind, [f"{row[h]:,}" for h in PARTIAL_OUTCOMES] + [_number(row[k], percent) for k in SCORE_KEYS])
            for kind, row in partial["overall"].items()]
    return "\n".join([title, *aligned_table(["reading", *PARTIAL_OUTCOMES, *SCORE_KEYS], rows)])


def threshold_table(curve: list[dict], min_score: float | None = None) -> str:
    """A threshold curve (:func:`tokentune.evaluation.threshold_curve`) as an aligned text table;
    the row at ``min_score`` is marked ``<``."""
    rows = [(f"{point['threshold']:.2f}", [*(_number(point[k], False) for k in SCORE_KEYS), f"{point['predicted']:,}",
                                           f"{point['correct']:,}", "<" if point["threshold"] == min_score else ""])
            for point in curve]
    title = "precision/recall by score threshold (entities scoring below the threshold dropped)"
    return "\n".join([title, *aligned_table(["threshold", *SCORE_KEYS, "predicted", "correct", ""], rows)])


def score_report(result: dict, *, sentences: int, tokens: int, source: str) -> str:
    """`tokentune score`'s report: what was scored and how, the overall figures, then the type table."""
    lines = [
        f"scores for {source}",
        f"mode: {SCORING_MODES[result['mode']]}; scheme: {result['scheme'] or 'as written'}",
        f"sentences {sentences:,}; tokens {tokens:,}; accuracy {100 * result['accuracy']:.2f}%",
        "entities: gold {gold:,}; predicted {predicted:,}; correct {correct:,}".format(**result["counts"]),
        f"precision {100 * result['precision']:.2f}%; recall {100 * result['recall']:.2f}%; "
        f"F1 {100 * result['f1']:.2f}%",
        "",
        *type_rows(result, percent=True),
    ]
    if "partial" in result:
        lines += ["", partial_table(result["partial"], percent=True)]
    return "\n".join(lines)


def data_report_table(report: dict[str, Any]) -> str:
    """The report as an aligned table, one column per split, then first problem locations and notes."""
    splits = report["splits"]
    names = list(splits)
    rows: list[tuple[str, list[str]]] = [
        ("file", [os.path.basename(s["file"] or "") for s in splits.values()]),
        ("sentences", [f"{s['sentences']:,}" for s in splits.values()]),
        ("tokens", [f"{s['tokens']:,}" for s in splits.values()]),
        ("entities", [f"{s['entities']:,}" for s in splits.values()]),
    ]
    types = sorted({t for s in splits.values() for t in s["per_type"]})
    rows += [(f"  {t}", [f"{s['per_type'].get(t, 0):,}" for s in splits.values()]) for t in types]
    rows.append(("scheme", [s["scheme"] + (" (detected)" if s["scheme_detected"] else "") for s in splits.values()]))
    rows.append(("invalid transitions", [f"{s['invalid_transitions']['count']:,}" for s in splits.values()]))
    for key in ("p50", "p90", "p99", "max"):
        rows.append((f"words {key}", [str(s["length_words"][key]) for s in splits.values()]))
    if "model" in report:
        for key in ("p50", "p90", "p99", "max"):
            rows.append((f"sub-tokens {key}", [str(s["subtokens"][key]) for s in splits.values()]))
        rows.append(("over max length", [subtoken_overflow(s["subtokens"]) for s in splits.values()]))
    lines = aligned_table(["", *names], rows)
    for name, s in splits.items():
        if s["invalid_transitions"]["count"]:
            lines.append(f"{name}: first invalid transitions at {', '.join(s['invalid_transitions']['first'])}")
        if s["adjustments"]:
            lines.append(f"{name}: adjusted while reading: "
                         + ", ".join(f"{k}={v}" for k, v in s["adjustments"].items()))
    if "model" in report:
        lines.append(f"sub-tokens counted with the tokenizer of {report['model']} (special tokens included)")
    lines.extend(f"note: {note}" for note in report.get("notes", []))
    return "\n".join(lines)


def subtoken_overflow(sub: dict[str, Any]) -> str:
    return "no limit" if sub["max_length"] is None else f"{sub['over_max_length']:,} (> {sub['max_length']})"


def aligned_table(header: list[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    widths = [max(len(header[0]), *(len(r[0]) for r in rows))]
    for col in range(1, len(header)):
        widths.append(max(len(header[col]), *(len(r[1][col - 1]) for r in rows)))
    out = ["  ".join([header[0].ljust(widths[0])] + [h.rjust(w) for h, w in zip(header[1:], widths[1:])])]
    for label, cells in rows:
        out.append("  ".join([label.ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells, widths[1:])]))
    return [line.rstrip() for line in out]
