"""What comes back from Ray prediction (:mod:`tokentune.inference.ray_batch`): the rows written in
input order to one file, and user errors raised in actors, unwrapped from Ray's exceptions.

Rows carry a ``WORDS`` column (words tagged per row, for the throughput) and their input position
(``ROW``), both dropped on writing. The rows are written in ``ROW`` order as they stream in
(:func:`in_row_order`): Ray Data hands the blocks back in input order (``preserve_order``), so no
global sort (a shuffle: 6 of 22 s on CoNLL-2003 test) is needed, and a block that came early waits. A
``.parquet`` output is written with a ``ParquetWriter``, anything else as JSON lines (the same lines
``tokentune predict`` writes for JSON lines input); either atomically (:mod:`tokentune.io`).
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Iterable, Iterator

from ..data.formats import JSON_SUFFIXES
from ..errors import ConfigError, DataError, TokentuneError
from .parallel import rebuild_error

PARQUET_SUFFIX = ".parquet"
WORDS = "__tokentune_words"  # words per row, summed for the throughput and dropped
ROW = "__tokentune_row"  # the input position, added on reading, to write in order by, and dropped


@dataclass
class Written:
    """What :func:`predict_dataset` wrote: the output, its records and the words tagged in them."""

    output: str
    records: int
    words: int
    cpus_per_actor: float | None = None  # each actor's CPUs, as given or shared out


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
    """Write the rows of ``predicted`` (with ``WORDS`` and ``ROW``; None: no rows) in order: Parquet for
    a ``.parquet`` path, else JSON lines (a path, written atomically, or a text handle).
    ``empty_schema``: the Parquet columns where there are no rows."""
    from ..io import atomic_file, temporary_sibling

    batches = _batches(predicted) if predicted is not None else iter(())
    if not isinstance(output, (str, os.PathLike)):
        return Written("-", *_write_jsonl(batches, output))
    path = os.fspath(output)
    if path.lower().endswith(PARQUET_SUFFIX):
        with temporary_sibling(path, "wb") as handle:
            return Written(path, *_write_parquet(batches, handle, empty_schema))
    with atomic_file(path) as handle:
        return Written(path, *_write_jsonl(batches, handle))


def _batches(predicted) -> Iterator[tuple[object, int]]:
    """``(Arrow table without WORDS and ROW, words)`` for each run of rows, in input order; user errors
    raised as such."""
    with user_errors("the dataset"):
        blocks = predicted.iter_batches(batch_format="pyarrow", batch_size=None)
        for batch in in_row_order(blocks):
            words = sum(batch.column(WORDS).to_pylist())
            yield batch.drop_columns([WORDS, ROW]), words


def in_row_order(tables: Iterable) -> Iterator:
    """The rows of ``tables`` (Arrow tables with a ``ROW`` column numbering every row once, from 0) in
    ``ROW`` order, as runs of consecutive rows, each yielded as soon as the rows before it have been.
    Tables that come in order (Ray's ``preserve_order``) pass through as they are; a table out of order
    waits, and one whose rows are not consecutive is sorted and cut into runs first. A number seen
    twice, or missing at the end, is an error in Ray's hand-back, raised as ``RuntimeError`` before
    any row after it is yielded."""
    expected, waiting = 0, {}  # first row of a waiting run -> (the row after it, the run)
    for table in tables:
        for run in _runs(table):
            rows = run.column(ROW)
            first, end = rows[0].as_py(), rows[-1].as_py() + 1
            overlaps = [max(first, start) for start, (stop, _) in waiting.items() if first < stop and start < end]
            if first < expected or overlaps:
                raise RuntimeError(f"Ray returned row {first if first < expected else min(overlaps)} twice")
            waiting[first] = (end, run)
        while expected in waiting:
            expected, run = waiting.pop(expected)
            yield run
    if waiting:
        raise RuntimeError(f"Ray returned {expected} rows in order, then none numbered {expected} "
                           f"(next: {min(waiting)})")


def _runs(table) -> list:
    """``table``'s rows as runs of consecutive ``ROW`` numbers, each in order (one run if it already is)."""
    import numpy as np

    if not table.num_rows:
        return []
    rows = table.column(ROW).to_numpy()
    if rows[-1] - rows[0] == len(rows) - 1 and (len(rows) == 1 or bool(np.all(np.diff(rows) == 1))):
        return [table]
    order = np.argsort(rows, kind="stable")
    table, rows = table.take(order), rows[order]
    if bool(np.any(np.diff(rows) == 0)):
        raise RuntimeError(f"Ray returned row {rows[np.flatnonzero(np.diff(rows) == 0)[0]]} twice")
    cuts = [0, *(np.flatnonzero(np.diff(rows) != 1) + 1).tolist(), len(rows)]
    return [table.slice(start, end - start) for start, end in zip(cuts, cuts[1:])]


def _write_jsonl(batches, handle: IO[str]) -> tuple[int, int]:
    records = words = 0
    for table, count in batches:
        rows = table.to_pylist()
        if rows:
            handle.write("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n")
        records, words = records + len(rows), words + count
    return records, words


def _write_parquet(batches, handle, empty_schema=None) -> tuple[int, int]:
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
        writer = pq.ParquetWriter(handle, empty_schema or pa.schema([]))
    writer.close()
    return records, words
