"""`--on-bad-lines error|skip`: CoNLL lines with an empty or whitespace-only token (as Twitter NER sets
have) are a located error by default, or are left out, counted per split and located in one note."""
from __future__ import annotations

import json
import os

import pytest

from tokentune.cli.main import main
from tokentune.data import read_corpus
from tokentune.data.conll import read_conll
from tokentune.errors import ConfigError, DataError

from conftest import make_sentences

# line 2: an empty token between tabs; line 4: a whitespace-only token; line 8: a no-break space token
TWEETS = "@Alice\tB-PER\n\tO\nvisited\tO\n  \tO\nParis\tB-LOC\n\nhi\tO\n\u00a0\tO\n\n"


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_default_is_a_located_error_that_names_the_flag(tmp_path):
    path = write(tmp_path, "tweets.conll", TWEETS)
    with pytest.raises(DataError, match=r"tweets.conll:2: empty token column") as caught:
        read_conll(path)
    assert "--on-bad-lines skip" in str(caught.value)
    with pytest.raises(DataError, match="--on-bad-lines skip"):
        read_corpus(path, on_bad_lines="error")


def test_skip_drops_the_lines_and_counts_them(tmp_path):
    path = write(tmp_path, "tweets.conll", TWEETS)
    corpus = read_corpus(path, on_bad_lines="skip")
    assert [list(s.words) for s in corpus] == [["@Alice", "visited", "Paris"], ["hi"]]
    assert [s.spans for s in corpus] == [(("PER", 0, 1), ("LOC", 2, 3)), ()]
    assert corpus.adjustments["bad_lines_skipped"] == 3
    notes = [note for note in corpus.notes if "skipped" in note]
    assert len(notes) == 1
    assert "skipped 3 lines with an empty token" in notes[0]
    assert f"{path}:2, {path}:4, {path}:8" in notes[0]


def test_space_separated_whitespace_token(tmp_path):
    """Split at spaces, a token of only (Unicode) whitespace leaves the line one column short."""
    path = write(tmp_path, "spaced.conll", "EU NNP B-ORG\n\u2002 NN O\nrejects VBZ O\n\n")
    with pytest.raises(DataError, match=r"spaced.conll:2: empty token column"):
        read_conll(path)
    corpus = read_conll(path, on_bad_lines="skip")
    assert list(corpus.sentences[0].words) == ["EU", "rejects"]
    assert corpus.adjustments["bad_lines_skipped"] == 1
    # a line one column short that does not start with whitespace is still a column error
    with pytest.raises(DataError, match="wrong number of columns"):
        read_conll(write(tmp_path, "short.conll", "EU NNP B-ORG\nrejects O\n"), on_bad_lines="skip")


def test_locations_stay_right_after_a_skipped_line_inside_a_sentence(tmp_path):
    """Once a line inside a sentence is gone, word i is no longer on line start + i: locations name
    the sentence's line and the word instead."""
    path = write(tmp_path, "broken.conll", "Alice\tB-PER\n\tO\nin\tO\nParis\tI-LOC\n\n")
    corpus = read_conll(path, on_bad_lines="skip", scheme="IOB2")
    assert corpus.invalid and corpus.invalid_location(corpus.invalid[0]) == f"{path}:1 word 3"
    clean = read_conll(write(tmp_path, "clean.conll", "\tO\n\nAlice\tB-PER\nin\tO\nParis\tI-LOC\n\n"),
                       on_bad_lines="skip", scheme="IOB2")
    assert clean.invalid_location(clean.invalid[0]) == f"{clean.path}:5"


def test_skip_with_only_bad_lines_is_no_sentences(tmp_path):
    with pytest.raises(DataError, match="no sentences found"):
        read_conll(write(tmp_path, "empty.conll", "\tO\n \tO\n\n"), on_bad_lines="skip")


def test_unknown_policy_is_refused(tmp_path):
    path = write(tmp_path, "tweets.conll", TWEETS)
    with pytest.raises(ConfigError, match="error, skip"):
        read_conll(path, on_bad_lines="warn")


def _tweets(sentences) -> str:
    """Tab-separated CoNLL with an empty-token line after every fourth sentence's first word."""
    lines = []
    for index, sentence in enumerate(sentences):
        for position, (word, tag) in enumerate(sentence):
            lines.append(f"{word}\t{tag}")
            if position == 0 and index % 4 == 0:
                lines.append("\tO")
        lines.append("")
    return "\n".join(lines) + "\n"


def test_train_and_inspect_with_skip(tmp_path, tiny_base_model, capsys):
    train = write(tmp_path, "train.conll", _tweets(make_sentences(24, seed=1)))
    dev = write(tmp_path, "dev.conll", _tweets(make_sentences(8, seed=2)))
    out = str(tmp_path / "model")
    assert main(["train", "--train", train, "--dev", dev, "--model", tiny_base_model, "--output", out,
                 "--epochs", "1", "--batch-size", "8", "--quiet"]) == 2
    assert "--on-bad-lines skip" in capsys.readouterr().err and not os.path.exists(out)
    assert main(["train", "--train", train, "--dev", dev, "--on-bad-lines", "skip", "--model", tiny_base_model,
                 "--output", out, "--epochs", "1", "--batch-size", "8", "--quiet"]) == 0
    capsys.readouterr()
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as handle:
        notes = json.load(handle)["notes"]
    assert any(note.startswith("train: ") and "skipped 6 lines with an empty token" in note for note in notes)
    assert any(note.startswith("dev: ") and "skipped 2 lines with an empty token" in note for note in notes)
    with open(os.path.join(out, "tokentune_config.json"), encoding="utf-8") as handle:
        assert json.load(handle)["on_bad_lines"] == "skip"
    assert main(["inspect", train, "--on-bad-lines", "skip", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (split,) = report["splits"].values()
    assert split["adjustments"]["bad_lines_skipped"] == 6
    assert any("skipped 6 lines with an empty token" in note and f"{train}:2" in note for note in report["notes"])
    assert main(["inspect", train, "--on-bad-lines", "skip"]) == 0
    assert "skipped 6 lines with an empty token" in capsys.readouterr().out
