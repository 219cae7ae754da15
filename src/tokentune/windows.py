"""Words -> sub-token windows: the one windowing of tokentune, for training, evaluation and inference.

Every word of a batch of sentences is encoded in one call to the Rust tokenizer; the pieces live in
flat arrays. A sentence that fits the model is one window; a longer one becomes overlapping windows
(about ``stride`` pieces of overlap), so nothing is cut in silence. Each window knows which of its
words it *owns*: in an overlap a word belongs to the window where it has the most context on both
sides (the overlap is split at its middle), so evaluation and prediction read every word exactly
once. Training labels the first piece of every word a window holds; the other pieces get ``IGNORE``.

A word the tokenizer turns into nothing is given the unknown token (its label is kept); a single word
longer than a whole window keeps only its first pieces. :class:`EncodeReport` counts both, and the
split sentences, so the user is told once per split.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Sequence

import numpy as np

IGNORE = -100  # the label of pieces the loss and the metrics skip (transformers' convention)
PAD, CLS, SEP, MARK = -1, -2, -3, -4  # WindowEncoder.layout's positions that hold no piece
FEATURE_CHUNK = 2048  # windows laid out at once when training features are built


@dataclass
class EncodeReport:
    """What preprocessing changed; told to the user once per split."""

    sentences: int = 0
    windows: int = 0
    split_sentences: int = 0  # longer than the model: split into overlapping windows
    empty_words: int = 0  # words the tokenizer turned into nothing: given the unknown token
    cut_words: int = 0  # single words longer than a whole window: their extra pieces dropped
    examples: list[str] = field(default_factory=list)

    def notes(self, split: str) -> list[str]:
        notes = []
        if self.split_sentences:
            notes.append(f"{split}: {self.split_sentences} of {self.sentences} sentences are longer than the model's "
                         f"limit and were split into {self.windows - self.sentences + self.split_sentences} "
                         f"overlapping windows (nothing dropped)")
        if self.empty_words:
            notes.append(f"{split}: {self.empty_words} words have no sub-tokens (e.g. {', '.join(self.examples[:3])}); "
                         f"they were encoded as the unknown token so their labels are kept")
        if self.cut_words:
            notes.append(f"{split}: {self.cut_words} single words are longer than a whole window; only their "
                         f"first pieces were kept (their labels are kept)")
        return notes


@dataclass
class Pieces:
    """The sub-tokens of every word of a call, flat (after the fixes above)."""

    ids: np.ndarray  # [pieces] token ids
    first: np.ndarray  # [pieces] bool: the first piece of its word
    word: np.ndarray  # [pieces] flat word index
    word_start: np.ndarray  # [words + 1] index of each word's first piece; the last entry = pieces


@dataclass
class Windows:
    """Model inputs as piece ranges: window i covers pieces [lo, hi) and owns pieces [own_lo, own_hi)
    (whole words: the owned words read their predictions from this window). In sentence order."""

    lo: np.ndarray
    hi: np.ndarray
    own_lo: np.ndarray
    own_hi: np.ndarray
    # with context (FLERT): the window before it was widened; [lo, core_lo) and [core_hi, hi) are context
    core_lo: np.ndarray | None = None
    core_hi: np.ndarray | None = None


def plan_windows(piece_counts: Sequence[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """Word ranges ``[start, end)`` of at most ``budget`` pieces each, consecutive ones overlapping
    by about ``stride`` pieces. One window when the sentence fits."""
    n = len(piece_counts)
    counts = [min(c, budget) for c in piece_counts]
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        total, end = 0, start
        while end < n and total + counts[end] <= budget:
            total += counts[end]
            end += 1
        windows.append((start, end))
        if end >= n:
            return windows
        # step back from `end` until about `stride` pieces overlap, leaving room for the next word
        limit = min(stride, budget - counts[end])
        next_start, overlap = end, 0
        while next_start - 1 > start and overlap + counts[next_start - 1] <= limit:
            next_start -= 1
            overlap += counts[next_start]
        start = max(next_start, start + 1)


def ownership(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The words each window owns: overlaps split at their middle, the owned ranges tiling the sentence."""
    owned = []
    for i, (start, end) in enumerate(windows):
        own_start = start if i == 0 else (start + windows[i - 1][1]) // 2 + (start + windows[i - 1][1]) % 2
        own_end = end if i == len(windows) - 1 else (windows[i + 1][0] + end) // 2 + (windows[i + 1][0] + end) % 2
        owned.append((max(own_start, start), min(own_end, end)))
    for i in range(1, len(owned)):
        owned[i] = (owned[i - 1][1], owned[i][1])
    return owned


def private_backend(tokenizer):
    """A copy of the fast tokenizer's Rust backend with truncation and padding off: transformers
    leaves the shared backend in whatever state its last call set, and a truncated word would lose
    pieces in silence."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not getattr(tokenizer, "is_fast", False):
        from .errors import ModelError

        raise ModelError(f"{type(tokenizer).__name__} is not a fast (Rust) tokenizer; tokentune needs one to map "
                         f"words to sub-tokens", fix="choose a model that ships tokenizer.json")
    import json

    from tokenizers import Tokenizer

    spec = backend.to_str()
    if "ByteLevel" in spec:
        spec = json.loads(spec)
        prefix_space_for_words(spec)
        spec = json.dumps(spec)
    copy = Tokenizer.from_str(spec)
    copy.no_truncation()
    copy.no_padding()
    return copy


def words_get_a_prefix_space(tokenizer) -> bool:
    """Whether :func:`private_backend` turns on this byte-level tokenizer's prefix space (a run says so)."""
    import json

    spec = tokenizer.backend_tokenizer.to_str()
    return "ByteLevel" in spec and prefix_space_for_words(json.loads(spec))


def prefix_space_for_words(spec: dict) -> bool:
    """Turn on ``add_prefix_space`` of a byte-level tokenizer's pre-tokenizer and post-processor (in a
    tokenizer.json as a dict); True where it was off.

    Off (roberta-base's own tokenizer.json), a text's first word has no leading-space mark and every later
    one has it ("EU" "Ġrejects"); words given one by one, as tokentune encodes them, would all come out
    as first words ("re" "j" "ec" "ts" instead of "Ġre" ...), pieces the encoder rarely saw inside a
    sentence, and a model fine-tuned on them disagrees with plain transformers on running text. On, every
    word reads as inside a text, as transformers' run_ner.py sets it for such models."""
    changed = False
    for part in (spec.get("pre_tokenizer"), spec.get("post_processor")):
        for piece in (part or {}).get("pretokenizers") or (part or {}).get("processors") or [part]:
            if isinstance(piece, dict) and piece.get("add_prefix_space") is False and (
                    piece.get("type") in ("ByteLevel", "RobertaProcessing")):
                piece["add_prefix_space"] = changed = True
    return changed


def sentence_offsets(sentences: Sequence[Sequence[str]]) -> np.ndarray:
    """``[sentences + 1]``: sentence i is flat words ``offsets[i]:offsets[i + 1]``."""
    return np.concatenate([[0], np.cumsum([len(s) for s in sentences])]).astype(np.int64)


def document_offsets(offsets: np.ndarray, documents: Sequence[tuple[int, int]]) -> np.ndarray:
    """Flat word offsets of ``documents`` (``[start, end)`` sentence ranges) from the sentences' ``offsets``."""
    return offsets[[start for start, _ in documents] + [documents[-1][1] if documents else 0]]


def _at(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]`` where the index is a piece (>= 0); anything where it is not (the caller masks it)."""
    return values[np.maximum(index, 0)] if len(values) else np.zeros(index.shape, dtype=values.dtype)


class WindowEncoder:
    """Sentences of words -> :class:`Pieces` and :class:`Windows` for one tokenizer and window size."""

    def __init__(self, tokenizer, *, max_length: int, stride: int, context_marker: bool = False) -> None:
        """``context_marker``: every window's sentence is set off from its context by the separator token
        on either side, context or not (FLERT's context marker), two positions of ``max_length``."""
        self.tokenizer = tokenizer
        self.backend = private_backend(tokenizer)
        self.stride = stride
        self.marker = int(bool(context_marker) and tokenizer.sep_token_id is not None)
        self.budget = max_length - tokenizer.num_special_tokens_to_add(pair=False) - 2 * self.marker
        self.cls_id = tokenizer.cls_token_id
        self.sep_id = tokenizer.sep_token_id
        self.pad_id = tokenizer.pad_token_id or 0
        self.unk_id = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0

    def pieces(self, sentences: Sequence[Sequence[str]], offsets: np.ndarray,
               report: EncodeReport | None = None) -> Pieces:
        encodings = self.backend.encode_batch([list(s) for s in sentences], is_pretokenized=True,
                                              add_special_tokens=False)
        sizes = [len(e.ids) for e in encodings]
        total = sum(sizes)
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.int64, count=total)
        local = np.fromiter(chain.from_iterable(e.word_ids for e in encodings), dtype=np.int64, count=total)
        word = local + np.repeat(offsets[:-1], sizes)
        words = int(offsets[-1])
        counts = np.bincount(word, minlength=words)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            where = np.searchsorted(word, empty)  # word numbers ascend through the flat pieces
            ids, word = np.insert(ids, where, self.unk_id), np.insert(word, where, empty)
            counts[empty] = 1
        word_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        rank = np.arange(len(ids)) - word_start[word]
        cut = counts > self.budget
        if cut.any():
            keep = rank < self.budget
            ids, word, rank = ids[keep], word[keep], rank[keep]
            word_start = np.concatenate([[0], np.cumsum(np.minimum(counts, self.budget))]).astype(np.int64)
        if report is not None:
            self._count(report, sentences, offsets, empty, int(cut.sum()))
        return Pieces(ids, rank == 0, word, word_start)

    @staticmethod
    def _count(report: EncodeReport, sentences, offsets: np.ndarray, empty: np.ndarray, cut: int) -> None:
        report.empty_words += len(empty)
        report.cut_words += cut
        for flat in empty[: max(0, 3 - len(report.examples))].tolist():
            sentence = int(np.searchsorted(offsets, flat, side="right")) - 1
            report.examples.append(repr(sentences[sentence][flat - offsets[sentence]]))

    def windows(self, pieces: Pieces, offsets: np.ndarray, *, keep_empty: bool = False,
                report: EncodeReport | None = None) -> Windows:
        """One window per sentence that fits (all built at once), several for a longer one.
        ``keep_empty``: an empty sentence gets an empty window too (else it has nothing to predict)."""
        bounds = pieces.word_start[offsets]
        lo, hi = bounds[:-1], bounds[1:]
        long = hi - lo > self.budget
        fits = ~long & ((offsets[1:] > offsets[:-1]) | keep_empty)
        parts = [np.stack([lo[fits], hi[fits], lo[fits], hi[fits]], axis=1)]
        for index in np.flatnonzero(long):
            first, last = offsets[index], offsets[index + 1]
            ranges = plan_windows(np.diff(pieces.word_start[first:last + 1]).tolist(), self.budget,
                                  min(self.stride, self.budget // 2))
            words = [(s, e, own_s, own_e) for (s, e), (own_s, own_e) in zip(ranges, ownership(ranges))]
            parts.append(pieces.word_start[np.array(words, dtype=np.int64) + first])
        table = np.concatenate(parts).astype(np.int64)
        table = table[np.lexsort((table[:, 1], table[:, 0]))]  # sentence order, then window order
        if report is not None:
            report.sentences += len(offsets) - 1
            report.windows += len(table)
            report.split_sentences += int(long.sum())
        return Windows(table[:, 0], table[:, 1], table[:, 2], table[:, 3])

    def with_context(self, pieces: Pieces, windows: Windows, unit_offsets: np.ndarray, context: int) -> Windows:
        """The same windows (and ownership), each widened by up to ``context`` pieces on either side, whole
        words only, never past its unit (``unit_offsets``: flat word offsets of the documents) nor the
        model's limit. FLERT's sentence-with-context: a sentence is read with its neighbours but owns
        only itself, so training labels every word once and a batch holds many documents' sentences."""
        starts = pieces.word_start[unit_offsets]
        unit = np.searchsorted(starts, windows.lo, side="right") - 1
        room = self.budget - (windows.hi - windows.lo)
        # an empty sentence's window stays empty: at a document's end it would be placed in the next one
        reach = np.where(windows.hi > windows.lo, context, 0)
        left = np.minimum(reach, windows.lo - starts[unit])
        right = np.minimum(reach, starts[np.minimum(unit + 1, len(starts) - 1)] - windows.hi)
        # short of room, each side keeps half of it, plus what the other side does not use
        left_kept = np.minimum(left, np.maximum(room // 2, room - right))
        right_kept = np.minimum(right, room - left_kept)
        lo = pieces.word_start[np.searchsorted(pieces.word_start, windows.lo - left_kept, side="left")]
        hi = pieces.word_start[np.searchsorted(pieces.word_start, windows.hi + right_kept, side="right") - 1]
        return Windows(np.minimum(lo, windows.lo), np.maximum(hi, windows.hi), windows.own_lo, windows.own_hi,
                       windows.lo, windows.hi)

    def document_windows(self, pieces: Pieces, offsets: np.ndarray,
                         documents: Sequence[tuple[int, int]] | None = None, context: int = 0, *,
                         keep_empty: bool = False, report: EncodeReport | None = None) -> Windows:
        """The windows of the sentences at ``offsets``; with ``documents`` (``[start, end)`` sentence
        ranges) each document fills its windows as one sequence (``context`` 0), or each sentence's
        windows are widened by up to ``context`` pieces of its document (:meth:`with_context`)."""
        if documents is None:
            return self.windows(pieces, offsets, keep_empty=keep_empty, report=report)
        units = document_offsets(offsets, documents)
        if not context:
            return self.windows(pieces, units, keep_empty=keep_empty, report=report)
        return self.with_context(pieces, self.windows(pieces, offsets, keep_empty=keep_empty, report=report), units,
                                 context)

    def layout(self, windows: Windows, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model input of the chosen windows as ``[windows, longest]`` flat piece indices, or
        ``PAD``/``CLS``/``SEP``/``MARK`` (the context marker) where there is no piece; and their lengths."""
        n_cls, n_sep, marker = int(self.cls_id is not None), int(self.sep_id is not None), self.marker
        lo, hi = windows.lo[chosen], windows.hi[chosen]
        lengths = hi - lo + n_cls + n_sep + 2 * marker  # as input_lengths
        inner = np.arange(int(lengths.max()))[None, :] - n_cls  # the position in the window's body
        piece = lo[:, None] + inner
        mark = np.zeros(piece.shape, dtype=bool)
        if marker:  # body: left context, MARK, the sentence, MARK, right context
            core_lo = (windows.lo if windows.core_lo is None else windows.core_lo)[chosen]
            core_hi = (windows.hi if windows.core_hi is None else windows.core_hi)[chosen]
            first, second = (core_lo - lo)[:, None], (core_hi - lo + 1)[:, None]
            piece = piece - (inner > first) - (inner > second)
            mark = (inner == first) | (inner == second)
        index = np.where((inner >= 0) & (inner < (hi - lo + 2 * marker)[:, None]), piece, PAD)
        index[mark] = MARK
        if n_cls:
            index[:, 0] = CLS
        if n_sep:
            index[np.arange(len(chosen)), lengths - 1] = SEP
        return index, lengths

    def input_lengths(self, windows: Windows) -> np.ndarray:
        """Each window's model input length: its pieces, [CLS], [SEP] and the context markers."""
        return windows.hi - windows.lo + int(self.cls_id is not None) + int(self.sep_id is not None) + 2 * self.marker

    def inputs(self, pieces: Pieces, windows: Windows, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``input_ids`` and ``attention_mask`` of the chosen windows, right-padded to the longest."""
        index, lengths = self.layout(windows, chosen)
        return self._ids(pieces, index), (np.arange(index.shape[1])[None, :] < lengths[:, None]).astype(np.int64)

    def _ids(self, pieces: Pieces, index: np.ndarray) -> np.ndarray:
        ids = np.where(index >= 0, _at(pieces.ids, index), self.pad_id)
        for code, token in ((CLS, self.cls_id), (SEP, self.sep_id), (MARK, self.sep_id)):
            if token is not None:
                ids[index == code] = token
        return ids

    def first_column(self) -> int:
        """The input position of a window's first owned piece, relative to its first piece: what comes
        before the sentence's own pieces besides context ([CLS], the left marker)."""
        return int(self.cls_id is not None) + self.marker

    def features(self, sentences: Sequence[Sequence[str]], word_label_ids: Sequence[Sequence[int]], *,
                 owned_only: bool, report: EncodeReport | None = None,
                 documents: Sequence[tuple[int, int]] | None = None, context: int = 0,
                 mark_context: bool = False) -> list[dict]:
        """Training/evaluation features: ``input_ids``, ``attention_mask`` and ``labels`` (the word's label
        on its first piece, ``IGNORE`` elsewhere), one per window in sentence order. ``owned_only``
        labels each word in one window only (for evaluation, so no word counts twice); training
        labels every word a window holds. ``documents`` and ``context``: see :meth:`document_windows`.
        ``mark_context`` (with ``context``): each feature also gets ``context`` = ``[a, b, c, d, number]``,
        its document context being ``input_ids[a:b]`` (left) and ``input_ids[c:d]`` (right), which
        training's context dropout (:mod:`tokentune.training.context`) may leave out."""
        offsets = sentence_offsets(sentences)
        pieces = self.pieces(sentences, offsets, report)
        windows = self.document_windows(pieces, offsets, documents, context, keep_empty=True, report=report)
        labels = np.fromiter(chain.from_iterable(word_label_ids), dtype=np.int64, count=int(offsets[-1]))
        piece_labels = np.where(pieces.first, labels[pieces.word] if len(labels) else IGNORE, IGNORE)
        marks = self._context_marks(windows) if mark_context and windows.core_lo is not None else None
        features = []
        for begin in range(0, len(windows.lo), FEATURE_CHUNK):  # a chunk at a time: [windows, longest] arrays
            chosen = np.arange(begin, min(begin + FEATURE_CHUNK, len(windows.lo)))
            index, lengths = self.layout(windows, chosen)
            ids = self._ids(pieces, index)
            labelled = index >= 0
            if owned_only:
                labelled &= (index >= windows.own_lo[chosen, None]) & (index < windows.own_hi[chosen, None])
            rows = np.where(labelled, _at(piece_labels, index), IGNORE)
            for row, length in enumerate(lengths.tolist()):
                features.append({"input_ids": ids[row, :length].tolist(), "attention_mask": [1] * length,
                                 "labels": rows[row, :length].tolist()})
                if marks is not None:
                    features[-1]["context"] = marks[begin + row]
        return features

    def _context_marks(self, windows: Windows) -> list[list[int]]:
        """Per window, ``[a, b, c, d, number]``: its left context at ``input_ids[a:b]``, its right at
        ``[c:d]`` (the markers, if any, are between them and the sentence, and stay), and the window's number."""
        table = np.stack([windows.lo, windows.core_lo, windows.core_hi, windows.hi], axis=1) - windows.lo[:, None]
        table[:, 2:] += 2 * self.marker
        table += int(self.cls_id is not None)
        return np.column_stack([table, np.arange(len(table))]).tolist()
