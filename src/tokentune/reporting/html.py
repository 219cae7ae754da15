"""report.html: one self-contained page (inline CSS, images as data URIs, no script, nothing fetched).

Why self-contained: the page is opened from a model directory, attached to an issue or copied off a
training machine; it must show the same thing offline and anywhere, with no file beside it.
"""
from __future__ import annotations

import base64
from html import escape

from .error_analysis import KIND_TITLES, pick_examples
from .style import type_colours

CONTEXT_WORDS = 20  # words shown each side of an error in long sentences
EXAMPLES_PER_KIND = 5

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d1d1f;
 background:#f6f7f9;margin:0}
main{max-width:1120px;margin:0 auto;padding:24px 28px 60px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:0 0 4px}h2{font-size:21px;margin:36px 0 10px;border-bottom:2px solid #e3e5e8;
 padding-bottom:4px}h3{font-size:17px;margin:22px 0 8px}
.meta{color:#555;margin:0 0 14px}.meta span{margin-right:18px;white-space:nowrap}
nav a{margin-right:14px;color:#0b5cad}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0}
.card{border:1px solid #dfe1e5;border-radius:8px;padding:10px 16px;min-width:120px}
.card b{display:block;font-size:26px}.card small{color:#555}
table{border-collapse:collapse;margin:8px 0 16px;font-variant-numeric:tabular-nums}
th,td{padding:4px 12px;border-bottom:1px solid #e6e8eb;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f0f2f5}
tr.avg td{font-weight:600;background:#fafbfc}
.splits{display:flex;gap:32px;flex-wrap:wrap}
figure{margin:14px 0 26px}figure img{max-width:100%;border:1px solid #e3e5e8;border-radius:6px}
figcaption{color:#555;font-size:14px}
.legend{display:flex;gap:10px;flex-wrap:wrap;align-items:center;margin:8px 0 14px}
.swatch{display:inline-block;padding:1px 8px;border-radius:4px;border:1px solid #0002;font-size:13px}
.example{border:1px solid #e3e5e8;border-radius:8px;padding:8px 12px;margin:10px 0}
.example .about{font-size:14px;color:#333;margin-bottom:4px}
.row{display:flex;gap:10px;align-items:baseline;margin:2px 0}
.side{flex:0 0 78px;font-size:12px;text-transform:uppercase;color:#666;letter-spacing:.04em}
.text{line-height:2.1;min-width:0;overflow-wrap:anywhere}
mark.ent{padding:2px 3px;border-radius:4px;border:1px solid #0002;color:#111}
mark.focus{outline:2.5px solid #111;outline-offset:1px}
.tag{font-size:10px;font-weight:700;margin-left:4px;vertical-align:1px;opacity:.8}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 12px;margin:8px 0}
.bar{display:inline-block;height:10px;background:#6b8fd6;border-radius:2px;vertical-align:middle}
"""


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _img(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def metrics_table_html(metrics: dict, split: str) -> str:
    """Per-type and averaged precision/recall/F1 (percent) with support, as an HTML table."""
    head = "<tr><th>type</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
    rows = []
    for name, row in sorted(metrics.get("per_type", {}).items()):
        rows.append(f"<tr><td>{escape(name)}</td><td>{_pct(row['precision'])}</td><td>{_pct(row['recall'])}</td>"
                    f"<td>{_pct(row['f1'])}</td><td>{row['support']:,}</td></tr>")
    gold = (metrics.get("counts") or {}).get("gold", sum(r["support"] for r in metrics.get("per_type", {}).values()))
    for label, row in (("micro avg", metrics), ("macro avg", metrics.get("macro")),
                       ("weighted avg", metrics.get("weighted"))):
        if row:
            rows.append(f'<tr class="avg"><td>{label}</td><td>{_pct(row["precision"])}</td>'
                        f'<td>{_pct(row["recall"])}</td><td>{_pct(row["f1"])}</td><td>{gold:,}</td></tr>')
    counts = metrics.get("counts") or {}
    extra = (f"<br>entities: {counts['gold']:,} gold, {counts['predicted']:,} predicted, {counts['correct']:,} correct"
             if counts else "")
    scheme = f", scheme {escape(metrics['scheme'])}" if metrics.get("scheme") else ""
    accuracy = "" if metrics.get("accuracy") is None else f"; token accuracy {_pct(metrics['accuracy'])}%"
    computed = f"; computed in {escape(metrics['computed_in'])}" if metrics.get("computed_in") else ""
    return (f"<div><h3>{escape(split)}</h3><table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
            f"<small>percent; mode {escape(str(metrics.get('mode')))}{scheme}{accuracy}{computed}{extra}</small></div>")


def partial_table_html(partial: dict) -> str:
    heads = ("correct", "incorrect", "partial", "missed", "spurious", "precision", "recall", "f1")
    rows = "".join(
        f"<tr><td>{escape(kind)}</td>" + "".join(f"<td>{row[h]:,}</td>" for h in heads[:5])
        + "".join(f"<td>{_pct(row[h])}</td>" for h in heads[5:]) + "</tr>"
        for kind, row in partial["overall"].items())
    head = "".join(f"<th>{h}</th>" for h in ("reading", *heads))
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            "<small>SemEval-2013 task 9.1 readings: strict (boundaries and type), exact (boundaries), "
            "partial (any overlap, half credit), type (overlap with the right type); percent. Counted as "
            "nervaluate counts: a prediction that overlaps several gold entities counts once for each, and one "
            "whose gold entity was matched already counts as spurious, so <i>strict</i> can differ a little "
            "from the exact-match scores above, and <i>spurious</i> from the error table's.</small>")


def threshold_table_html(curve: list[dict], split: str, marked: float | None = None) -> str:
    """A threshold curve as a table: precision, recall, F1 (percent) and entity counts per threshold;
    the threshold in use (``marked``) and the best F1 are set in bold and named."""
    best = max(curve, key=lambda p: (p["f1"], -p["threshold"]))["threshold"]
    rows = []
    for point in curve:
        notes = [n for n, hit in (("in use", point["threshold"] == (marked or 0.0)), ("best F1", point["threshold"] == best))
                 if hit]
        bold = ' class="avg"' if notes else ""
        rows.append(f'<tr{bold}><td>{point["threshold"]:.2f}</td>'
                    + "".join(f"<td>{_pct(point[k])}</td>" for k in ("precision", "recall", "f1"))
                    + f"<td>{point['predicted']:,}</td><td>{point['correct']:,}</td>"
                    f'<td style="text-align:left">{escape(", ".join(notes))}</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("threshold", "precision", "recall", "F1", "predicted", "correct", ""))
    return (f"<div><h3>{escape(split)}</h3><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
            f"</table><small>percent; {curve[0]['gold']:,} gold entities</small></div>")


def threshold_section(splits, marked: float | None) -> str:
    """The precision/recall trade-off over score thresholds, one table per split that has a curve."""
    tables = [threshold_table_html(s.curve, s.name, marked) for s in splits if s.curve]
    if not tables:
        return ""
    return ("<h2 id='threshold'>Score threshold</h2><p>Entities whose score (mean probability of their words' "
            "labels) is below the threshold are dropped, as <code>--min-score</code> does in "
            "<code>predict</code>, <code>serve</code> and <code>evaluate</code>: precision rises and recall "
            "falls as the threshold grows. Computed from one prediction pass.</p>"
            "<div class='splits'>" + "".join(tables) + "</div>")


def _cards(metrics: dict) -> str:
    items = [("F1", metrics["f1"]), ("precision", metrics["precision"]), ("recall", metrics["recall"]),
             ("token accuracy", metrics.get("accuracy"))]
    return '<div class="cards">' + "".join(
        f'<div class="card"><small>{name}</small><b>{_pct(v)}</b></div>' for name, v in items if v is not None
    ) + "</div>"


def _sentence_html(words: list[str], spans: list[dict], focus: dict | None, colours: dict, window) -> str:
    """Words with ``spans`` highlighted; the span equal to ``focus`` outlined. Everything escaped."""
    lo, hi = window
    starts = {s["start"]: s for s in spans if lo <= s["start"] < hi}
    out, i = [], lo
    if lo > 0:
        out.append("…")
    while i < hi:
        span = starts.get(i)
        if span is None:
            out.append(escape(words[i]))
            i += 1
            continue
        end = min(span["end"], hi)
        is_focus = focus is not None and (span["label"], span["start"], span["end"]) == (
            focus["label"], focus["start"], focus["end"])
        colour = colours.get(span["label"], "#dddddd")
        out.append(f'<mark class="ent{" focus" if is_focus else ""}" style="background:{colour}" '
                   f'data-label="{escape(span["label"])}">{escape(" ".join(words[i:end]))}'
                   f'<span class="tag">{escape(span["label"])}</span></mark>')
        i = end
    if hi < len(words):
        out.append("…")
    return " ".join(out)


def _window(record: dict) -> tuple[int, int]:
    spans = [s for s in (record["gold"], record["predicted"]) if s]
    lo = min(s["start"] for s in spans)
    hi = max(s["end"] for s in spans)
    n = len(record["words"])
    if n <= 2 * CONTEXT_WORDS + (hi - lo):
        return 0, n
    lo, hi = max(0, lo - CONTEXT_WORDS), min(n, hi + CONTEXT_WORDS)
    # never cut an entity in half at the edges of the window; moving an edge for one entity can land it
    # inside another (overlapping gold and predicted spans), so until no entity crosses an edge
    moved = True
    while moved:
        moved = False
        for s in record["gold_spans"] + record["predicted_spans"]:
            if s["start"] < lo < s["end"]:
                lo, moved = s["start"], True
            if s["start"] < hi < s["end"]:
                hi, moved = s["end"], True
    return lo, hi


def _describe(span: dict | None) -> str:
    if span is None:
        return "nothing"
    score = f", score {span['score']:.2f}" if span.get("score") is not None else ""
    return f"{escape(span['label'])} “{escape(span['text'])}”{score}"


def example_html(record: dict, colours: dict) -> str:
    window = _window(record)
    where = f"{record['file']}:{record['line']}" if record.get("file") and record.get("line") else (
        f"sentence {record['sentence'] + 1}")
    about = f"gold {_describe(record['gold'])} → predicted {_describe(record['predicted'])}"
    rows = "".join(
        f'<div class="row"><span class="side">{side}</span><span class="text">'
        f"{_sentence_html(record['words'], record[key], record[focus], colours, window)}</span></div>"
        for side, key, focus in (("gold", "gold_spans", "gold"), ("predicted", "predicted_spans", "predicted")))
    return (f'<div class="example" data-kind="{record["kind"]}"><div class="about">{about} '
            f'<small>({escape(where)})</small></div>{rows}</div>')


def legend_html(colours: dict) -> str:
    swatches = "".join(f'<span class="swatch" style="background:{c}" data-label="{escape(t)}">{escape(t)}</span>'
                       for t, c in colours.items())
    return (f'<div class="legend"><b>Entity types:</b> {swatches} '
            '<span><mark class="ent focus" style="background:#fff">outlined</mark> = the entity the example is '
            "about</span></div>")


def errors_section(records: list[dict], summary: dict, colours: dict, split: str, entities: int = 1) -> str:
    if not records:
        found = "every entity matches exactly" if entities else "there are no entities, gold or predicted"
        return f"<h2 id='errors'>Errors ({escape(split)})</h2><p>No errors: {found}.</p>"
    total = summary["total"]
    top = max(summary["by_kind"].values())
    rows = []
    for kind, count in summary["by_kind"].items():
        pairs = [p for p in summary["by_pair"] if p["kind"] == kind][:3]
        common = ", ".join(f"{escape(str(p['gold'] or '–'))} → {escape(str(p['predicted'] or '–'))} ({p['count']:,})"
                           for p in pairs)
        rows.append(f'<tr><td><a href="#kind-{kind}">{escape(KIND_TITLES[kind])}</a></td><td>{count:,}</td>'
                    f"<td>{100 * count / total:.1f}%</td>"
                    f'<td style="text-align:left"><span class="bar" style="width:{120 * count / top:.0f}px"></span></td>'
                    f'<td style="text-align:left">{common}</td></tr>')
    out = [f"<h2 id='errors'>Errors ({escape(split)})</h2>",
           f"<p>{total:,} error{'s' * (total != 1)}, most frequent kind first (gold → predicted label). Every error, with its "
           "sentence, is in <code>errors.jsonl</code>.</p>",
           "<table><thead><tr><th>kind</th><th>count</th><th>share</th><th></th>"
           "<th style='text-align:left'>most frequent</th></tr></thead>"
           f"<tbody>{''.join(rows)}</tbody></table>", legend_html(colours)]
    for kind, count in summary["by_kind"].items():
        examples = pick_examples(records, kind, EXAMPLES_PER_KIND)
        out.append(f'<h3 id="kind-{kind}">{escape(KIND_TITLES[kind])}: {count:,}</h3>')
        out.extend(example_html(r, colours) for r in examples)
    return "\n".join(out)


def render_report(report) -> str:
    """The page for a :class:`~tokentune.reporting.writer.Report` (plots already drawn)."""
    main = report.main
    labels = set(main.metrics.get("per_type", {})) | {
        s["label"] for r in main.errors for s in r["gold_spans"] + r["predicted_spans"]}
    colours = type_colours(labels)
    meta = "".join(f"<span><b>{escape(k)}:</b> {escape(str(v))}</span>" for k, v in report.info.items() if v)
    parts = [f"<h1>{escape(report.title)}</h1><p class='meta'>{meta}</p>",
             "<nav><a href='#metrics'>Metrics</a>" + ("<a href='#threshold'>Threshold</a>" if any(
                 s.curve for s in report.splits) else "") + "<a href='#plots'>Plots</a><a href='#errors'>Errors</a></nav>",
             *(f"<p class='note'>{escape(n)}</p>" for n in report.notes),
             f"<h2 id='metrics'>Metrics ({escape(main.name)})</h2>", _cards(main.metrics),
             "<div class='splits'>" + "".join(metrics_table_html(s.metrics, s.name) for s in report.splits) + "</div>"]
    if main.partial:
        parts += [f"<h3>Partial matches ({escape(main.name)})</h3>", partial_table_html(main.partial)]
    parts.append(threshold_section(report.splits, main.metrics.get("min_score")))
    parts.append("<h2 id='plots'>Plots</h2>")
    parts += [_img(png, alt, caption) for png, alt, caption in report.figures()] or ["<p>No plots.</p>"]
    counts = main.metrics.get("counts") or {}
    parts.append(errors_section(main.errors, main.summary, colours, main.name,
                                entities=counts.get("gold", 1) + counts.get("predicted", 1)))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(report.title)}</title><style>{CSS}</style></head>"
            f"<body><main>\n{body}\n</main></body></html>\n")


def search_section_html(rows: list[dict], figures, about: str) -> str:
    """``tokentune tune``'s section: every trial's settings and dev/test F1, then the search plots."""
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "–" if value is None else escape(str(value))

    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    parts = ["<h2 id='search'>Hyperparameter search</h2>", f"<p class='meta'>{escape(about)}</p>",
             f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"]
    parts += [_img(png, alt, caption) for png, alt, caption in figures]
    return "\n".join(parts)
