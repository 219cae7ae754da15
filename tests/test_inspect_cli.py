"""``tokentune inspect``: JSON and table reports, sub-token counts, and one-line errors on malformed inputs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokentune.cli.main import main

BAD = Path(__file__).parent / "data" / "bad"
TRAIN = "-DOCSTART- -X- O\n\nEU NNP I-ORG\nrejects VBZ O\n\nPeter NNP I-PER\nBlackburn NNP I-PER\nSmith NNP B-PER\n"
DEV = "Bonn NNP I-LOC\nand CC O\nBerlin NNP I-LOC\nlisten VB I-MISC\n"


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "train.txt").write_text(TRAIN)
    (tmp_path / "dev.txt").write_text(DEV)
    return tmp_path


def run_json(capsys, *args):
    assert main(["inspect", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_report_per_split(data_dir, capsys):
    report = run_json(capsys, data_dir)
    train, dev = report["splits"]["train"], report["splits"]["dev"]
    assert (train["sentences"], train["tokens"], train["entities"]) == (2, 5, 3)
    assert train["per_type"] == {"ORG": 1, "PER": 2} and train["scheme"] == "IOB1"
    assert dev["per_type"] == {"LOC": 2, "MISC": 1}
    assert dev["length_words"] == {"p50": 4, "p90": 4, "p99": 4, "max": 4}
    assert train["invalid_transitions"] == {"count": 0, "first": []}
    assert any("labels never seen in training: LOC" in n and "dev.txt:1" in n for n in report["notes"])


def test_invalid_transitions_are_counted_with_first_locations(tmp_path, capsys):
    path = tmp_path / "train.txt"
    path.write_text("a\tO\nb\tI-X\n\nc\tO\nd\tI-X\n")
    report = run_json(capsys, path, "--scheme", "IOB2")
    invalid = report["splits"]["train"]["invalid_transitions"]
    assert invalid == {"count": 2, "first": [f"{path}:2", f"{path}:5"]}
    assert report["splits"]["train"]["adjustments"] == {"invalid_transitions": 2}
    assert any("repaired leniently as conlleval does" in n for n in report["notes"])


def test_human_table_is_aligned(data_dir, capsys):
    assert main(["inspect", str(data_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    header, sentences = out[0], next(line for line in out if line.startswith("sentences"))
    assert header.split() == ["train", "dev"]
    assert sentences.split() == ["sentences", "2", "1"]
    assert len(header) == len(sentences)  # right-aligned columns end together
    assert any(line.startswith("  ORG") for line in out)
    assert any(line.startswith("scheme") and "IOB1 (detected)" in line for line in out)
    assert any(line.startswith("note: tag scheme IOB1 detected in train, dev") for line in out)


def test_single_file_and_jsonl_text_with_adjustments(tmp_path, capsys):
    path = tmp_path / "notes.jsonl"
    path.write_text(json.dumps({"text": "New-York-based firm", "entities": [[0, 8, "LOC"]]}) + "\n")
    report = run_json(capsys, path)
    stats = report["splits"]["notes.jsonl"]
    assert stats["adjustments"] == {"spans_split": 1} and stats["tokens"] == 3
    assert any("split at the boundary" in n for n in report["notes"])


def test_model_adds_subtoken_lengths(data_dir, capsys):
    report = run_json(capsys, data_dir, "--model")
    sub = report["splits"]["train"]["subtokens"]
    words = report["splits"]["train"]["length_words"]
    assert sub["max"] >= words["max"] + 2  # [CLS] and [SEP] at least
    assert sub["max_length"] == 512 and sub["over_max_length"] == 0
    assert report["model"].endswith("model")


def test_subtokens_over_the_limit_are_counted(tmp_path):
    from tokentune.data import read_corpus
    from tokentune.data.stats import subtoken_stats
    from tokentune.modeling import embedded_model_path as default_model_path
    from tokentune.modeling import load_tokenizer

    path = tmp_path / "long.txt"
    path.write_text("".join("word\tO\n" for _ in range(600)) + "\nshort\tO\n")
    stats = subtoken_stats(read_corpus(path), load_tokenizer(str(default_model_path())))
    assert stats["max"] == 602 and stats["over_max_length"] == 1 and stats["p50"] == 3


def test_percentiles_use_nearest_rank():
    from tokentune.data.stats import percentiles

    assert percentiles(list(range(1, 101))) == {"p50": 50, "p90": 90, "p99": 99, "max": 100}
    assert percentiles([]) == {"p50": 0, "p90": 0, "p99": 0, "max": 0}
    assert percentiles([7]) == {"p50": 7, "p90": 7, "p99": 7, "max": 7}


def test_hf_directory(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-LOC"]))})
    ds = datasets.Dataset.from_dict({"tokens": [["Bonn", "x"]], "ner_tags": [[1, 0]]}, features=features)
    datasets.DatasetDict(train=ds, validation=ds).save_to_disk(str(tmp_path / "hf"))
    report = run_json(capsys, tmp_path / "hf")
    assert set(report["splits"]) == {"train", "dev"} and report["splits"]["dev"]["per_type"] == {"LOC": 1}


def test_unknown_model_is_one_line(data_dir, capsys):
    assert main(["inspect", str(data_dir), "--model", str(data_dir / "no-model")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot load" in err and "no-model" in err


def test_directory_without_splits(tmp_path, capsys):
    (tmp_path / "notes.md").write_text("x")
    assert main(["inspect", str(tmp_path)]) == 2
    assert "no train/dev/test data found" in capsys.readouterr().err


# file -> (extra arguments, line where the problem is, or None where no line applies)
BAD_CASES = {
    "bad_tag_prefix.conll": ([], 2),
    "binary_garbage.conll": ([], 1),
    "corrupt.conll.gz": ([], None),
    "deeply_nested.json": ([], None),
    "empty.conll": ([], None),
    "empty.jsonl": ([], None),
    "empty_token_column.conll": ([], 2),
    "entities_not_list.jsonl": ([], 1),
    "int_tags_without_names.jsonl": ([], 1),
    "invalid_bioes.bioes": (["--scheme", "BIOES", "--repair", "error"], 2),
    "json_array_unclosed.json": ([], 3),
    "json_syntax_error.jsonl": ([], 2),
    "json_syntax_error_array.json": ([], 3),
    "length_mismatch.jsonl": ([], 2),
    "missing_tags_key.jsonl": ([], 2),
    "missing_tokens_key.jsonl": ([], 2),
    "mixed_prefixed_plain.conll": ([], 5),
    "non_utf8.conll": ([], 2),
    "not_gzip.conll.gz": ([], None),
    "one_column.conll": ([], 1),
    "only_blank_lines.conll": ([], None),
    "only_docstart.conll": ([], None),
    "overlapping_spans.jsonl": ([], 2),
    "record_not_object.jsonl": ([], 2),
    "span_missing_label.jsonl": ([], 1),
    "span_out_of_range.jsonl": ([], 2),
    "span_start_after_end.jsonl": ([], 1),
    "tag_not_string.jsonl": ([], 1),
    "tag_without_type.conll": ([], 1),
    "text_all_blank.jsonl": ([], None),
    "text_not_string.jsonl": ([], 2),
    "token_not_string.jsonl": ([], 1),
    "tokens_not_list.jsonl": ([], 1),
    "truncated.conll.gz": ([], None),
    "unknown_label_id.jsonl": (["--label-names", "O,B-ORG,I-ORG"], 2),
    "wrong_column_count.conll": ([], 3),
}


def test_every_bad_file_has_a_case():
    assert sorted(os.listdir(BAD)) == sorted(BAD_CASES) and len(BAD_CASES) >= 25


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_malformed_input_gives_one_line_with_its_location(name, capsys):
    extra, line = BAD_CASES[name]
    assert main(["inspect", str(BAD / name), *extra]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert captured.out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("tokentune inspect: error: ")
    location = f"{BAD / name}:{line}: " if line is not None else f"{BAD / name}: "
    assert location in err
    assert "Fix: " in err


@pytest.mark.parametrize("name", ["non_utf8.conll", "truncated.conll.gz", "overlapping_spans.jsonl"])
def test_malformed_input_in_a_subprocess(name):
    done = subprocess.run([sys.executable, "-m", "tokentune.cli.main", "inspect", str(BAD / name)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert str(BAD / name) in done.stderr


def test_label_map_on_one_file_and_split_only_options_refused(tmp_path, capsys):
    path = tmp_path / "train.txt"
    path.write_text(TRAIN)
    report = run_json(capsys, path, "--label-map", "PER=PERSON", "--label-map", "ORG=O")
    assert report["splits"]["train"]["per_type"] == {"PERSON": 2}
    assert "label_map: ORG -> O (1), PER -> PERSON (2)" in report["notes"]
    assert main(["inspect", str(path), "--dev-split", "0.5"]) == 2
    assert "--dev-split needs train and dev splits" in capsys.readouterr().err


def test_hf_directory_with_format_flag_and_dev_split(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-LOC"]))})
    ds = datasets.Dataset.from_dict({"tokens": [["Bonn"], ["a"], ["b"], ["c"]], "ner_tags": [[1], [0], [0], [0]]},
                                    features=features)
    datasets.DatasetDict(train=ds).save_to_disk(str(tmp_path / "hf"))
    report = run_json(capsys, tmp_path / "hf", "--format", "hf", "--dev-split", "0.25")
    assert (report["splits"]["train"]["sentences"], report["splits"]["dev"]["sentences"]) == (3, 1)


def test_a_readers_note_names_the_file_once(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spans.jsonl").write_text('{"text": "Alice Smith met Bob", "spans": [{"start": 0, "end": 4, '
                                          '"label": "PER"}]}\n')
    assert main(["inspect", "spans.jsonl"]) == 0
    captured = capsys.readouterr()
    notes = [line for line in (captured.out + captured.err).splitlines() if line.strip().startswith("note: ")]
    assert notes == ["note: spans.jsonl: 1 entity boundaries fell inside words: those words were split at the "
                     "boundary"]
