"""JSON Lines / JSON: tokens+tags records, integer ids, raw text with character spans, writing."""
from __future__ import annotations

import gzip
import json

import pytest

from tokentune.data import read_corpus, read_jsonl, write_jsonl
from tokentune.errors import ConfigError, DataError


def write_lines(tmp_path, name, records, raw=None):
    path = tmp_path / name
    text = raw if raw is not None else "".join(json.dumps(r) + "\n" for r in records)
    path.write_text(text, encoding="utf-8")
    return path


def spans(corpus):
    return [list(s.spans) for s in corpus]


def test_tokens_and_string_tags(tmp_path):
    path = write_lines(tmp_path, "train.jsonl", [
        {"tokens": ["EU", "rejects", "German", "call"], "tags": ["B-ORG", "O", "B-MISC", "O"]},
        {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]},
    ])
    corpus = read_corpus(path)
    assert [list(s.words) for s in corpus] == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    assert spans(corpus) == [[("ORG", 0, 1), ("MISC", 2, 3)], [("PER", 0, 2)]]
    assert [s.line for s in corpus] == [1, 2] and corpus.scheme == "IOB2"


def test_integer_ids_with_label_names_and_custom_keys(tmp_path):
    path = write_lines(tmp_path, "d.jsonl", [{"words": ["EU", "x"], "ner": [1, 0]}, {"words": ["y"], "ner": [0]}])
    corpus = read_corpus(path, tokens_key="words", tags_key="ner", label_names="O,B-ORG,I-ORG")
    assert spans(corpus) == [[("ORG", 0, 1)], []]
    assert spans(read_corpus(path, tokens_key="words", tags_key="ner", label_names=["O", "B-LOC"])) == [
        [("LOC", 0, 1)], []]


def test_hugging_face_style_ner_tags_key_is_found_without_options(tmp_path):
    path = write_lines(tmp_path, "d.jsonl", [{"id": "0", "tokens": ["Bonn"], "pos_tags": [3], "ner_tags": ["B-LOC"]}])
    assert spans(read_corpus(path)) == [[("LOC", 0, 1)]]


def test_errors_name_file_and_record_line(tmp_path):
    path = write_lines(tmp_path, "m.jsonl", [{"tokens": ["a"], "tags": ["O"]}, {"tokens": ["a", "b"], "tags": ["O"]}])
    with pytest.raises(DataError, match=r"m.jsonl:2: 'tokens' and 'tags' differ in length; expected one tag per "
                                        r"token, found 2 tokens and 1 tags"):
        read_corpus(path)
    ids = write_lines(tmp_path, "ids.jsonl", [{"tokens": ["a"], "tags": [0]}, {"tokens": ["a"], "tags": [5]}])
    with pytest.raises(DataError, match=r"ids.jsonl:2: tag at position 1 is an unknown label id; expected an id from "
                                        r"0 to 1"):
        read_corpus(ids, label_names=["O", "B-X"])
    with pytest.raises(DataError, match=r"ids.jsonl:1: .*integer id 0 but no label names were given.*--label-names"):
        read_corpus(ids)


def test_bad_label_names_option():
    with pytest.raises(ConfigError, match="label_names must be a non-empty list"):
        from tokentune.data.options import parse_label_names

        parse_label_names([1, 2])


def test_json_array_file_reports_record_lines(tmp_path):
    raw = '[\n  {"tokens": ["a"], "tags": ["O"]},\n\n  {"tokens": ["b"],\n   "tags": ["B-X"]}\n]\n'
    corpus = read_corpus(write_lines(tmp_path, "d.json", None, raw))
    assert [s.line for s in corpus] == [2, 4] and spans(corpus) == [[], [("X", 0, 1)]]
    bad = raw.replace('"tags": ["B-X"]', '"tags": ["B-X", "O"]')
    with pytest.raises(DataError, match=r"bad.json:4: 'tokens' and 'tags' differ in length"):
        read_corpus(write_lines(tmp_path, "bad.json", None, bad))


def test_pretty_printed_single_record_and_gzip(tmp_path):
    record = {"tokens": ["Bonn"], "tags": ["B-LOC"]}
    assert spans(read_corpus(write_lines(tmp_path, "one.json", None, json.dumps(record, indent=2)))) == [
        [("LOC", 0, 1)]]
    gz = tmp_path / "d.jsonl.gz"
    gz.write_bytes(gzip.compress((json.dumps(record) + "\r\n").encode()))
    assert spans(read_corpus(gz)) == [[("LOC", 0, 1)]]


def test_json_syntax_error_line(tmp_path):
    raw = '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a"], "tags": ["O"]\n'
    with pytest.raises(DataError, match=r"s.jsonl:2: invalid JSON \(Expecting ',' delimiter at column \d+\)"):
        read_corpus(write_lines(tmp_path, "s.jsonl", None, raw))


def test_empty_records_are_skipped_and_counted(tmp_path):
    corpus = read_corpus(write_lines(tmp_path, "e.jsonl", [{"tokens": [], "tags": []}, {"tokens": ["a"], "tags": ["O"]}]))
    assert len(corpus) == 1 and corpus.adjustments["empty_records"] == 1
    assert corpus.notes == [f"{tmp_path / 'e.jsonl'}: skipped 1 records with no words"]


def test_invalid_sequences_locate_record_and_word(tmp_path):
    corpus = read_corpus(write_lines(tmp_path, "i.jsonl", [{"tokens": ["a", "b"], "tags": ["O", "I-X"]}]), scheme="IOB2")
    assert [corpus.invalid_location(i) for i in corpus.invalid] == [f"{tmp_path / 'i.jsonl'}:1 word 2"]


TEXT = "New-York-based firm Acme Corp. hired John Smith."


def test_text_with_character_spans_uses_the_word_splitter(tmp_path):
    record = {"text": TEXT, "entities": [{"start": 20, "end": 29, "label": "ORG"}, [37, 47, "PER"]]}
    corpus = read_corpus(write_lines(tmp_path, "t.jsonl", [record]))
    sentence = corpus.sentences[0]
    assert list(sentence.words) == ["New-York-based", "firm", "Acme", "Corp", ".", "hired", "John", "Smith", "."]
    assert list(sentence.spans) == [("ORG", 2, 4), ("PER", 6, 8)]
    assert corpus.adjustments == {} and corpus.notes == []


def test_boundary_inside_a_word_is_split_and_counted(tmp_path):
    record = {"text": TEXT, "entities": [{"start": 0, "end": 8, "label": "LOC"}]}
    corpus = read_corpus(write_lines(tmp_path, "t.jsonl", [record]))
    assert list(corpus.sentences[0].words[:2]) == ["New-York", "-based"]
    assert list(corpus.sentences[0].spans) == [("LOC", 0, 1)]
    assert corpus.adjustments["spans_split"] == 1
    assert "1 entity boundaries fell inside words: those words were split" in corpus.notes[0]


def test_boundary_inside_a_word_can_widen_instead(tmp_path):
    record = {"text": TEXT, "entities": [{"start": 4, "end": 8, "label": "LOC"}]}
    corpus = read_corpus(write_lines(tmp_path, "t.jsonl", [record]), alignment="widen")
    assert corpus.sentences[0].words[0] == "New-York-based"
    assert list(corpus.sentences[0].spans) == [("LOC", 0, 1)]
    assert corpus.adjustments["spans_widened"] == 1
    with pytest.raises(ConfigError, match="unknown alignment 'grow'"):
        read_corpus(tmp_path / "t.jsonl", alignment="grow")


def test_whitespace_at_span_edges_is_trimmed_and_blank_spans_counted(tmp_path):
    record = {"text": "in  Paris now", "entities": [[3, 10, "LOC"], [2, 4, "X"]]}
    corpus = read_corpus(write_lines(tmp_path, "t.jsonl", [record]))
    assert list(corpus.sentences[0].spans) == [("LOC", 1, 2)]
    assert corpus.adjustments == {"spans_dropped_blank": 1}
    assert "1 entities covered only whitespace" in corpus.notes[0]


def test_overlapping_spans_error_or_keep_longest(tmp_path):
    record = {"text": "New York City", "entities": [[0, 8, "LOC"], [4, 13, "LOC"], [0, 13, "LOC"], [0, 13, "LOC"]]}
    path = write_lines(tmp_path, "o.jsonl", [record])
    with pytest.raises(DataError, match=r"o.jsonl:1: overlapping entities; expected entities that share no word, "
                                        r"found LOC 'New York City' \(0-13\) and LOC 'New York' \(0-8\).*keep-longest"):
        read_corpus(path)
    corpus = read_corpus(path, overlaps="keep-longest")
    assert list(corpus.sentences[0].spans) == [("LOC", 0, 3)]
    assert corpus.adjustments == {"overlaps_dropped": 2, "duplicate_spans": 1}


def test_span_out_of_range(tmp_path):
    path = write_lines(tmp_path, "r.jsonl", [{"text": "Peter", "entities": [{"start": 0, "end": 9, "label": "PER"}]}])
    with pytest.raises(DataError, match=r"r.jsonl:1: entity 1 \(PER\) is out of range; expected 0 <= start < end "
                                        r"<= 5"):
        read_corpus(path)


@pytest.mark.parametrize("scheme", ["IOB2", "BIOES", "IOB1"])
def test_write_jsonl_round_trip(tmp_path, scheme):
    record = {"text": TEXT, "entities": [[0, 8, "LOC"], [20, 29, "ORG"], [37, 47, "PER"]]}
    corpus = read_corpus(write_lines(tmp_path, "t.jsonl", [record]))
    out = tmp_path / "out.jsonl"
    write_jsonl(corpus, out, scheme=scheme)
    written = json.loads(out.read_text().splitlines()[0])
    assert written["tokens"][:2] == ["New-York", "-based"] and len(written["tags"]) == len(written["tokens"])
    again = read_jsonl(out, scheme=scheme)
    assert [s.spans for s in again] == [s.spans for s in corpus]


# -- text that is not clean Unicode, numbers too big: located errors, never a traceback -------------
@pytest.mark.parametrize("name, raw, message", [
    ("tok.jsonl", '{"tokens": ["ok"], "tags": ["O"]}\n{"tokens": ["a\\ud800"], "tags": ["O"]}\n', "lone surrogate"),
    ("low.jsonl", '{"tokens": ["ok"], "tags": ["O"]}\n{"text": "x\\udc00 y", "entities": []}\n', "lone surrogate"),
    ("key.jsonl", '{"tokens": ["ok"], "tags": ["O"]}\n{"tokens": ["a"], "tags": ["O"], "\\ud83d": 1}\n',
     "lone surrogate"),
    ("arr.json", '[{"tokens": ["ok"], "tags": ["O"]},\n {"tokens": ["\\ude00"], "tags": ["O"]}]\n', "lone surrogate"),
    ("digits.jsonl", '{"tokens": ["ok"], "tags": ["O"]}\n{"tokens": ["a"], "tags": [' + "7" * 5000 + "]}\n",
     "a number in the JSON is too long to read"),
    ("digits.json", '[{"tokens": ["ok"], "tags": ["O"]},\n {"tokens": ["a"], "tags": [' + "7" * 5000 + "]}]\n",
     "a number in the JSON is too long to read"),
    ("deep.jsonl", '{"tokens": ["ok"], "tags": ["O"]}\n' + "[" * 100_000 + "\n", "nested too deeply"),
])
def test_unclean_json_is_a_located_error(tmp_path, name, raw, message):
    with pytest.raises(DataError, match=rf"{name}:2: .*{message}"):
        read_corpus(write_lines(tmp_path, name, None, raw))


def test_surrogate_pairs_are_fine(tmp_path):
    path = write_lines(tmp_path, "pair.jsonl", None, '{"tokens": ["a\\ud83d\\ude00", "\\\\ud800"], "tags": ["O", "O"]}\n')
    assert read_corpus(path).sentences[0].words == ("a😀", "\\ud800")


def test_huge_label_ids_and_offsets_are_located_errors(tmp_path):
    ids = write_lines(tmp_path, "ids.jsonl", [{"tokens": ["a"], "tags": [0]}, {"tokens": ["a"], "tags": [10**400]}])
    with pytest.raises(DataError, match=r"ids.jsonl:2: tag at position 1 is an unknown label id.*found 1000000000"
                                        r"00\.\.\. \(401 digits\)"):
        read_corpus(ids, label_names=["O", "B-X"])
    inf = write_lines(tmp_path, "inf.jsonl", None, '{"text": "abc", "entities": [[0, 1e400, "X"]]}\n')
    with pytest.raises(DataError, match=r"inf.jsonl:1: entity 1 is malformed.*Infinity"):
        read_corpus(inf)
    big = write_lines(tmp_path, "big.jsonl", [{"text": "abc", "entities": [[0, 10**400, "X"]]}])
    with pytest.raises(DataError, match=r"big.jsonl:1: entity 1 \(X\) is out of range.*\(401 digits\)"):
        read_corpus(big)


def test_non_utf8_is_a_located_error(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_bytes(b'{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["caf\xe9"], "tags": ["O"]}\n')
    with pytest.raises(DataError, match=r"l.jsonl:2: the file is not UTF-8 text"):
        read_corpus(path)


def test_write_jsonl_refuses_what_could_not_be_read_back(tmp_path):
    from tokentune.data import Corpus, Sentence

    for word, problem in (("a\ud800", "lone surrogate"), (" ", "blank")):
        corpus = Corpus([Sentence(("ok",), (), 1), Sentence(("x", word), (), 2)], "in.conll")
        with pytest.raises(DataError, match=rf"in.conll:3: word .* cannot be written as JSON Lines: .*{problem}.*"
                                            r"\(sentence 2, word 2\)"):
            write_jsonl(corpus, tmp_path / "out.jsonl")
        assert not list(tmp_path.iterdir())


def test_spacy_records_read_as_plain_jsonl_are_not_silently_empty(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "EU rejects", "ents": [{"start": 0, "end": 2, "label": "ORG"}]}\n')
    with pytest.raises(DataError, match=r"docs.jsonl:1: .*\"ents\".*--format spacy"):
        read_corpus(path)
    assert [s.spans for s in read_corpus(path, format="spacy")] == [(("ORG", 0, 1),)]
    assert [s.spans for s in read_corpus(path, entities_key="ents")] == [(("ORG", 0, 1),)]


def test_a_record_with_its_entities_under_another_key_is_refused(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"text": "Alice met Bob", "spans": [{"start": 0, "end": 5, "label": "PER"}]}\n'
                    '{"text": "Bob met Carol", "entities": [{"start": 0, "end": 3, "label": "PER"}]}\n')
    with pytest.raises(DataError, match=r"mixed.jsonl:2: this record keeps its entities under 'entities', the "
                                        r"file's first under 'spans'"):
        read_corpus(str(path))
    # a record without entities that has a "label" of another kind (a class) is read as having none
    path.write_text('{"text": "Alice met Bob", "entities": [{"start": 0, "end": 5, "label": "PER"}]}\n'
                    '{"text": "Bob met Carol", "label": "positive"}\n{"text": "Nothing here .", "label": []}\n')
    assert [len(s.spans) for s in read_corpus(str(path))] == [1, 0, 0]  # nothing under another key is lost
