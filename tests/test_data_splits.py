"""Splits: discovery, mixed formats, label checks and fixes (label_map, drop_unknown_labels), dev_split."""
from __future__ import annotations

import json

import pytest

from tokentune.data import check_labels, find_split_files, load_splits
from tokentune.errors import ConfigError, DataError, LabelError

TRAIN = "EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\n\nBonn\tB-LOC\n\nParis\tB-LOC\n\nHi\tO\n"


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "train.conll").write_text(TRAIN)
    (tmp_path / "dev.jsonl").write_text(json.dumps({"tokens": ["Mary", "in", "Rome"], "tags": ["B-PERSON", "O", "B-LOC"]})
                                        + "\n" + json.dumps({"tokens": ["X"], "tags": ["B-MISC"]}) + "\n")
    (tmp_path / "eng.testb").write_text("Bonn\tB-LOC\n")
    (tmp_path / "README.md").write_text("not data")
    return tmp_path


def test_find_split_files_by_usual_names(data_dir):
    found = find_split_files(data_dir)
    assert {k: v.rsplit("/", 1)[1] for k, v in found.items()} == {
        "train": "train.conll", "dev": "dev.jsonl", "test": "eng.testb"}


def test_two_candidates_for_one_split(tmp_path):
    (tmp_path / "train.txt").write_text(TRAIN)
    (tmp_path / "train.jsonl").write_text("")
    with pytest.raises(DataError, match=r"two files look like the train split.*--train FILE"):
        find_split_files(tmp_path)


def test_mixed_formats_and_unseen_labels_listed_with_locations(data_dir):
    splits = load_splits(data_dir)
    assert splits.dev.entity_types() == {"PERSON", "LOC", "MISC"}
    with pytest.raises(LabelError, match=r"dev.jsonl:1: dev has label\(s\) never seen in training: MISC \(.*dev.jsonl:2\), "
                                         r"PERSON \(.*dev.jsonl:1\); expected only LOC, ORG, PER.*--label-map OLD=NEW.*"
                                         r"--drop-unknown-labels"):
        check_labels(splits)


def test_label_map_renames_and_drops(data_dir):
    splits = load_splits(data_dir, label_map={"PERSON": "PER", "MISC": "O", "TYPO": "X"})
    check_labels(splits)  # nothing unseen any more
    assert [list(s.spans) for s in splits.dev] == [[("PER", 0, 1), ("LOC", 2, 3)], []]
    assert "label_map: MISC -> O (1), PERSON -> PER (1)" in splits.notes
    assert "label_map: TYPO matched no entity (check the spelling)" in splits.notes
    assert splits.dev.adjustments["entities_relabelled"] == 2


def test_label_map_from_cli_pairs_and_bad_value(data_dir):
    splits = load_splits(data_dir, label_map=["PERSON=PER", "MISC=O"])
    check_labels(splits)
    with pytest.raises(ConfigError, match="label map entry 'PERSON' is not OLD=NEW"):
        load_splits(data_dir, label_map=["PERSON"])


def test_drop_unknown_labels(data_dir):
    splits = load_splits(data_dir, drop_unknown_labels=True)
    check_labels(splits)
    assert [list(s.spans) for s in splits.dev] == [[("LOC", 2, 3)], []]
    note = next(n for n in splits.notes if "dropped 2 entities" in n)
    assert "MISC, PERSON" in note and "dev.jsonl:1" in note


def test_dev_split_carves_a_seeded_dev_set(tmp_path):
    (tmp_path / "train.txt").write_text(TRAIN)
    first = load_splits(tmp_path, dev_split=0.4, require=("train", "dev"))
    again = load_splits(tmp_path, dev_split=0.4)
    assert len(first.dev) == 2 and len(first.train) == 3
    assert [s.words for s in first.dev] == [s.words for s in again.dev]
    assert set(s.words for s in first.train).isdisjoint(s.words for s in first.dev)
    assert any("2 of 5 training sentences were set aside as dev (dev_split=0.4, split_seed=42)" in n
               for n in first.notes)
    other = load_splits(tmp_path, dev_split=True, split_seed=7)
    assert len(other.dev) == 1  # True means 10%, at least one sentence


def test_dev_split_is_ignored_when_dev_exists_and_checked(data_dir):
    assert "dev_split ignored: a dev set was given" in load_splits(data_dir, dev_split=0.2).notes
    with pytest.raises(ConfigError, match="dev_split must be a fraction between 0 and 1, got 3"):
        load_splits(data_dir, dev_split=3)


def test_missing_required_split_suggests_dev_split(tmp_path):
    (tmp_path / "train.txt").write_text(TRAIN)
    with pytest.raises(DataError, match=r"no dev file found in .*; expected a file named dev\*.*found train.txt.*"
                                        r"--dev-split 0.1"):
        load_splits(tmp_path, require=("train", "dev"))


def test_unknown_option_is_refused_and_other_formats_options_ignored(data_dir):
    with pytest.raises(ConfigError, match=r"unknown data option\(s\) token_colum\. Fix: use only .*token_column"):
        load_splits(data_dir, token_colum=1)
    splits = load_splits(data_dir, tokens_key="tokens", token_column=0, scheme=None)
    assert len(splits.train) == 5


def test_explicit_files_win_over_the_directory(data_dir, tmp_path_factory):
    other = tmp_path_factory.mktemp("other") / "mine.txt"
    other.write_text("Rome\tB-LOC\n")
    splits = load_splits(data_dir, test=str(other))
    assert splits.test.path == str(other)


def test_select_keeps_invalid_records_aligned(tmp_path):
    (tmp_path / "train.txt").write_text("a\tO\n\nb\tO\nc\tI-X\n")
    corpus = load_splits(tmp_path, scheme="IOB2").train
    picked = corpus.select([1])
    assert [(i.sentence, i.position) for i in picked.invalid] == [(0, 1)]
    assert picked.invalid_line(picked.invalid[0]) == 4
