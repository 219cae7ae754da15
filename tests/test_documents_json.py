"""Documents in JSON lines and Hugging Face datasets: a document id key or column, or -DOCSTART- records;
kept by convert, read by predict (never cut between chunks where it can wait), used by training."""
from __future__ import annotations

import json

import pytest

from tokentune.data import inputs, read_corpus
from tokentune.data.inputs import Item, chunks, jsonl_items
from tokentune.errors import DataError
from tokentune.inference.parallel import chunk_documents, predict_chunk

from conftest import make_sentences


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _records(ids, key="document_id"):
    return [{key: d, "tokens": [f"w{i}"], "tags": ["O"]} for i, d in enumerate(ids)]


def test_a_document_id_key_marks_documents(tmp_path):
    corpus = read_corpus(_write(tmp_path / "a.jsonl", _records(["a", "a", "b", 7, 7, 7])))
    assert corpus.document_starts == [0, 2, 3] and corpus.documents() == [(0, 2), (2, 3), (3, 6)]
    assert any("documents from the 'document_id' key (3 documents)" in n for n in corpus.notes)
    chosen = read_corpus(_write(tmp_path / "b.jsonl", _records([1, 2, 2], key="article")), document_key="article")
    assert chosen.document_starts == [0, 1]
    assert read_corpus(_write(tmp_path / "c.jsonl", _records([1, 2], key="article"))).document_starts is None


def test_raw_text_records_with_document_ids(tmp_path):
    records = [{"doc_id": d, "text": t, "entities": []} for d, t in (("x", "Alice slept"), ("x", "Bob"), ("y", "Rome"))]
    assert read_corpus(_write(tmp_path / "t.jsonl", records)).document_starts == [0, 2]


def test_a_minified_json_array_keeps_its_documents(tmp_path):
    """Every record of a one-line array starts on line 1: documents follow the records' order."""
    path = tmp_path / "one.json"
    path.write_text(json.dumps(_records(["a", "a", "b", "c"])))
    assert read_corpus(path).document_starts == [0, 2, 3]
    path.write_text(json.dumps(_records(["a", "b", "a"])))
    with pytest.raises(DataError, match="record 3: document 'a' comes back after other documents") as caught:
        read_corpus(path)
    assert "it began at record 1, line 1" in str(caught.value)


@pytest.mark.parametrize("ids, key, message, line", [
    (["a", "b", "a"], None, "document 'a' comes back after other documents", 3),
    ([1, 2], "article", "document key 'article' is not in the data", 1),
    ([1, [2]], None, "document id 'document_id' is not a string or an integer", 2),
])
def test_document_ids_that_cannot_be_read_are_refused_where_they_are(tmp_path, ids, key, message, line):
    path = _write(tmp_path / "bad.jsonl", _records(ids))
    with pytest.raises(DataError, match=message) as caught:
        read_corpus(path, document_key=key)
    assert f"bad.jsonl:{line}" in str(caught.value)


def test_a_record_without_the_id_is_refused(tmp_path):
    records = _records([1, 1])
    del records[1]["document_id"]
    with pytest.raises(DataError, match="no document id 'document_id', though earlier records have one"):
        read_corpus(_write(tmp_path / "m.jsonl", records))


def test_docstart_records_are_skipped_and_mark_documents(tmp_path):
    docstart = {"tokens": ["-DOCSTART-"], "tags": ["O"]}
    records = [{"tokens": ["Alice"], "tags": ["B-PER"]}, docstart, {"tokens": ["Rome"], "tags": ["B-LOC"]},
               {"tokens": ["Oslo"], "tags": ["B-LOC"]}, docstart, {"tokens": ["Acme"], "tags": ["B-ORG"]}]
    corpus = read_corpus(_write(tmp_path / "d.jsonl", records))
    assert [s.words for s in corpus] == [("Alice",), ("Rome",), ("Oslo",), ("Acme",)]
    assert corpus.document_starts == [0, 1, 3] and corpus.adjustments["docstart_records"] == 2


def test_a_hugging_face_document_column_and_docstart_rows(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"doc": datasets.Value("string"), "tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"]))})
    rows = {"doc": ["a", "a", "b"], "tokens": [["Alice"], ["Bob"], ["Carol"]], "ner_tags": [[1], [1], [1]]}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "ids"))
    assert read_corpus(str(tmp_path / "ids"), document_key="doc").document_starts == [0, 2]
    assert read_corpus(str(tmp_path / "ids")).document_starts is None  # "doc" is not a default name
    conll_like = {"doc": ["", "", "", ""], "tokens": [["-DOCSTART-"], ["Alice"], ["-DOCSTART-"], ["Bob"]],
                  "ner_tags": [[0], [1], [0], [1]]}  # as Hugging Face's conll2003 keeps the separators
    datasets.Dataset.from_dict(conll_like, features=features).save_to_disk(str(tmp_path / "docstart"))
    corpus = read_corpus(str(tmp_path / "docstart"))
    assert [s.words for s in corpus] == [("Alice",), ("Bob",)] and corpus.document_starts == [0, 1]


def test_convert_keeps_documents_both_ways(tmp_path):
    from tokentune.cli.main import main

    conll = tmp_path / "in.conll"
    conll.write_text("-DOCSTART- O\n\nAlice B-PER\n\nBob B-PER\n\n-DOCSTART- O\n\nRome B-LOC\n")
    assert main(["convert", str(conll), str(tmp_path / "out.jsonl")]) == 0
    assert [json.loads(line)["document_id"] for line in (tmp_path / "out.jsonl").read_text().splitlines()] == [0, 0, 1]
    assert main(["convert", str(tmp_path / "out.jsonl"), str(tmp_path / "back.conll")]) == 0
    back = read_corpus(tmp_path / "back.conll")
    assert back.document_starts == read_corpus(conll).document_starts == [0, 2]


def _items(ids, key="doc_id", document_key=None):
    lines = [json.dumps({key: d, "tokens": [f"w{i}", "x"]}) for i, d in enumerate(ids)]
    return list(jsonl_items(lines, "in.jsonl", document_key))


class Recorder:
    """A document-context tagger that records what it is asked."""

    context = "document"

    def predict_token_batches(self, sentences, documents=None):
        self.sentences, self.documents = sentences, documents
        return [type("P", (), {"tags": ["O"] * len(s), "spans": [], "scores": []})() for s in sentences]


def test_predict_reads_json_documents_by_id():
    chunk = _items(["a", "a", "b", "b", "b", "c"])
    assert chunk_documents(chunk) == [(0, 2), (2, 5), (5, 6)]
    assert chunk_documents(list(jsonl_items(['{"tokens": ["a"]}', '{"tokens": ["b"]}'], "x"))) is None
    assert chunk_documents(_items([1, 1, 2], key="article")) is None  # not a default key name
    assert chunk_documents(_items([1, 1, 2], key="article", document_key="article")) == [(0, 2), (2, 3)]
    tagger = Recorder()
    lines, words = predict_chunk(tagger, chunk)
    assert tagger.documents == [(0, 2), (2, 5), (5, 6)] and len(lines) == 6 and words == 12


def test_predict_passes_docstart_records_through_and_refuses_a_missing_id():
    docstart = json.dumps({"tokens": ["-DOCSTART-"], "tags": ["O"]})
    lines = [docstart, '{"tokens": ["EU", "rejects"]}', '{"tokens": ["German"]}', docstart, '{"tokens": ["Peter"]}']
    chunk = list(jsonl_items(lines, "in.jsonl"))
    tagger = Recorder()
    out, words = predict_chunk(tagger, chunk)
    assert tagger.sentences == [["EU", "rejects"], ["German"], ["Peter"]] and tagger.documents == [(0, 2), (2, 3)]
    assert out[0] == out[3] == docstart and words == 4  # written back untouched, not tagged
    with pytest.raises(DataError, match="has no document id 'doc_id', though earlier records have one") as caught:
        list(jsonl_items(['{"doc_id": 1, "tokens": ["a"]}', '{"tokens": ["b"]}'], "in.jsonl"))
    assert "in.jsonl:2" in str(caught.value)


def test_predict_uses_the_document_key_the_model_was_trained_with(tmp_path):
    from tokentune.inference.saved import saved_document_key

    (tmp_path / "tokentune_config.json").write_text(json.dumps({"document_key": "article", "context": "document"}))
    assert saved_document_key(str(tmp_path)) == "article"
    assert saved_document_key(str(tmp_path / "missing")) is None


def test_chunks_wait_for_a_document_to_end(monkeypatch):
    monkeypatch.setattr(inputs, "CHUNK_ITEMS", 4)
    ids = [d for d in range(4) for _ in range(3)]  # documents of 3 records each
    cut = [len(c) for c in chunks(_items(ids))]
    assert cut == [6, 6]  # not 4 + 4 + 4, which would cut documents 1 and 2
    monkeypatch.setattr(inputs, "CHUNK_DOCUMENT_SLACK", 2)
    assert [len(c) for c in chunks(_items([0] * 20))] == [8, 8, 4]  # one long document: cut at the slack
    plain = [Item("text", text=str(i)) for i in range(10)]
    assert [len(c) for c in chunks(plain)] == [4, 4, 2]  # no documents: cut at the size


def test_training_and_predict_read_json_documents(tiny_base_model, tmp_path, capsys, monkeypatch):
    from tokentune.cli.main import main
    from tokentune.inference import Tagger

    data = tmp_path / "data"
    data.mkdir()
    for name, count, seed in (("train", 40, 1), ("dev", 12, 2)):
        records = [{"article": i // 4, "tokens": [w for w, _ in s], "tags": [t for _, t in s]}
                   for i, s in enumerate(make_sentences(count, seed=seed))]
        _write(data / f"{name}.jsonl", records)
    out = tmp_path / "model"
    assert main(["train", "--data", str(data), "--model", tiny_base_model, "--output", str(out), "--context",
                 "document", "--document-key", "article", "--max-length", "32", "--epochs", "1", "--quiet"]) == 0
    notes = json.load(open(out / "metrics.json"))["notes"]
    assert any("document context: 40 sentences read as 10 documents" in n for n in notes)
    # predict finds the documents by the key the model was trained with
    dev = [json.loads(line) for line in (data / "dev.jsonl").read_text().splitlines()]
    expected = Tagger.from_pretrained(str(out)).predict_token_batches([r["tokens"] for r in dev],
                                                                      [(0, 4), (4, 8), (8, 12)])
    asked = []
    original = Tagger.predict_token_batches
    monkeypatch.setattr(Tagger, "predict_token_batches",
                        lambda self, sentences, documents=None: asked.append(documents) or original(self, sentences,
                                                                                                   documents))
    capsys.readouterr()
    assert main(["predict", str(out), "--input", str(data / "dev.jsonl"), "--quiet"]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert asked == [[(0, 4), (4, 8), (8, 12)]]
    assert [r["tags"] for r in got] == [p.tags for p in expected]
    assert [r["article"] for r in got] == [r["article"] for r in dev]
