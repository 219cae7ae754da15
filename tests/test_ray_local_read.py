"""A local text or JSON lines file read for Ray prediction in pieces (`ray_inputs.read_lines_file`), so that
only one piece's Python strings and records are held at a time: the same table as one piece (the column
types merged as one table of every record infers them) and the same located errors. Pure Arrow, no Ray
running."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")

from tokentune.errors import DataError  # noqa: E402
from tokentune.inference.ray_inputs import line_chunks, read_lines_file  # noqa: E402

WHOLE = 10**12  # characters: the whole file as one piece

# fields whose JSON types differ between records: numbers, nulls, booleans (one table turns those after a
# float into 1.0, refuses them before one), objects with other keys, lists of ints and of floats, a field
# that only later records have
VALUES = {
    "n": st.one_of(st.none(), st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False), st.booleans()),
    "tag": st.one_of(st.none(), st.text(max_size=5)),
    "meta": st.one_of(st.none(), st.fixed_dictionaries({"a": st.integers(0, 9)}),
                      st.fixed_dictionaries({"b": st.text(max_size=3)})),
    "scores": st.one_of(st.none(), st.lists(st.integers(0, 9), max_size=3), st.lists(st.floats(0, 1), max_size=3)),
}
RECORDS = st.lists(st.builds(lambda text, extra: {"text": text, **extra}, st.text(max_size=8).filter(str.isprintable),
                             st.dictionaries(st.sampled_from(sorted(VALUES)), st.none()).flatmap(
                                 lambda keys: st.fixed_dictionaries({key: VALUES[key] for key in keys}))),
                   min_size=1, max_size=30)


def _write(path, lines: list[str]) -> str:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


@settings(max_examples=60, deadline=None)
@given(records=RECORDS, chars=st.integers(1, 200))
def test_pieces_make_the_table_of_one_piece(tmp_path_factory, records, chars):
    path = _write(tmp_path_factory.mktemp("pieces") / "in.jsonl", [json.dumps(record) for record in records])
    whole, pieces = (_outcome(path, size) for size in (WHOLE, chars))
    assert type(pieces) is type(whole)
    if isinstance(whole, str):  # refused: with the same words
        assert pieces == whole
    else:
        assert pieces.schema == whole.schema
        assert pieces.to_pylist() == whole.to_pylist()


def _outcome(path: str, chars: int):
    """The table read in pieces of ``chars``, or the message it is refused with."""
    try:
        return read_lines_file(path, "jsonl", None, None, chunk_chars=chars)
    except DataError as err:
        return str(err)


@pytest.mark.parametrize("lines", [
    ['{"text": "a", "z": 1.5}', '{"text": "b", "z": true}'],  # one table: z is 1.0 (Arrow's inference)
    ['{"text": "a", "z": true}', '{"text": "b", "z": 1.5}'],  # one table: refused
    ['{"text": "a", "z": [2.5]}', '{"text": "b", "z": [false]}'],
    ['{"text": "a", "m": {"a": 1}}', '{"text": "b", "m": {"a": "s"}}'],  # refused in Arrow's words
    ['{"text": "a", "x": 1}', '{"text": "b", "x": "s"}', *['{"text": "c"}'] * 20, '{"text": oops'],  # the bad line
    ['{"text": "a", "x": 9007199254740993}', '{"text": "b", "x": 1.5}'],
], ids=["float-bool", "bool-float", "nested-bool", "nested-clash", "clash-then-bad-json", "big-int-float"])
def test_pieces_that_do_not_merge_are_read_as_one_table(tmp_path, lines):
    path = _write(tmp_path / "in.jsonl", lines)
    whole = _outcome(path, WHOLE)
    for chars in (1, 25):
        pieces = _outcome(path, chars)
        assert pieces == whole if isinstance(whole, str) else pieces.to_pylist() == whole.to_pylist(), (chars, pieces)


def test_text_pieces_keep_every_line_in_order(tmp_path):
    lines = [f"line {number} " + "x" * (number % 7) for number in range(1, 101)] + ["", "last"]
    path = _write(tmp_path / "in.txt", lines)
    table = read_lines_file(path, "text", None, None, chunk_chars=50)
    assert table.column("text").num_chunks > 10  # read in many pieces
    assert table.column("text").to_pylist() == lines
    assert read_lines_file(_write(tmp_path / "empty.txt", []), "text", None, None).num_rows == 0


@pytest.mark.parametrize("chars", [WHOLE, 1, 30])
def test_a_type_clash_across_pieces_names_its_lines(tmp_path, chars):
    lines = ['{"text": "a", "id": 1}'] * 3 + ['{"text": "b", "id": "x"}']
    path = _write(tmp_path / "in.jsonl", lines)
    with pytest.raises(DataError, match=re.escape(f'{path}:4: field "id" is a string here but a number on line 1')):
        read_lines_file(path, "jsonl", None, None, chunk_chars=chars)


@pytest.mark.parametrize("chars", [WHOLE, 1])
def test_every_piece_is_tagged_from_the_field_of_the_first(tmp_path, chars):
    lines = ['{"text": "a"}', '{"text": "b"}', "", '{"tokens": ["c"]}']
    path = _write(tmp_path / "in.jsonl", lines)
    with pytest.raises(DataError, match=re.escape(f'{path}:4: this record has no "text" string, as the records '
                                                  "before it have")):
        read_lines_file(path, "jsonl", None, None, chunk_chars=chars)


def test_pieces_are_numbered_by_their_first_line():
    lines = ["aaaa", "b", "cc", "", "dddddd", "e"]
    assert list(line_chunks(iter(lines), 6)) == [(1, ["aaaa", "b"]), (3, ["cc", "", "dddddd"]), (6, ["e"])]
    assert list(line_chunks(iter([]), 6)) == []
    assert [first for first, _ in line_chunks(iter(lines), 1)] == [1, 2, 3, 4, 5, 6]
