"""The end of a search: the best trial's model becomes the output directory, with the trials' table
(``trials.csv``, ``trials.jsonl``), ``search.json``, the search plots (``plots/search_*.png``), a
section in the model card and in ``report.html``, and the study's SQLite file (default storage)."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from functools import partial
from html import escape

from ..errors import ConfigError
from .options import LOCK_FILE, TRIALS_DIR

FEW_TRIALS = 10  # below this, the importance plot's forest is fitted to too few points to trust
PLOT_FILES = {
    "search_history.png": ("Optimization history", "Dev F1 of each finished trial and the best so far."),
    "search_importances.png": ("Parameter importances", "How much of the variation in dev F1 each setting explains "
                                                        "(Optuna's PED-ANOVA over the finished trials)."),
    "search_parallel.png": ("Parallel coordinates", "Each finished trial as a line through its settings, coloured "
                                                    "by dev F1."),
}


def trial_rows(study) -> list[dict]:
    """One row per trial, in order: number, state, dev/test F1, epochs, seconds, worker (``host:pid``),
    then the settings."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        rows.append({"number": trial.number, "state": trial.state.name.lower(), "dev_f1": trial.value,
                     "test_f1": attrs.get("test_f1"), "epochs_trained": attrs.get("epochs_trained"),
                     "seconds": attrs.get("seconds"), "worker": attrs.get("worker"), **trial.params,
                     **({"retry_of": attrs["retry_of"]} if "retry_of" in attrs else {})})
    return rows


def trials_csv(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def finish_search(study, search, final: str, staging: str, options, notes: list[str], seconds: float):
    from ..io import atomic_write_json, atomic_write_text, publish_tree, replace_with, writing
    from .options import TuneResult
    from .study import shown_url

    best = best_here(study, search, notes)
    storage = shown_url(search.url) if search.shared else "sqlite:///" + os.path.join(final, "study.db")
    rows = trial_rows(study)
    epochs = sum(float(r["epochs_trained"] or 0) for r in rows if r["state"] in ("complete", "pruned"))
    with writing(final):
        _promote(best.number, search.trials_dir, staging, final, search.user_settings)
        atomic_write_text(os.path.join(staging, "trials.csv"), trials_csv(rows))
        atomic_write_text(os.path.join(staging, "trials.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
        summary = {"study": search.study_name, "storage": storage, "objective": "dev F1 (entity level)",
                   "sampler": "TPE", "pruner": search.pruner, "best_trial": best.number, "best_dev_f1": best.value,
                   "best_params": best.params, "trials": len(rows), "pruned": sum(r["state"] == "pruned" for r in rows),
                   "trial_epochs": round(epochs, 3), "seconds": round(seconds, 1),
                   "space": {name: p.describe() for name, p in search.space.items()}, "notes": notes}
        plots = _draw_plots(study, staging, notes)  # its notes (plots skipped, rough importances) go in too
        atomic_write_json(os.path.join(staging, "search.json"), summary)
        _extend_card(staging, summary)
        _extend_report(staging, rows, plots, summary)
        os.remove(os.path.join(staging, LOCK_FILE))
        publish_tree(staging)
        replace_with(staging, final)
        if not options.keep_trials:  # only now: a finish killed before the rename is done again from the trials
            shutil.rmtree(os.path.join(final, TRIALS_DIR), ignore_errors=True)
    metrics = json.load(open(os.path.join(final, "metrics.json"), encoding="utf-8"))
    return TuneResult(final, search.study_name, storage, best.number, dict(best.params),
                      {k: metrics[k] for k in ("dev", "test") if k in metrics}, rows, seconds, epochs, notes)


def best_here(study, search, notes: list[str]):
    """The best finished trial whose model is on this machine (on a shared storage, others ran elsewhere)."""
    from optuna.trial import TrialState

    # among equal dev F1, the trial evaluated on test (the first to reach that F1) comes first
    complete = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                      key=lambda t: (-t.value, t.user_attrs.get("test_f1") is None, t.number))
    if not complete:
        raise ConfigError(f"no trial of study {search.study_name!r} finished (all were pruned, failed or timed out)",
                          fix="run the same command again to continue, with a larger --timeout or --pruner none")
    here = [t for t in complete if os.path.isdir(os.path.join(search.trials_dir, f"trial-{t.number:04d}"))]
    if not here:
        raise ConfigError("the finished trials' models are not on this machine (they ran on other workers of the study)",
                          fix="collect the output on the machine that ran the best trial")
    if here[0].number != complete[0].number:
        notes.append(f"the best trial of the study, {complete[0].number} (dev F1 {complete[0].value:.4f}), has no model "
                     f"in this output's trials: it ran on another machine, or into another --output "
                     f"(worker {complete[0].user_attrs.get('worker', 'unknown')}); this output is trial "
                     f"{here[0].number} (dev F1 {here[0].value:.4f}), the best of those run into it")
    return here[0]


def _promote(number: int, trials_dir: str, staging: str, final: str, settings: dict) -> None:
    """Link the trial's model files into the output (the trial's directory stays whole until the output is
    published, so a finish that fails half-way is done again by the same command), renamed in its card
    and saved settings, which are rewritten as new files, never through the links."""
    from ..io import atomic_write_json, atomic_write_text, empty_directory

    empty_directory(staging, keep=("study.db", "study.db-journal", TRIALS_DIR, LOCK_FILE))  # an interrupted finish
    trial_dir = os.path.join(trials_dir, f"trial-{number:04d}")
    for name in os.listdir(trial_dir):
        source, target = os.path.join(trial_dir, name), os.path.join(staging, name)
        if os.path.isdir(source):
            shutil.copytree(source, target, copy_function=_link_or_copy)
        else:
            _link_or_copy(source, target)
    card = os.path.join(staging, "README.md")
    if os.path.isfile(card):
        text = open(card, encoding="utf-8").read().replace(f"trial-{number:04d}", os.path.basename(final))
        atomic_write_text(card, text)
    saved = os.path.join(staging, "tokentune_config.json")
    if os.path.isfile(saved):
        # the trial ran quiet and over its own directory: the saved settings repeat the user's command
        atomic_write_json(saved, {**json.load(open(saved, encoding="utf-8")), "output": final, **settings})


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: a copy
        shutil.copy2(source, target)


def _draw_plots(study, staging: str, notes: list[str]) -> dict[str, bytes]:
    """The three search plots as PNG (matplotlib through Optuna's own plotting functions)."""
    import warnings

    from ..io import atomic_write_bytes
    from ..reporting.plots import figure_png, matplotlib_available

    if not matplotlib_available():
        notes.append("search plots skipped: matplotlib is not installed")
        return {}
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    target = {"target_name": "dev F1"}  # Optuna's own name for it is "Objective Value"
    drawers = {"search_history.png": partial(optuna_plots.plot_optimization_history, **target),
               "search_importances.png": partial(optuna_plots.plot_param_importances, **target),
               "search_parallel.png": partial(optuna_plots.plot_parallel_coordinate, **target)}
    complete = sum(trial.value is not None for trial in study.trials)
    if complete < FEW_TRIALS:
        notes.append(f"search_importances.png: importances estimated from {complete} finished trial"
                     f"{'' if complete == 1 else 's'} are rough (a forest fitted to so few points)")
    drawn = {}
    for name, draw in drawers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = draw(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:  # too few finished trials for this plot
            notes.append(f"{name} skipped: {str(err).splitlines()[0][:160] if str(err) else type(err).__name__}")
            continue
        figure = getattr(axes, "figure", None) or axes.flat[0].figure
        figure.set_size_inches(9, 5)
        drawn[name] = figure_png(figure)  # the report's own PNG settings
        plt.close(figure)
        atomic_write_bytes(os.path.join(staging, "plots", name), drawn[name])
    return drawn


def _extend_card(staging: str, summary: dict) -> None:
    params = "\n".join(f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}"
                       for k, v in summary["best_params"].items())
    space = "\n".join(f"- {k}: {v}" for k, v in summary["space"].items())
    section = (f"\n## Hyperparameter search\n\nThis model is trial {summary['best_trial']} of a search with "
               f"`tokentune tune`: {summary['trials']} trials ({summary['pruned']} stopped early by the "
               f"{summary['pruner']} pruner) of Optuna's {summary['sampler']} sampler, study `{summary['study']}`, "
               f"chosen by dev F1 ({summary['best_dev_f1']:.4f}). Its settings:\n\n{params}\n\nThe space searched:"
               f"\n\n{space}\n\nEvery trial's settings and figures: `trials.csv`; the search: `search.json`.\n")
    path = os.path.join(staging, "README.md")
    if os.path.isfile(path):
        from ..io import atomic_write_text

        atomic_write_text(path, open(path, encoding="utf-8").read() + section)


def _extend_report(staging: str, rows: list[dict], plots: dict[str, bytes], summary: dict) -> None:
    """A 'Hyperparameter search' section at the end of report.html (and a link to it)."""
    from ..reporting.html import search_section_html

    path = os.path.join(staging, "report.html")
    if not os.path.isfile(path):
        return
    figures = [(plots[name], *PLOT_FILES[name]) for name in PLOT_FILES if name in plots]
    section = search_section_html(rows, figures, f"{summary['trials']} trials, best {summary['best_trial']} "
                                                 f"(dev F1 {summary['best_dev_f1']:.4f}); {escape(summary['pruner'])} "
                                                 f"pruner; {summary['seconds']:.0f} s")
    page = open(path, encoding="utf-8").read()
    page = page.replace("</nav>", "<a href='#search'>Search</a></nav>", 1).replace("\n</main>", section + "\n</main>", 1)
    from ..io import atomic_write_text

    atomic_write_text(path, page)
