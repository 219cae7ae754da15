"""Windows packed end to end into rows for the model (short ones in narrow rows), as training's packed
batches are.

Sorted, padded batches (the Tagger's other path) come in as many shapes as there are window lengths
and batch sizes; in bf16 on a CPU each new shape builds its kernels once, and every batch still carries
some padding. Packed rows have few widths per call and a fixed number of rows per batch, so nearly every
batch has the same shape, and they are 99.8% full on CoNLL-2003 test (docs/benchmarks.md, "Packed
prediction, and start-up without transformers"). A block-diagonal attention mask keeps each window to
itself and its position ids restart at the model's first position, so each window is computed as if it
were alone, up to float rounding (in bf16 a window's scores so depend a little on its neighbours).

Attention runs over whole rows (the mask saves no work), so its cost per position grows with the row's
width: windows of at most :data:`NARROW` positions (nearly all sentences) go into rows that narrow, the
others into rows of their own width (torch's CPU attention over 2,048 positions of MiniLM: 5.3 ms a layer
in rows of 64 against 7.4 ms in rows of 128; docs/benchmarks.md, "The floor of each job").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..training.packing import block_diagonal_mask

NARROW = 64  # windows up to this long go into rows this wide, so that calls with short windows share one shape
WIDTH_STEP = 64  # longer windows: rows as wide as the longest, rounded up to a multiple of this
SMALL_STEP = 8  # the width of a call whose windows fill less than one row
TOKENS_PER_WINDOW = 64  # a batch: batch_size x (the mean window length, at least this) positions


@dataclass(frozen=True)
class PackedBatch:
    chosen: np.ndarray  # [windows] window indices, in the order of their rows
    row: np.ndarray  # [windows] the packed row of each chosen window
    start: np.ndarray  # [windows] its first column in that row
    width: int

    @property
    def rows(self) -> int:
        return int(self.row[-1]) + 1  # rows are numbered in order from 0


def _widest(lengths: np.ndarray) -> int:
    longest = int(lengths.max()) if len(lengths) else 0
    return max(NARROW, -(-longest // WIDTH_STEP) * WIDTH_STEP)


def row_width(lengths: np.ndarray) -> int:
    """The width of the rows for windows of these input lengths (all at most :data:`NARROW`, or all
    longer): :data:`NARROW`, or the longest window rounded up to :data:`WIDTH_STEP`; where all windows fit
    one such row (a request to ``serve``), just their total rounded up to 8, so that one short sentence is
    not run as a row of 64."""
    total, widest = int(lengths.sum()), _widest(lengths)
    return -(-total // SMALL_STEP) * SMALL_STEP if total <= widest else widest


def fill_rows(lengths: np.ndarray, width: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into rows of at most ``width``: longest first, each into the row
    with the least room that holds it (best fit decreasing), in time linear in the windows."""
    by_room: list[list[int]] = [[] for _ in range(width + 1)]  # open rows, by the room they have left
    count = np.zeros(width + 1, dtype=np.int64)
    rows: list[list[int]] = []
    for index in np.argsort(-lengths, kind="stable").tolist():
        size = int(lengths[index])
        fits = np.flatnonzero(count[size:])
        if len(fits):
            room = size + int(fits[0])
            row = by_room[room].pop()
            count[room] -= 1
        else:
            room, row = width, len(rows)
            rows.append([])
        rows[row].append(index)
        by_room[room - size].append(row)
        count[room - size] += 1
    return rows


def plan_batches(lengths: np.ndarray, batch_size: int) -> list[PackedBatch]:
    """Batches of packed rows for windows of input lengths ``lengths``: windows of at most :data:`NARROW`
    positions in rows of their own, longer ones in wider rows (:func:`row_width` of each group); each batch
    ``batch_size`` x the larger of :data:`TOKENS_PER_WINDOW` and the windows' mean length positions (so at
    most what ``batch_size`` padded windows would take), at least one row."""
    if not len(lengths):
        return []
    narrow = lengths <= NARROW
    if narrow.all() or not narrow.any() or int(lengths.sum()) <= _widest(lengths):  # one group, or one row
        return _plan_group(lengths, np.arange(len(lengths)), batch_size)
    return (_plan_group(lengths[narrow], np.flatnonzero(narrow), batch_size)
            + _plan_group(lengths[~narrow], np.flatnonzero(~narrow), batch_size))


def _plan_group(lengths: np.ndarray, indices: np.ndarray, batch_size: int) -> list[PackedBatch]:
    """:func:`plan_batches` for one group of windows, all in rows of one width; ``indices``: the windows'
    numbers in the whole call, which the batches' ``chosen`` give."""
    width = row_width(lengths)
    rows = fill_rows(lengths, width)
    # about batch_size windows of their mean length, and never fewer positions than TOKENS_PER_WINDOW
    # each: long windows (document context) keep batches as large as padded ones, short ones fill rows
    per_batch = max(1, int(batch_size * max(TOKENS_PER_WINDOW, float(lengths.mean()))) // width)
    batches = []
    for begin in range(0, len(rows), per_batch):
        group = rows[begin:begin + per_batch]
        chosen = np.array([index for members in group for index in members], dtype=np.int64)
        row = np.repeat(np.arange(len(group)), [len(members) for members in group])
        offset = np.cumsum(lengths[chosen]) - lengths[chosen]  # as if all rows were one
        row_begins = np.concatenate([[0], np.flatnonzero(np.diff(row)) + 1])  # each row's first window
        start = offset - offset[row_begins][row]
        batches.append(PackedBatch(indices[chosen], row, start, width))
    return batches


def pack_inputs(input_ids: np.ndarray, attention_mask: np.ndarray, batch: PackedBatch, *, pad_id: int,
                first_position: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(input_ids [rows, width], attention_mask [rows, 1, width, width] bool, position_ids)`` from the
    right-padded inputs of ``batch.chosen`` (the mask: training's :func:`block_diagonal_mask`)."""
    lengths = attention_mask.sum(axis=1)
    total = int(lengths.sum())
    source = np.repeat(np.arange(len(lengths)), lengths)
    column = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # within its window
    row, at = batch.row[source], batch.start[source] + column
    shape = (batch.rows, batch.width)
    ids = np.full(shape, pad_id, dtype=np.int64)
    ids[row, at] = input_ids[source, column]
    positions = np.zeros(shape, dtype=np.int64)
    positions[row, at] = column + first_position
    segment = np.full(shape, -1, dtype=np.int64)
    segment[row, at] = source
    return ids, block_diagonal_mask(segment), positions
