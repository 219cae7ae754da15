"""JSON lines records as Arrow tables, for :mod:`.ray_inputs`: each line parsed and checked as single-process
``predict`` checks it (the field tagged, the same in every record: Ray tags one column), and a table Arrow
cannot make explained by the first field of two JSON types, with its lines."""
from __future__ import annotations

from typing import Iterable

from ..data.jsonl import parse_json
from ..errors import DataError

WORDS_KEYS = ("tokens", "words")


def parse_records(lines: list[str], path: str, text_column: str | None, tokens_column: str | None, *,
                  first: int = 1, key: str | None = None) -> tuple[list, list[int], str | None]:
    """``(records, their line numbers, key)``: JSON ``lines`` (numbered from ``first``) parsed and checked
    as ``predict`` does (:func:`tokentune.data.inputs.jsonl_items`), and the field they are tagged from
    (``key``: the one the lines before them were tagged from, None if none)."""
    records, numbers = [], []
    for number, line in enumerate(lines, first):
        if not line.strip():
            continue
        record = parse_json(line, path=path, line=number, invalid="not valid JSON")
        key = record_key(record, line, (path, number), text_column or tokens_column,
                         "text" if text_column is not None else "tokens", key)
        records.append(record)
        numbers.append(number)
    return records, numbers, key


def arrow_table(records: list):
    """``records`` as one Arrow table, every record's fields in order of first appearance; Arrow's own
    errors (``ArrowInvalid``, ``ArrowTypeError``, ``OverflowError``) where it cannot."""
    import pyarrow as pa

    fields = dict.fromkeys(name for record in records for name in record)
    return pa.table({name: [record.get(name) for record in records] for name in fields})


def jsonl_table(lines: list[str], path: str, text_column: str | None, tokens_column: str | None):
    """The records of JSON ``lines`` as one Arrow table (None when there are none), each line parsed and
    checked as ``predict`` does; a table Arrow cannot make is a :class:`DataError` naming the first field
    of two JSON types, with its lines."""
    import pyarrow as pa

    records, numbers, _ = parse_records(lines, path, text_column, tokens_column)
    if not records:
        return None
    try:
        return arrow_table(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as err:
        raise type_clash(zip(numbers, records), path, err) from None


def _is_words(value) -> bool:
    return isinstance(value, list) and all(isinstance(word, str) for word in value)


def record_key(record, line: str, at: tuple[str, int], named: str | None, kind: str, key: str | None) -> str:
    """The field ``record`` is tagged from: ``named`` (of ``kind``), else as ``predict`` picks it
    (``text``, else ``tokens`` or ``words``), and the same as the file's records before it (``key``):
    Ray tags one column."""
    path, number = at
    if named is not None:
        expected = "a string" if kind == "text" else "a list of strings"
        if not isinstance(record, dict) or named not in record:
            raise DataError(f'no "{named}" field', path=path, line=number, found=ascii(line[:80]),
                            fix=f'give every record a "{named}" field ({expected})')
        if not (isinstance(record[named], str) if kind == "text" else _is_words(record[named])):
            raise DataError(f'the "{named}" field is not {expected}', path=path, line=number,
                            found=ascii(record[named])[:80], fix=f'give every record {expected} in "{named}"')
        return named
    words_key = next((name for name in WORDS_KEYS if isinstance(record, dict) and name in record), "tokens")
    found = ("text" if isinstance(record, dict) and isinstance(record.get("text"), str) else
             words_key if isinstance(record, dict) and _is_words(record.get(words_key)) else None)
    if found is None:
        for name, what in (("text", "a string"), (words_key, "a list of strings")):
            if isinstance(record, dict) and name in record:
                raise DataError(f'the "{name}" field is not {what}', path=path, line=number,
                                found=ascii(record[name])[:80], fix='write {"text": "..."} or {"tokens": ["...", ...]}')
        raise DataError("a line has neither a \"text\" string nor a \"tokens\" list of strings", path=path,
                        line=number, found=ascii(line[:80]), fix='write {"text": "..."} or {"tokens": ["...", ...]}')
    if key is not None and found != key:
        what = "string" if key == "text" else "list of strings"
        raise DataError(f'this record has no "{key}" {what}, as the records before it have', path=path, line=number,
                        found=ascii(line[:80]), fix=f'give every record a "{key}" {what}: Ray tags one column '
                                                    "(or leave --ray out: predict reads mixed records)")
    return found


def _json_kind(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "a boolean"
    kinds = ((str, "a string"), ((int, float), "a number"), (list, "a list"), (dict, "an object"))
    return next(name for types, name in kinds if isinstance(value, types))


def type_clash(numbered: Iterable[tuple[int, dict]], path: str, error: Exception) -> DataError:
    """Why Arrow could not make a table of the ``(line number, record)`` pairs ``numbered``: the first
    field of two JSON types, with its lines, else Arrow's own words."""
    fix = "give each field one type in every record (or leave --ray out: predict reads any JSON lines)"
    first: dict[str, tuple[str, int]] = {}
    for number, record in numbered:
        for name, value in record.items():
            kind = _json_kind(value)
            seen = first.setdefault(name, (kind, number)) if kind is not None else None
            if seen is not None and seen[0] != kind:
                return DataError(f'field "{name}" is {kind} here but {seen[0]} on line {seen[1]}', path=path,
                                 line=number, fix=fix)
    return DataError(f"Ray Data cannot hold these records in one table: {str(error).splitlines()[0]}", path=path,
                     fix=fix)
