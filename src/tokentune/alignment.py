"""Words -> sub-word features: labels on the first sub-token of each word (-100 on the rest), and
windows with overlap for sentences longer than the model can take, so nothing is cut in silence.

Each window knows which of its words it *owns*: in an overlap, a word belongs to the window where it
has the most context on both sides (the overlap is split at its middle). Evaluation and prediction
read every word exactly once, from its owner.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

IGNORE = -100


@dataclass
class Window:
    sentence: int  # index of the sentence in the batch or corpus
    word_start: int  # first word in the window
    word_end: int  # one past the last word
    own_start: int  # words [own_start, own_end) take their prediction from this window
    own_end: int
    input_ids: list[int]
    word_index: list[int]  # per sub-token: word number in the sentence, -1 for special tokens
    first_piece: list[bool]  # per sub-token: is it the first piece of its word


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


def word_pieces(tokenizer, sentences: Sequence[Sequence[str]], report: EncodeReport | None = None) -> list[list[list[int]]]:
    """Sub-token ids of every word of every sentence, in one fast-tokenizer call."""
    encoded = tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False,
                        return_attention_mask=False, return_token_type_ids=False)
    result = []
    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
    for index, words in enumerate(sentences):
        pieces: list[list[int]] = [[] for _ in words]
        for token_id, word in zip(encoded["input_ids"][index], encoded.word_ids(index)):
            if word is not None:
                pieces[word].append(token_id)
        for position, piece in enumerate(pieces):
            if not piece:
                piece.append(unk)
                if report is not None:
                    report.empty_words += 1
                    if len(report.examples) < 3:
                        report.examples.append(repr(words[position]))
        result.append(pieces)
    return result


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


def _ownership(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    owned = []
    for i, (start, end) in enumerate(windows):
        own_start = start if i == 0 else (start + windows[i - 1][1]) // 2 + (start + windows[i - 1][1]) % 2
        own_end = end if i == len(windows) - 1 else (windows[i + 1][0] + end) // 2 + (windows[i + 1][0] + end) % 2
        owned.append((max(own_start, start), min(own_end, end)))
    # make the owned ranges exactly tile the sentence
    for i in range(1, len(owned)):
        owned[i] = (owned[i - 1][1], owned[i][1])
    return owned


def make_windows(
    tokenizer, sentences: Sequence[Sequence[str]], *, max_length: int, stride: int,
    report: EncodeReport | None = None,
) -> list[Window]:
    """Encode sentences into windows with special tokens; long sentences become several windows."""
    report = report if report is not None else EncodeReport()
    pieces_per_sentence = word_pieces(tokenizer, sentences, report)
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    cls = [tokenizer.cls_token_id] if tokenizer.cls_token_id is not None else []
    sep = [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else []
    windows: list[Window] = []
    for index, pieces in enumerate(pieces_per_sentence):
        report.sentences += 1
        for piece in pieces:
            if len(piece) > budget:
                report.cut_words += 1
                del piece[budget:]
        ranges = plan_windows([len(p) for p in pieces], budget, min(stride, budget // 2))
        if len(ranges) > 1:
            report.split_sentences += 1
        for (start, end), (own_start, own_end) in zip(ranges, _ownership(ranges)):
            ids, word_index, first = list(cls), [-1] * len(cls), [False] * len(cls)
            for word in range(start, end):
                ids.extend(pieces[word])
                word_index.extend([word] * len(pieces[word]))
                first.extend([True] + [False] * (len(pieces[word]) - 1))
            ids.extend(sep)
            word_index.extend([-1] * len(sep))
            first.extend([False] * len(sep))
            windows.append(Window(index, start, end, own_start, own_end, ids, word_index, first))
            report.windows += 1
    return windows


def training_features(windows: list[Window], word_label_ids: Sequence[Sequence[int]], *, owned_only: bool) -> list[dict]:
    """Model inputs with labels on first pieces. ``owned_only`` labels each word in one window only
    (for evaluation, so no word is counted twice); training labels every word it sees."""
    features = []
    for window in windows:
        labels = word_label_ids[window.sentence]
        row = []
        for word, first in zip(window.word_index, window.first_piece):
            keep = first and (not owned_only or window.own_start <= word < window.own_end)
            row.append(labels[word] if keep else IGNORE)
        features.append({"input_ids": window.input_ids, "attention_mask": [1] * len(window.input_ids), "labels": row})
    return features
