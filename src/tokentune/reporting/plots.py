"""PNG plots for reports: learning curves, F1 by entity type, entity-type confusion matrix.

Each function returns the PNG bytes (or None when there is nothing to draw), so the caller can write
them atomically and embed the same bytes in the HTML page.

Why figures are built on ``matplotlib.figure.Figure`` with an Agg canvas rather than through pyplot:
pyplot keeps global state and would pick (or switch) the process-wide backend; a report written at
the end of training, in a notebook or in a server thread must not change the user's backend or need
a display. Agg is chosen here, inside each call, never on import, and matplotlib itself is imported
only when a plot is drawn (it is the optional ``report`` extra).
"""
from __future__ import annotations

import io
from contextlib import contextmanager

from .error_analysis import MISSED, SPURIOUS
from .style import type_colours

DPI = 110
# sizes in points at DPI 110: legible when the PNG is shown at its natural size or a little smaller
_RC = {"font.size": 12, "axes.titlesize": 14, "axes.titleweight": "bold", "axes.labelsize": 12,
       "xtick.labelsize": 11, "ytick.labelsize": 11, "legend.fontsize": 11, "axes.spines.top": False,
       "axes.spines.right": False}


def matplotlib_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


@contextmanager
def _figure(width: float, height: float, **subplots):
    """A figure on the Agg canvas with the report's font sizes; yields (figure, axes)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        yield figure, figure.subplots(**subplots)


def figure_png(figure) -> bytes:
    buffer = io.BytesIO()
    # a tight box: constrained layout can leave an axis label of a fixed-aspect image (the confusion
    # matrix) just outside the canvas
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white", bbox_inches="tight", pad_inches=0.2)
    return buffer.getvalue()


def learning_curves_png(log_history: list[dict]) -> bytes | None:
    """Training (and dev) loss and dev F1 over training steps, from a Trainer log history."""
    train = [(r["step"], r["loss"]) for r in log_history if "loss" in r and "step" in r]
    evals = [r for r in log_history if "eval_f1" in r and "step" in r]
    if not train and not evals:
        return None
    panels = 2 if evals else 1
    with _figure(9, 3.4 * panels + 0.4, nrows=panels, ncols=1, sharex=True, squeeze=False) as (figure, axes):
        loss_ax = axes[0][0]
        if train:
            # a short run logs the loss a few times only: a line through one point would not show
            loss_ax.plot(*zip(*train), color="#1f77b4", linewidth=1.8, label="training loss",
                         marker="o" if len(train) <= 40 else None, markersize=5)
        dev_loss = [(r["step"], r["eval_loss"]) for r in evals if r.get("eval_loss") is not None]
        if dev_loss:
            loss_ax.plot(*zip(*dev_loss), color="#d62728", marker="o", linewidth=1.8, label="dev loss")
        loss_ax.set_ylabel("loss")
        loss_ax.set_title("Learning curves")
        if train or dev_loss:
            loss_ax.legend(loc="upper right")
        loss_ax.grid(alpha=0.3)
        if evals:
            _dev_f1_panel(axes[1][0], evals)
        axes[-1][0].set_xlabel("training step")
        return figure_png(figure)


def _dev_f1_panel(ax, evals: list[dict]) -> None:
    steps = [r["step"] for r in evals]
    f1 = [r["eval_f1"] for r in evals]
    ax.plot(steps, f1, color="#2ca02c", marker="o", linewidth=2, label="dev F1", zorder=3)
    few = len(evals) <= 20  # markers, or one evaluation (a one-epoch run) would draw nothing
    for key, colour, marker in (("eval_precision", "#9467bd", "^"), ("eval_recall", "#8c564b", "v")):
        values = [r.get(key) for r in evals]
        if all(v is not None for v in values):
            ax.plot(steps, values, color=colour, linewidth=1, linestyle="--", label=key[5:].replace("_", " "),
                    marker=marker if few else None, markersize=6)
    best = max(range(len(f1)), key=f1.__getitem__)
    ax.annotate(f"best {f1[best]:.3f} (step {steps[best]})", (steps[best], f1[best]), textcoords="offset points",
                xytext=(0, -22), ha="center", fontsize=11, color="#2ca02c")
    ax.set_ylabel("dev (entity level)")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)


def per_type_f1_png(metrics: dict, split: str) -> bytes | None:
    """Horizontal bars of F1 per entity type, largest support on top, support written on each bar."""
    per_type = metrics.get("per_type") or {}
    if not per_type:
        return None
    names = sorted(per_type, key=lambda n: (-per_type[n]["support"], n))
    colours = type_colours(per_type)
    height = max(2.6, 0.5 * len(names) + 1.5)
    with _figure(9, height) as (figure, ax):
        positions = range(len(names))
        scores = [per_type[n]["f1"] for n in names]
        ax.barh(positions, scores, color=[colours[n] for n in names], edgecolor="#333333", height=0.7)
        for y, name in enumerate(names):
            row = per_type[name]
            ax.text(row["f1"] + 0.012, y, f"{row['f1']:.3f}   support {row['support']:,}", va="center", fontsize=11,
                    zorder=4, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5})  # over the micro line
        ax.axvline(metrics["f1"], color="#444444", linestyle="--", linewidth=1.2, zorder=1)
        # named at its top rather than in a legend, which would cover the labels of high bars
        ax.annotate(f"micro F1 {metrics['f1']:.3f}", xy=(metrics["f1"], 1), xycoords=("data", "axes fraction"),
                    xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", fontsize=11,
                    color="#444444")
        ax.set_yticks(list(positions), names)
        ax.invert_yaxis()  # the largest support on top, where the eye starts
        ax.set_xlim(0, 1.32)  # room for the labels right of a bar at 1.0
        ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_xlabel("F1 (entity level, exact match)")
        ax.set_title(f"F1 by entity type ({split})", pad=22)
        ax.grid(axis="x", alpha=0.3)
        return figure_png(figure)


def confusion_png(labels: list[str], rows: dict, split: str) -> bytes | None:
    """Gold type (rows, plus spurious) against predicted type (columns, plus missed); counts written,
    colour by share of the row so that rare types are as readable as frequent ones."""
    import numpy as np

    row_names, col_names = [*labels, SPURIOUS], [*labels, MISSED]
    counts = np.array([[rows[r][c] for c in col_names] for r in row_names], dtype=float)
    if not counts.sum():
        return None
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = 2.6 + 0.75 * len(col_names)
    with _figure(side + 1.2, side) as (figure, ax):
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        small = 12 if len(col_names) <= 8 else (10 if len(col_names) <= 14 else 8)
        for (i, j), count in np.ndenumerate(counts):
            ax.text(j, i, f"{int(count):,}", ha="center", va="center", fontsize=small,
                    color="white" if shares[i, j] > 0.6 else ("#222222" if count else "#b5b5b5"))
        ax.set_xticks(range(len(col_names)), col_names, rotation=45 if len(col_names) > 5 else 0,
                      ha="right" if len(col_names) > 5 else "center")
        ax.set_yticks(range(len(row_names)), row_names)
        # the extra row and column are not types: set them apart
        ax.axhline(len(labels) - 0.5, color="#333333", linewidth=1.5)
        ax.axvline(len(labels) - 0.5, color="#333333", linewidth=1.5)
        ax.set_xlabel("predicted type")
        ax.set_ylabel("gold type")
        ax.set_title(f"Entity types, gold vs predicted ({split})")
        ax.spines[["top", "right"]].set_visible(True)
        figure.colorbar(image, ax=ax, shrink=0.8, label="share of the row")
        return figure_png(figure)


_SCORE_STYLES = (("precision", "#2f6db5"), ("recall", "#d9822b"), ("f1", "#3a9a5b"))
_SPLIT_LINES = ("-", "--", ":")


def threshold_curve_png(curves: dict[str, list[dict]], marked: float | None = None) -> bytes | None:
    """Left: precision, recall and F1 against the score threshold (one line style per split); right:
    precision against recall, one point per threshold. ``marked``: the threshold in use, a vertical line."""
    curves = {name: points for name, points in curves.items() if points}
    if not curves:
        return None
    with _figure(11, 4.2, nrows=1, ncols=2) as (figure, (left, right)):
        for (name, points), line in zip(curves.items(), _SPLIT_LINES):
            thresholds = [p["threshold"] for p in points]
            for key, colour in _SCORE_STYLES:
                left.plot(thresholds, [p[key] for p in points], line, color=colour, linewidth=1.8,
                          label=f"{key} ({name})" if len(curves) > 1 else key)
            shown = [p for p in points if p["predicted"]]  # no entity left: precision is no measurement
            right.plot([p["recall"] for p in shown], [p["precision"] for p in shown], line, marker="o",
                       markersize=3.5, color="#444444", label=name)
            if shown and line == _SPLIT_LINES[0]:  # the ends named once: both splits' labels would collide
                for point in (shown[0], shown[-1]):
                    right.annotate(f"{point['threshold']:.2f}", (point["recall"], point["precision"]), fontsize=9,
                                   xytext=(4, 4), textcoords="offset points", color="#444444")
        if marked:
            left.axvline(marked, color="#888888", linestyle="-.", linewidth=1.2)
            left.annotate(f"--min-score {marked:g}", xy=(marked, 0.02), xytext=(4, 0), textcoords="offset points",
                          fontsize=10, color="#555555")
        _unit_axes(left, "score threshold", "entity-level score", "Scores by threshold", right_edge=1.0)
        left.legend(loc="lower left", fontsize=9 if len(curves) > 1 else 11)
        _unit_axes(right, "recall", "precision", "Precision against recall")
        if len(curves) > 1:
            right.legend(loc="lower left")
        return figure_png(figure)


def _unit_axes(ax, xlabel: str, ylabel: str, title: str, *, right_edge: float = 1.02) -> None:
    """Axes over [0, 1] scores, labelled and lightly gridded."""
    ax.set_xlim(0, right_edge)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)

