"""Fuzzing every reader: random bytes, random near-valid text and truncated files.

Whatever the input, only tokentune's own errors may escape: a user must never see a traceback.
"""
from __future__ import annotations

import gzip
import json
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokentune.data import read_corpus
from tokentune.errors import TokentuneError

SUFFIXES = [".conll", ".conll.gz", ".jsonl", ".json", ".jsonl.gz"]
# pieces that steer random text into the readers' interesting branches
PIECES = ["B-PER", "I-PER", "E-LOC", "S-LOC", "O", "B-", "X", "\t", " ", "\n", "\n\n", "\r\n", "-DOCSTART-", "#",
          "{", "}", "[", "]", ",", ":", '"tokens"', '"tags"', '"text"', '"entities"', '"start"', '"end"', '"label"',
          '["a", "b"]', '["O", "B-X"]', "0", "1", "-1", "99", "null", "true", "1.5", '"x"', "\ufeff", "\u2028", "é"]
OPTION_SETS = [{}, {"scheme": "BIOES"}, {"scheme": "IOB2", "repair": "error"}, {"repair": "drop-entity"},
               {"label_names": ["O", "B-X"]}, {"overlaps": "keep-longest", "alignment": "widen"},
               {"token_column": 1, "label_column": 0}]
SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

VALID_CONLL = "-DOCSTART- -X- O\n\nEU NNP I-ORG\nrejects VBZ O\n\nPeter NNP I-PER\nBlackburn NNP B-PER\n"
VALID_JSONL = (json.dumps({"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}) + "\n"
               + json.dumps({"text": "Acme Corp. hired John.", "entities": [[0, 9, "ORG"], [17, 21, "PER"]]}) + "\n")
VALID_TEXT = json.dumps({"text": "Acme Corp. hired John.", "entities": [[0, 9, "ORG"], [3, 8, "X"]]}) + "\n"


def read_only_our_errors(data: bytes, suffix: str, options: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train" + suffix)
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            corpus = read_corpus(path, **options)
        except TokentuneError as err:
            assert str(err)  # a message, whatever it is
            return
        assert len(corpus) > 0 and all(s.words for s in corpus)
        for sentence in corpus:
            assert all(0 <= start < end <= len(sentence.words) for _, start, end in sentence.spans)


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from(SUFFIXES), st.sampled_from(OPTION_SETS))
def test_random_bytes(data, suffix, options):
    read_only_our_errors(data, suffix, options)


@SETTINGS
@given(st.lists(st.sampled_from(PIECES), max_size=60), st.sampled_from(SUFFIXES), st.sampled_from(OPTION_SETS))
def test_random_near_valid_text(pieces, suffix, options):
    data = "".join(pieces).encode("utf-8")
    if suffix.endswith(".gz"):
        data = gzip.compress(data)
    read_only_our_errors(data, suffix, options)


@SETTINGS
@given(st.sampled_from([(VALID_CONLL, ".conll"), (VALID_JSONL, ".jsonl"), (VALID_TEXT, ".jsonl"),
                        ("[" + VALID_JSONL.replace("\n", ",\n").rstrip(",\n") + "]", ".json")]),
       st.floats(0, 1), st.booleans(), st.sampled_from(OPTION_SETS))
def test_truncated_files(valid, fraction, compress, options):
    text, suffix = valid
    data = text.encode("utf-8")
    if compress:
        data, suffix = gzip.compress(data), suffix + ".gz"
    read_only_our_errors(data[: int(len(data) * fraction)], suffix, options)


@SETTINGS
@given(st.text(max_size=200), st.lists(st.tuples(st.integers(-3, 210), st.integers(-3, 210),
                                                 st.sampled_from(["PER", "LOC", "", 3])), max_size=5),
       st.sampled_from(OPTION_SETS))
def test_random_text_records(text, entities, options):
    record = {"text": text, "entities": [list(e) for e in entities]}
    read_only_our_errors((json.dumps(record) + "\n").encode("utf-8", "surrogatepass"), ".jsonl", options)
