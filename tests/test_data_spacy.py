"""spaCy's training data in and out (data/spacy_docs.py).

Fixtures in tests/data/spacy were made by spaCy 3.8 itself: train.spacy by ``DocBin.to_disk`` (its
tokenisation keeps a whitespace token for a double space; one span group), docs.jsonl by
``Doc.to_json()``, prodigy.jsonl in Prodigy's ``ner_manual`` shape (``tokens``, ``spans``, ``answer``).
JSON Lines need no spaCy; the DocBin tests skip when spaCy is not installed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokentune.cli.main import main
from tokentune.data import Corpus, Sentence, read_corpus
from tokentune.data.spacy_docs import read_spacy, write_spacy
from tokentune.data.splits import load_splits
from tokentune.errors import ConfigError, DataError

from conftest import span_sentences

DATA = Path(__file__).parent / "data" / "spacy"
APPLE = ("Apple", "is", "looking", "at", "buying", "U.K.", "startup", "for", "$", "1", "billion")
THRUN = ("Sebastian", "Thrun", "started", "working", "on", "self", "-", "driving", "cars", "at", "Google", "in",
         "2007", ".")
EXPECTED = [(APPLE, (("ORG", 0, 1), ("GPE", 5, 6), ("MONEY", 8, 11))),
            (THRUN, (("PERSON", 0, 2), ("ORG", 10, 11), ("DATE", 12, 13)))]


def pairs(corpus: Corpus) -> list[tuple]:
    return [(s.words, s.spans) for s in corpus]


def test_docbin_fixture_keeps_spacy_tokens_and_ents():
    pytest.importorskip("spacy")
    corpus = read_corpus(DATA / "train.spacy")  # .spacy -> the spacy reader
    assert pairs(corpus) == EXPECTED
    assert [s.line for s in corpus] == [1, 2]  # the Doc's number
    assert corpus.adjustments == {"whitespace_tokens_dropped": 1, "span_groups_skipped": 1}
    assert any("span groups" in note for note in corpus.notes)


def test_doc_to_json_lines_read_the_same_without_spacy(monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy", None)  # JSON Lines must not need spaCy
    corpus = read_corpus(DATA / "docs.jsonl", format="spacy")
    assert pairs(corpus) == EXPECTED and corpus.adjustments["whitespace_tokens_dropped"] == 0


def test_prodigy_records_with_spans_and_answers():
    corpus = read_spacy(DATA / "prodigy.jsonl")
    assert pairs(corpus) == EXPECTED[:1]
    assert corpus.adjustments == {"records_not_accepted": 1}


def test_records_without_tokens_use_the_word_splitter(tmp_path):
    path = tmp_path / "ents.jsonl"
    path.write_text(json.dumps({"text": "Acme Corp. hired John.", "ents": [[0, 9, "ORG"], [17, 21, "PER"]]}) + "\n")
    corpus = read_spacy(path)
    assert pairs(corpus) == [(("Acme", "Corp", ".", "hired", "John", "."), (("ORG", 0, 2), ("PER", 4, 5)))]


def test_a_boundary_inside_a_token_follows_the_alignment_policy(tmp_path):
    path = tmp_path / "docs.jsonl"
    record = {"text": "New-York-based Acme", "ents": [{"start": 0, "end": 8, "label": "LOC"}],
              "tokens": [{"id": 0, "start": 0, "end": 14}, {"id": 1, "start": 15, "end": 19}]}
    path.write_text(json.dumps(record) + "\n")
    split = read_spacy(path)
    assert pairs(split) == [(("New-York", "-based", "Acme"), (("LOC", 0, 1),))]
    assert split.adjustments["spans_split"] == 1
    widened = read_corpus(path, format="spacy", alignment="widen")
    assert pairs(widened) == [(("New-York-based", "Acme"), (("LOC", 0, 1),))]
    assert widened.adjustments["spans_widened"] == 1


@pytest.mark.parametrize("record, message", [
    ({"text": "John Smith", "ents": [[0, 10, "PER"], [5, 10, "LOC"]],
      "tokens": [{"start": 0, "end": 4}, {"start": 5, "end": 10}]}, "overlapping entities"),
    ({"text": "John", "ents": [[0, 40, "PER"]]}, "out of range"),
    ({"text": "John", "ents": [{"begin": 0, "end": 4, "label": "PER"}]}, "entity 1 is malformed"),
    ({"text": "John Smith", "tokens": [{"start": 5, "end": 10}, {"start": 0, "end": 4}]}, "out of order"),
    ({"ents": []}, '"text" string'),
])
def test_record_errors_are_located(tmp_path, record, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "fine"}) + "\n\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError) as info:
        read_spacy(path)
    assert message in str(info.value) and str(info.value).startswith(f"{path}:3: ")


def test_keep_longest_with_tokens(tmp_path):
    path = tmp_path / "docs.jsonl"
    record = {"text": "John Smith", "ents": [[5, 10, "LOC"], [0, 10, "PER"]],
              "tokens": [{"start": 0, "end": 4}, {"start": 5, "end": 10}]}
    path.write_text(json.dumps(record) + "\n")
    corpus = read_spacy(path, overlaps="keep-longest")
    assert pairs(corpus) == [(("John", "Smith"), (("PER", 0, 2),))] and corpus.adjustments["overlaps_dropped"] == 1


def test_not_a_docbin_is_a_data_error(tmp_path):
    pytest.importorskip("spacy")
    path = tmp_path / "broken.spacy"
    path.write_bytes(b"\x00\x01 not zlib at all")
    with pytest.raises(DataError, match="not a spaCy DocBin file"):
        read_spacy(path)


def test_without_spacy_a_docbin_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy", None)
    with pytest.raises(ConfigError, match=r"pip install 'tokentune\[spacy\]'"):
        read_spacy(DATA / "train.spacy")
    with pytest.raises(ConfigError, match=r"pip install 'tokentune\[spacy\]'"):
        write_spacy(Corpus([Sentence(("a",))]), tmp_path / "out.spacy")


WORD = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6).filter(str.strip)


def sentences():
    return span_sentences(WORD, ["PER", "LOC", "B-ish", "two words"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(sentences(), min_size=1, max_size=5), st.sampled_from(["out.spacy", "out.jsonl"]))
def test_round_trip(tmp_path, corpus_sentences, name):
    if name.endswith(".spacy"):
        pytest.importorskip("spacy")
    corpus = Corpus(list(corpus_sentences))
    write_spacy(corpus, tmp_path / name)
    back = read_spacy(tmp_path / name)
    assert pairs(back) == pairs(corpus)
    assert not back.adjustments


def test_a_spacy_project_folder_loads_as_splits(tmp_path):
    pytest.importorskip("spacy")
    write_spacy(Corpus([Sentence(("Bonn",), (("LOC", 0, 1),))]), tmp_path / "dev.spacy")
    (tmp_path / "train.spacy").write_bytes((DATA / "train.spacy").read_bytes())
    splits = load_splits(tmp_path, require=("train", "dev"))
    assert pairs(splits.train) == EXPECTED and pairs(splits.dev) == [(("Bonn",), (("LOC", 0, 1),))]


def test_convert_to_and_from_spacy(tmp_path, capsys):
    pytest.importorskip("spacy")
    src = tmp_path / "train.conll"
    src.write_text("EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\nBlackburn\tI-PER\n")
    assert main(["convert", str(src), str(tmp_path / "train.spacy")]) == 0  # by the name
    assert "train: wrote 2 sentences, 2 entities to" in capsys.readouterr().out
    assert main(["convert", str(src), str(tmp_path / "train.jsonl"), "--to", "spacy"]) == 0
    assert json.loads((tmp_path / "train.jsonl").read_text().splitlines()[0])["ents"] == [
        {"start": 0, "end": 2, "label": "ORG"}]
    assert main(["convert", str(tmp_path / "train.spacy"), str(tmp_path / "back.conll")]) == 0
    assert (tmp_path / "back.conll").read_text() == src.read_text() + "\n"
    assert main(["convert", str(tmp_path / "train.jsonl"), str(tmp_path / "back2.conll"), "--input-format", "spacy"]) == 0
    assert (tmp_path / "back2.conll").read_text() == src.read_text() + "\n"


def test_a_spacy_users_folder_trains_unchanged(tiny_data, tiny_base_model, tmp_path, capsys):
    """train.spacy / dev.spacy (written here from the tiny CoNLL data) train with `tokentune train --data DIR`."""
    pytest.importorskip("spacy")
    import json

    data = tmp_path / "corpus"
    for split in ("train", "dev"):
        assert main(["convert", f"{tiny_data}/{split}.txt", str(data / f"{split}.spacy")]) == 0
    out = tmp_path / "model"
    assert main(["train", "--data", str(data), "--model", tiny_base_model, "--output", str(out), "--epochs", "1",
                 "--batch-size", "8", "--learning-rate", "5e-3", "--quiet"]) == 0, capsys.readouterr().err
    labels = set(json.load(open(out / "config.json"))["id2label"].values())
    assert {"B-PER", "B-LOC", "B-ORG"} <= labels and "dev" in json.load(open(out / "metrics.json"))
