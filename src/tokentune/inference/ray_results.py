"""What comes back from Ray prediction (:mod:`tokentune.inference.ray_batch`): the rows written in
input order to one file, and user errors raised in actors, unwrapped from Ray's exceptions.

Rows carry a ``WORDS`` column (words tagged per row, for the throughput), dropped on writing. A
``.parquet`` output is written with a ``ParquetWriter``, anything else as JSON lines (the same lines
``tokentune predict`` writes for JSON lines input); either atomically (:mod:`tokentune.io`).
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Iterator

from ..data.formats import JSON_SUFFIXES
from ..errors import ConfigError, DataError, TokentuneError
from .parallel import rebuild_error

PARQUET_SUFFIX = ".parquet"
WORDS = "__tokentune_words"  # words per row, summed for the throughput and dropped


@dataclass
class Written:
    """What :func:`predict_dataset` wrote: the output, its records and the words tagged in them."""

    output: str
    records: int
    words: int


class RemoteError(Exception):
    """A user error raised in an actor, carried as (type, message) so that it always unpickles."""


@contextmanager
def user_errors(where: str, fix: str | None = None, *, reading: bool = False) -> Iterator[None]:
    """Raise a user error that Ray wrapped (an actor's :class:`RemoteError`, a :class:`TokentuneError`,
    a file Arrow cannot parse: with ``fix``, else how to write JSON lines) as itself; anything else
    passes unchanged. ``reading`` the input, an ``OSError`` is the input's too (Arrow's word for a
    Parquet footer it cannot parse)."""
    try:
        yield
    except TokentuneError:
        raise
    except Exception as error:
        import pyarrow as pa

        unreadable = (pa.ArrowInvalid, pa.ArrowTypeError, json.JSONDecodeError) + ((OSError,) if reading else ())
        seen, stack = set(), [error]
        while stack:
            cause = stack.pop()
            if cause is None or id(cause) in seen:
                continue
            seen.add(id(cause))
            stack += [cause.__cause__, cause.__context__, getattr(cause, "cause", None)]
            if type(cause).__module__.startswith("ray."):  # Ray's wrapper (RayTaskError(X) is an X too)
                continue
            if isinstance(cause, RemoteError) and len(cause.args) >= 2 and isinstance(cause.args[0], type):
                raise rebuild_error(*cause.args[:2]) from None  # Ray may append notes to the args
            if isinstance(cause, TokentuneError):
                raise rebuild_error(type(cause), str(cause)) from None
            if isinstance(cause, unreadable):
                raise DataError(f"Ray Data cannot read it: {(str(cause).splitlines() or [repr(cause)])[0]}", path=where,
                                fix=fix or "give one JSON object per line, each field of one type in every record, "
                                           "or a Parquet file (or leave --ray out: predict reads any JSON lines)") from None
        raise


def check_output_name(output) -> None:
    """A path ``output`` is written as Parquet (``.parquet``) or JSON lines (:data:`JSON_SUFFIXES`, or no
    suffix); another (``.csv``) would get JSON lines under a name that says otherwise."""
    if isinstance(output, (str, os.PathLike)):
        suffix = os.path.splitext(os.fspath(output))[1].lower()
        if suffix not in ("", PARQUET_SUFFIX, *JSON_SUFFIXES):
            raise ConfigError(f"output {os.fspath(output)}: predictions are written as Parquet or JSON lines, not "
                              f"{suffix}", fix="name the output .jsonl or .parquet")


def write_predictions(predicted, output: str | os.PathLike | IO[str], empty_schema=None) -> Written:
    """Write the rows of ``predicted`` (with ``WORDS``) in order: Parquet for a ``.parquet`` path, else
    JSON lines (a path, written atomically, or a text handle). ``empty_schema``: the Parquet columns
    where there are no rows and Ray knows none (it keeps no schema for a Dataset of no rows)."""
    from ..io import atomic_file, temporary_sibling

    if not isinstance(output, (str, os.PathLike)):
        return Written("-", *_write_jsonl(_batches(predicted), output))
    path = os.fspath(output)
    if path.lower().endswith(PARQUET_SUFFIX):
        with temporary_sibling(path, "wb") as handle:
            return Written(path, *_write_parquet(_batches(predicted), handle, predicted, empty_schema))
    with atomic_file(path) as handle:
        return Written(path, *_write_jsonl(_batches(predicted), handle))


def _batches(predicted) -> Iterator[tuple[object, int]]:
    """``(Arrow table without WORDS, words)`` for each block, in order; user errors raised as such."""
    with user_errors("the dataset"):
        for batch in predicted.iter_batches(batch_format="pyarrow", batch_size=None):
            words = sum(batch.column(WORDS).to_pylist())
            yield batch.drop_columns([WORDS]), words


def _write_jsonl(batches, handle: IO[str]) -> tuple[int, int]:
    records = words = 0
    for table, count in batches:
        rows = table.to_pylist()
        if rows:
            handle.write("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n")
        records, words = records + len(rows), words + count
    return records, words


def _write_parquet(batches, handle, predicted, empty_schema=None) -> tuple[int, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = words = 0
    writer = None
    for table, count in batches:
        if writer is None:
            writer = pq.ParquetWriter(handle, table.schema)
        writer.write_table(table if table.schema == writer.schema else table.cast(writer.schema))
        records, words = records + table.num_rows, words + count
    if writer is None:  # no rows: the columns still
        schema = predicted.drop_columns([WORDS]).schema()
        writer = pq.ParquetWriter(handle, getattr(schema, "base_schema", schema) or empty_schema or pa.schema([]))
    writer.close()
    return records, words
