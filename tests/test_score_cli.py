"""`tokentune score`: conlleval-style files and --gold/--pred pairs, text and JSON output, errors that
name file:line with exit code 2 and no traceback, and a start-up that never imports torch."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from tokentune.cli.main import main
from tokentune.metrics import score_tags

# conlleval's documentation example: word, POS, gold chunk, predicted chunk
CONLLEVAL = """\
Boeing NNP B-NP I-NP
's POS B-NP B-NP
747 CD I-NP I-NP
jetliners NNS I-NP I-NP
. . O O

Rockwell NNP B-NP I-NP
said VBD B-VP B-VP
the DT B-NP B-NP
agreement NN I-NP I-NP
"""
GOLD = [["B-NP", "B-NP", "I-NP", "I-NP", "O"], ["B-NP", "B-VP", "B-NP", "I-NP"]]
PRED = [["I-NP", "B-NP", "I-NP", "I-NP", "O"], ["I-NP", "B-VP", "B-NP", "I-NP"]]


def write(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def two_files(tmp_path, gold_text: str, pred_text: str) -> tuple[str, str]:
    return write(tmp_path / "gold.txt", gold_text), write(tmp_path / "pred.txt", pred_text)


def columns(text: str, keep: tuple[int, ...]) -> str:
    return "\n".join(" ".join(line.split()[i] for i in keep) if line else "" for line in text.split("\n"))


def run_json(capsys, *argv) -> dict:
    assert main(["score", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def run_error(capsys, *argv) -> str:
    assert main(["score", *argv]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    assert captured.err.startswith("tokentune score: error: ") and captured.err.count("\n") == 1
    return captured.err


def test_text_report(tmp_path, capsys):
    path = write(tmp_path / "out.txt", CONLLEVAL)
    assert main(["score", path]) == 0
    out = capsys.readouterr().out
    assert "mode: default" in out and "accuracy 77.78%" in out
    assert "entities: gold 5; predicted 5; correct 5" in out
    for row in ("NP ", "VP ", "micro avg", "macro avg", "weighted avg"):
        assert row in out
    np_row = next(line for line in out.splitlines() if line.startswith("NP "))
    assert np_row.split() == ["NP", "100.00", "100.00", "100.00", "4"]


def test_json_equals_the_library(tmp_path, capsys):
    path = write(tmp_path / "out.txt", CONLLEVAL)
    assert run_json(capsys, path) == score_tags(GOLD, PRED)  # (its predictions start chunks with I-: a note)
    assert main(["score", path, "--mode", "strict", "--scheme", "IOB2", "--json"]) == 0
    captured = capsys.readouterr()
    strict = json.loads(captured.out)
    # the two predicted chunks that start with I- break IOB2: not counted, and said (with the counts)
    assert strict.pop("not_counted") == {"gold": 0, "predicted": 2}
    assert captured.err == ("tokentune score: note: --mode strict --scheme IOB2 did not count 0 of 5 gold and 2 of 5 "
                            "predicted entities (as the default mode reads them): their tags do not follow IOB2. If a "
                            "column is in another scheme (CoNLL-2003's is IOB1), score in the default mode (leave "
                            "--mode strict out), or convert that column to IOB2 first\n")
    assert strict == score_tags(GOLD, PRED, mode="strict", scheme="IOB2")
    assert strict["counts"] == {"gold": 5, "predicted": 3, "correct": 3} and strict["mode"] == "strict"
    strict_and_valid = write(tmp_path / "valid.txt", columns(CONLLEVAL, (0, 2, 2)))
    assert main(["score", strict_and_valid, "--mode", "strict", "--scheme", "IOB2", "--json"]) == 0
    assert capsys.readouterr().err == "", "nothing dropped: nothing said"


def test_chosen_columns_comments_docstart_crlf_and_gzip(tmp_path, capsys):
    # predicted in column 1, gold in column 3; a comment and -DOCSTART- before, CRLF line ends
    text = "# a comment\n-DOCSTART- -X- -X- O\n\n" + "\n".join(
        " ".join((p[0], p[3], p[1], p[2])) if p else "" for p in (line.split() for line in CONLLEVAL.split("\n")))
    path = tmp_path / "out.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(text.replace("\n", "\r\n"))
    result = run_json(capsys, str(path), "--gold-column", "3", "--pred-column", "1")
    assert result == score_tags(GOLD, PRED)


def test_gold_and_pred_files(tmp_path, capsys):
    gold, pred = two_files(tmp_path, columns(CONLLEVAL, (0, 2)), columns(CONLLEVAL, (0, 3)))
    assert run_json(capsys, "--gold", gold, "--pred", pred) == score_tags(GOLD, PRED)
    assert main(["score", "--gold", gold, "--pred", pred]) == 0
    assert "weighted avg" in capsys.readouterr().out


def test_gold_and_pred_with_different_words_name_both_lines(tmp_path, capsys):
    gold, pred = two_files(tmp_path, columns(CONLLEVAL, (0, 2)),
                           columns(CONLLEVAL, (0, 3)).replace("said", "says"))
    err = run_error(capsys, "--gold", gold, "--pred", pred)
    assert f"{pred}:8:" in err and f"{gold}:8" in err and "'said'" in err and "'says'" in err


def test_gold_and_pred_with_different_sentences(tmp_path, capsys):
    gold_text = columns(CONLLEVAL, (0, 2))
    gold, pred = two_files(tmp_path, gold_text, gold_text.replace("jetliners I-NP\n", ""))
    err = run_error(capsys, "--gold", gold, "--pred", pred)
    assert f"{pred}:1:" in err and "expected 5 words, found 4" in err
    gold, pred = two_files(tmp_path, gold_text, gold_text.split("\n\n")[0] + "\n")
    err = run_error(capsys, "--gold", gold, "--pred", pred)
    assert f"{pred}:" in err and "expected 2 sentences" in err and "found 1" in err


def test_wrong_column_count_names_the_line(tmp_path, capsys):
    path = write(tmp_path / "out.txt", CONLLEVAL.replace("747 CD I-NP I-NP", "747 I-NP I-NP"))
    err = run_error(capsys, path)
    assert f"{path}:3:" in err and "expected 4 columns" in err and "found 3" in err


def test_strict_mode_invalid_tag_names_the_line(tmp_path, capsys):
    path = write(tmp_path / "out.txt", CONLLEVAL.replace("said VBD B-VP B-VP", "said VBD B-VP E-VP"))
    err = run_error(capsys, path, "--mode", "strict", "--scheme", "IOB2")
    assert f"{path}:8:" in err and "'E-VP'" in err


def test_usage_and_file_errors(tmp_path, capsys):
    path = write(tmp_path / "out.txt", CONLLEVAL)
    assert "not both" in run_error(capsys, path, "--gold", path, "--pred", path)
    assert "nothing to score" in run_error(capsys, "--gold", path)
    assert "file not found" in run_error(capsys, str(tmp_path / "missing.txt"))
    assert "strict mode needs" in run_error(capsys, path, "--mode", "strict")
    assert f"{path}:1:" in run_error(capsys, path, "--gold-column", "7")
    assert "no sentences" in run_error(capsys, write(tmp_path / "empty.txt", "\n\n"))
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"EU O O\ncaf\xe9 O O\n")
    assert f"{bad}:2:" in run_error(capsys, str(bad))


def test_partial_report(tmp_path, capsys):
    path = write(tmp_path / "out.txt", "Karl B-PER B-PER\nSmith I-PER O\nin O O\nParis B-LOC B-ORG\n")
    result = run_json(capsys, path, "--partial")
    assert result["partial"]["overall"]["partial"]["partial"] == 1
    assert result["partial"]["overall"]["exact"]["correct"] == 1  # Paris: right boundaries, wrong type
    assert main(["score", path, "--partial"]) == 0
    assert "partial matches" in capsys.readouterr().out


def test_plain_tags(tmp_path, capsys):
    path = write(tmp_path / "pos.txt", "The DT DT\ndog NN VB\nbarks VBZ VBZ\n")
    result = run_json(capsys, path, "--scheme", "PLAIN")
    assert set(result["per_type"]) == {"DT", "NN", "VB", "VBZ"} and result["accuracy"] == pytest.approx(2 / 3)


def test_score_never_imports_torch(tmp_path):
    path = write(tmp_path / "out.txt", CONLLEVAL)
    probe = (
        "import sys\n"
        "from tokentune.cli.main import main\n"
        f"code = main(['score', {path!r}, '--json', '--partial'])\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_bare_prefixes_are_refused_with_their_line(tmp_path, capsys):
    path = write(tmp_path / "out.txt", CONLLEVAL.replace("747 CD I-NP I-NP", "747 CD I-NP I-"))
    err = run_error(capsys, path)
    assert f"{path}:3:" in err and "pred tag 'I-' has a prefix but no entity type" in err
    path = write(tmp_path / "gold.txt", CONLLEVAL.replace("said VBD B-VP B-VP", "said VBD B- B-VP"))
    assert f"{path}:8:" in run_error(capsys, path, "--mode", "strict", "--scheme", "IOB2")
    gold, pred = two_files(tmp_path, columns(CONLLEVAL, (0, 2)), columns(CONLLEVAL, (0, 3)).replace("the B-NP", "the B-"))
    err = run_error(capsys, "--gold", gold, "--pred", pred)
    assert f"{pred}:9:" in err and "'B-'" in err
    assert main(["score", "--gold", gold, "--pred", pred, "--scheme", "PLAIN"]) == 0  # plain labels: any string


def test_non_utf8_and_corrupt_gzip_name_the_file(tmp_path, capsys):
    bad = tmp_path / "pred.txt"
    bad.write_bytes("EU O O\n\nParis B-LOC B-LOC\n".encode("utf-16"))
    assert f"{bad}:1: the file is not UTF-8 text" in run_error(capsys, str(bad))
    fake = write(tmp_path / "out.txt.gz", CONLLEVAL)
    assert "not gzip data" in run_error(capsys, fake)


def test_gold_and_predicted_in_two_schemes_are_said_with_the_accuracy_in_one(tmp_path, capsys):
    """predict adds IOB2 tags to a CoNLL-2003 (IOB1) file: token accuracy as written counts each entity's first
    word as wrong; the note gives it with the predictions in the gold's scheme. Entities agree: F1 100."""
    path = write(tmp_path / "mixed.txt", "John NNP I-PER B-PER\nSmith NNP I-PER I-PER\nlives VBZ O O\n"
                                         "in IN O O\nParis NNP I-LOC B-LOC\n\nRome NNP I-LOC B-LOC\n"
                                         "Milan NNP B-LOC B-LOC\n")
    assert main(["score", path, "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["f1"] == 1.0 and result["accuracy"] == pytest.approx(4 / 7)
    assert captured.err == ("tokentune score: note: the gold tags read as IOB1 and the predicted as IOB2: token accuracy "
                            "compares tags as written (57.14%); with the predictions written in IOB1 it is 100.00%. "
                            "Entities are compared by their spans either way\n")
    same = write(tmp_path / "same.txt", "John NNP B-PER B-PER\nParis NNP B-LOC O\n")
    assert main(["score", same, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and json.loads(captured.out)["accuracy"] == 0.5



def test_bilou_tags_are_read_as_bilou_without_the_flag(tmp_path, capsys):
    """U- and L- tags read without --scheme BILOU merged adjacent one-word entities, silently."""
    path = write(tmp_path / "bilou.txt", "Ann U-PER U-PER\nBob U-PER U-PER\nsaw O O\nNew B-LOC B-LOC\n"
                                         "York L-LOC L-LOC\nParis U-LOC B-LOC\n")
    assert main(["score", path, "--json"]) == 0
    captured = capsys.readouterr()
    assert "U- and L- tags are read as BILOU's" in captured.err
    found = json.loads(captured.out)
    assert found["counts"]["gold"] == 4 and found == run_json(capsys, path, "--scheme", "BILOU")
    assert run_json(capsys, write(tmp_path / "iob2.txt", CONLLEVAL)) == score_tags(GOLD, PRED)  # others as before


@pytest.mark.parametrize("text, where", [("\tO\tO\nword\tO\tO\n", ":1:"), ("word\tO\tO\n\tO\tO\n", ":2:")])
def test_an_empty_word_is_a_located_error(tmp_path, capsys, text, where):
    err = run_error(capsys, write(tmp_path / "empty.txt", text))
    assert f"empty.txt{where} empty token column; expected a non-empty token" in err


def test_lines_split_as_the_conll_reader_splits_them(tmp_path, capsys):
    """Per line: tabs if it has one, else blanks; trailing tabs are not a column (they shifted the columns)."""
    plain = run_json(capsys, write(tmp_path / "plain.txt", "EU B-ORG B-ORG\nrejects O O\nGerman B-MISC I-MISC\n"))
    mixed = write(tmp_path / "mixed.txt", "EU\tB-ORG\tB-ORG\nrejects O O\nGerman\tB-MISC\tI-MISC\n")
    trailing = write(tmp_path / "trailing.txt", "EU\tB-ORG\tB-ORG\t\nrejects\tO\tO\t\nGerman\tB-MISC\tI-MISC \t\n")
    assert run_json(capsys, mixed) == plain == run_json(capsys, trailing)
