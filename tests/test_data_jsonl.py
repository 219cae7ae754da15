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
