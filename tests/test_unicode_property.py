"""Random bytes and random Unicode (surrogates, NFD, bidi controls, NUL, emoji) through `predict`,
`convert` and the JSON readers: only tokentune's own errors (exit code 2) ever come out, and a
prediction's offsets are always exact (``text[start:end] == entity text``)."""
from __future__ import annotations

import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tokentune.cli.main import main
from tokentune.data import read_corpus
from tokentune.errors import TokentuneError

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# known names from the tiny model's data, so that some entities are found; then the awkward characters
PIECES = ["Alice", "Bob", "Paris", "Acme", "Zoe\u0301", "Me\u0301xico", "\u0301", "\u0308", "\u093e", "\u202e", "\u200f",
          "\u2066", "\u200d", "\ufe0f", "\x00", "\ufeff", "😀", "👨\u200d👩\u200d👧", "\ud800", "\udfff", "\ud83d", " ",
          "\t", "\n", "\r", "\r\n", "\u2028", "\x85", "\x0b", "-DOCSTART-", "#", "# ", "B-PER", "O", "'s", "U.S.", "3.5"]
TEXT = st.lists(st.one_of(st.sampled_from(PIECES), st.characters(codec=None)), max_size=30).map("".join)


def to_bytes(text: str) -> bytes:
    """UTF-8, with any lone surrogate written as its 3 bytes (which no strict reader accepts)."""
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def model_dir(tiny_model):
    """The tiny model; `predict` gets an already loaded Tagger (loading it per example is slow)."""
    from tokentune.inference import tagger as tagger_module

    tagger = tagger_module.Tagger.from_pretrained(tiny_model.output_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tagger_module.Tagger, "from_pretrained", classmethod(lambda cls, *args, **kwargs: tagger))
        yield tiny_model.output_dir


def predict_file(model_dir: str, data: bytes, name: str, fmt: str | None) -> tuple[int, str | None]:
    with tempfile.TemporaryDirectory() as tmp:
        path, out = os.path.join(tmp, name), os.path.join(tmp, "out")
        with open(path, "wb") as handle:
            handle.write(data)
        code = main(["predict", model_dir, "-i", path, "-o", out, "-q", *(["--format", fmt] if fmt else [])])
        assert code in (0, 2)
        event(f"predict exit {code}")
        left = sorted(os.listdir(tmp))
        assert left == sorted([name, "out"] if code == 0 else [name])  # no stray temporary files
        if code:
            return code, None
        with open(out, encoding="utf-8") as handle:
            return code, handle.read()


def check_output(output: str, fmt: str) -> None:
    lines = output.split("\n")  # not splitlines(): U+2028 and friends stay inside a record
    assert lines[-1] == ""
    for line in lines[:-1]:
        if fmt == "conll":
            continue
        record = json.loads(line)
        for entity in record.get("entities", []):
            assert record["text"][entity["start"]:entity["end"]] == entity["text"]
        if "tags" in record:
            words = record.get("tokens", record.get("words"))
            assert len(record["tags"]) == len(words)
            assert all(0 <= s["start"] < s["end"] <= len(words) for s in record["spans"])


@SETTINGS
@given(st.lists(TEXT, min_size=1, max_size=4), st.sampled_from(["text", "jsonl", "conll"]), st.booleans())
def test_predict_on_random_unicode(model_dir, texts, fmt, escaped):
    if fmt == "jsonl":  # escapes: lone surrogates arrive as \ud800 in valid UTF-8; raw: as bad bytes
        lines = [json.dumps({"text": t} if i % 2 else {"id": i, "tokens": t.split(" ")}, ensure_ascii=escaped)
                 for i, t in enumerate(texts)]
    else:
        lines = texts
    code, output = predict_file(model_dir, to_bytes("\n".join(lines) + "\n"), "in.data", fmt)
    if code == 0:
        check_output(output, fmt)
    if code == 0 and fmt == "text":
        content = "\n".join(texts) + "\n"
        content = content[1:] if content.startswith("\ufeff") else content  # a BOM, dropped
        sent = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")[:-1]
        assert [json.loads(line)["text"] for line in output.split("\n")[:-1]] == sent


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from([("in.txt", None), ("in.jsonl", None), ("in.conll", None),
                                                 ("in.gz", "text")]))
def test_predict_on_random_bytes(model_dir, data, name_format):
    name, fmt = name_format
    code, output = predict_file(model_dir, data, name, fmt)
    if code == 0:
        check_output(output, "jsonl" if name.endswith(".jsonl") else ("conll" if name.endswith(".conll") else "text"))


@SETTINGS
@given(st.lists(st.lists(TEXT, min_size=1, max_size=4), min_size=1, max_size=3), st.booleans(),
       st.sampled_from(["out.conll", "out.jsonl"]))
def test_convert_random_unicode_tokens(tokens, escaped, target):
    records = [json.dumps({"tokens": words, "tags": ["B-PER"] + ["O"] * (len(words) - 1)}, ensure_ascii=escaped)
               for words in tokens]
    convert_only_our_errors(to_bytes("\n".join(records) + "\n"), "in.jsonl", target)


@SETTINGS
@given(st.lists(TEXT, min_size=1, max_size=3), st.booleans(), st.sampled_from(["out.conll", "out.jsonl"]))
def test_convert_random_unicode_text(texts, escaped, target):
    records = [json.dumps({"text": t, "entities": [[0, min(3, len(t)), "PER"]] if t.strip() else []},
                          ensure_ascii=escaped) for t in texts]
    convert_only_our_errors(to_bytes("\n".join(records) + "\n"), "in.jsonl", target)


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from(["in.conll", "in.jsonl", "in.json"]),
       st.sampled_from(["out.conll", "out.jsonl"]))
def test_convert_random_bytes(data, name, target):
    convert_only_our_errors(data, name, target)


def convert_only_our_errors(data: bytes, name: str, target: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path, out = os.path.join(tmp, name), os.path.join(tmp, target)
        with open(path, "wb") as handle:
            handle.write(data)
        code = main(["convert", path, out])
        assert code in (0, 2)
        event(f"convert exit {code}")
        assert sorted(os.listdir(tmp)) == sorted([name, target] if code == 0 else [name])
        if code == 0:  # nothing lost: the words come back as they were read
            source, written = read_corpus(path), read_corpus(out)
            assert [s.words for s in written] == [s.words for s in source]


@SETTINGS
@given(st.lists(TEXT, min_size=1, max_size=3), st.booleans(), st.sampled_from(["tokens", "text"]))
def test_json_readers_on_random_unicode(texts, escaped, shape):
    if shape == "tokens":
        records = [{"tokens": t.split(" "), "tags": ["O"] * len(t.split(" "))} for t in texts]
    else:
        records = [{"text": t, "entities": [[0, len(t), "X"]] if t.strip() else []} for t in texts]
    data = to_bytes("".join(json.dumps(r, ensure_ascii=escaped) + "\n" for r in records))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "d.jsonl")
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            corpus = read_corpus(path)
        except TokentuneError:
            event("refused")
            return
    for sentence in corpus:
        assert sentence.words and all(w.strip() for w in sentence.words)
        assert all(w.encode("utf-8") for w in sentence.words)  # never a lone surrogate
