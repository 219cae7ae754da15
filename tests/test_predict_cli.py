"""`tokentune predict`: text, JSON lines and CoNLL inputs, streaming in chunks, backends, errors."""
from __future__ import annotations

import gzip
import io
import json
import os

import pytest

import tokentune.data.inputs as inputs
from tokentune.cli.main import main
from tokentune.inference import Tagger

from conftest import assert_same_entities


@pytest.fixture(scope="module")
def model_dir(tiny_model):
    return tiny_model.output_dir


@pytest.fixture(scope="module")
def tagger(model_dir):
    return Tagger.from_pretrained(model_dir)


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_text_arguments_with_options_after_them(model_dir, tagger, capsys):
    code, out, err = _run(capsys, model_dir, "Alice met Bob in Paris .", "--decode", "argmax", "today")
    assert code == 0
    records = _json_lines(out)
    assert [r["text"] for r in records] == ["Alice met Bob in Paris .", "today"]
    argmax = Tagger.from_pretrained(model_dir, decoding="argmax")
    assert_same_entities([records[0]["entities"]], [argmax.predict_text("Alice met Bob in Paris .")])
    assert "words/s" in err and "2 texts, 7 words" in err


def test_whole_texts_flag_reads_each_text_as_one_sequence(model_dir, capsys):
    text = "Alice met Bob in Paris. Globex said Carol visited Oslo. Rome"
    for flags, split in (((), True), (("--whole-texts",), False)):
        code, out, _ = _run(capsys, model_dir, text, "--quiet", *flags)
        expected = Tagger.from_pretrained(model_dir, split_sentences=split).predict_text(text)
        assert code == 0 and _json_lines(out)[0]["entities"] == [e.to_dict() for e in expected]


def test_text_from_stdin_and_file(model_dir, tagger, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("sys.stdin", io.StringIO("Alice met Bob\n\nGlobex said\n"))
    code, out, _ = _run(capsys, model_dir, "--quiet")
    assert code == 0 and [r["text"] for r in _json_lines(out)] == ["Alice met Bob", "", "Globex said"]
    path = tmp_path / "texts.txt"
    path.write_text("Carol visited Oslo\r\nRome\n", encoding="utf-8")
    code, out2, err = _run(capsys, model_dir, "--input", str(path), "--quiet")
    assert code == 0 and err == ""
    assert [r["entities"] for r in _json_lines(out2)] == [[e.to_dict() for e in ents] for ents in
                                                          tagger.predict_texts(["Carol visited Oslo", "Rome"])]


def test_jsonl_text_and_tokens_pass_other_fields_through(model_dir, tagger, capsys, tmp_path):
    path = tmp_path / "in.jsonl"
    rows = [{"id": 1, "text": "Alice in Paris", "meta": {"a": [1]}},
            {"id": 2, "tokens": ["Bob", "visited", "Oslo"]},
            {"id": 3, "words": ["Initech", "and", "Acme"], "tags": "gold replaced"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    code, out, _ = _run(capsys, model_dir, "-i", str(path), "-q")
    assert code == 0
    first, second, third = _json_lines(out)
    assert first["id"] == 1 and first["meta"] == {"a": [1]}
    assert first["entities"] == [e.to_dict() for e in tagger.predict_text("Alice in Paris")]
    expected = tagger.predict_tokens(["Bob", "visited", "Oslo"])
    assert second["tags"] == expected.tags
    assert [(s["label"], s["start"], s["end"]) for s in second["spans"]] == expected.spans
    assert third["id"] == 3 and third["tags"] == tagger.predict_tokens(["Initech", "and", "Acme"]).tags


def test_conll_gets_a_predicted_column(model_dir, tagger, capsys, tmp_path):
    path = tmp_path / "in.conll"
    lines = ["-DOCSTART- -X- -X- O", "", "Alice NNP I-NP I-PER", "met VBD I-VP O", "Rome NNP I-NP I-LOC", "",
             "# a comment", "Bob\tNNP\tI-NP\tx", "works\tVBZ\tI-VP\tx", ""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, _ = _run(capsys, model_dir, "-i", str(path), "-q")
    assert code == 0
    got = out.splitlines()
    assert len(got) == len(lines)
    tags = tagger.predict_token_batches([["Alice", "met", "Rome"], ["Bob", "works"]])
    # -DOCSTART- gets the O of a word (conlleval reads it as one and needs every line's columns alike)
    assert got[:2] == ["-DOCSTART- -X- -X- O O", ""] and got[5:7] == lines[5:7] and got[-1] == ""
    assert got[2:5] == [f"{line} {tag}" for line, tag in zip(lines[2:5], tags[0].tags)]
    assert got[7:9] == [f"{line}\t{tag}" for line, tag in zip(lines[7:9], tags[1].tags)]


def test_conll_named_txt_is_recognised_and_gzip_is_read(model_dir, capsys, tmp_path):
    path = tmp_path / "test.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("-DOCSTART- -X- -X- O\n\nAlice NNP I-NP I-PER\n")
    code, out, _ = _run(capsys, model_dir, "-i", str(path), "-q")
    assert code == 0 and out.splitlines()[2].startswith("Alice NNP I-NP I-PER ")
    code, out, _ = _run(capsys, model_dir, "-i", str(path), "-q", "--format", "text")
    assert code == 0 and len(_json_lines(out)) == 3  # forced: each line is a text


@pytest.mark.parametrize("lines, bad_line, found", [
    (["EU B-ORG", "rejects", "German B-MISC x y", "", "OK O"], 2, "found 1 in 'rejects'"),  # 2, 1 and 4 columns
    (["-DOCSTART- -X- -X- O", "", "# c", "EU", "rejects", "", "call\tO"], 7, "found 2 in 'call\\tO'"),
    (["EU NNP B-ORG", "", "German NNP B-MISC", "call O"], 4, "found 2 in 'call O'"),  # in a later sentence
])
def test_conll_word_lines_of_other_column_counts_are_refused(model_dir, capsys, tmp_path, lines, bad_line, found):
    path = tmp_path / "cols.conll"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.conll"
    code, stdout, err = _run(capsys, model_dir, "-i", str(path), "-o", str(out), "-q")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{path}:{bad_line}: wrong number of columns; expected " in err and found in err, err
    assert "like the file's first word line" in err and "Fix: make every word line have the same columns" in err
    assert not out.exists() and stdout == ""


def test_a_hash_line_the_reader_skips_passes_through(model_dir, tagger, capsys, tmp_path):
    """As read_conll_rows: a '#' line opening a sentence with other columns than the file's is a comment."""
    from tokentune.data.conll import read_conll_rows

    path = tmp_path / "hash.conll"
    path.write_text("EU B-ORG\nrejects O\n\n#doc2 id = 7\nPeter B-PER\n\n#NFL O\n", encoding="utf-8")
    assert [words for _, words, _ in read_conll_rows(str(path))] == [["EU", "rejects"], ["Peter"], ["#NFL"]]
    code, out, err = _run(capsys, model_dir, "-i", str(path), "-q")
    assert code == 0 and err == "", err
    assert out.splitlines()[3] == "#doc2 id = 7" and out.splitlines()[6].startswith("#NFL O ")


def test_conll_of_one_column_with_docstart_comments_and_tabs(model_dir, tagger, capsys, monkeypatch):
    lines = ["-DOCSTART-", "", "# a comment", "Alice", "met", "Rome\t", "", "#", "Bob", ""]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    code, out, err = _run(capsys, model_dir, "-f", "conll", "-q")
    assert code == 0 and err == ""
    tags = tagger.predict_token_batches([["Alice", "met", "Rome"], ["Bob"]])
    got = out.splitlines()
    assert got[:3] == ["-DOCSTART- O", *lines[1:3]] and got[6:8] == lines[6:8]
    assert [line.split()[-1] for line in got[3:6]] == tags[0].tags and got[8].split()[-1] == tags[1].tags[0]
    monkeypatch.setattr("sys.stdin", io.StringIO("-DOCSTART-\t\nAlice\n\t\nBob\n"))  # trailing tabs: no empty column
    code, out, err = _run(capsys, model_dir, "-f", "conll", "-q")
    assert code == 0 and out.splitlines()[0] == "-DOCSTART-\tO" and out.splitlines()[2] == "\t"
    monkeypatch.setattr("sys.stdin", io.StringIO("Alice\n\tO\n"))  # an empty word: refused, as the reader does
    code, out, err = _run(capsys, model_dir, "-f", "conll", "-q")
    assert code == 2 and "<stdin>:2: empty token column; expected a non-empty token" in err and out == ""
    monkeypatch.setattr("sys.stdin", io.StringIO("Alice\nmet O\n"))
    code, out, err = _run(capsys, model_dir, "-f", "conll", "-q")
    assert code == 2 and "<stdin>:2: wrong number of columns; expected 1 column like" in err and out == ""


@pytest.mark.parametrize("lines, expected", [
    (["SOCCER NN I-NP O", "- : O O", "", "Nadim NNP I-NP I-PER", ""], "conll"),  # CoNLL-2003 test: no -DOCSTART- first
    (["# id 1", "Alice\tB-PER", "met\tO", "", "Bob\tB-PER"], "conll"),
    (["Alice met Bob in Rome.", "", "Then she left O"], "text"),
    (["I saw O", "we O"], "text"),  # different widths
    (["Alice B", "met I"], "text"),  # last fields are not tags
])
def test_a_txt_file_of_columns_is_read_as_conll(tmp_path, lines, expected):
    path = tmp_path / "in.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert inputs.guess_format(str(path)) == expected


def test_streams_in_chunks_in_order(model_dir, tagger, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "CHUNK_ITEMS", 3)
    texts = [f"{name} visited {place}" for name, place in zip(["Alice", "Bob", "Carol", "Erika"] * 3,
                                                              ["Paris", "Oslo", "Rome"] * 4)]
    path = tmp_path / "many.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out_path = tmp_path / "out" / "pred.jsonl"
    code, out, err = _run(capsys, model_dir, "-i", str(path), "-o", str(out_path))
    assert code == 0 and out == "" and "12 texts" in err
    records = _json_lines(out_path.read_text(encoding="utf-8"))
    assert [r["text"] for r in records] == texts
    assert [r["entities"] for r in records] == [[e.to_dict() for e in ents] for ents in tagger.predict_texts(texts)]
    assert os.listdir(out_path.parent) == ["pred.jsonl"]  # the temporary file was renamed


def test_reading_is_lazy():
    """A chunk is predicted before the rest of the input is read: memory stays flat on long inputs."""
    def items():
        for i in range(inputs.CHUNK_ITEMS):
            yield inputs.Item("text", text=str(i))
        raise AssertionError("read past the first chunk")

    first = next(inputs.chunks(items()))
    assert len(first) == inputs.CHUNK_ITEMS


def test_user_errors_exit_2(model_dir, capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    code, out, err = _run(capsys, model_dir, "-i", str(bad), "-o", str(tmp_path / "o.jsonl"))
    assert code == 2 and f"{bad}:2: not valid JSON" in err
    bad.write_text('{"text": "ok"}\n{"text": "abc\n', encoding="utf-8")
    code, _, err = _run(capsys, model_dir, "-i", str(bad))
    assert code == 2 and f"{bad}:2: not valid JSON (Unterminated string starting at column 10)" in err
    assert not (tmp_path / "o.jsonl").exists() and not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    bad.write_text('{"id": 1}\n', encoding="utf-8")
    code, _, err = _run(capsys, model_dir, "-i", str(bad))
    assert code == 2 and "neither" in err
    code, _, err = _run(capsys, model_dir, "hello", "--format", "conll")
    assert code == 2 and "--input" in err
    code, _, err = _run(capsys, model_dir, "-i", str(tmp_path / "missing.txt"))
    assert code == 2 and "file not found" in err
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    code, _, err = _run(capsys, model_dir, "-i", str(latin))
    assert code == 2 and "not UTF-8" in err
    code, _, err = _run(capsys, model_dir, "x", "--backend", "torch", "--quantize", "int8")
    assert code == 2 and "--backend onnx" in err
    code, _, err = _run(capsys, model_dir, "x", "--backend", "onnx")
    assert code == 2 and "tokentune export" in err


def test_parquet_without_ray_is_refused_before_the_model_loads(model_dir, capsys, tmp_path):
    """Not a Parquet file read as text that is not UTF-8, nor JSON lines written under a .parquet name."""
    texts = tmp_path / "in.txt"
    texts.write_text("Alice met Bob\n", encoding="utf-8")
    (tmp_path / "in.parquet").write_bytes(b"PAR1 not really")
    for argv, flag in ((["-i", str(tmp_path / "in.parquet")], "--input"),
                       (["-i", str(texts), "-o", str(tmp_path / "out.PARQUET")], "--output")):
        code, out, err = _run(capsys, model_dir, *argv)
        assert code == 2 and out == ""
        assert err.startswith(f"tokentune predict: error: {flag} ") and "is Parquet, which predict reads and writes with " \
            "--ray only. Fix: add --ray auto" in err and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["in.parquet", "in.txt"]


def test_onnx_backend_is_chosen_for_an_exported_directory(model_dir, capsys, tmp_path):
    tagger = Tagger.from_pretrained(model_dir, precision="fp32")  # as the ONNX file computes
    output = tmp_path / "onnx"
    assert main(["export", model_dir, "-o", str(output), "--quantize", "int8", "-q"]) == 0
    capsys.readouterr()
    text = "Alice met Bob in Paris ."
    code, out, err = _run(capsys, str(output), text)
    assert code == 0 and "backend onnx" in err
    onnx, torch_entities = _json_lines(out)[0]["entities"], [e.to_dict() for e in tagger.predict_text(text)]
    assert [{**e, "score": None} for e in onnx] == [{**e, "score": None} for e in torch_entities]
    # scores are rounded to 6 decimals: float differences between the engines may move the last one
    assert [e["score"] for e in onnx] == pytest.approx([e["score"] for e in torch_entities], abs=2e-6)
    code, out, err = _run(capsys, str(output), "--quantize", "int8", text)
    assert code == 0 and [e["text"] for e in _json_lines(out)[0]["entities"]] == ["Alice", "Bob", "Paris"]


def test_threads_option(model_dir, tagger, capsys, monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)  # keep the test process's own setting
    code, out, _ = _run(capsys, model_dir, "Alice met Bob", "--threads", "1", "-q")
    assert code == 0 and calls == [1]
    assert _json_lines(out)[0]["entities"] == [e.to_dict() for e in tagger.predict_text("Alice met Bob")]
    code, _, err = _run(capsys, model_dir, "x", "--threads", "0")
    assert code == 2 and "--threads" in err


def test_unclean_input_is_a_located_error_and_leaves_no_output(model_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "CHUNK_ITEMS", 2)  # the bad line comes after chunks were written
    out = tmp_path / "o.jsonl"
    cases = {
        "latin.txt": b"Alice met Bob\nParis\nRome\ncaf\xe9\n",
        "cr.txt.gz": b"not gzip",
        "sur.jsonl": b'{"text": "Alice"}\n{"text": "Bob"}\n{"text": "ok"}\n{"text": "x\\ud800"}\n',
        "big.jsonl": b'{"text": "Alice"}\n{"text": "Bob"}\n{"text": "ok"}\n{"id": ' + b"9" * 5000 + b', "text": "x"}\n',
        "deep.jsonl": b'{"text": "Alice"}\n{"text": "Bob"}\n{"text": "ok"}\n' + b"[" * 100_000 + b"\n",
        "sur.conll": b"Alice x\n\nBob x\n\nok x\n\n\xed\xa0\x80 x\n",
    }
    expected = {"latin.txt": ":4: the file is not UTF-8", "cr.txt.gz": ": the file is named .gz but is not gzip",
                "sur.jsonl": ":4: a JSON string "
                "holds a lone surrogate", "big.jsonl": ":4: a number in the JSON is too long", "deep.jsonl": ":4: the "
                "JSON is nested too deeply", "sur.conll": ":7: the file is not UTF-8"}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        code, _, err = _run(capsys, model_dir, "-i", str(path), "-o", str(out), "-q")
        assert code == 2 and "Traceback" not in err and f"{path}{expected[name]}" in err, err
        assert sorted(os.listdir(tmp_path)) == sorted(n for n in cases if (tmp_path / n).exists())  # no output, no .tmp


def test_non_utf8_stdin_and_arguments(model_dir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"Alice\r\nBob\rcaf\xe9\n")))
    code, out, err = _run(capsys, model_dir, "-q")
    assert code == 2 and "<stdin>:3: the file is not UTF-8 text" in err
    code, _, err = _run(capsys, model_dir, "caf\udce9", "-q")  # how Python passes on argv bytes that are not UTF-8
    assert code == 2 and "TEXT argument 1 is not UTF-8 text" in err


def test_cr_line_ends_and_nfd_text(model_dir, tagger, capsys, tmp_path):
    path = tmp_path / "cr.txt"
    path.write_bytes("Alice met Zoe\u0301\rin Me\u0301xico\r".encode())
    code, out, _ = _run(capsys, model_dir, "-i", str(path), "-q")
    records = [json.loads(line) for line in out.split("\n") if line]
    assert code == 0 and [r["text"] for r in records] == ["Alice met Zoe\u0301", "in Me\u0301xico"]
    for record in records:
        assert all(record["text"][e["start"]:e["end"]] == e["text"] for e in record["entities"])
