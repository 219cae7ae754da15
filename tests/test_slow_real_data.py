"""The embedded MiniLM on a slice of the real CoNLL-2003 data: train, evaluate, predict (slow)."""
from __future__ import annotations

import json
import os

import pytest

from tokentune.cli.main import main
from tokentune.data import read_corpus, write_conll

from conftest import SHARED_DATA

CONLL = os.path.join(SHARED_DATA, "conll2003")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.isdir(CONLL), reason="../shared/data/conll2003 is not present")]


@pytest.fixture(scope="module")
def conll_slice(tmp_path_factory):
    root = tmp_path_factory.mktemp("conll_slice")
    for split, count in (("train", 1200), ("dev", 300), ("test", 300)):
        corpus = read_corpus(os.path.join(CONLL, f"{split}.txt"))
        write_conll(corpus.select(range(count)), root / f"{split}.txt")
    return str(root)


def test_embedded_model_on_real_data(conll_slice, tmp_path, capsys):
    out = tmp_path / "minilm"
    assert main(["train", "--data", conll_slice, "--output", str(out), "--epochs", "2", "--learning-rate", "1e-4",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "test: precision" in printed
    metrics = json.load(open(out / "metrics.json"))
    assert metrics["test"]["f1"] > 0.4, metrics["test"]
    assert set(metrics["test"]["per_type"]) == {"LOC", "MISC", "ORG", "PER"}
    card = open(out / "README.md").read()
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card

    assert main(["evaluate", str(out), "--data", conll_slice, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["f1"] == pytest.approx(metrics["test"]["f1"])

    text = "EU rejects German call to boycott British lamb, says Peter Blackburn in Brussels."
    assert main(["predict", str(out), text]) == 0
    entities = json.loads(capsys.readouterr().out)["entities"]
    assert all(text[e["start"]:e["end"]] == e["text"] for e in entities)
    assert any(e["label"] == "PER" and "Blackburn" in e["text"] for e in entities), entities
