"""The reading side of :func:`~tokentune.inference.ray_batch.predict_dataset`: a path read into Arrow
blocks (a local text or JSON lines file by this process, anything else with Ray Data), by the rules of
single-process ``tokentune predict``, then numbered and cut into enough blocks for every actor.

- Parquet (a file or a folder) is read by ``ray.data.read_parquet``, after a check that there is
  Parquet there at all (an empty folder, a folder of other files and a file that is not Parquet are
  :class:`~tokentune.errors.DataError`s naming the path).
- A text or JSON lines file on this machine is read by this process with ``predict``'s own reader
  (:func:`read_lines_file`): no Ray task to start (about 3 s of a 20 s run on CoNLL-2003 test), the
  same messages as ``predict``, and the file need not be on the cluster's other nodes. It is read in
  pieces of :data:`CHUNK_CHARS` characters, each made Arrow columns at once, so that this process
  holds the file as Arrow columns and one piece as Python objects, not every record as a dict. Where
  the pieces' types do not merge (booleans after floats, a clash), the whole file decides, as before. A folder of
  them, or a remote path, is read as whole files (``ray.data.read_binary_files``, lazily and in
  order) and split in a task with :func:`file_tables`, by :func:`file_lines`, the rules of
  :func:`tokentune.data.files.stream_lines`:
  gzip by its magic number, the BOM dropped, only ``\\n``, ``\\r\\n`` and ``\\r`` end a line, bytes
  that are not UTF-8 named with their line. Each JSON line is parsed by tokentune's own parser and
  checked as ``predict`` checks it, so an error names ``file:line`` and its reason.
- :func:`with_row_index` numbers the rows in input order and slices big blocks (a Parquet row group,
  a text file) so that ``concurrency`` actors all get work.
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

from ..data.files import decoded_lines, gunzipped, stream_lines
from ..data.inputs import check_readable, guess_format
from ..errors import ConfigError, DataError, TokentuneError
from .ray_records import arrow_table, jsonl_table, parse_records
from .ray_results import ROW, RemoteError, user_errors

PIECES_PER_ACTOR = 4  # blocks per actor at least: a slow block holds back only a quarter of an actor's share
PARQUET_MAGIC = b"PAR1"  # at the start and at the end of every Parquet file
FORMAT_FIX = ("a folder of JSON lines or text files is read with --format jsonl or --format text "
              "(input_format='jsonl' or 'text' from Python)")
PARQUET_FIX = f"give a Parquet file or a folder of .parquet files; {FORMAT_FIX}"
READ_FIX = "check that the file is complete (`gzip -t FILE` checks a .gz file, which Ray gunzips by its name)"
CHUNK_CHARS = 2**20  # a local file is read in pieces this long: 382 -> 152 MB peak for 27 MB of JSON lines


def source_format(data, input_format: str | None) -> str | None:
    """None for a Dataset; for a path: parquet, jsonl or text (checked: it exists and holds that)."""
    if not isinstance(data, (str, os.PathLike)):
        return None
    path = os.fspath(data)
    local = "://" not in path
    if not os.path.exists(path) and local:
        raise DataError("no such file or folder", path=path, fix="check the path")
    parquet = path.lower().endswith(".parquet") or os.path.isdir(path)
    fmt = input_format or ("parquet" if parquet else guess_format(path))  # by name, else jsonl, conll or text
    if fmt not in ("parquet", "jsonl", "text"):
        raise ConfigError(f"Ray reads JSON lines, Parquet or text, not {fmt}",
                          fix="give a .jsonl or .parquet file (for CoNLL columns use predict --workers N without --ray)")
    if local and os.path.isdir(path):
        check_folder(path, fmt)
    elif local and fmt == "parquet":
        check_parquet_file(path)
    elif local:
        check_readable(path)  # as predict says it: a .gz file that is not gzip, say
    return fmt


def check_folder(path: str, fmt: str) -> None:
    """Refuse a local folder without files of ``fmt`` (``.parquet`` files for Parquet), as Ray lists
    them, and (Parquet) files that are not Parquet: Ray's own errors for them are tracebacks."""
    names = []
    for folder, subfolders, files in os.walk(path):
        subfolders.sort()
        relative = os.path.relpath(folder, path)
        names += sorted(os.path.normpath(os.path.join(relative, name)) for name in files)
    names = [name for name in names if not name.startswith((".", "_"))]  # Ray skips these
    chosen = [name for name in names if fmt != "parquet" or name.lower().endswith(".parquet")]
    if not chosen:
        found = (f"{len(names)} other file{'s' if len(names) > 1 else ''} ({', '.join(names[:3])}"
                 f"{', ...' if len(names) > 3 else ''})" if names else "an empty folder")
        expected = "files named .parquet" if fmt == "parquet" else f"{fmt} files"
        raise DataError(f"no {'Parquet ' if fmt == 'parquet' else ''}file in the folder", path=path, expected=expected,
                        found=found, fix=PARQUET_FIX if fmt == "parquet" else "give a file, or a folder that holds some")
    for name in chosen if fmt == "parquet" else ():
        check_parquet_file(os.path.join(path, name))


def check_parquet_file(path: str) -> None:
    """Refuse a file without Parquet's magic number at both ends: not Parquet, or cut short."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 4))
            tail = handle.read(4)
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", path=path, fix="check its permissions") from None
    if head != PARQUET_MAGIC or tail != PARQUET_MAGIC or os.path.getsize(path) < 12:
        raise DataError("not a Parquet file, or one cut short", path=path, expected="Parquet data (PAR1 at both ends)",
                        found=f"bytes {head!r} at the start and {tail!r} at the end", fix=PARQUET_FIX)


@dataclass
class Rows:
    """The input, read: ``indexed`` (None: no rows), the input's Arrow ``schema`` (None: unknown), the
    ``column`` tagged and its ``kind`` (``text`` or ``tokens``), and ``where`` it came from."""

    indexed: object
    schema: object
    column: str | None
    kind: str
    where: str


def read_rows(data, fmt: str | None, text_column: str | None, tokens_column: str | None, pieces: int) -> Rows:
    """``data`` read and numbered (:func:`with_row_index`) and the column it is tagged from. An input
    of no rows and no columns (an empty file) is no error: as ``predict``, nothing in, nothing out."""
    if text_column is not None and tokens_column is not None:
        raise ConfigError("both text_column and tokens_column given; a dataset is tagged from one column",
                          fix="pass one of them")
    if is_local_lines_file(data, fmt):  # read here: no Ray tasks to start, and no node but this one needs it
        where = os.fspath(data)
        indexed, schema = table_with_row_index(read_lines_file(where, fmt, text_column, tokens_column), pieces)
    else:
        dataset, where, known, fix = open_dataset(data, fmt, text_column, tokens_column)
        if known is not None and known.names:  # a missing column is refused before the input is read
            pick_column(known.names, text_column, tokens_column, where)
        indexed, schema = with_row_index(dataset, where, pieces, fix)
        if indexed is None and not (schema and schema.names):  # no block said the columns: known ones stay
            schema = arrow_schema(known)
    columns = schema.names if schema is not None else []
    if indexed is None and not columns:
        return Rows(None, None, None, "tokens" if tokens_column is not None else "text", where)
    return Rows(indexed, schema, *pick_column(columns, text_column, tokens_column, where), where)


def arrow_schema(schema):
    """``schema`` (Arrow's, or Ray's ``Schema`` around one) as Arrow's; None where it is not one (pandas)."""
    import pyarrow as pa

    schema = getattr(schema, "base_schema", schema)
    return schema if isinstance(schema, pa.Schema) else None


def pick_column(columns: list[str], text_column: str | None, tokens_column: str | None,
                where: str) -> tuple[str, str]:
    """``(column, "text" | "tokens")`` of ``columns``: the one named, else ``text``, ``tokens`` or ``words``."""
    named = text_column or tokens_column
    if named is not None:
        if named not in columns:
            raise DataError(f"no column {named!r}", path=where, found=", ".join(columns) or "no columns",
                            fix="name one of its columns")
        return named, "text" if text_column is not None else "tokens"
    for name, kind in (("text", "text"), ("tokens", "tokens"), ("words", "tokens")):
        if name in columns:
            return name, kind
    raise DataError("neither a \"text\" column nor a \"tokens\" column", path=where, found=", ".join(columns) or
                    "no columns", fix='write records {"text": "..."} or {"tokens": [...]} (or "words"), or name the '
                                      "column with text_column= or tokens_column= (Python only: predict_dataset)")


def open_dataset(data, fmt: str | None, text_column: str | None = None, tokens_column: str | None = None):
    """``(dataset, where, known, fix)``: ``data`` itself if it is a Dataset, else the file read with
    Ray Data; ``known``: the schema known before reading it all (Ray's ``Schema``, with ``names``: a
    Parquet footer's; None for JSON lines: not until read); ``fix``: what to say of a file Arrow cannot
    read."""
    import pyarrow as pa
    from ray.data import Dataset, read_binary_files, read_parquet

    if fmt is None:
        if not isinstance(data, Dataset):
            raise ConfigError(f"expected a ray.data.Dataset or a path, found {type(data).__name__}",
                              fix="pass ray.data.read_json(...) or the path of a .jsonl or .parquet file")
        with user_errors("the dataset"):
            return data, "the dataset", data.schema(), None
    path = os.fspath(data)
    fix = PARQUET_FIX if fmt == "parquet" else READ_FIX
    try:
        with user_errors(path, fix, reading=True):
            if fmt == "parquet":
                dataset = read_parquet(path)
                return dataset, path, dataset.schema(), fix
            files = read_binary_files(path, include_paths=True, file_extensions=None)
    except ValueError as err:  # Ray's word for a folder (a remote one: local ones are checked) of no files
        raise DataError(f"Ray Data cannot read it: {str(err).splitlines()[0] if str(err) else err!r}", path=path,
                        fix=fix) from None
    one_file = path if os.path.isfile(path) else None  # named as given, not as Ray resolved it
    options = {"fmt": fmt, "where": one_file, "text_column": text_column, "tokens_column": tokens_column}
    dataset = files.map_batches(file_tables, batch_size=1, batch_format="pyarrow", fn_kwargs=options)
    return dataset, path, (pa.schema([("text", pa.string())]) if fmt == "text" else None), fix


def is_local_lines_file(data, fmt: str | None) -> bool:
    """Whether ``data`` is one text or JSON lines file on this machine, which this process reads itself."""
    return fmt in ("text", "jsonl") and "://" not in os.fspath(data) and os.path.isfile(data)


def read_lines_file(path: str, fmt: str, text_column: str | None, tokens_column: str | None,
                    chunk_chars: int = CHUNK_CHARS):
    """The Arrow table of a local text (a ``text`` column) or JSON lines file, read in this process by
    single-process ``predict``'s own reader (:func:`tokentune.data.files.stream_lines`: its rules and
    its errors); None for JSON lines without a record. Each piece of about ``chunk_chars`` characters
    becomes Arrow columns at once, so that only one piece's Python strings and records are held at a
    time. Where the pieces' types do not make one table, the whole file is read as one table, as
    before pieces: what Arrow infers over every record decides, and its errors are said as then."""
    import pyarrow as pa

    if fmt == "text":
        tables = [pa.table({"text": pa.array(lines, type=pa.string())})
                  for _, lines in line_chunks(stream_lines(path), chunk_chars)]
        return pa.concat_tables(tables) if tables else pa.table({"text": pa.array([], type=pa.string())})
    try:
        return jsonl_pieces(path, text_column, tokens_column, chunk_chars)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # e.g. a piece of booleans after one of floats (one table turns them into 1.0), or a clash: then
        # every line is parsed before any table is made, so that a bad line anywhere is said first
        return jsonl_table(list(stream_lines(path)), path, text_column, tokens_column)


def jsonl_pieces(path: str, text_column: str | None, tokens_column: str | None, chars: int):
    """The JSON lines file ``path`` as Arrow tables of pieces of ``chars`` characters, their column types
    merged as one table of every record infers them (ints and floats make floats); Arrow's errors
    where a piece, or the merge, cannot be made."""
    import pyarrow as pa

    tables, key = [], None
    for first, lines in line_chunks(stream_lines(path), chars):
        records, _, key = parse_records(lines, path, text_column, tokens_column, first=first, key=key)
        if records:
            tables.append(arrow_table(records))
    if len(tables) < 2:
        return tables[0] if tables else None
    return pa.concat_tables(tables, promote_options="permissive")


def line_chunks(lines: Iterable[str], chars: int) -> Iterator[tuple[int, list[str]]]:
    """``(number of its first line, lines)`` for consecutive pieces of ``lines`` of at least ``chars``
    characters each (the last may have fewer); none for no lines."""
    chunk, size, first = [], 0, 1
    for line in lines:
        chunk.append(line)
        size += len(line) + 1
        if size >= chars:
            yield first, chunk
            first, chunk, size = first + len(chunk), [], 0
    if chunk:
        yield first, chunk


def file_tables(batch, *, fmt: str, where: str | None, text_column: str | None, tokens_column: str | None):
    """The Arrow table of each file in ``batch`` (rows of ``bytes`` and ``path``): a ``text`` column of
    its lines, or its JSON records' fields as columns. Runs in a Ray task."""
    import pyarrow as pa

    try:
        for raw, path in zip(batch.column("bytes").to_pylist(), batch.column("path").to_pylist()):
            name = where or path
            lines = file_lines(raw, name)
            if fmt == "text":
                yield pa.table({"text": pa.array(lines, type=pa.string())})
                continue
            table = jsonl_table(lines, name, text_column, tokens_column)
            if table is not None:
                yield table
    except TokentuneError as err:
        raise RemoteError(type(err), str(err)) from None  # pickled as (type, message): always unpickles


def file_lines(raw: bytes, path: str) -> list[str]:
    """The lines of a file's bytes, by :func:`tokentune.data.files.decoded_lines`, the rules of
    ``stream_lines``: gzip by its magic number (Ray has already gunzipped a ``.gz`` name), the BOM
    dropped, only ``\\n``, ``\\r\\n`` and ``\\r`` end a line (str.splitlines would end one at ``\\x0c``,
    ``\\x85``, ``\\u2028`` ...), non-UTF-8 bytes named with their line."""
    return list(decoded_lines(io.BytesIO(gunzipped(raw, path)), path))


def with_row_index(dataset, where: str, pieces: int = 1, fix: str | None = None):
    """``(indexed, schema)``: the dataset with a ``ROW`` column numbering its rows in order (None when
    it has no rows) in at least ``pieces`` blocks where it has that many rows, and the input's Arrow
    schema (None when no block says). The input is read once, in order (``preserve_order``), into
    the object store; each block is numbered from the row counts of the blocks before it, and cut into
    slices of at most total / ``pieces`` rows, so that a Parquet row group or a file read as one block
    is shared among the actors (Ray hands an actor whole blocks). ``fix``: what to say of a file Arrow
    cannot read."""
    import ray
    from ray.data import from_arrow_refs

    options = dataset.context.execution_options
    before, options.preserve_order = options.preserve_order, True
    try:
        with user_errors(where, fix, reading=True):
            blocks = dataset.to_arrow_refs()
            shapes = ray.get([ray.remote(num_cpus=0)(_shape).remote(block) for block in blocks])
    finally:
        options.preserve_order = before
    schema = next((schema for rows, schema in shapes if rows), shapes[0][1] if shapes else None)
    total = sum(rows for rows, _ in shapes)
    if not total:
        return None, schema
    size = math.ceil(total / max(1, pieces))
    number, numbered, start = ray.remote(num_cpus=0)(_number_rows), [], 0
    for block, (rows, _) in zip(blocks, shapes):
        if rows:
            parts = math.ceil(rows / size)
            refs = number.options(num_returns=parts).remote(block, start, _bounds(rows, parts))
            numbered += refs if parts > 1 else [refs]
            start += rows
    return _in_order(from_arrow_refs(numbered)), schema


def table_with_row_index(table, pieces: int = 1):
    """:func:`with_row_index` of a table this process holds (None: no records): numbered and cut here."""
    if table is None or not table.num_rows:
        return None, None if table is None else table.schema
    from ray.data import from_arrow

    parts = min(table.num_rows, max(1, pieces))
    numbered = _number_rows(table, 0, _bounds(table.num_rows, parts))
    return _in_order(from_arrow(list(numbered) if parts > 1 else numbered)), table.schema


def _bounds(rows: int, parts: int) -> list[int]:
    return [rows * part // parts for part in range(parts + 1)]


def _in_order(indexed):
    """``indexed`` run with its blocks kept in order, so that the writer, which writes rows in order as they
    come, holds none back."""
    indexed.context.execution_options.preserve_order = True  # this dataset's own context
    indexed.context.raise_original_map_exception = True  # an actor's RemoteError reaches us as itself
    return indexed


def _shape(block) -> tuple:
    return block.num_rows, block.schema


def _number_rows(block, start: int, bounds: list[int]):
    """The slices ``bounds[i]:bounds[i + 1]`` of ``block`` with their row numbers (one table if one slice)."""
    import pyarrow as pa

    numbered = block.append_column(ROW, pa.array(range(start, start + block.num_rows), type=pa.int64()))
    parts = tuple(numbered.slice(begin, end - begin) for begin, end in zip(bounds, bounds[1:]))
    return parts if len(parts) > 1 else parts[0]
