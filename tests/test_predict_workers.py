"""`tokentune predict --workers N`: the output of N worker processes is the output of one, byte for byte
and in input order, for text, JSON lines and CoNLL input; errors stay one line with nothing written.

Both sides run one thread per process (``--threads 1``): MKL sums some matrix products in an order that
depends on the thread count, which can move a score's sixth decimal; with equal thread counts the
numbers are the same bit for bit."""
from __future__ import annotations

import json
import random

import pytest

import tokentune.data.inputs as inputs
from tokentune.cli.main import main
from tokentune.inference.parallel import ChunkPredictor, rebuild_error

from conftest import make_sentences


@pytest.fixture(scope="module")
def model_dir(tiny_model):
    return tiny_model.output_dir


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 7 items, so that a small input is many chunks shared by the workers; torch's thread
    count (which ``--threads`` sets in this process) restored afterwards."""
    import torch

    monkeypatch.setattr(inputs, "CHUNK_ITEMS", 7)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _sentences(count: int) -> list[list[str]]:
    return [[word for word, _ in sentence] for sentence in make_sentences(count, seed=11)]


def _write_input(tmp_path, fmt: str):
    sentences = _sentences(60)
    rng = random.Random(5)
    if fmt == "text":
        path = tmp_path / "in.txt"
        lines = [" ".join(words) if i % 9 else "" for i, words in enumerate(sentences)]  # blank lines too
    elif fmt == "jsonl":
        path = tmp_path / "in.jsonl"
        lines = [json.dumps({"id": i, "text": " ".join(words)} if rng.random() < 0.5 else {"id": i, "tokens": words},
                            ensure_ascii=False) for i, words in enumerate(sentences)]
    else:
        path = tmp_path / "in.conll"
        lines = ["-DOCSTART- -X- -X- O", ""]
        for i, words in enumerate(sentences):
            lines += [f"{word} NNP O" for word in words] + ([""] if i % 20 != 19 else ["", "-DOCSTART- -X- -X- O", ""])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _predict(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("fmt", ["text", "jsonl", "conll"])
def test_two_workers_write_what_one_process_writes(model_dir, tmp_path, out_dir, capsys, small_chunks, fmt):
    source = _write_input(tmp_path, fmt)
    one, two = out_dir / f"one.{fmt}", out_dir / f"two.{fmt}"
    code, _, err_one = _predict(capsys, model_dir, "-i", str(source), "-o", str(one), "--threads", "1")
    assert code == 0, err_one
    code, out, err_two = _predict(capsys, model_dir, "-i", str(source), "-o", str(two), "--workers", "2", "--threads", "1")
    assert code == 0, err_two
    assert out == "" and two.read_bytes() == one.read_bytes()
    assert "words/s" in err_two and "2 workers" in err_two
    assert err_one.split(" words in ")[0] == err_two.split(" words in ")[0]  # the same counts
    if fmt == "jsonl":  # in input order
        assert [json.loads(line)["id"] for line in two.read_text(encoding="utf-8").splitlines()] == list(range(60))
    else:
        assert len(one.read_text(encoding="utf-8").splitlines()) >= 60


def test_workers_to_stdout_keep_the_input_order(model_dir, tmp_path, capsys, small_chunks):
    source = _write_input(tmp_path, "text")
    code, single, _ = _predict(capsys, model_dir, "-i", str(source), "-q", "--threads", "1")
    assert code == 0
    code, parallel, err = _predict(capsys, model_dir, "-i", str(source), "-q", "--workers", "2", "--threads", "1")
    assert code == 0 and err == ""
    assert parallel == single
    texts = [json.loads(line)["text"] for line in parallel.splitlines()]
    assert texts == source.read_text(encoding="utf-8").splitlines()


def test_a_bad_line_is_one_error_and_no_output(model_dir, tmp_path, out_dir, capsys, small_chunks):
    source = tmp_path / "bad.jsonl"
    lines = [json.dumps({"text": " ".join(words)}) for words in _sentences(40)]
    lines[33] = '{"text": "Alice met Bob'  # cut short: past the first few chunks
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    target = out_dir / "out.jsonl"
    code, out, err = _predict(capsys, model_dir, "-i", str(source), "-o", str(target), "--workers", "2")
    assert code == 2 and out == ""
    assert f"{source}:34" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not target.exists() and list(out_dir.iterdir()) == []  # no temporary left either


def test_an_error_in_the_workers_is_the_error_of_one_process(model_dir, tmp_path, capsys):
    source = _write_input(tmp_path, "text")
    args = [model_dir, "-i", str(source), "--backend", "onnx"]  # no model.onnx in the directory
    code_one, _, err_one = _predict(capsys, *args)
    code_two, out, err_two = _predict(capsys, *args, "--workers", "2")
    assert code_one == code_two == 2 and out == ""
    assert err_two == err_one and "no ONNX model" in err_two and len(err_two.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["0", "-1"])
def test_workers_must_be_one_or_more(model_dir, capsys, value):
    code, out, err = _predict(capsys, model_dir, "Alice met Bob", "--workers", value)
    assert code == 2 and out == "" and "--workers" in err


def test_onnx_backend_in_workers(model_dir, tmp_path, out_dir, capsys, small_chunks):
    pytest.importorskip("onnxruntime")
    exported = out_dir / "onnx"
    assert main(["export", model_dir, "--output", str(exported)]) == 0
    source = _write_input(tmp_path, "jsonl")
    one, two = out_dir / "one.jsonl", out_dir / "two.jsonl"
    common = ["-i", str(source), "-q", "--threads", "1"]
    assert main(["predict", str(exported), *common, "-o", str(one)]) == 0
    assert main(["predict", str(exported), *common, "-o", str(two), "--workers", "2"]) == 0
    assert two.read_bytes() == one.read_bytes()
    capsys.readouterr()


def test_a_remote_error_keeps_its_type_and_text():
    from tokentune.errors import DataError, OutputError

    error = rebuild_error(OutputError, "cannot write x: full. Fix: free space")
    assert isinstance(error, OutputError) and str(error) == "cannot write x: full. Fix: free space"
    assert isinstance(rebuild_error(ValueError, "x"), Exception) and str(rebuild_error(DataError, "f:1: bad")) == "f:1: bad"


def test_one_worker_uses_the_tagger_given(model_dir):
    from tokentune.inference import Tagger

    tagger = Tagger.from_pretrained(model_dir)
    items = [inputs.Item("text", text="Alice met Bob in Paris"), inputs.Item("raw", lines=[""])]
    with ChunkPredictor({"model_dir": "/nonexistent"}, tagger=tagger) as predictor:
        (result,) = list(predictor.predict([items]))
    assert result.items == 1 and result.words == 5 and len(result.lines) == 2
    assert json.loads(result.lines[0])["entities"] == [e.to_dict() for e in tagger.predict_text("Alice met Bob in Paris")]
