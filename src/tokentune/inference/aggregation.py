"""Where the pieces a batch's windows own sit in the model's input, and from their probabilities one row per
word (``aggregation``: first, average, max), for the Tagger."""
from __future__ import annotations

import numpy as np

AGGREGATIONS = ("first", "average", "max")


def owned_positions(pieces, windows, chosen: np.ndarray, row: np.ndarray | None, start: np.ndarray | None,
                    first_column: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, columns, pieces, first)`` of the pieces the ``chosen`` windows own, in order: where each is
    in the model's input, its piece number, and whether it begins its word. ``row`` and ``start``: where
    each chosen window is (packed rows; None: window i is row i from column 0); ``first_column``: the
    column of a window's first piece after its special tokens."""
    own_lo, sizes = windows.own_lo[chosen], windows.own_hi[chosen] - windows.own_lo[chosen]
    total = int(sizes.sum())
    rows = np.repeat(np.arange(len(chosen)) if row is None else row, sizes)
    piece = np.repeat(own_lo, sizes) + np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    cols = piece - np.repeat(windows.lo[chosen] - (0 if start is None else start), sizes) + first_column
    return rows, cols, piece, pieces.first[piece]


def word_values(values: np.ndarray, first: np.ndarray, aggregation: str) -> np.ndarray:
    """One row per word from its pieces' rows ``values`` (whole words, in order; ``first`` marks where
    each begins): the first piece's, the pieces' average, or the piece whose best label is the most
    confident (max)."""
    if aggregation == "first":
        return values[first]
    starts = np.flatnonzero(first)  # owned ranges are whole words: each begins with a first piece
    counts = np.diff(np.append(starts, len(values)))
    if aggregation == "average":
        return np.add.reduceat(values, starts, axis=0) / counts[:, None]
    piece_best = values.max(axis=1)
    group = np.repeat(np.arange(len(starts)), counts)
    group_best = np.maximum.reduceat(piece_best, starts)
    hits = np.flatnonzero(piece_best == group_best[group])
    _, first_hit = np.unique(group[hits], return_index=True)
    return values[hits[first_hit]]
