"""Acceptance on the real corpora in ../shared/data: exact published counts, and reading speed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokentune.cli.main import main
from tokentune.data import read_corpus

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not there")

# from ../shared/data/README.md
CONLL = {
    "train": (14041, 203621, 23499, {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}),
    "dev": (3250, 51362, 5942, {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}),
    "test": (3453, 46435, 5648, {"LOC": 1668, "MISC": 702, "ORG": 1661, "PER": 1617}),
}
WNUT = {"train": (3394, 62730, 1975), "dev": (1009, 15733, 836), "test": (1287, 23394, 1079)}


def inspect_json(capsys, path):
    assert main(["inspect", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["splits"]


def test_conll2003_counts(capsys):
    splits = inspect_json(capsys, SHARED / "conll2003")
    for name, (sentences, tokens, entities, per_type) in CONLL.items():
        got = splits[name]
        assert (got["sentences"], got["tokens"], got["entities"], got["per_type"]) == (
            sentences, tokens, entities, per_type), name
        assert got["scheme"] == "IOB1" and got["invalid_transitions"]["count"] == 0


def test_wnut17_counts(capsys):
    splits = inspect_json(capsys, SHARED / "wnut17")
    for name, (sentences, tokens, entities) in WNUT.items():
        got = splits[name]
        assert (got["sentences"], got["tokens"], got["entities"]) == (sentences, tokens, entities), name
        assert got["scheme"] == "IOB2" and "creative-work" in got["per_type"]


def test_reading_conll2003_train_reads_every_sentence():
    """How long reading takes is measured by bench/read_speed.py (timings are no test: a shared machine
    makes them flaky); here only that the whole file is read."""
    corpus = read_corpus(SHARED / "conll2003" / "train.txt")
    assert len(corpus) == 14041 and corpus.num_tokens == 203621 and len(corpus.documents()) == 946
