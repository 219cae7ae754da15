"""What `predict --ray` and `tokentune.predict_dataset` read: the same records, split by the same line rules
and refused with the same located errors as single-process `predict`, empty inputs, bad Parquet, and the
input cut into enough blocks for every actor.

One local Ray (2 CPUs) serves the module; single-process runs use one thread, as each actor does."""
from __future__ import annotations

import gzip
import json
import re
import warnings

import pytest

from tokentune.cli.main import main
from tokentune.errors import ConfigError, DataError

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def model_dir(tiny_model):
    return tiny_model.output_dir


def _one_line_error(capsys, args) -> str:
    """The CLI's stderr for ``args``, which must be a user error: exit 2, one line, no traceback."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


# -- defect: bad Parquet input crashed with a ValueError / ArrowInvalid traceback

def test_parquet_input_that_holds_no_parquet_is_a_data_error(local_ray, model_dir, tmp_path, out_dir, capsys):
    import tokentune

    empty = tmp_path / "empty"
    empty.mkdir()
    jsonl_dir = tmp_path / "jsonl"
    jsonl_dir.mkdir()
    (jsonl_dir / "a.jsonl").write_text('{"text": "Alice"}\n', encoding="utf-8")
    fake = tmp_path / "fake.parquet"
    fake.write_text("Alice met Bob\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{empty}: no Parquet file in the folder") + ".*found an empty folder"):
        tokentune.predict_dataset(model_dir, str(empty))
    with pytest.raises(DataError, match=re.escape(f"{jsonl_dir}: no Parquet file") + ".*found 1 other file \\(a.jsonl\\)"
                                        ".*input_format='jsonl'"):
        tokentune.predict_dataset(model_dir, str(jsonl_dir))
    with pytest.raises(DataError, match=re.escape(f"{fake}: not a Parquet file") + ".*found bytes b'Alic'"):
        tokentune.predict_dataset(model_dir, str(fake))
    with pytest.raises(DataError, match=re.escape(f"{empty}: no file in the folder; expected text files, found an "
                                                  "empty folder")):
        tokentune.predict_dataset(model_dir, str(empty), input_format="text")
    for source in (empty, jsonl_dir, fake):
        err = _one_line_error(capsys, ["predict", model_dir, "-i", str(source), "-o", str(out_dir / "o.jsonl"),
                                       "--ray", "auto"])
        assert f"{source}: no" in err or f"{source}: not a Parquet file" in err
        assert "--format jsonl" in err
    assert list(out_dir.iterdir()) == []


def test_a_corrupt_parquet_file_in_a_folder_is_a_data_error(local_ray, model_dir, tmp_path):
    import tokentune

    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"text": ["Alice"]}), folder / "a.parquet")
    (folder / "b.parquet").write_bytes(b"PAR1 cut short")
    with pytest.raises(DataError, match=re.escape(f"{folder / 'b.parquet'}: not a Parquet file, or one cut short")):
        tokentune.predict_dataset(model_dir, str(folder))
    (folder / "b.parquet").write_bytes(b"PAR1" + b"\0" * 16 + b"PAR1")  # the magic right, the footer garbage
    with pytest.raises(DataError, match=re.escape(f"{folder}: Ray Data cannot read it") + ".*Fix: give a Parquet file"):
        tokentune.predict_dataset(model_dir, str(folder))


# -- defect: a Parquet file of one row group was one block, so one actor did all the work

def test_one_row_group_is_cut_into_blocks_numbered_in_order(local_ray, tmp_path):
    from tokentune.inference.ray_inputs import ROW, with_row_index

    source = tmp_path / "one.parquet"
    pq.write_table(pa.table({"n": list(range(1000)), "text": [f"t{i}" for i in range(1000)]}), source,
                   row_group_size=1000)
    dataset = ray.data.read_parquet(str(source))
    assert len(dataset.to_arrow_refs()) == 1  # as Ray reads it
    indexed, schema = with_row_index(dataset, str(source), pieces=8)
    blocks = ray.get(indexed.to_arrow_refs())
    assert 8 <= len(blocks) <= 9 and schema.names == ["n", "text"]
    table = pa.concat_tables(blocks)
    assert table.column(ROW).to_pylist() == list(range(1000)) == table.column("n").to_pylist()
    many = ray.data.from_items([{"n": i} for i in range(30)], override_num_blocks=6)
    indexed, _ = with_row_index(many, "the dataset", pieces=2)  # already cut finer: left as it is
    assert [block.num_rows for block in ray.get(indexed.to_arrow_refs())] == [5] * 6


def test_every_actor_gets_rows_of_a_one_row_group_file(local_ray, model_dir, tmp_path, out_dir):
    import tokentune

    source = tmp_path / "one.parquet"
    texts = [f"Alice met Bob in Paris {i}" for i in range(40)]
    pq.write_table(pa.table({"id": list(range(40)), "text": texts}), source, row_group_size=40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = tokentune.predict_dataset(model_dir, str(source), output=str(out_dir / "o.jsonl"), concurrency=2,
                                            rows_per_batch=4)
    assert not [w for w in caught if "only received" in str(w.message)]  # Ray's warning: fewer inputs than actors
    rows = [json.loads(line) for line in (out_dir / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    assert written.records == 40 and [row["id"] for row in rows] == list(range(40))
    assert [row["text"] for row in rows] == texts and all("entities" in row for row in rows)


# -- defect: Ray's text reader split lines on \x0c, \x0b, \x85, \u2028 ... and kept a BOM

TRICKY = ("\ufeffAlice met Bob in Paris\x0cand Rome\r\n\r\n  \nBob\x0bvisited\x85London\u2028today\r"
          "Paris\u2029Rome\x1cBerlin\x1d\x1e\n\nlast line without an end").encode("utf-8")


@pytest.mark.parametrize("compressed, in_folder", [(False, False), (True, False), (True, True)])
def test_text_lines_are_the_lines_predict_reads(local_ray, model_dir, tmp_path, out_dir, capsys, one_thread,
                                                compressed, in_folder):
    (tmp_path / "folder").mkdir()  # a folder is read in Ray's tasks, a file by the calling process
    source = tmp_path / "folder" / "tricky.txt"  # gzip is known by its magic number, as predict knows it
    source.write_bytes(gzip.compress(TRICKY) if compressed else TRICKY)
    single, ray_out = out_dir / "single.jsonl", out_dir / "ray.jsonl"
    assert main(["predict", model_dir, "-i", str(source), "-o", str(single), "-q", "--threads", "1"]) == 0
    ray_input = ["-i", str(source.parent), "--format", "text"] if in_folder else ["-i", str(source)]
    assert main(["predict", model_dir, *ray_input, "-o", str(ray_out), "-q", "--ray", "auto",
                 "--workers", "2"]) == 0, capsys.readouterr().err
    assert ray_out.read_bytes() == single.read_bytes()
    texts = [json.loads(line)["text"] for line in ray_out.read_text(encoding="utf-8").split("\n")[:-1]]
    assert texts == ["Alice met Bob in Paris\x0cand Rome", "", "  ", "Bob\x0bvisited\x85London\u2028today",
                     "Paris\u2029Rome\x1cBerlin\x1d\x1e", "", "last line without an end"]


def test_bytes_that_are_not_utf8_name_their_line(local_ray, model_dir, tmp_path):
    import tokentune

    source = tmp_path / "latin.txt"  # input_format: the format is not guessed (guessing reads the file)
    source.write_bytes(b"Alice\r\nBob\rZ\xfcrich\n")
    with pytest.raises(DataError, match=re.escape(f"{source}:3: the file is not UTF-8 text")):
        tokentune.predict_dataset(model_dir, str(source), input_format="text")
    named_gz = tmp_path / "plain.txt.gz"
    named_gz.write_bytes(b"Alice\n")
    with pytest.raises(DataError, match=re.escape(f"{named_gz}: the file is named .gz but is not gzip data")):
        tokentune.predict_dataset(model_dir, str(named_gz), input_format="text")
    folder = tmp_path / "cut"  # a folder is read in Ray's tasks; the first lines read, then the end found cut
    folder.mkdir()
    cut = folder / "cut.txt.gz"
    cut.write_bytes(gzip.compress("".join(f"{i} {i * 7919 % 10007} Alice\n" for i in range(50000)).encode())[:-1000])
    with pytest.raises(DataError, match=re.escape(f"{folder}: Ray Data cannot read it") + ".*Fix: check that the file "
                                        "is complete"):
        tokentune.predict_dataset(model_dir, str(folder), input_format="text")
    for single in (cut, tmp_path / "cut.jsonl.gz"):  # one file, read here by predict's own reader: its words
        single.write_bytes(cut.read_bytes() if single == cut else gzip.compress(
            "".join(f'{{"text": "{i} Alice"}}\n' for i in range(50000)).encode())[:-1000])
        with pytest.raises(DataError, match=re.escape(f"{single}: cannot read the file after line ")):
            tokentune.predict_dataset(model_dir, str(single))
    records = tmp_path / "latin.jsonl"
    records.write_bytes(b'{"text": "Alice"}\n{"text": "Z\xfcrich"}\n')
    with pytest.raises(DataError, match=re.escape(f"{records}:2: the file is not UTF-8 text")):
        tokentune.predict_dataset(model_dir, str(records))


def test_file_lines_follow_the_rules_of_stream_lines(tmp_path):
    from tokentune.data.files import stream_lines
    from tokentune.inference.ray_inputs import file_lines

    for raw in (TRICKY, b"", b"\n", b"a\r", b"a\r\r\n", b"\xef\xbb\xbf", b"a\n\n", b"\r\n\r"):
        path = tmp_path / "f.txt"
        path.write_bytes(raw)
        assert file_lines(raw, str(path)) == list(stream_lines(str(path))), raw


# -- defect: an empty input was an error about columns; predict writes an empty output

@pytest.mark.parametrize("name", ["empty.txt", "empty.jsonl"])
def test_an_empty_input_gives_an_empty_output(local_ray, model_dir, tmp_path, out_dir, capsys, name):
    import tokentune

    source = tmp_path / name
    source.write_bytes(b"")
    target = out_dir / "out.jsonl"
    assert main(["predict", model_dir, "-i", str(source), "-o", str(target), "--ray", "auto"]) == 0
    assert "0 records, 0 words" in capsys.readouterr().err
    assert target.read_bytes() == b""
    written = tokentune.predict_dataset(model_dir, str(source), output=str(out_dir / "out.parquet"))
    assert (written.records, written.words) == (0, 0) and pq.read_table(out_dir / "out.parquet").num_rows == 0
    assert tokentune.predict_dataset(model_dir, str(source)).count() == 0


def test_an_empty_parquet_input_keeps_its_columns(local_ray, model_dir, tmp_path, out_dir):
    import tokentune

    source = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "text": pa.array([], pa.string())}), source)
    target = out_dir / "out.parquet"
    assert main(["predict", model_dir, "-i", str(source), "-o", str(target), "--ray", "auto", "-q"]) == 0
    schema = pq.read_schema(target)
    assert schema.names == ["id", "text", "entities"] and schema.field("id").type == pa.int64()
    assert pq.read_table(target).num_rows == 0
    assert tokentune.predict_dataset(model_dir, str(source)).columns() == ["id", "text", "entities"]


# -- defect: JSON lines errors said "Extra data: line 2 column 1", with no file:line

def test_jsonl_errors_name_the_line_and_the_reason(local_ray, model_dir, tmp_path, out_dir, capsys):
    import tokentune

    cases = {
        '{"text": "Alice"}\n{"text": "Bob\n': r":2: not valid JSON \(Unterminated string",
        '{"text": "Alice"}\n\n{"text": 5}\n': r':3: the "text" field is not a string, found 5',
        '{"text": "Alice"}\n{"tokens": ["Bob"]}\n': r':2: .*no "text" string, as the records before it have',
        '{"text": "Alice"}\n[1, 2]\n': r':2: a line has neither a "text" string nor a "tokens" list of strings',
        '{"text": "Alice", "id": 1}\n{"text": "Bob", "id": "b"}\n': r':2: field "id" is a string here but a number '
                                                                     r"on line 1",
    }
    for number, (body, message) in enumerate(cases.items()):
        source = tmp_path / f"in{number}.jsonl"
        source.write_text(body, encoding="utf-8")
        with pytest.raises(DataError, match=re.escape(str(source)) + message):
            tokentune.predict_dataset(model_dir, str(source))
        err = _one_line_error(capsys, ["predict", model_dir, "-i", str(source), "-o", str(out_dir / "o.jsonl"),
                                       "--ray", "auto"])
        assert re.search(re.escape(str(source)) + message, err), err
    folder = tmp_path / "folder"  # read in Ray's tasks: the same errors
    folder.mkdir()
    (folder / "in.jsonl").write_text('{"text": "Alice"}\n\n{"text": 5}\n', encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(str(folder / "in.jsonl")) + r':3: the "text" field is not a string'):
        tokentune.predict_dataset(model_dir, str(folder), input_format="jsonl")
    assert list(out_dir.iterdir()) == []


def test_a_named_column_is_checked_on_each_line(local_ray, model_dir, tmp_path):
    import tokentune

    source = tmp_path / "in.jsonl"
    source.write_text('{"body": "Alice"}\n{"body": ["Bob"]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{source}:2: the \"body\" field is not a string")):
        tokentune.predict_dataset(model_dir, str(source), text_column="body")
    with pytest.raises(DataError, match=re.escape(f"{source}:1: no \"words\" field")):
        tokentune.predict_dataset(model_dir, str(source), tokens_column="words")


def test_messages_name_what_the_caller_can_change(local_ray, model_dir, tmp_path, capsys):
    import tokentune

    with pytest.raises(ConfigError, match=r"^concurrency \(--workers\) must be a whole number of at least 1, found 0"):
        tokentune.predict_dataset(model_dir, str(tmp_path / "none.jsonl"), concurrency=0)
    source = tmp_path / "cols.parquet"
    pq.write_table(pa.table({"body": ["Alice"]}), source)
    with pytest.raises(DataError, match='neither a "text" column nor a "tokens" column.*found body.*Fix: .*'
                                        r"text_column= or tokens_column= \(Python only"):
        tokentune.predict_dataset(model_dir, str(source))
    err = _one_line_error(capsys, ["predict", model_dir, "-i", str(source), "--ray", "auto", "--workers", "0"])
    assert "--workers" in err
