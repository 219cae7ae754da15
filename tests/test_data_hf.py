"""Hugging Face datasets: save_to_disk directories built here, and the Hub code path with load_dataset replaced."""
from __future__ import annotations

import pytest

datasets = pytest.importorskip("datasets")

from tokentune.data import load_splits, read_corpus  # noqa: E402
from tokentune.errors import DataError  # noqa: E402

NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def make_dataset(rows, *, class_labels=True):
    tag_feature = datasets.ClassLabel(names=NAMES) if class_labels else datasets.Value("string")
    features = datasets.Features({
        "id": datasets.Value("string"),
        "tokens": datasets.Sequence(datasets.Value("string")),
        "pos_tags": datasets.Sequence(datasets.Value("int32")),
        "ner_tags": datasets.Sequence(tag_feature),
    })
    columns = {"id": [str(i) for i in range(len(rows))], "tokens": [r[0] for r in rows],
               "pos_tags": [[0] * len(r[0]) for r in rows], "ner_tags": [r[1] for r in rows]}
    return datasets.Dataset.from_dict(columns, features=features)


TRAIN = [(["Peter", "Blackburn", "visits", "Bonn"], [1, 2, 0, 3]), (["Hi"], [0])]
VALID = [(["Paris"], [3])]


@pytest.fixture(scope="module")
def saved_dict(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "ner"
    datasets.DatasetDict(train=make_dataset(TRAIN), validation=make_dataset(VALID),
                         test=make_dataset(VALID)).save_to_disk(str(path))
    return str(path)


def test_load_splits_from_a_save_to_disk_directory(saved_dict):
    splits = load_splits(saved_dict)
    assert [name for name, _ in splits.items()] == ["train", "dev", "test"]
    assert [list(s.spans) for s in splits.train] == [[("PER", 0, 2), ("LOC", 3, 4)], []]
    assert list(splits.dev.sentences[0].words) == ["Paris"]
    assert splits.train.path == f"{saved_dict}[train]" and splits.dev.path == f"{saved_dict}[validation]"
    assert splits.train.sentences[1].line == 2  # 1-based row number
    assert any("tag scheme IOB2 detected in train, dev, test" in note for note in splits.notes)


def test_read_one_split_by_either_name(saved_dict):
    assert len(read_corpus(saved_dict, hf_split="validation")) == 1
    assert read_corpus(saved_dict, hf_split="dev").path == f"{saved_dict}[validation]"
    with pytest.raises(DataError, match=r"which split to read\?; expected one of train, validation, test.*--hf-split"):
        read_corpus(saved_dict)
    with pytest.raises(DataError, match=r"no split 'extra'"):
        read_corpus(saved_dict, hf_split="extra")


def test_single_saved_dataset_with_string_tags(tmp_path):
    path = str(tmp_path / "one")
    rows = [(["Bonn", "is"], ["B-LOC", "O"])]
    make_dataset(rows, class_labels=False).save_to_disk(path)
    corpus = read_corpus(path)
    assert list(corpus.sentences[0].spans) == [("LOC", 0, 1)]


def test_integer_tags_without_class_labels_need_names(tmp_path):
    path = str(tmp_path / "ints")
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "tags": datasets.Sequence(datasets.Value("int32"))})
    datasets.Dataset.from_dict({"tokens": [["Bonn"]], "tags": [[1]]}, features=features).save_to_disk(path)
    with pytest.raises(DataError, match=r"ints:1: tag at position 1 is the integer id 1 but no label names"):
        read_corpus(path)
    assert list(read_corpus(path, label_names="O,B-LOC").sentences[0].spans) == [("LOC", 0, 1)]


def test_missing_column_is_explained(saved_dict):
    with pytest.raises(DataError, match=r"the dataset has no 'words' column; expected a 'words' column, found columns "
                                        r"\['id', 'tokens', 'pos_tags', 'ner_tags'\].*--tokens-key"):
        read_corpus(saved_dict, hf_split="train", tokens_key="words")


def test_hub_id_goes_through_load_dataset(monkeypatch):
    calls = []

    def fake_load_dataset(name, config=None, **kwargs):
        calls.append((name, config))
        return datasets.DatasetDict(train=make_dataset(TRAIN), validation=make_dataset(VALID))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    splits = load_splits("hf:conll2003", hf_config="conll2003")
    assert calls == [("conll2003", "conll2003")]
    assert splits.train.entity_counts() == {"PER": 1, "LOC": 1} and splits.test is None
    corpus = read_corpus("wnut_17", format="hf", hf_split="validation")
    assert calls[-1] == ("wnut_17", None) and corpus.path == "hf:wnut_17[validation]"
    assert len(load_splits(train="hf:wnut_17", dev="hf:wnut_17").dev) == 1  # split named after its role


def test_hub_failure_is_a_data_error(monkeypatch):
    def failing(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nope/nothing' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", failing)
    with pytest.raises(DataError, match=r"hf:nope/nothing: cannot load the Hugging Face dataset \(ConnectionError: "
                                        r"Couldn't reach"):
        load_splits("hf:nope/nothing")


def test_broken_save_to_disk_directory(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "dataset_dict.json").write_text("{")
    with pytest.raises(DataError, match=r"broken: cannot load the Hugging Face dataset"):
        load_splits(str(broken))


def test_evaluate_reads_a_save_to_disk_directory_as_inspect_does(saved_dict, tiny_model, capsys):
    """The tiny model knows PER, LOC and ORG; the saved dataset's dev split (`validation`) has one LOC."""
    import json

    from tokentune.cli.main import main

    assert main(["evaluate", tiny_model.output_dir, "--data", saved_dict, "--split", "dev", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["counts"]["gold"] == 1 and set(metrics["per_type"]) <= {"LOC", "PER", "ORG"}
    assert main(["evaluate", tiny_model.output_dir, "--data", saved_dict, "--split", "nope"]) == 2
    assert "no nope split" in capsys.readouterr().err
