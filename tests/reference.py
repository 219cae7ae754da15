"""Reference implementations kept only as test oracles for tokentune's vectorised code: the per-sentence
windowing (``make_windows``: lists of Python ints, one sentence at a time, through transformers' own
``is_split_into_words`` call) and the per-sentence Viterbi. The fast code must give the same results."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tokentune.decoding import FORBIDDEN, transition_masks
from tokentune.schemes import Scheme
from tokentune.windows import IGNORE, EncodeReport, ownership, plan_windows


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
        for (start, end), (own_start, own_end) in zip(ranges, ownership(ranges)):
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


def viterbi(log_probs: np.ndarray, labels: Sequence[str], scheme: Scheme) -> np.ndarray:
    """Best label ids under the scheme's constraints for one sentence's ``[words, labels]`` log-probs."""
    length = log_probs.shape[0]
    if length == 0:
        return np.zeros(0, dtype=np.int64)
    start, trans, end = transition_masks(labels, scheme)
    score = log_probs[0] + start
    back = np.zeros((length, log_probs.shape[1]), dtype=np.int64)
    for t in range(1, length):
        candidates = score[:, None] + trans  # [prev, cur]
        back[t] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[t]
    score = score + end
    best = np.empty(length, dtype=np.int64)
    best[-1] = int(score.argmax())
    if score[best[-1]] <= FORBIDDEN / 2:  # the label set allows no valid path: do not invent one
        return log_probs.argmax(axis=1)
    for t in range(length - 1, 0, -1):
        best[t - 1] = back[t, best[t]]
    return best
