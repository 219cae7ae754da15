"""``tokentune convert``: format and scheme changes, directories, lossy targets, errors."""
from __future__ import annotations

import json
import os

import pytest

from tokentune.cli.main import main
from tokentune.data import read_corpus

CONLL = "-DOCSTART- -X- O\n\nEU NNP I-ORG\nrejects VBZ O\n\nParis NNP I-LOC\nLondon NNP B-LOC\nBerlin NNP I-LOC\n"


@pytest.fixture
def conll_file(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL)
    return path


def test_conll_iob1_to_jsonl_bioes(conll_file, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(conll_file), str(out), "--to-scheme", "BIOES"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records == [  # the -DOCSTART- document is kept as a document id
        {"document_id": 0, "tokens": ["EU", "rejects"], "tags": ["S-ORG", "O"]},
        {"document_id": 0, "tokens": ["Paris", "London", "Berlin"], "tags": ["S-LOC", "B-LOC", "E-LOC"]},
    ]
    assert "train: wrote 2 sentences, 3 entities to" in capsys.readouterr().out
    assert [s.spans for s in read_corpus(out)] == [s.spans for s in read_corpus(conll_file)]


def test_default_scheme_is_the_input_scheme_and_format_flag_wins(conll_file, tmp_path):
    out = tmp_path / "out.data"
    assert main(["convert", str(conll_file), str(out), "--format", "conll"]) == 0
    assert out.read_text().splitlines()[:4] == ["-DOCSTART-\tO", "", "EU\tI-ORG", "rejects\tO"]  # still IOB1


def test_lossy_target_scheme_is_reported(conll_file, tmp_path, capsys):
    assert main(["convert", str(conll_file), str(tmp_path / "io.conll"), "--to-scheme", "IO"]) == 0
    captured = capsys.readouterr()
    assert "train: IO cannot represent 2 entities exactly" in captured.err
    # the count is what the file holds: Paris and London Berlin, adjacent, are one LOC in IO
    assert "train: wrote 2 sentences, 2 entities to" in captured.out and "(conll, IO)" in captured.out


def test_brat_output_says_it_keeps_text_not_words_and_names_no_scheme(conll_file, tmp_path, capsys):
    assert main(["convert", str(conll_file), str(tmp_path / "brat"), "--to", "brat"]) == 0
    captured = capsys.readouterr()
    assert "3 entities to" in captured.out and "(brat)" in captured.out
    assert "note: brat keeps text, not words: reading it back splits the text into words again" in captured.err


def test_directory_to_directory(conll_file, tmp_path):
    (tmp_path / "dev.txt").write_text("Bonn NNP I-LOC\n")
    out = tmp_path.parent / f"{tmp_path.name}-converted"  # outside the input: an output never lies inside it
    assert main(["convert", str(tmp_path), str(out), "--format", "jsonl", "--to-scheme", "IOB2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dev.jsonl", "train.jsonl"]
    assert json.loads((out / "dev.jsonl").read_text()) == {"tokens": ["Bonn"], "tags": ["B-LOC"]}


def test_text_records_to_conll(tmp_path):
    src = tmp_path / "text.jsonl"
    src.write_text(json.dumps({"text": "Acme Corp. hired John.", "entities": [[0, 9, "ORG"], [17, 21, "PER"]]}) + "\n")
    out = tmp_path / "text.conll"
    assert main(["convert", str(src), str(out)]) == 0
    assert out.read_text() == "Acme\tB-ORG\nCorp\tI-ORG\n.\tO\nhired\tO\nJohn\tB-PER\n.\tO\n\n"


def test_input_format_flag(tmp_path):
    src = tmp_path / "data.records"
    src.write_text(json.dumps({"tokens": ["Bonn"], "tags": ["B-LOC"]}) + "\n")
    out = tmp_path / "out.conll"
    assert main(["convert", str(src), str(out), "--input-format", "jsonl"]) == 0
    assert out.read_text() == "Bonn\tB-LOC\n\n"


def test_errors_are_one_line(conll_file, tmp_path, capsys):
    assert main(["convert", str(conll_file), str(tmp_path / "x.conll"), "--to-scheme", "XYZ"]) == 2
    assert "unknown tag scheme 'XYZ'" in capsys.readouterr().err
    assert main(["convert", str(conll_file), str(tmp_path / "x.conll.gz")]) == 2
    assert "cannot write gzip output" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing.txt"), str(tmp_path / "x.conll")]) == 2
    assert "missing.txt: file not found" in capsys.readouterr().err
    outside_file = tmp_path.parent / f"{tmp_path.name}-out.txt"
    outside_file.write_text("x")
    assert main(["convert", str(tmp_path), str(outside_file)]) == 2
    assert "already exists. Fix: choose another OUT, or pass --overwrite" in capsys.readouterr().err
    assert main(["convert", str(tmp_path), str(outside_file), "--overwrite"]) == 2
    assert "is a file, but" in capsys.readouterr().err
    assert outside_file.read_text() == "x"


def test_an_existing_out_is_replaced_only_with_overwrite(conll_file, tmp_path, capsys):
    theirs = tmp_path / "gold.conll"
    theirs.write_text("Alice B-PER\n")
    assert main(["convert", str(conll_file), str(theirs)]) == 2
    assert f"OUT {theirs} already exists" in capsys.readouterr().err and theirs.read_text() == "Alice B-PER\n"
    assert main(["convert", str(conll_file), str(theirs), "--overwrite"]) == 0
    assert theirs.read_text() != "Alice B-PER\n"
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text(CONLL)
    (tmp_path / "empty").mkdir()  # an empty directory is no one's data: written into without --overwrite
    assert main(["convert", str(data), str(tmp_path / "empty")]) == 0
    assert os.listdir(tmp_path / "empty") == ["train.conll"]
    assert main(["convert", str(data), str(tmp_path / "empty")]) == 2  # now it holds a file


def test_convert_can_rename_types_and_carve_dev(conll_file, tmp_path):
    out = tmp_path.parent / f"{tmp_path.name}-out"
    assert main(["convert", str(tmp_path), str(out), "--label-map", "LOC=PLACE", "--dev-split", "0.5",
                 "--to-scheme", "IOB2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dev.conll", "train.conll"]
    tags = (out / "train.conll").read_text() + (out / "dev.conll").read_text()
    assert "B-PLACE" in tags and "LOC" not in tags
