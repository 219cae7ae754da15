"""Report files after `train` and from `tokentune evaluate --report`: what they hold and that they add up."""
from __future__ import annotations

import json
import os
import struct
import warnings

import pytest
import yaml

import tokentune
from tokentune.cli.main import main

PLOT_NAMES = {"learning_curves.png", "per_type_f1.png", "confusion_matrix.png", "threshold_curve.png"}


def read_jsonl(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def png_size(path) -> tuple[int, int]:
    with open(path, "rb") as handle:
        head = handle.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def assert_errors_add_up(records, metrics):
    counts = metrics["counts"]
    assert sum(r["fp"] for r in records) == counts["predicted"] - counts["correct"]
    assert sum(r["fn"] for r in records) == counts["gold"] - counts["correct"]


def test_training_writes_the_report(tiny_model):
    out = tiny_model.output_dir
    assert {"errors.jsonl", "report.html", "plots", "metrics.json"} <= set(os.listdir(out))
    assert set(os.listdir(os.path.join(out, "plots"))) == PLOT_NAMES
    for name in PLOT_NAMES:
        width, height = png_size(os.path.join(out, "plots", name))
        assert width >= 600 and height >= 250, (name, width, height)
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    for split in ("dev", "test"):
        assert {"per_type", "mode", "counts", "macro", "weighted"} <= set(metrics[split])
        assert metrics[split]["mode"] == "default" and set(metrics[split]["counts"]) == {"gold", "predicted", "correct"}
    records = read_jsonl(os.path.join(out, "errors.jsonl"))
    for split in ("dev", "test"):
        assert_errors_add_up([r for r in records if r["split"] == split], metrics[split])
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert html.count("data:image/png;base64,") == len(PLOT_NAMES) and "Learning curves" in html


def test_training_result_keeps_the_predictions(tiny_model):
    scores = tiny_model.metrics["test"]
    assert len(scores.predictions) == 40 and json.loads(json.dumps(scores))["f1"] == scores["f1"]


def is_str(value) -> bool:
    return isinstance(value, str) and bool(value)


def check_model_index(meta: dict) -> None:
    """The Hub's model-index schema: name, results of task (type), dataset (type, name), metrics (type, value)."""
    (entry,) = meta["model-index"]
    assert is_str(entry["name"]) and entry["results"]
    for result in entry["results"]:
        assert is_str(result["task"]["type"]) and result["task"]["type"] == "token-classification"
        assert is_str(result["dataset"]["type"]) and is_str(result["dataset"]["name"])
        assert result["metrics"] and all(is_str(m["type"]) and isinstance(m["value"], (int, float))
                                         for m in result["metrics"])


def card_metadata(path) -> dict:
    text = open(path, encoding="utf-8").read()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_model_card_metadata_parses_and_follows_the_schema(tiny_model):
    meta = card_metadata(os.path.join(tiny_model.output_dir, "README.md"))
    check_model_index(meta)
    assert meta["pipeline_tag"] == "token-classification" and meta["datasets"] and is_str(meta["datasets"][0])
    assert "base_model" not in meta, "a local directory is no Hub id: the Hub would reject it"
    splits = [r["dataset"]["split"] for r in meta["model-index"][0]["results"]]
    assert splits == ["test", "dev"]
    f1 = next(m["value"] for m in meta["model-index"][0]["results"][0]["metrics"] if m["type"] == "f1")
    assert f1 == round(tiny_model.metrics["test"]["f1"], 4)


def test_model_card_names_a_hub_base_model(tmp_path):
    from tokentune.config import TrainConfig
    from tokentune.reporting.card import model_card

    config = TrainConfig(data="../shared/data/conll2003", output=str(tmp_path / "conll"))
    scores = {"precision": 0.9, "recall": 0.8, "f1": 0.85, "accuracy": 0.97, "per_type": {}}
    card = model_card(config, "sentence-transformers/all-MiniLM-L6-v2", {"test": scores}, [], None)
    meta = yaml.safe_load(card.split("---\n")[1])
    check_model_index(meta)
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and meta["datasets"] == ["conll2003"]
    config = TrainConfig(data="hf:wnut_17", output=str(tmp_path / "w"))
    assert yaml.safe_load(model_card(config, "bert-base-cased", {}, [], None).split("---\n")[1])["datasets"] == ["wnut_17"]


def test_a_failing_report_does_not_lose_the_model(tmp_path):
    from tokentune.reporting import write_training_reports

    class Broken:
        metrics = {"test": {"f1": "not a number"}}
        log_history = []

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_training_reports(str(tmp_path), Broken(), None, None)
    assert any("report was not written" in str(w.message) for w in caught)


def test_evaluate_report_json_and_partial(tiny_model, tiny_data, tmp_path, capsys):
    report = tmp_path / "report"
    code = main(["evaluate", tiny_model.output_dir, "--data", tiny_data, "--report", str(report), "--partial",
                 "--json"])
    assert code == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert {"precision", "recall", "f1", "accuracy", "macro", "weighted", "per_type", "mode", "partial"} <= set(printed)
    assert set(printed["macro"]) == {"precision", "recall", "f1"} and printed["mode"] == "default"
    assert set(printed["partial"]["overall"]) == {"strict", "exact", "partial", "type"}
    assert printed["f1"] == pytest.approx(tiny_model.metrics["test"]["f1"])
    assert "report written to" in captured.err
    assert json.load(open(report / "metrics.json")) == {k: v for k, v in printed.items() if k != "time"}
    assert set(os.listdir(report)) == {"metrics.json", "errors.jsonl", "plots", "report.html"}
    assert f"computed in {printed['computed_in']}" in (report / "report.html").read_text(encoding="utf-8")
    # the model directory has a training log: learning curves too
    assert set(os.listdir(report / "plots")) == PLOT_NAMES
    records = read_jsonl(report / "errors.jsonl")
    assert_errors_add_up(records, printed)
    assert all(r["split"] == "test" and r["file"].endswith("test.txt") for r in records)


def test_evaluate_report_without_a_log_and_text_output(tiny_model, tiny_data, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model.output_dir, model)
    os.remove(model / "training_log.jsonl")
    data = os.path.join(tiny_data, "dev.txt")
    assert main(["evaluate", str(model), "--data", data, "--report", str(tmp_path / "r"), "--partial"]) == 0
    out = capsys.readouterr().out
    assert "macro avg" in out and "weighted avg" in out and "partial matches" in out and "strict" in out
    assert set(os.listdir(tmp_path / "r" / "plots")) == PLOT_NAMES - {"learning_curves.png"}
    # evaluating again replaces the report as a whole
    assert main(["evaluate", str(model), "--data", data, "--report", str(tmp_path / "r")]) == 0
    assert "partial" not in json.load(open(tmp_path / "r" / "metrics.json"))


def test_report_refuses_a_directory_with_other_files(tiny_model, tiny_data, capsys):
    code = main(["evaluate", tiny_model.output_dir, "--data", tiny_data, "--report", tiny_model.output_dir])
    assert code == 2
    err = capsys.readouterr().err
    assert "is the input" in err and "would destroy the input" in err and "Fix:" in err
    assert os.path.exists(os.path.join(tiny_model.output_dir, "model.safetensors"))


def test_report_refuses_another_directory_with_other_files(tiny_model, tiny_data, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["evaluate", tiny_model.output_dir, "--data", tiny_data, "--report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds other files" in err and "notes.txt" in err and "Fix:" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_python_api_report(tiny_model, tiny_data, tmp_path):
    metrics = tokentune.evaluate(tiny_model.output_dir, tiny_data, split="dev", report=str(tmp_path / "r"),
                                 mode="strict")
    assert metrics["mode"] == "strict" and type(metrics) is dict
    assert json.load(open(tmp_path / "r" / "metrics.json"))["f1"] == metrics["f1"]
    plain = tokentune.evaluate(tiny_model.output_dir, tiny_data, split="dev", mode="strict")
    assert "threshold_curve" in metrics  # a report draws the curve, so its numbers come back too
    assert plain == {key: value for key, value in metrics.items() if key != "threshold_curve"}


def test_report_files_are_readable_by_others(tiny_model, tiny_data, tmp_path):
    import stat

    umask = os.umask(0o022)
    try:
        tokentune.evaluate(tiny_model.output_dir, tiny_data, report=str(tmp_path / "r"))
    finally:
        os.umask(umask)
    for path in [tmp_path / "r", tmp_path / "r" / "report.html", tmp_path / "r" / "plots" / "per_type_f1.png"]:
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o044 == 0o044, path
    for name in ("report.html", "errors.jsonl"):
        assert stat.S_IMODE(os.stat(os.path.join(tiny_model.output_dir, name)).st_mode) & 0o044 == 0o044


class _FixedTagger:
    """Stands in for a Tagger: returns the given spans for every sentence (IOB2-trained, as tokentune's)."""

    def __init__(self, spans):
        from tokentune.schemes import get_scheme

        self.scheme, self.spans = get_scheme("IOB2"), spans

    def predict_token_batches(self, sentences):
        from types import SimpleNamespace

        return [SimpleNamespace(words=list(words), spans=self.spans) for words in sentences]


def test_token_accuracy_is_computed_in_the_data_s_own_scheme(tmp_path):
    from tokentune.data import read_corpus
    from tokentune.evaluation import evaluate_corpus

    path = tmp_path / "iob1.txt"
    path.write_text("Mr NNP B-NP O\nSmith NNP I-NP I-PER\n\n")
    corpus = read_corpus(str(path), scheme="IOB1")
    # the prediction takes "Mr" into the name: IOB1 tags I-PER I-PER (1 of 2 right), IOB2 B-PER I-PER (0 of 2)
    scores = evaluate_corpus(_FixedTagger([("PER", 0, 2)]), corpus)
    assert (scores["accuracy"], scores["accuracy_scheme"]) == (0.5, "IOB1")
    assert scores["f1"] == 0.0 and scores["scheme"] == "IOB2"
    path.write_text("Mr NNP B-NP O\nSmith NNP I-NP B-PER\n\n")
    scores = evaluate_corpus(_FixedTagger([("PER", 0, 2)]), read_corpus(str(path), scheme="IOB2"))
    assert (scores["accuracy"], scores["accuracy_scheme"]) == (0.0, "IOB2")


def test_the_report_shows_the_runs_notes_and_the_card_lists_them(tiny_model, tiny_data, tmp_path, capsys):
    """A label map or a type the data lacks changes what the figures mean: the page says so, as --json does."""
    report = tmp_path / "report"
    assert main(["evaluate", tiny_model.output_dir, "--data", tiny_data, "--report", str(report),
                 "--label-map", "ORG=O", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    page = (report / "report.html").read_text(encoding="utf-8")
    assert printed["notes"] and all(f"<p class='note'>{note}" in page.replace("&gt;", ">") for note in printed["notes"])
    assert "threshold_curve" in json.load(open(report / "metrics.json"))  # the numbers behind the page's curve
    card = open(os.path.join(tiny_model.output_dir, "README.md"), encoding="utf-8").read()
    assert "## Notes from the run" in card and all(f"- {note}" in card for note in tiny_model.notes[:3])


def test_a_long_sentences_window_never_cuts_an_entity():
    """Widening the window for one entity can land its edge inside another: widened until none is cut."""
    from tokentune.reporting.html import example_html

    words = [f"w{i}" for i in range(100)]
    gold = [{"label": "ORG", "start": 30, "end": 37}, {"label": "LOC", "start": 60, "end": 61}]
    record = {"kind": "missed", "gold": gold[1], "predicted": None, "fp": False, "fn": True, "sentence": 0,
              "file": None, "line": None, "text": " ".join(words), "words": words, "gold_spans": gold,
              "predicted_spans": [{"label": "ORG", "start": 36, "end": 42, "score": 0.9}]}
    for span in gold + record["predicted_spans"]:
        span["text"] = " ".join(words[span["start"]:span["end"]])
    html = example_html(record, {"ORG": "#bebada", "LOC": "#8dd3c7"})
    assert "w30" in html and "w29" not in html  # from the gold ORG's start, which the predicted ORG's edge fell in


def test_the_threshold_curve_compares_scores_as_min_score_does():
    from tokentune.data.corpus import Corpus, Sentence
    from tokentune.evaluation import threshold_curve
    from tokentune.inference.tagger import TokenPrediction

    corpus = Corpus([Sentence(("Angela", "Merkel", "spoke"), (("PER", 0, 2),))])
    scored = [TokenPrediction(["Angela", "Merkel", "spoke"], ["B-PER", "I-PER", "O"], [("PER", 0, 2)], [0.4999996])]
    assert threshold_curve(corpus, scored, [0.5])[0]["predicted"] == 1  # shown as 0.5, kept by --min-score 0.5
