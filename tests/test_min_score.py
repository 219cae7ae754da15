"""Score thresholds: ``Tagger(min_score=...)``, ``--min-score`` on predict, serve and evaluate, the
request field of ``POST /predict``, and the precision/recall curve over thresholds (one prediction
pass, checked against scoring the filtered spans from scratch) in reports and the model card."""
from __future__ import annotations

import json
import math
import os
import random

import numpy as np
import pytest

from tokentune.cli.main import main
from tokentune.errors import ConfigError
from tokentune.evaluation import THRESHOLDS, evaluate_corpus, filter_predictions, threshold_curve
from tokentune.inference import Entity, Tagger, TokenPrediction
from tokentune.schemes import get_scheme, spans_to_tags, tags_to_spans

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
# word -> probabilities over LABELS: Bob is a PER at 0.6, Smith continues it at 0.8, Paris is a LOC at
# 0.5 (exact in float32, so that a score equal to the threshold can be tested)
TABLE = {"Bob": [0.1, 0.1, 0.1, 0.6, 0.1], "Smith": [0.05, 0.05, 0.05, 0.05, 0.8],
         "Paris": [0.125, 0.5, 0.125, 0.125, 0.125], "met": [0.8, 0.05, 0.05, 0.05, 0.05]}
BAD_VALUES = [-0.1, 1.5, math.nan, math.inf, True, "0.5"]


@pytest.fixture(scope="module")
def model_dir(tiny_model):
    return tiny_model.output_dir


@pytest.fixture(scope="module")
def tokenizer(tiny_base_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base_model)


def table_tagger(tokenizer, **options) -> Tagger:
    vocab = tokenizer.get_vocab()
    lookup = np.full((len(vocab), len(LABELS)), 1 / len(LABELS), dtype=np.float32)
    for piece, probs in TABLE.items():
        lookup[vocab[piece]] = probs
    return Tagger(lambda ids, mask: lookup[ids], tokenizer, LABELS, max_length=64, **options)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


# -- the Tagger ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("min_score, labels, tags", [
    (0.0, ["PER", "LOC"], ["B-PER", "I-PER", "O", "B-LOC"]),
    (0.5, ["PER", "LOC"], ["B-PER", "I-PER", "O", "B-LOC"]),  # a score equal to the threshold is kept
    (0.51, ["PER"], ["B-PER", "I-PER", "O", "O"]),
    (0.69, ["PER"], ["B-PER", "I-PER", "O", "O"]),  # Bob Smith: (0.6 + 0.8) / 2 = 0.7
    (0.71, [], ["O", "O", "O", "O"]),
    (1.0, [], ["O", "O", "O", "O"]),
])
def test_tagger_drops_entities_below_the_threshold(tokenizer, min_score, labels, tags):
    tagger = table_tagger(tokenizer, min_score=min_score)
    words = ["Bob", "Smith", "met", "Paris"]
    prediction = tagger.predict_tokens(words)
    assert prediction.tags == tags
    assert [label for label, _, _ in prediction.spans] == labels
    assert tags_to_spans(prediction.tags, get_scheme("IOB2")) == prediction.spans  # tags and spans agree
    assert all(score >= min_score for score in prediction.scores)
    entities = tagger.predict_text("Bob Smith met Paris")
    assert [e.label for e in entities] == labels
    assert all(e.score >= min_score for e in entities)


def test_tagger_threshold_on_a_trained_model_at_several_levels(model_dir):
    texts = ["Alice Smith visited Paris with Acme today .", "Bob works for Globex in Berlin .",
             "Carol and Dieter met Erika in Oslo and Rome ."]
    plain = Tagger.from_pretrained(model_dir)
    found = plain.predict_texts(texts)
    scores = sorted({e.score for entities in found for e in entities})
    assert len(scores) >= 3
    # between the distinct scores: each level drops a different number of entities
    levels = [0.0] + [(a + b) / 2 for a, b in zip(scores, scores[1:])] + [min(1.0, scores[-1] + 1e-3)]
    sentences = [text.split() for text in texts]
    raw = plain.predict_token_batches(sentences)
    for level in levels:
        tagger = Tagger(plain.runner, plain.tokenizer, plain.labels, max_length=plain.max_length, min_score=level,
                        crf=plain.crf)
        assert tagger.predict_texts(texts) == [[e for e in entities if e.score >= level] for entities in found]
        assert tagger.predict_token_batches(sentences) == filter_predictions(raw, level)


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_tagger_refuses_a_bad_threshold(tokenizer, value):
    with pytest.raises(ConfigError, match="min_score must be a number from 0 to 1"):
        table_tagger(tokenizer, min_score=value)
    with pytest.raises(ConfigError, match="min_score"):  # before anything is loaded
        Tagger.from_pretrained("/nonexistent/model", min_score=value)


def test_filter_predictions_keeps_tags_without_an_outside_label():
    prediction = TokenPrediction(["a", "b"], ["X", "Y"], [("X", 0, 1), ("Y", 1, 2)], [0.2, 0.9])
    kept = filter_predictions([prediction], 0.5, outside=None)[0]
    assert kept.tags == ["X", "Y"] and kept.spans == [("Y", 1, 2)] and kept.scores == [0.9]
    assert filter_predictions([prediction], 0.5)[0].tags == ["O", "Y"]
    assert filter_predictions([prediction], 0.0)[0] is prediction


# -- predict ------------------------------------------------------------------------------------------
def test_predict_min_score_flag(model_dir, capsys, tmp_path):
    text = "Alice Smith visited Paris with Acme today ."
    code, out, _ = run_cli(capsys, "predict", model_dir, text, "-q")
    assert code == 0
    everything = json.loads(out)["entities"]
    assert everything
    middle = sorted(e["score"] for e in everything)[len(everything) // 2] - 1e-4
    code, out, _ = run_cli(capsys, "predict", model_dir, text, "--min-score", str(middle), "-q")
    assert code == 0
    assert json.loads(out)["entities"] == [e for e in everything if e["score"] >= middle]
    # pre-tokenised input: spans dropped, their words tagged O
    data = tmp_path / "tokens.jsonl"
    data.write_text(json.dumps({"tokens": text.split()}) + "\n", encoding="utf-8")
    code, out, _ = run_cli(capsys, "predict", model_dir, "-i", str(data), "--min-score", "1", "-q")
    assert code == 0
    record = json.loads(out)
    assert record["spans"] == [] and set(record["tags"]) == {"O"}


@pytest.mark.parametrize("value", ["-0.5", "1.01", "nan", "inf", "abc"])
def test_predict_refuses_a_bad_min_score(model_dir, capsys, tmp_path, value):
    output = tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, "predict", model_dir, "Alice", "--min-score", value, "-o", str(output))
    assert_one_line_error(code, err, "--min-score")
    assert not output.exists()


# -- serve ----------------------------------------------------------------------------------------------
class ScoredTagger:
    """Three entities per text, scored 0.3, 0.6 and 0.9."""

    labels = LABELS

    def predict_texts(self, texts):
        return [[Entity("PER", 0, 1, text[:1], score) for score in (0.3, 0.6, 0.9)] for text in texts]


@pytest.fixture(scope="module")
def http():
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from tokentune.serving import create_app

    from serving.helpers import ThreadServer, client

    with ThreadServer(create_app(ScoredTagger(), min_score=0.5)) as server, client(server.url) as http:
        yield http


def scores_of(response) -> list[list[float]]:
    assert response.status_code == 200, response.text
    return [[e["score"] for e in result["entities"]] for result in response.json()["results"]]


def test_serve_default_and_request_min_score(http):
    assert scores_of(http.post("/predict", json={"text": "Alice"})) == [[0.6, 0.9]]  # the server's 0.5
    assert scores_of(http.post("/predict", json={"texts": ["A", "B"], "min_score": 0})) == [[0.3, 0.6, 0.9]] * 2
    assert scores_of(http.post("/predict", json={"text": "A", "min_score": 0.9})) == [[0.9]]
    assert scores_of(http.post("/predict", json={"text": "A", "min_score": 1})) == [[]]
    assert scores_of(http.post("/predict", json={"text": "A", "min_score": None})) == [[0.6, 0.9]]
    assert http.get("/model").json()["min_score"] == 0.5


@pytest.mark.parametrize("body", [b'{"text": "A", "min_score": -0.1}', b'{"text": "A", "min_score": 1.5}',
                                  b'{"text": "A", "min_score": NaN}', b'{"text": "A", "min_score": "0.5"}',
                                  b'{"text": "A", "min_score": true}', b'{"text": "A", "min_score": 1e999}',
                                  b'{"text": "A", "min_score": 1' + b"0" * 400 + b"}"])  # too large for a float
def test_serve_refuses_a_bad_request_min_score(http, body):
    response = http.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "'min_score' must be a number from 0 to 1" in response.json()["detail"]


def test_serve_openapi_documents_min_score(http):
    spec = http.get("/openapi.json").json()
    schema = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    field = schema["properties"]["min_score"]
    options = field.get("anyOf", [field])
    assert any(o.get("minimum") == 0 and o.get("maximum") == 1 for o in options)
    assert "min_score" in field["description"] or "score" in field["description"]


@pytest.mark.parametrize("value", [-1, 2, math.nan, "x"])
def test_create_app_refuses_a_bad_min_score(value):
    pytest.importorskip("fastapi")
    from tokentune.serving import create_app

    with pytest.raises(ConfigError, match="--min-score"):
        create_app(ScoredTagger(), min_score=value)


@pytest.mark.parametrize("value", ["2", "-1", "nan"])
def test_serve_cli_refuses_a_bad_min_score(model_dir, capsys, value):
    pytest.importorskip("fastapi")
    code, _, err = run_cli(capsys, "serve", model_dir, "--port", "0", "--min-score", value)
    assert_one_line_error(code, err, "--min-score", "Fix:")


# -- the curve ------------------------------------------------------------------------------------------
class FixedTagger:
    """Returns fixed predictions (one per sentence of the corpus it was made for)."""

    labels = LABELS
    scheme = get_scheme("IOB2")

    def __init__(self, predictions):
        self.predictions = predictions

    def predict_token_batches(self, sentences, documents=None):
        assert [list(s) for s in sentences] == [p.words for p in self.predictions]
        return list(self.predictions)


def noisy_predictions(corpus, seed: int = 0) -> list[TokenPrediction]:
    """Gold spans, some with the wrong type or boundary, some missing, and spurious ones; random scores."""
    rng = random.Random(seed)
    out = []
    for sentence in corpus:
        spans = []
        for label, start, end in sentence.spans:
            roll = rng.random()
            if roll < 0.15:
                continue
            if roll < 0.3:
                label = "LOC" if label != "LOC" else "PER"
            elif roll < 0.4 and end < len(sentence.words):
                end += 1
            spans.append((label, start, end))
        taken = {i for _, s, e in spans for i in range(s, e)}
        free = [i for i in range(len(sentence.words)) if i not in taken and i - 1 not in taken and i + 1 not in taken]
        if free and rng.random() < 0.3:
            spans.append(("ORG", free[0], free[0] + 1))
        spans = sorted(spans, key=lambda s: s[1])
        # overlaps can come from widened spans: keep the first
        kept, last_end = [], 0
        for span in spans:
            if span[1] >= last_end:
                kept.append(span)
                last_end = span[2]
        scores = [rng.choice([rng.random(), round(rng.random(), 2)]) for _ in kept]
        out.append(TokenPrediction(list(sentence.words), spans_to_tags(kept, len(sentence.words), "IOB2"), kept,
                                   scores))
    return out


def test_threshold_curve_equals_scoring_the_filtered_spans(tiny_data):
    from tokentune.data import read_corpus
    from tokentune.metrics import score_tags

    corpus = read_corpus(os.path.join(tiny_data, "dev.txt"))
    predictions = noisy_predictions(corpus)
    thresholds = [0.0, 0.05, 0.13, 0.25, 0.5, 0.5, 0.77, 0.95, 1.0]
    curve = threshold_curve(corpus, predictions, thresholds)
    assert [p["threshold"] for p in curve] == sorted(set(thresholds))
    gold = [spans_to_tags(s.spans, len(s.words), "IOB2") for s in corpus]
    for point in curve:
        t = point["threshold"]
        kept = [[span for span, score in zip(p.spans, p.scores) if score >= t] for p in predictions]
        brute = score_tags(gold, [spans_to_tags(k, len(p.words), "IOB2") for k, p in zip(kept, predictions)])
        assert {k: point[k] for k in ("precision", "recall", "f1")} == {k: brute[k] for k in ("precision", "recall", "f1")}
        assert point["predicted"] == sum(map(len, kept)) == brute["counts"]["predicted"]
        scored = evaluate_corpus(FixedTagger(predictions), corpus, min_score=t)
        assert scored["f1"] == point["f1"] and scored["recall"] == point["recall"]
        assert scored.get("min_score", 0.0) == t
    recalls = [p["recall"] for p in curve]
    assert recalls == sorted(recalls, reverse=True) and recalls[0] > recalls[-1]
    assert [p["predicted"] for p in curve] == sorted((p["predicted"] for p in curve), reverse=True)


def brute_curve(corpus, predictions, thresholds, mode="default"):
    """The curve by definition: keep the spans scoring at least the threshold, tag, score the corpus."""
    from tokentune.metrics import score_tags

    gold = [spans_to_tags(s.spans, len(s.words), "IOB2") for s in corpus]
    points = []
    for t in sorted(set(thresholds)):
        kept = [[span for span, score in zip(p.spans, p.scores) if score >= t] for p in predictions]
        scores = score_tags(gold, [spans_to_tags(k, len(p.words), "IOB2") for k, p in zip(kept, predictions)], mode=mode,
                            scheme="IOB2")
        points.append({"threshold": t, **{k: scores[k] for k in ("precision", "recall", "f1")}, **scores["counts"]})
    return points


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mode", ["default", "strict"])
def test_threshold_curve_by_counting_equals_scoring_each_threshold(tiny_data, seed, mode):
    """The curve is counted from one matching of spans (evaluation._counted_curve); scoring the tags at
    every threshold is the oracle, to the last bit of every figure."""
    from tokentune.data import read_corpus

    corpus = read_corpus(os.path.join(tiny_data, "test.txt"))
    predictions = noisy_predictions(corpus, seed=seed)
    thresholds = [0.0, 1.0, *(round(random.Random(seed).random(), 3) for _ in range(12)), *THRESHOLDS]
    assert threshold_curve(corpus, predictions, thresholds, mode=mode) == brute_curve(corpus, predictions, thresholds,
                                                                                      mode)


def test_threshold_curve_of_overlapping_or_unordered_spans_is_scored_as_tags_read_them(tiny_data):
    """Spans whose IOB2 tags would not read back as themselves (overlapping, out of order, empty) take the
    scoring path: the figures are still those of the tags."""
    from tokentune.data import read_corpus

    corpus = read_corpus(os.path.join(tiny_data, "dev.txt"))
    predictions = noisy_predictions(corpus, seed=7)
    long = next(i for i, p in enumerate(predictions) if len(p.words) >= 4)
    words = predictions[long].words
    for spans in ([("PER", 0, 3), ("LOC", 1, 2)], [("LOC", 2, 3), ("PER", 0, 1)], [("PER", 1, 1)]):
        changed = list(predictions)
        changed[long] = TokenPrediction(words, spans_to_tags([s for s in spans if s[1] < s[2]], len(words), "IOB2"),
                                        spans, [0.9, 0.2][:len(spans)])
        assert threshold_curve(corpus, changed, THRESHOLDS) == brute_curve(corpus, changed, THRESHOLDS)


def test_threshold_curve_from_one_pass_matches_rerunning_the_model(model_dir, tiny_data):
    from tokentune.data import read_corpus

    corpus = read_corpus(os.path.join(tiny_data, "test.txt"))
    plain = Tagger.from_pretrained(model_dir)
    calls = []
    runner = plain.runner
    plain.runner = lambda *a: calls.append(1) or runner(*a)
    scores = evaluate_corpus(plain, corpus, thresholds=THRESHOLDS)
    passes = len(calls)
    assert [p["threshold"] for p in scores.curve] == list(THRESHOLDS)
    assert scores.curve[0]["f1"] == scores["f1"]
    for point in scores.curve[::6]:
        again = Tagger(runner, plain.tokenizer, plain.labels, max_length=plain.max_length, min_score=point["threshold"],
                       crf=plain.crf)
        rerun = evaluate_corpus(again, corpus)
        assert (rerun["precision"], rerun["recall"], rerun["f1"]) == (point["precision"], point["recall"], point["f1"])
    assert len(calls) == passes  # the curve itself ran no model


@pytest.mark.parametrize("value", [-0.1, 1.1, math.nan])
def test_threshold_curve_refuses_bad_thresholds(value):
    with pytest.raises(ConfigError, match="threshold"):
        threshold_curve([], [], [0.1, value])


# -- evaluate --------------------------------------------------------------------------------------------
def test_evaluate_min_score_curve_and_report(model_dir, tiny_data, capsys, tmp_path):
    report = tmp_path / "report"
    code, out, _ = run_cli(capsys, "evaluate", model_dir, "--data", tiny_data, "--min-score", "0.9", "--json",
                           "--threshold-curve", "--report", str(report))
    assert code == 0
    metrics = json.loads(out)
    assert metrics["min_score"] == 0.9
    curve = metrics["threshold_curve"]
    assert [p["threshold"] for p in curve] == list(THRESHOLDS)
    at = next(p for p in curve if p["threshold"] == 0.9)
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == (at["precision"], at["recall"], at["f1"])
    assert metrics["counts"]["predicted"] == at["predicted"]
    recalls = [p["recall"] for p in curve]
    assert recalls == sorted(recalls, reverse=True)
    assert json.load(open(report / "metrics.json")) == {k: v for k, v in metrics.items() if k != "time"}
    assert metrics["time"]["seconds"]["reports"] > 0  # --json adds the command's time; the report has the figures
    assert os.path.getsize(report / "plots" / "threshold_curve.png") > 1000
    html = (report / "report.html").read_text(encoding="utf-8")
    assert "id='threshold'" in html and "in use" in html and "best F1" in html
    # text output: the headline names the threshold, the table marks its row
    code, out, _ = run_cli(capsys, "evaluate", model_dir, "--data", tiny_data, "--min-score", "0.5",
                           "--threshold-curve")
    assert code == 0 and "min score 0.5" in out and "precision/recall by score threshold" in out
    assert any(line.startswith("0.50") and line.rstrip().endswith("<") for line in out.splitlines())


def test_evaluate_without_min_score_is_unchanged(model_dir, tiny_data, tiny_model):
    import tokentune

    metrics = tokentune.evaluate(model_dir, tiny_data)
    assert "min_score" not in metrics and "threshold_curve" not in metrics
    assert metrics["f1"] == pytest.approx(tiny_model.metrics["test"]["f1"])


@pytest.mark.parametrize("value", ["-1", "1.5", "nan"])
def test_evaluate_refuses_a_bad_min_score(model_dir, tiny_data, capsys, tmp_path, value):
    report = tmp_path / "r"
    code, _, err = run_cli(capsys, "evaluate", model_dir, "--data", tiny_data, "--min-score", value,
                           "--report", str(report))
    assert_one_line_error(code, err, "--min-score", "Fix:")
    assert not report.exists()


# -- train: the model card and report ---------------------------------------------------------------------
def test_training_card_and_report_show_the_curve(model_dir):
    card = open(os.path.join(model_dir, "README.md"), encoding="utf-8").read()
    assert "## Score threshold" in card and "| Threshold | dev Precision |" in card and "test F1" in card
    assert "| 0.95 |" in card and "plots/threshold_curve.png" in card
    assert os.path.getsize(os.path.join(model_dir, "plots", "threshold_curve.png")) > 1000
    html = open(os.path.join(model_dir, "report.html"), encoding="utf-8").read()
    assert "id='threshold'" in html and "<h3>dev</h3>" in html
