"""`tokentune tune`: the search's outputs, its space's located errors, pruning, an interrupted search
continued by the same command (SIGKILL), and two workers sharing a study on a real PostgreSQL."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import tokentune
from tokentune.cli.main import main
from tokentune.config import TrainConfig
from tokentune.errors import ConfigError
from tokentune.tuning import Param, TuneOptions
from tokentune.tuning.space import parse_space, read_space
from tokentune.tuning.study import open_storage

# a space the tiny model answers to within seconds: learning rates from useless to good, 1-3 epochs
TINY_SPACE = {"learning_rate": Param("learning_rate", "float", 1e-4, 1e-2, log=True),
              "epochs": Param("epochs", "int", 1, 3)}
TINY_SPACE_YAML = ("space:\n  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
                   "  epochs: {type: int, low: 1, high: 3}\n")
FIXED = {"batch_size": 16, "quiet": True, "seed": 3}


def _output(tmp_path, name="tuned"):
    return tmp_path.parent / f"{tmp_path.name}-{name}"  # outputs may not lie inside the tests' inputs


@pytest.fixture(scope="module")
def searched(tiny_data, tiny_base_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    config = TrainConfig(data=tiny_data, model=tiny_base_model, output=str(_output(root)), **FIXED)
    lines = []
    result = tokentune.tune(config, TuneOptions(trials=4), space=TINY_SPACE, progress=lines.append)
    return result, lines


def test_the_best_trial_is_the_output_and_loads_in_transformers(searched):
    from transformers import AutoModelForTokenClassification

    result, _ = searched
    out = result.output_dir
    model = AutoModelForTokenClassification.from_pretrained(out)
    assert set(model.config.id2label.values()) >= {"B-PER", "I-PER", "O"}
    best = max((r for r in result.trials if r["state"] == "complete"), key=lambda r: r["dev_f1"])
    assert result.best_trial == best["number"]
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["dev"]["f1"] == pytest.approx(best["dev_f1"])
    assert metrics["test"]["f1"] == pytest.approx(best["test_f1"])  # the chosen model has its test figures
    saved = json.load(open(os.path.join(out, "tokentune_config.json")))
    assert saved["learning_rate"] == pytest.approx(result.best_params["learning_rate"])
    assert saved["epochs"] == result.best_params["epochs"] and saved["output"] == out
    assert not os.path.exists(os.path.join(out, "trials"))  # other trials removed without --keep-trials
    assert not [n for n in os.listdir(os.path.dirname(out)) if n.startswith(f".{os.path.basename(out)}.")]


def test_trials_table_plots_card_and_report(searched):
    result, lines = searched
    out = result.output_dir
    rows = list(csv.DictReader(open(os.path.join(out, "trials.csv"))))
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3]
    assert {"learning_rate", "epochs", "dev_f1", "test_f1", "epochs_trained", "state", "worker"} <= set(rows[0])
    assert all(re.fullmatch(r".+:\d+", r["worker"]) for r in rows), "each trial's worker, host:pid"
    assert len(open(os.path.join(out, "trials.jsonl")).read().splitlines()) == 4
    for name in ("search_history.png", "search_importances.png", "search_parallel.png"):
        assert open(os.path.join(out, "plots", name), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    rough = "search_importances.png: importances estimated from 4 finished trials are rough"
    with open(os.path.join(out, "search.json"), encoding="utf-8") as handle:
        assert any(note.startswith(rough) for note in json.load(handle)["notes"])  # plot notes are saved too
    card = open(os.path.join(out, "README.md")).read()
    assert "## Hyperparameter search" in card and f"trial {result.best_trial} of a search" in card
    assert "# " + os.path.basename(out) in card and "trial-000" not in card
    page = open(os.path.join(out, "report.html")).read()
    assert "id='search'" in page and page.count("data:image/png") >= 3 + 2
    assert len(lines) == 4 and all(line.startswith("trial ") for line in lines)
    assert any("dev F1" in line for line in lines)


def test_the_study_is_a_real_sqlite_database(searched):
    import optuna

    result, _ = searched
    assert result.storage == "sqlite:///" + os.path.join(result.output_dir, "study.db")
    study = optuna.load_study(study_name="tokentune", storage=result.storage)
    assert len(study.trials) == 4 and study.best_trial.number == result.best_trial
    assert study.user_attrs["tokentune_search"]["space.epochs"] == "int from 1 to 3"


def test_a_pruned_trial_stops_and_leaves_nothing(tiny_data, tiny_base_model, tmp_path):
    """A pruner that always prunes stops the trial at its first evaluation (epoch 1 of 3)."""
    import optuna

    from tokentune.tuning.options import Search
    from tokentune.tuning.trials import run_trial

    class AlwaysPrune(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    base = TrainConfig(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "unused"), epochs=3, **FIXED)
    search = Search(base, {"learning_rate": Param("learning_rate", "float", 1e-3, 1e-3)}, "", False, "s", "median",
                     1, None, str(tmp_path / "trials"), 1)
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 1.00"):
        run_trial(trial, search)
    assert study.trials[0].user_attrs["epochs_trained"] == 1.0
    assert list(study.trials[0].intermediate_values) == [100]
    assert not os.path.exists(tmp_path / "trials") or os.listdir(tmp_path / "trials") == []


def test_space_errors_name_file_line_and_fix(tmp_path):
    base = TrainConfig(data="x")
    path = tmp_path / "tune.yaml"
    cases = [
        ("space:\n  learning_rate: {type: float, low: 0.0, high: 1.0e-3}\n",
         r"tune.yaml:2: space.learning_rate: 0.0 is not a valid learning_rate"),
        ("space:\n  epochs: {type: int, low: 1, high: 3}\n  learnig_rate: {type: float, low: 1, high: 2}\n",
         r"tune.yaml:3: space: unknown setting 'learnig_rate'. Fix: did you mean 'learning_rate'"),
        ("space:\n  batch_size: {type: categorical}\n", r"tune.yaml:2: space.batch_size: a categorical parameter needs"),
        ("space:\n  warmup_ratio: {type: float, low: 0.5, high: 0.1}\n", r"low \(0.5\) is above high \(0.1\)"),
        ("space:\n  warmup_ratio: {type: float, low: 0.0, high: 1.0}\n", r"1.0 is not a valid warmup_ratio"),
        ("space:\n  epochs: {type: uniform, low: 1, high: 3}\n", r"expected a mapping with type float, int or categorical"),
        ("space:\n  learning_rate: {type: float, low: 0, high: 1.0e-3, log: true}\n", r"'log: true' needs bounds above 0"),
        ("space:\n  output: {type: categorical, choices: [a, b]}\n", r"output is not a training hyperparameter"),
        ("space:\n  warmup_ratio: {type: float, low: 0.05, high: 0.2, step: 0.04}\n",
         r"tune.yaml:2: space.warmup_ratio.step: 0.04 does not divide the range 0.05 to 0.2, so the largest value "
         r"drawn would be 0.17, not 0.2. Fix: set high to 0.17"),
        ("space:\n  learning_rate: {type: float, low: 1e-5, high: 1.0e-3}\n",
         r"tune.yaml:2: space.learning_rate.low: expected a number, found '1e-5'. Fix: write '1e-5' as 1.0e-05 \(YAML"),
    ]
    for text, message in cases:
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            read_space(str(path), base, in_config=True)
    path.write_text(TINY_SPACE_YAML)
    assert read_space(str(path), base, in_config=True) == parse_space(
        {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
         "epochs": {"type": "int", "low": 1, "high": 3}}, base, source="x")


def test_a_space_file_with_settings_beside_space_is_refused_naming_them(tiny_data, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("epochs: 1\n" + TINY_SPACE_YAML + "seed: 3\n")
    out = _output(tmp_path)
    code = main(["tune", "--data", tiny_data, "--output", str(out), "--space", str(space)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert (f"{space}:1: a --space file holds only the search space; found also: epochs, seed. "
            "Fix: put other settings in --config FILE or flags") in err
    assert "expected a mapping" not in err and not out.exists()
    as_json = tmp_path / "space.json"
    as_json.write_text(json.dumps({"space": {"epochs": {"type": "int", "low": 1, "high": 3}}, "epochs": 1}))
    with pytest.raises(ConfigError, match=r"space.json:1: a --space file holds only the search space; found also: "
                                          r"epochs\. Fix: put other settings in --config FILE or flags"):
        read_space(str(as_json), TrainConfig(data="x"), in_config=False)
    for text in (TINY_SPACE_YAML, TINY_SPACE_YAML.replace("\n  ", "\n")[len("space:\n"):]):  # nested, or top level
        space.write_text(text)
        assert set(read_space(str(space), TrainConfig(data="x"), in_config=False)) == {"learning_rate", "epochs"}
    space.write_text("epochs: 20\n" + TINY_SPACE_YAML)  # a --config file holds settings beside its space
    assert set(read_space(str(space), TrainConfig(data="x"), in_config=True)) == {"learning_rate", "epochs"}


def test_a_space_from_python_says_space_once(tiny_data, tmp_path):
    base = TrainConfig(data=tiny_data, output=str(_output(tmp_path)))
    with pytest.raises(ConfigError, match=r"^space: unknown setting 'learnig_rate'\. Fix: did you mean 'learning_rate'"):
        tokentune.tune(base, space={"learnig_rate": Param("learnig_rate", "float", 1e-5, 1e-4)})
    with pytest.raises(ConfigError, match=r"^space\.learning_rate: 0\.0 is not a valid learning_rate"):
        tokentune.tune(base, space={"learning_rate": Param("learning_rate", "float", 0.0, 1e-4)})
    assert not _output(tmp_path).exists()


def test_cli_refuses_a_bad_space_before_any_trial(tiny_data, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: float, low: 1.0e-3, high: 1.0e-4}\n")
    out = _output(tmp_path)
    code = main(["tune", "--data", tiny_data, "--output", str(out), "--space", str(space)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "space.yaml:1: space.learning_rate: low" in err
    assert not out.exists()


def _tune_command(tiny_data, tiny_base_model, out, *extra):
    return [sys.executable, "-m", "tokentune.cli.main", "tune", "--data", tiny_data, "--model", tiny_base_model,
            "--output", str(out), "--batch-size", "16", "--seed", "3", *extra]


def _complete_trials(db: str) -> int:
    """Read the study file read-only with sqlite3: opening it with Optuna would create its tables and so
    race with the search that is creating them."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:  # not created yet, or its tables not yet made
        return 0


def _wait_for_complete_trials(db: str, count: int, process, limit: float = 240.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(db) and _complete_trials(db) >= count:
            return
        time.sleep(0.5)
    output = process.stdout.read().decode(errors="replace") if process.poll() is not None else "(still running)"
    raise AssertionError(f"no {count} complete trial(s) in time (exit code {process.poll()}): {output[-3000:]}")


def _open_storage_in_a_process(url: str) -> str:
    try:
        open_storage(url, shared=False)
        return "opened"
    except ConfigError as err:
        return str(err)


def test_processes_opening_a_new_storage_at_once_all_open_it(tmp_path):
    """Workers (or a reader) opening a new study file together race to create Optuna's tables; the
    loser used to stop with "table studies already exists" (exit 2)."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(6) as pool:
        for attempt in range(4):
            url = f"sqlite:///{tmp_path / f'study{attempt}.db'}"
            assert pool.map(_open_storage_in_a_process, [url] * 6) == ["opened"] * 6


def test_a_storage_that_cannot_be_opened_fails_at_once_with_the_fix(tmp_path):
    started = time.monotonic()
    with pytest.raises(ConfigError, match="cannot open the Optuna storage") as caught:
        open_storage(f"sqlite:///{tmp_path / 'missing' / 'folder' / 'study.db'}", shared=False)
    assert "check the URL" in str(caught.value)
    assert time.monotonic() - started < 2.0  # not retried: only the table-creation race is


@pytest.mark.slow
def test_a_killed_search_continues_with_the_same_command(tiny_data, tiny_base_model, tmp_path):
    import optuna
    from optuna.trial import TrialState

    out = _output(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text(TINY_SPACE_YAML.replace("high: 3", "high: 5").replace("low: 1,", "low: 4,"))
    command = _tune_command(tiny_data, tiny_base_model, out, "--trials", "4", "--space", str(space),
                            "--pruner", "none")
    db = os.path.join(out.parent, f".{out.name}.tune.partial", "study.db")
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    _wait_for_complete_trials(db, 1, first)
    time.sleep(1.0)  # into the next trial
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = optuna.load_study(study_name="tokentune", storage=f"sqlite:///{db}")
    done_before = {t.number: t.value for t in before.get_trials(states=(TrialState.COMPLETE,))}
    assert done_before and not out.exists()
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{len(done_before)} of 4 trials already finished" in second.stdout
    study = optuna.load_study(study_name="tokentune", storage=f"sqlite:///{out / 'study.db'}")
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 4  # the same study, completed: no finished trial run again
    assert {t.number: t.value for t in finished if t.number in done_before} == done_before
    interrupted = study.get_trials(states=(TrialState.FAIL,))
    retries = [t for t in finished if "retry_of" in t.user_attrs]
    assert [t.number for t in interrupted] == [r.user_attrs["retry_of"] for r in retries]
    assert all(r.params == study.trials[r.user_attrs["retry_of"]].params for r in retries)


@pytest.mark.slow
def test_a_worker_killed_ends_the_search_and_says_how(tiny_data, tiny_base_model, tmp_path):
    """A failed worker ends the search (the others are stopped, not left to run every remaining trial);
    a signal is named as one, and the same command continues."""
    import psutil

    out = _output(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text(TINY_SPACE_YAML.replace("high: 3", "high: 5").replace("low: 1,", "low: 4,"))
    command = _tune_command(tiny_data, tiny_base_model, out, "--trials", "12", "--workers", "2", "--space", str(space),
                            "--pruner", "none")
    db = os.path.join(out.parent, f".{out.name}.tune.partial", "study.db")
    search = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait_for_complete_trials(db, 1, search)
    workers = [child for child in psutil.Process(search.pid).children()
               if "resource_tracker" not in " ".join(child.cmdline())]
    assert len(workers) == 2
    workers[0].kill()
    output = search.communicate(timeout=120)[0].decode(errors="replace")
    assert search.returncode == 2, output
    assert "a trial worker was killed by signal 9 (SIGKILL: often the system running out of memory)" in output
    assert "Fix: run the same command again to continue the search" in output
    assert _complete_trials(db) <= 4 and not out.exists()  # the other worker did not run its six trials


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    """A real PostgreSQL: the one `.ci/run` started (TOKENTUNE_TEST_POSTGRES), else one started here."""
    url = os.environ.get("TOKENTUNE_TEST_POSTGRES")
    if url:
        yield url
        return
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "postgres.sh")
    folder = tmp_path_factory.mktemp("postgres")
    started = subprocess.run(["bash", script, str(folder)], capture_output=True, text=True)
    if started.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL could not be started: {started.stderr}")
        pytest.skip(f"PostgreSQL is not available here: {started.stderr.strip()}")
    yield started.stdout.strip().split("=", 1)[1]
    stop = ["pg_ctl", "-D", str(folder / "data"), "stop", "-m", "fast"]
    binary = subprocess.run(["bash", "-c", "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1"],
                            capture_output=True, text=True).stdout.strip()
    stop[0] = os.path.join(binary, "pg_ctl")
    subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + stop, capture_output=True)


@pytest.mark.slow
def test_two_workers_share_one_study_on_postgresql(tiny_data, tiny_base_model, tmp_path, postgres_url):
    import optuna
    from optuna.trial import TrialState

    out = _output(tmp_path)
    name = f"two-workers-{os.getpid()}-{time.time_ns()}"
    space = tmp_path / "space.yaml"
    space.write_text(TINY_SPACE_YAML)
    result = subprocess.run(_tune_command(tiny_data, tiny_base_model, out, "--trials", "6", "--workers", "2",
                                          "--storage", postgres_url, "--study", name, "--space", str(space)),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    study = optuna.load_study(study_name=name, storage=postgres_url)
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert sorted(t.number for t in trials) == list(range(6)) and len(study.trials) == 6
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2  # both processes ran trials
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 6  # none ran twice
    assert result.stdout.count("\ntrial ") + result.stdout.startswith("trial ") == 6
    assert json.load(open(out / "search.json"))["storage"].startswith("postgresql://postgres@127.0.0.1")


def test_without_optuna_tune_says_what_to_install(tiny_data, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    config = TrainConfig(data=tiny_data, output=str(_output(tmp_path)))
    with pytest.raises(ConfigError, match=r"tune needs Optuna.*pip install 'tokentune\[tune\]'"):
        tokentune.tune(config)
    assert not _output(tmp_path).exists()


def test_search_options_are_checked_when_built():
    with pytest.raises(ConfigError, match="trials must be a positive number"):
        TuneOptions(trials=0)
    with pytest.raises(ConfigError, match="unknown pruner"):
        TuneOptions(pruner="random")
    with pytest.raises(ConfigError, match="timeout must be a finite number"):
        TuneOptions(timeout=float("nan"))
    from pathlib import Path

    assert TuneOptions(space=Path("spaces") / "lr.yaml").space == os.path.join("spaces", "lr.yaml")  # as TrainConfig


def test_a_study_begun_before_the_word_splitter_counted_continues(tmp_path):
    """The default splitter is left out of a study's identity (studies saved before it counted have
    none); another splitter is in it, since it changes the words of raw-text data."""
    from tokentune.config import TrainConfig
    from tokentune.tuning.options import Search
    from tokentune.tuning.search import study_signature

    def signature(**changes):
        config = TrainConfig(data="d", output=str(tmp_path / "o"), **changes)
        return study_signature(Search(config, {}, "sqlite:///s.db", False, "s", "median", 2, None, str(tmp_path), 1))

    assert "setting.word_splitter" not in signature()
    assert signature(word_splitter="chars")["setting.word_splitter"] == "chars"
    assert "setting.context_dropout" not in signature()  # added later still: at 0 it is left out too
    assert signature(context="document", context_size=8, context_dropout=0.5)["setting.context_dropout"] == 0.5


def test_a_space_whose_settings_could_refuse_each_other_is_refused_before_any_trial():
    base = TrainConfig(data="x", context="document", context_size=32)
    context = {"context_size": {"type": "int", "low": 0, "high": 64},
               "context_dropout": {"type": "float", "low": 0.0, "high": 0.5}}
    with pytest.raises(ConfigError, match=r"space: a trial could draw context_size=0, context_dropout=0.5, which is "
                                          r"not a valid setting \(--context-dropout 0.5 .*Fix: narrow the space"):
        parse_space(context, base, source="space")
    with pytest.raises(ConfigError, match=r"could draw head='crf', class_weights='auto'"):
        parse_space({"head": {"type": "categorical", "choices": ["crf", "softmax"]},
                     "class_weights": {"type": "categorical", "choices": ["auto"]}}, TrainConfig(data="x", head="softmax"),
                    source="space")
    narrowed = parse_space({**context, "context_size": {"type": "int", "low": 16, "high": 64},
                            "context_marker": {"type": "categorical", "choices": [False, True]}}, base, source="space")
    assert narrowed["context_dropout"].describe() == "float from 0 to 0.5"
    assert narrowed["context_marker"].describe() == "one of False, True"


def test_an_output_without_the_studys_best_trial_says_why_and_which_it_holds(tmp_path):
    """A study continued into another --output (or run on several machines): the output is the best trial
    whose model it holds, and the note names the study's best, its worker and both F1s."""
    from types import SimpleNamespace

    import optuna

    from tokentune.tuning.outputs import best_here

    study = optuna.create_study(direction="maximize")
    distributions = {"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True)}
    for number, value in enumerate((0.05, 0.107, 0.0)):
        study.add_trial(optuna.trial.create_trial(value=value, params={"learning_rate": 1e-4},
                                                  distributions=distributions,
                                                  user_attrs={"worker": f"elsewhere:{100 + number}"}))
    trials_dir = tmp_path / "trials"
    for number in (0, 2):
        (trials_dir / f"trial-{number:04d}").mkdir(parents=True)
    notes: list[str] = []
    chosen = best_here(study, SimpleNamespace(study_name="s1", trials_dir=str(trials_dir)), notes)
    assert chosen.number == 0
    assert notes == ["the best trial of the study, 1 (dev F1 0.1070), has no model in this output's trials: it ran "
                     "on another machine, or into another --output (worker elsewhere:101); this output is trial 0 "
                     "(dev F1 0.0500), the best of those run into it"]


def test_worker_progress_says_only_the_trials_this_run_finished():
    """With --workers the command reports trials as the study shows them finished; a continued search
    (the same command again) does not say the earlier run's trials a second time."""
    import optuna
    from optuna.distributions import FloatDistribution

    from tokentune.tuning.workers import finished_trials, watch_trials

    class Exited:  # a worker process that has finished
        exitcode = 0

        def is_alive(self) -> bool:
            return False

    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.7, 0.6):
        study.add_trial(optuna.trial.create_trial(params={"learning_rate": value / 1e4}, value=value,
                                                  distributions={"learning_rate": FloatDistribution(1e-5, 1e-4)}))
    earlier = {trial.number for trial in finished_trials(study)[:2]}  # said by the run before
    lines: list[str] = []
    watch_trials(study, [Exited()], lines.append, 5, earlier)
    assert len(lines) == 1 and lines[0].startswith("trial 2") and earlier == {0, 1, 2}, lines
    watch_trials(study, [Exited()], lines.append, 5, earlier)
    assert len(lines) == 1  # nothing new: nothing said
    everything: list[str] = []
    watch_trials(study, [Exited()], everything.append, 5, set())
    assert [line.split()[1] for line in everything] == ["0", "1", "2"]
