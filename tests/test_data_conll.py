"""CoNLL column files: layout tolerance, column choice, errors with file:line, repair policies, writing."""
from __future__ import annotations

import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentune.data import read_conll, read_corpus, write_conll
from tokentune.errors import ConfigError, DataError

CONLL03 = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER

Paris NNP B-NP I-LOC
London NNP B-NP B-LOC
"""


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def summary(corpus):
    return [(list(s.words), list(s.spans), s.line) for s in corpus]


def test_reads_conll2003_layout_and_detects_iob1(tmp_path):
    corpus = read_corpus(write(tmp_path, "train.txt", CONLL03))
    assert summary(corpus) == [
        (["EU", "rejects", "German", "call"], [("ORG", 0, 1), ("MISC", 2, 3)], 3),
        (["Peter", "Blackburn"], [("PER", 0, 2)], 8),
        (["Paris", "London"], [("LOC", 0, 1), ("LOC", 1, 2)], 11),
    ]
    assert corpus.scheme == "IOB1" and corpus.scheme_detected
    assert corpus.num_tokens == 8 and corpus.entity_counts() == {"ORG": 1, "MISC": 1, "PER": 1, "LOC": 2}


@pytest.mark.parametrize("variant", ["crlf", "bom", "trailing", "blank_runs", "gzip", "cr_only"])
def test_layout_variants_read_the_same(tmp_path, variant):
    expected = summary(read_corpus(write(tmp_path, "plain.txt", CONLL03)))
    text, name = CONLL03, f"{variant}.txt"
    if variant == "crlf":
        text = text.replace("\n", "\r\n")
    elif variant == "cr_only":
        text = text.replace("\n", "\r")
    elif variant == "bom":
        text = "\ufeff" + text
    elif variant == "trailing":
        text = text.replace("\n", "  \t \n")
    if variant == "blank_runs":
        text = text.replace("\n\n", "\n\n\n  \n\n")
        blank_before = [i for i, line in enumerate(CONLL03.split("\n"), 1) if not line]
        expected = [(w, s, line + 3 * sum(b < line for b in blank_before)) for w, s, line in expected]
    data = gzip.compress(text.encode()) if variant == "gzip" else text.encode()
    corpus = read_corpus(write(tmp_path, name + (".gz" if variant == "gzip" else ""), data))
    assert summary(corpus) == expected


def test_any_column_can_be_token_or_label(tmp_path):
    path = write(tmp_path, "cols.tsv", "1\tEU\tNNP\tB-ORG\tx\n2\trejects\tVBZ\tO\tx\n")
    corpus = read_corpus(path, token_column=1, label_column=3)
    assert summary(corpus) == [(["EU", "rejects"], [("ORG", 0, 1)], 1)]
    pos = read_corpus(path, token_column=1, label_column=2)
    assert pos.scheme == "PLAIN" and list(pos.sentences[0].spans) == [("NNP", 0, 1), ("VBZ", 1, 2)]


def test_missing_column_index_is_explained(tmp_path):
    path = write(tmp_path, "two.conll", "EU\tB-ORG\n")
    with pytest.raises(DataError, match=r"two.conll:1: the label column does not exist; expected a column index "
                                        r"between -2 and 1, found 5"):
        read_corpus(path, label_column=5)
    with pytest.raises(ConfigError, match="token_column must be an integer"):
        read_corpus(path, token_column="first")


def test_tab_separated_tokens_keep_spaces_and_hashtags(tmp_path):
    path = write(tmp_path, "wnut.conll", "#NFL\tO\nNew York\tB-location\n\n# comment\nok\tO\n")
    corpus = read_corpus(path)
    assert [list(s.words) for s in corpus] == [["#NFL", "New York"], ["ok"]]
    assert corpus.sentences[0].spans == (("location", 1, 2),)


def test_wrong_column_count_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.txt", "EU NNP I-ORG\nrejects O\n")
    with pytest.raises(DataError, match=r"bad.txt:2: wrong number of columns; expected 3 columns"):
        read_conll(path)


def test_empty_and_docstart_only_files_are_refused(tmp_path):
    for name, text in (("empty.txt", ""), ("doc.txt", "-DOCSTART- -X- -X- O\n\n")):
        with pytest.raises(DataError, match=rf"{name}: no sentences found"):
            read_conll(write(tmp_path, name, text))


def test_non_utf8_is_reported_with_its_line(tmp_path):
    path = write(tmp_path, "latin.txt", "EU\tB-ORG\n\nM\xfcller\tB-PER\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.txt:3: the file is not UTF-8 text.*iconv"):
        read_conll(path)


def test_truncated_gzip_is_a_data_error(tmp_path):
    data = gzip.compress(("EU\tB-ORG\n" * 500).encode())
    with pytest.raises(DataError, match=r"cut.conll.gz: the gzip data is truncated or corrupt"):
        read_conll(write(tmp_path, "cut.conll.gz", data[:40]))


def test_missing_file_suggests_the_hub_prefix(tmp_path):
    with pytest.raises(DataError, match=r"nope.txt: file not found.*hf:NAME"):
        read_corpus(tmp_path / "nope.txt")


INVALID_IOB2 = "EU\tO\nrejects\tI-ORG\nit\tI-ORG\n\nPeter\tB-PER\nB.\tI-LOC\n"


def test_lenient_repair_is_the_default_and_is_reported_once(tmp_path):
    corpus = read_corpus(write(tmp_path, "inv.conll", INVALID_IOB2), scheme="IOB2")
    assert [list(s.spans) for s in corpus] == [[("ORG", 1, 3)], [("PER", 0, 1), ("LOC", 1, 2)]]
    assert len(corpus.invalid) == 2 and corpus.adjustments["invalid_transitions"] == 2
    assert [corpus.invalid_line(i) for i in corpus.invalid] == [2, 6]
    assert len(corpus.notes) == 1
    assert "2 invalid IOB2 transitions repaired leniently as conlleval does" in corpus.notes[0]
    assert "inv.conll:2, " in corpus.notes[0] and "inv.conll:6" in corpus.notes[0]


def test_repair_error_refuses_the_file_at_the_first_invalid_line(tmp_path):
    with pytest.raises(DataError, match=r"inv.conll:2: invalid IOB2 tag sequence \(2 in the file, first 'O' -> "
                                        r"'I-ORG'\).*--repair lenient"):
        read_corpus(write(tmp_path, "inv.conll", INVALID_IOB2), scheme="IOB2", repair="error")


def test_repair_drop_entity_drops_only_broken_entities(tmp_path):
    corpus = read_corpus(write(tmp_path, "inv.conll", INVALID_IOB2), scheme="IOB2", repair="drop-entity")
    assert [list(s.spans) for s in corpus] == [[], [("PER", 0, 1)]]
    assert corpus.adjustments["entities_dropped_invalid"] == 2
    assert "dropped the 2 entities" in corpus.notes[0]


def test_drop_entity_in_bioes_drops_the_entity_left_open(tmp_path):
    path = write(tmp_path, "open.bioes", "a\tB-PER\nb\tO\nc\tS-LOC\n")
    corpus = read_corpus(path, scheme="BIOES", repair="drop-entity")
    assert list(corpus.sentences[0].spans) == [("LOC", 2, 3)]


def test_unknown_repair_policy(tmp_path):
    with pytest.raises(ConfigError, match="unknown repair policy 'fix'; expected one of lenient, error, drop-entity"):
        read_corpus(write(tmp_path, "a.conll", "EU\tB-ORG\n"), repair="fix")


def test_declared_scheme_overrides_detection_and_checks_prefixes(tmp_path):
    path = write(tmp_path, "s.conll", "EU\tS-ORG\n")
    corpus = read_corpus(path, scheme="BIOES")
    assert corpus.scheme == "BIOES" and not corpus.scheme_detected
    with pytest.raises(DataError, match=r"s.conll:1: tag 'S-ORG' does not fit the IOB2 scheme"):
        read_corpus(path, scheme="IOB2")


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "BIOES", "BILOU"])
def test_write_then_read_keeps_spans_in_every_scheme(tmp_path, scheme):
    corpus = read_corpus(write(tmp_path, "train.txt", CONLL03))
    out = tmp_path / f"out.{scheme}.conll"
    write_conll(corpus, out, scheme=scheme)
    again = read_corpus(out, scheme=scheme)
    assert [s.spans for s in again] == [s.spans for s in corpus]
    assert [s.words for s in again] == [s.words for s in corpus]


def test_write_refuses_words_that_would_break_columns(tmp_path):
    from tokentune.data import Corpus, Sentence

    corpus = Corpus([Sentence(("New York",), (("LOC", 0, 1),), 1)], "in.jsonl")
    write_conll(corpus, tmp_path / "ok.conll")  # tab-separated: a space in a word is fine
    assert (tmp_path / "ok.conll").read_text() == "New York\tB-LOC\n\n"
    with pytest.raises(DataError, match=r"in.jsonl:1: word 'New York' cannot be written as a CoNLL column"):
        write_conll(corpus, tmp_path / "bad.conll", separator=" ")


# -- writing: nothing that would read back differently ----------------------------------------------
def one_sentence(*words, path="in.jsonl", line=4, line_per_word=False):
    from tokentune.data import Corpus, Sentence

    sentences = [Sentence(("ok",), (), 1), Sentence(tuple(words), (("PER", 0, 1),), line)]
    return Corpus(sentences, path, line_per_word=line_per_word)


@pytest.mark.parametrize("word, separator, problem", [
    ("a\rb", "\t", "line break"), ("a\nb", "\t", "line break"), ("a\tb", "\t", "holds a tab"),
    ("a\tb", " ", "whitespace that separates columns"), ("a b", " ", "whitespace that separates columns"),
    ("a\u2003b", " ", "whitespace that separates columns"), (" a", "\t", "starts or ends"),
    ("a\x1c", "\t", "starts or ends"), ("-DOCSTART-", "\t", "-DOCSTART-"), ("-DOCSTART-", " ", "-DOCSTART-"),
    ("a\ud800", "\t", "lone surrogate"),
])
def test_write_refuses_words_that_would_not_read_back_and_says_where(tmp_path, word, separator, problem):
    corpus = one_sentence("x", word)
    with pytest.raises(DataError, match=r"in.jsonl:4: word .* cannot be written as a CoNLL column: .*"
                                        + __import__("re").escape(problem) + r".*\(sentence 2, word 2\)"):
        write_conll(corpus, tmp_path / "out.conll", separator=separator)
    assert not list(tmp_path.iterdir())  # nothing half-written
    line_per_word = one_sentence("x", word, path="in.conll", line=7, line_per_word=True)
    with pytest.raises(DataError, match=r"in.conll:8: word"):
        write_conll(line_per_word, tmp_path / "out.conll", separator=separator)


def test_write_refuses_a_first_line_that_reads_as_a_comment_or_loses_its_bom(tmp_path):
    from tokentune.data import Corpus, Sentence

    hash_first = Corpus([Sentence(("#", "x"), (), 1)], "in.jsonl", line_per_word=False)
    with pytest.raises(DataError, match=r"word '#' .*reads as a '#' comment \(sentence 1, word 1\)"):
        write_conll(hash_first, tmp_path / "o.conll", separator=" ")
    write_conll(hash_first, tmp_path / "o.conll")  # '#<TAB>O' is a word line
    assert [s.words for s in read_corpus(tmp_path / "o.conll")] == [("#", "x")]
    with pytest.raises(DataError, match=r"word '# x' .*comment"):
        write_conll(Corpus([Sentence(("# x",), (), 1)], "in.jsonl"), tmp_path / "o.conll")
    with pytest.raises(DataError, match=r"byte-order mark"):
        write_conll(Corpus([Sentence(("\ufeffx",), (), 1)], "in.jsonl"), tmp_path / "o.conll")


def test_write_refuses_tags_that_would_break_columns(tmp_path):
    from tokentune.data import Corpus, Sentence

    corpus = Corpus([Sentence(("New", "York"), (("LOC CITY", 0, 2),), 1)], "in.jsonl", line_per_word=False)
    write_conll(corpus, tmp_path / "tab.conll")
    assert [s.spans for s in read_corpus(tmp_path / "tab.conll", scheme="IOB2")] == [(("LOC CITY", 0, 2),)]
    with pytest.raises(DataError, match=r"tag 'B-LOC CITY' \(of word 'New'\) cannot be written"):
        write_conll(corpus, tmp_path / "space.conll", separator=" ")


WORD_PIECES = st.sampled_from(["a", "É", "#", "# ", "-DOCSTART-", "-", "O", " ", "\t", "\r", "\n", "\r\n", "\ufeff",
                               "\u2028", "\x85", "\x0b", "\x1c", "\xa0", "\u0301", "\x00", "\ud800", "😀", "B-X"])
WORDS = st.lists(st.one_of(WORD_PIECES, st.characters()), min_size=1, max_size=4).map("".join)


@settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "150")), deadline=None)
@given(st.lists(st.lists(WORDS, min_size=1, max_size=4), min_size=1, max_size=3), st.sampled_from(["\t", " "]),
       st.sampled_from(["IOB2", "BIOES"]))
def test_write_then_read_is_exact_or_refused(sentences, separator, scheme):
    import tempfile

    from tokentune.data import Corpus, Sentence

    corpus = Corpus([Sentence(tuple(words), (("X", 0, 1),) if len(words) > 1 else (), i + 1)
                     for i, words in enumerate(sentences)], "in.jsonl", line_per_word=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/out.conll"
        try:
            write_conll(corpus, path, scheme=scheme, separator=separator)
        except DataError as err:
            assert "cannot be written as a CoNLL column" in str(err) and "(sentence " in str(err)
            return
        again = read_corpus(path, scheme=scheme)
    assert [s.words for s in again] == [s.words for s in corpus]
    assert [s.spans for s in again] == [s.spans for s in corpus]
