"""Text tables for every command: metrics (train, evaluate), partial matches, and the data report of
`inspect`. One aligned-table helper; the HTML versions are in :mod:`.html`."""
from __future__ import annotations

import os
from typing import Any


def metrics_table(metrics: dict) -> str:
    """Overall and per-type figures as an aligned text table (micro, and macro/weighted when known)."""
    lines = [f"{'type':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, row in sorted(metrics.get("per_type", {}).items()):
        lines.append(f"{name:<16}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>10}")
    support = sum(r["support"] for r in metrics.get("per_type", {}).values())
    for label, row in (("micro avg", metrics), ("macro avg", metrics.get("macro")),
                       ("weighted avg", metrics.get("weighted"))):
        if row:
            lines.append(f"{label:<16}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{support:>10}")
    if metrics.get("accuracy") is not None:
        on = f" ({metrics['accuracy_scheme']} tags)" if metrics.get("accuracy_scheme") not in (None, "PLAIN") else ""
        lines.append(f"token accuracy{on}: {metrics['accuracy']:.4f}")
    return "\n".join(lines)


def partial_table(partial: dict) -> str:
    """The overall part of :func:`tokentune.metrics.partial_match_report` as an aligned text table."""
    head = ("correct", "incorrect", "partial", "missed", "spurious")
    lines = ["partial matches (SemEval-2013 task 9.1)",
             f"{'reading':<10}" + "".join(f"{h:>10}" for h in head) + f"{'precision':>10}{'recall':>10}{'f1':>10}"]
    for kind, row in partial["overall"].items():
        lines.append(f"{kind:<10}" + "".join(f"{row[h]:>10}" for h in head)
                     + "".join(f"{row[k]:>10.4f}" for k in ("precision", "recall", "f1")))
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
