"""Prediction over Ray Data (`predict --ray`, `tokentune.predict_dataset`): JSON lines and Parquet in and
out, one output record per input record in input order, the records single-process `predict` writes.

One local Ray (2 CPUs) serves the module; the single-process runs use one thread, as each actor does
(MKL's sums can depend on the thread count in the last digit of a score)."""
from __future__ import annotations

import json
import os

import pytest

from tokentune.cli.main import main

from conftest import make_sentences

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def model_dir(tiny_model):
    return tiny_model.output_dir


def _records(kind: str, count: int = 50) -> list[dict]:
    sentences = [[word for word, _ in sentence] for sentence in make_sentences(count, seed=23)]
    if kind == "text":
        return [{"id": i, "text": " ".join(words), "source": f"doc{i % 3}"} for i, words in enumerate(sentences)]
    return [{"id": i, "tokens": words} for i, words in enumerate(sentences)]


def _write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _single(capsys, model_dir, source, target) -> list[dict]:
    assert main(["predict", model_dir, "-i", str(source), "-o", str(target), "-q", "--threads", "1"]) == 0
    capsys.readouterr()
    return [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]


def test_jsonl_in_and_out_is_what_one_process_writes(local_ray, model_dir, tmp_path, out_dir, capsys, one_thread):
    source = tmp_path / "in.jsonl"
    _write_jsonl(source, _records("text"))
    expected = _single(capsys, model_dir, source, out_dir / "single.jsonl")
    target = out_dir / "ray.jsonl"
    code = main(["predict", model_dir, "-i", str(source), "-o", str(target), "--ray", "auto", "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "50 records" in err and "words/s" in err and "2 Ray actors" in err
    assert target.read_bytes() == (out_dir / "single.jsonl").read_bytes()  # the same lines, in order
    assert [r["id"] for r in expected] == list(range(50)) and all("entities" in r for r in expected)


def test_parquet_in_and_out_holds_the_same_records(local_ray, model_dir, tmp_path, out_dir, capsys, one_thread):
    import pyarrow as pa

    records = _records("tokens")
    source, parquet = tmp_path / "in.jsonl", tmp_path / "in.parquet"
    _write_jsonl(source, records)
    pq.write_table(pa.Table.from_pylist(records), parquet, row_group_size=7)  # several blocks
    expected = _single(capsys, model_dir, source, out_dir / "single.jsonl")
    target = out_dir / "ray.parquet"
    assert main(["predict", model_dir, "-i", str(parquet), "-o", str(target), "--ray", "auto", "-q",
                 "--workers", "2"]) == 0
    assert pq.read_table(target).to_pylist() == expected
    assert [r["id"] for r in expected] == list(range(50)) and all("tags" in r and "spans" in r for r in expected)


def test_predict_dataset_returns_a_dataset_in_input_order(local_ray, model_dir):
    import tokentune
    from tokentune.inference import Tagger

    records = _records("tokens", 30)
    dataset = ray.data.from_items([{"n": r["id"], "words": r["tokens"]} for r in records], override_num_blocks=4)
    rows = tokentune.predict_dataset(model_dir, dataset, tokens_column="words", concurrency=2).take_all()
    assert [row["n"] for row in rows] == list(range(30))
    assert set(rows[0]) == {"n", "words", "tags", "spans"}
    tagger = Tagger.from_pretrained(model_dir)
    expected = tagger.predict_token_batches([r["tokens"] for r in records])
    assert [row["tags"] for row in rows] == [p.tags for p in expected]
    assert [[(s["label"], s["start"], s["end"]) for s in row["spans"]] for row in rows] == [p.spans for p in expected]


def test_the_returned_dataset_keeps_input_order_however_it_is_consumed(local_ray, model_dir):
    from ray.data import DataContext

    import tokentune

    records = _records("tokens", 60)
    dataset = ray.data.from_items([{"n": r["id"], "words": r["tokens"]} for r in records], override_num_blocks=12)
    assert not DataContext.get_current().execution_options.preserve_order  # the caller's, left as it was
    predicted = tokentune.predict_dataset(model_dir, dataset, tokens_column="words", concurrency=2, rows_per_batch=3)
    assert not DataContext.get_current().execution_options.preserve_order
    assert [row["n"] for row in predicted.take_all()] == list(range(60))
    assert [n for batch in predicted.iter_batches(batch_size=7) for n in batch["n"]] == list(range(60))
    assert predicted.to_pandas()["n"].tolist() == list(range(60))
    assert [row["n"] for row in predicted.map(lambda row: row).take_all()] == list(range(60))


def _free_cpus_become(count: float) -> None:
    """Wait (at most 20 s) until Ray's view of the free CPUs, which lags a little, shows ``count``."""
    import time

    deadline = time.monotonic() + 20
    while ray.available_resources().get("CPU", 0.0) != count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0.0) == count


def test_actors_share_the_cpus_that_are_free(local_ray, model_dir, tmp_path, out_dir, monkeypatch):
    import tokentune
    from tokentune.inference.ray_batch import placeable, shared_cpus

    source = tmp_path / "in.jsonl"
    _write_jsonl(source, _records("text", 12))

    class Holder:  # defined here, so that Ray sends it by value (a worker cannot import this test module)
        def ready(self) -> bool:
            return True

    holder = ray.remote(num_cpus=1)(Holder).remote()  # another job's actor, holding 1 of the 2 CPUs
    ray.get(holder.ready.remote())
    try:
        _free_cpus_become(1.0)
        assert (placeable(1, 2, 0.5), placeable(1, 1, 5.0)) == (False, True)
        assert shared_cpus(1) == 1  # asking for both would wait for ever
        written = tokentune.predict_dataset(model_dir, str(source), output=str(out_dir / "busy.jsonl"))
        assert (written.records, written.cpus_per_actor) == (12, 1)
        with monkeypatch.context() as patch:  # a stale view of the free CPUs: the placement probe still says no
            patch.setattr(ray, "available_resources", lambda: {"CPU": 2.0})
            assert shared_cpus(1, probe_seconds=0.5) == 1
    finally:
        ray.kill(holder)
    _free_cpus_become(2.0)
    written = tokentune.predict_dataset(model_dir, str(source), output=str(out_dir / "free.jsonl"))
    assert (written.records, written.cpus_per_actor) == (12, 2)
    busy, free = ([json.loads(line) for line in (out_dir / name).read_text(encoding="utf-8").splitlines()]
                  for name in ("busy.jsonl", "free.jsonl"))  # 1 thread against 2: scores may differ in the 6th decimal
    assert [[{**e, "score": round(e["score"], 4)} for e in r["entities"]] for r in busy] == \
        [[{**e, "score": round(e["score"], 4)} for e in r["entities"]] for r in free]


def test_user_errors_are_one_line_and_write_nothing(local_ray, model_dir, tmp_path, out_dir, capsys):
    import pyarrow as pa

    source = tmp_path / "in.jsonl"
    _write_jsonl(source, [{"text": "Alice met Bob"}, {"text": None}, {"text": "Rome"}])
    target = out_dir / "out.jsonl"
    code = main(["predict", model_dir, "-i", str(source), "-o", str(target), "--ray", "auto"])
    err = capsys.readouterr().err
    assert code == 2 and f'{source}:2: the "text" field is not a string' in err  # as it is read, with its line
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    parquet = tmp_path / "in.parquet"  # Parquet's rows are checked in the actors, by record
    pq.write_table(pa.table({"text": ["Alice met Bob", None, "Rome"]}), parquet)
    code = main(["predict", model_dir, "-i", str(parquet), "-o", str(target), "--ray", "auto"])
    err = capsys.readouterr().err
    assert code == 2 and "record 2" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    mixed = tmp_path / "mixed.jsonl"
    _write_jsonl(mixed, [{"text": "Alice", "n": 1}, {"text": "Bob", "n": "x"}])  # a field of two types: no table
    code = main(["predict", model_dir, "-i", str(mixed), "-o", str(target), "--ray", "auto"])
    err = capsys.readouterr().err
    assert code == 2 and f'{mixed}:2: field "n" is a string here but a number on line 1' in err
    assert len(err.strip().splitlines()) == 1
    assert list(out_dir.iterdir()) == []
    assert main(["predict", model_dir, "Alice", "--ray", "auto"]) == 2
    assert "--ray reads a file" in capsys.readouterr().err


def test_an_address_nothing_answers_on_is_refused_at_once():
    from tokentune.errors import ConfigError
    from tokentune.inference.ray_batch import check_reachable

    with pytest.raises(ConfigError, match="cannot connect to Ray at 127.0.0.1:1"):
        check_reachable("127.0.0.1:1")
    check_reachable("auto")  # not host:port: left to Ray


def test_without_ray_the_flag_says_how_to_install_it(model_dir, tmp_path, capsys, monkeypatch):
    import sys

    source = tmp_path / "in.jsonl"
    _write_jsonl(source, [{"text": "Alice"}])
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["predict", model_dir, "-i", str(source), "--ray", "auto"]) == 2
    assert "pip install 'tokentune[ray]'" in capsys.readouterr().err


def test_predict_dataset_checks_its_arguments_before_ray_starts(model_dir, tmp_path, monkeypatch):
    import tokentune.inference.ray_batch as ray_batch
    from tokentune import predict_dataset
    from tokentune.errors import ConfigError, ModelError

    monkeypatch.setattr(ray_batch, "connect", lambda address: pytest.fail("Ray was reached"))
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "Alice met Bob"}\n')
    (tmp_path / "not-a-model").mkdir()  # a directory here is checked here; elsewhere it may be on the cluster only
    with pytest.raises(ModelError, match="not-a-model"):
        predict_dataset(str(tmp_path / "not-a-model"), str(data))
    with pytest.raises(ConfigError, match="unknown decoding 'nope'"):
        predict_dataset(model_dir, str(data), decoding="nope")
    with pytest.raises(ConfigError, match="written as Parquet or JSON lines, not .csv"):
        predict_dataset(model_dir, str(data), output=str(tmp_path / "out.csv"))
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl", "not-a-model"]
