"""The Tagger: words or raw text in, entities with character offsets out.

Path: text -> words with offsets (tokentune.words) -> windows over sub-tokens (the plan of
tokentune.alignment) -> batches sorted by length -> model -> per-word probabilities (each word read
from the window where it has the most context) -> constrained decoding -> spans -> entities.

The hot path works on flat arrays: all words of a call are rows of one ``[words, labels]`` array,
gathered batch by batch, decoded with one Viterbi pass over many sentences at once, and cut into spans
by array operations. Python loops run per sentence, window or entity, never per word or sub-token.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import chain
from typing import Callable, Iterable, Sequence

import numpy as np

from .decoding import _FORBIDDEN, scheme_of_labels, transition_masks
from .errors import ConfigError
from .schemes import OUTSIDE, Scheme, Span, split_tag
from .words import split_words

AGGREGATIONS = ("first", "average", "max")
DECODINGS = ("viterbi", "argmax")
BACKENDS = ("torch", "onnx")

# input_ids [batch, time] and attention_mask, both int64 -> probabilities [batch, time, labels]
Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Entity:
    label: str
    start: int  # character offset into the input text
    end: int  # end-exclusive
    text: str
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TokenPrediction:
    words: list[str]
    tags: list[str]
    spans: list[Span]  # (label, first word, end word) end-exclusive
    scores: list[float]  # one per span: mean probability of its words' decoded labels


def torch_runner(model, device: str | None = None) -> Runner:
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(input_ids=torch.from_numpy(input_ids).to(device),
                           attention_mask=torch.from_numpy(attention_mask).to(device)).logits
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    return run


@dataclass
class _Pieces:
    """The sub-tokens of every word of a call, flat, after the fixes of
    :func:`tokentune.alignment.word_pieces`: a word with no pieces gets the unknown token, and a word
    longer than a whole window keeps only its first pieces."""

    ids: np.ndarray  # [pieces] token ids
    first: np.ndarray  # [pieces] bool: the first piece of its word
    word: np.ndarray  # [pieces] flat word index
    word_start: np.ndarray  # [words + 1] index of each word's first piece; the last entry = pieces


@dataclass
class _Windows:
    """Model inputs as piece ranges: window i covers pieces [lo, hi) and owns pieces [own_lo, own_hi)
    (whole words: the owned words read their probabilities from this window)."""

    lo: np.ndarray
    hi: np.ndarray
    own_lo: np.ndarray
    own_hi: np.ndarray


@dataclass
class _Flat:
    """Predictions of a batch of sentences as flat arrays (rows = words of all sentences)."""

    offsets: np.ndarray  # [sentences + 1]: sentence i is rows offsets[i]:offsets[i + 1]
    ids: np.ndarray  # [words] decoded label ids
    span_start: np.ndarray  # [spans] flat row of the first word
    span_end: np.ndarray  # [spans] flat row one past the last word
    span_type: np.ndarray  # [spans] index into Tagger._types
    span_score: np.ndarray  # [spans] mean probability of the decoded labels over the span


class Tagger:
    """Predicts entities with a token-classification model. Build it with :meth:`from_pretrained`."""

    def __init__(self, runner: Runner, tokenizer, labels: Sequence[str], *, max_length: int, stride: int = 128,
                 batch_size: int = 32, decoding: str = "viterbi", aggregation: str = "first") -> None:
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"unknown aggregation {aggregation!r}", fix=f"use one of {', '.join(AGGREGATIONS)}")
        if decoding not in DECODINGS:
            raise ConfigError(f"unknown decoding {decoding!r}", fix="use viterbi (default) or argmax")
        if batch_size < 1 or stride < 0 or max_length < 3:
            raise ConfigError(f"invalid batch size {batch_size}, stride {stride} or max length {max_length}",
                              fix="use --batch-size >= 1, --stride >= 0 and a max length of at least 3")
        self.runner = runner
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.scheme = scheme_of_labels(self.labels)
        self.max_length = max_length
        self.stride = stride
        self.batch_size = batch_size
        self.decoding = decoding
        self.aggregation = aggregation
        self._backend = _private_backend(tokenizer)
        self._label_array = np.array(self.labels, dtype=object)
        self._types, self._label_info = _label_table(self.labels, self.scheme)

    @classmethod
    def from_pretrained(cls, model_dir: str, *, device: str | None = None, backend: str = "torch", **options) -> "Tagger":
        """Load a model directory (written by tokentune or any token-classification model).

        ``backend="onnx"`` reads ``model.onnx`` from the directory (see :mod:`tokentune.export`); pass
        ``quantize="int8"`` for ``model.int8.onnx`` or ``onnx_file=NAME`` for another file.
        """
        from .modeling import load_tokenizer, load_trained, model_max_length

        onnx_options = {key: options.pop(key) for key in ("quantize", "onnx_file", "threads") if key in options}
        if backend == "onnx":
            from .export import onnx_runner  # optional dependency: onnxruntime

            runner, config = onnx_runner(model_dir, device=device, **onnx_options)
            tokenizer = load_tokenizer(model_dir)
        elif backend == "torch":
            if any(value is not None for value in onnx_options.values()):
                raise ConfigError(f"{', '.join(onnx_options)} only apply to the onnx backend",
                                  fix="add --backend onnx, or leave those options out")
            model, tokenizer = load_trained(model_dir)
            runner, config = torch_runner(model, device), model.config
        else:
            raise ConfigError(f"unknown backend {backend!r}", fix="use --backend torch or onnx")
        labels = [config.id2label[i] for i in range(len(config.id2label))]
        max_length = model_max_length(tokenizer, config, options.pop("max_length", None))
        return cls(runner, tokenizer, labels, max_length=max_length, **options)

    # -- windows -------------------------------------------------------------------------------
    def _encode(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Token ids and word numbers (within the sentence) of all sentences, flat, and the number of
        tokens of each sentence. One call to the Rust tokenizer, which encodes the words one by one as
        ``is_split_into_words=True`` does."""
        if self._backend is None:  # not a fast tokenizer: go through transformers
            from .alignment import word_pieces

            pieces = word_pieces(self.tokenizer, sentences)
            id_lists = [[i for word in sentence for i in word] for sentence in pieces]
            word_lists = [[n for n, word in enumerate(sentence) for _ in word] for sentence in pieces]
        else:
            encodings = self._backend.encode_batch([list(s) for s in sentences], is_pretokenized=True,
                                                   add_special_tokens=False)
            id_lists = [e.ids for e in encodings]
            word_lists = [e.word_ids for e in encodings]
        sizes = [len(ids) for ids in id_lists]
        total = sum(sizes)
        ids = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64, count=total)
        words = np.fromiter(chain.from_iterable(word_lists), dtype=np.int64, count=total)
        return ids, words, sizes

    def _pieces(self, sentences: Sequence[Sequence[str]], offsets: np.ndarray, budget: int) -> _Pieces:
        ids, local_word, sizes = self._encode(sentences)
        word = local_word + np.repeat(offsets[:-1], sizes)
        words = int(offsets[-1])
        counts = np.bincount(word, minlength=words)
        if words and counts.min() == 0:
            unk = self.tokenizer.unk_token_id if self.tokenizer.unk_token_id is not None else 0
            empty = np.flatnonzero(counts == 0)
            where = np.searchsorted(word, empty)  # word numbers ascend through the flat pieces
            ids, word = np.insert(ids, where, unk), np.insert(word, where, empty)
            counts[empty] = 1
        word_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        rank = np.arange(len(ids)) - word_start[word]
        if words and counts.max() > budget:
            keep = rank < budget
            ids, word, rank = ids[keep], word[keep], rank[keep]
            word_start = np.concatenate([[0], np.cumsum(np.minimum(counts, budget))]).astype(np.int64)
        return _Pieces(ids, rank == 0, word, word_start)

    def _windows(self, pieces: _Pieces, offsets: np.ndarray, budget: int) -> _Windows:
        """The windows :func:`tokentune.alignment.make_windows` makes: one per sentence that fits
        (all built at once), and for longer ones the plan of :func:`~tokentune.alignment.plan_windows`."""
        from .alignment import _ownership, plan_windows

        bounds = pieces.word_start[offsets]
        lo, hi = bounds[:-1], bounds[1:]
        fits = (hi - lo <= budget) & (offsets[1:] > offsets[:-1])  # an empty sentence has nothing to predict
        parts = [np.stack([lo[fits], hi[fits], lo[fits], hi[fits]], axis=1)]
        for index in np.flatnonzero(hi - lo > budget):
            first, last = offsets[index], offsets[index + 1]
            ranges = plan_windows(np.diff(pieces.word_start[first:last + 1]).tolist(), budget,
                                  min(self.stride, budget // 2))
            words = [(s, e, own_s, own_e) for (s, e), (own_s, own_e) in zip(ranges, _ownership(ranges))]
            parts.append(pieces.word_start[np.array(words, dtype=np.int64) + first])
        table = np.concatenate(parts).astype(np.int64)
        return _Windows(table[:, 0], table[:, 1], table[:, 2], table[:, 3])

    def _inputs(self, pieces: _Pieces, windows: _Windows, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``input_ids`` and ``attention_mask`` of the chosen windows, right-padded to the longest."""
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        n_cls = int(cls_id is not None)
        lo, hi = windows.lo[chosen], windows.hi[chosen]
        lengths = hi - lo + n_cls + int(sep_id is not None)
        position = np.arange(int(lengths.max()))[None, :]
        inner = position - n_cls
        inside = (inner >= 0) & (inner < (hi - lo)[:, None])
        ids = np.full((len(chosen), position.shape[1]), self.tokenizer.pad_token_id or 0, dtype=np.int64)
        ids[inside] = pieces.ids[(lo[:, None] + inner)[inside]]
        if n_cls:
            ids[:, 0] = cls_id
        if sep_id is not None:
            ids[np.arange(len(chosen)), lengths - 1] = sep_id
        return ids, (position < lengths[:, None]).astype(np.int64)

    # -- probabilities -------------------------------------------------------------------------
    def _flat_probabilities(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """``[all words, labels]`` probabilities and the sentence offsets into them."""
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])]).astype(np.int64)
        result = np.zeros((int(offsets[-1]), len(self.labels)), dtype=np.float32)
        budget = self.max_length - self.tokenizer.num_special_tokens_to_add(pair=False)
        pieces = self._pieces(sentences, offsets, budget)
        windows = self._windows(pieces, offsets, budget)
        for chosen in self._batches(windows.hi - windows.lo):
            probs = self.runner(*self._inputs(pieces, windows, chosen))
            self._store(pieces, windows, chosen, probs, result)
        return result, offsets

    def _batches(self, lengths: np.ndarray, max_padding: float = 0.1) -> list[np.ndarray]:
        """Windows in batches of up to ``batch_size``, sorted by length so that little padding is run
        through the model; a batch also ends early before its padding would pass ``max_padding`` of its
        tokens (one long window among short ones would otherwise multiply the work of its batch)."""
        order = np.argsort(lengths, kind="stable")
        sizes = lengths[order].tolist()
        batches, begin, total = [], 0, 0
        for end, size in enumerate(sizes):
            count = end - begin
            if count and (count == self.batch_size or (count + 1) * size - (total + size) > max_padding * (count + 1) * size):
                batches.append(order[begin:end])
                begin, total = end, 0
            total += size
        if begin < len(sizes):
            batches.append(order[begin:])
        return batches

    def _store(self, pieces: _Pieces, windows: _Windows, chosen: np.ndarray, probs: np.ndarray,
               target: np.ndarray) -> None:
        """Copy the owned words' probabilities of one batch into the flat array, aggregating pieces."""
        own_lo, sizes = windows.own_lo[chosen], windows.own_hi[chosen] - windows.own_lo[chosen]
        total = int(sizes.sum())
        if not total:
            return
        rows = np.repeat(np.arange(len(chosen)), sizes)
        piece = np.repeat(own_lo, sizes) + np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        cols = piece - np.repeat(windows.lo[chosen], sizes) + int(self.tokenizer.cls_token_id is not None)
        first = pieces.first[piece]
        words = pieces.word[piece[first]]
        if self.aggregation == "first":
            target[words] = probs[rows[first], cols[first]]
            return
        values = probs[rows, cols]
        starts = np.flatnonzero(first)  # owned ranges are whole words: each begins with a first piece
        counts = np.diff(np.append(starts, total))
        if self.aggregation == "average":
            target[words] = np.add.reduceat(values, starts, axis=0) / counts[:, None]
        else:  # max: each word takes the piece whose best label is the most confident
            piece_best = values.max(axis=1)
            group = np.repeat(np.arange(len(starts)), counts)
            group_best = np.maximum.reduceat(piece_best, starts)
            hits = np.flatnonzero(piece_best == group_best[group])
            _, first_hit = np.unique(group[hits], return_index=True)
            target[words] = values[hits[first_hit]]

    def word_probabilities(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """``[words, labels]`` probabilities for each sentence, windows merged."""
        flat, offsets = self._flat_probabilities(sentences)
        return [flat[offsets[i]:offsets[i + 1]] for i in range(len(sentences))]

    # -- decoding ------------------------------------------------------------------------------
    def _predict_flat(self, sentences: Sequence[Sequence[str]]) -> _Flat:
        probs, offsets = self._flat_probabilities(sentences)
        lengths = np.diff(offsets)
        if self.decoding == "argmax" or not self.scheme.prefixed:
            ids = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
        else:
            ids = viterbi_batch(np.log(np.clip(probs, 1e-12, None)), lengths, self.labels, self.scheme)
        starts, ends, types = _spans(ids, offsets, self._label_info)
        chosen = np.cumsum(np.concatenate([[0.0], probs[np.arange(len(ids)), ids].astype(np.float64)]))
        scores = (chosen[ends] - chosen[starts]) / np.maximum(ends - starts, 1)
        return _Flat(offsets, ids, starts, ends, types, scores)

    # -- predictions ---------------------------------------------------------------------------
    def predict_token_batches(self, sentences: Sequence[Sequence[str]]) -> list[TokenPrediction]:
        """Tags and spans for pre-tokenised sentences."""
        flat = self._predict_flat(sentences)
        bounds = np.searchsorted(flat.span_start, flat.offsets)
        tags = self._label_array[flat.ids].tolist()
        predictions = []
        for index, words in enumerate(sentences):
            lo, hi = int(flat.offsets[index]), int(flat.offsets[index + 1])
            first, last = bounds[index], bounds[index + 1]
            spans = [(self._types[t], int(s) - lo, int(e) - lo) for t, s, e in
                     zip(flat.span_type[first:last], flat.span_start[first:last], flat.span_end[first:last])]
            predictions.append(TokenPrediction(list(words), tags[lo:hi], spans,
                                               flat.span_score[first:last].tolist()))
        return predictions

    def predict_tokens(self, words: Sequence[str]) -> TokenPrediction:
        return self.predict_token_batches([words])[0]

    def predict_texts(self, texts: Iterable[str]) -> list[list[Entity]]:
        """Entities with character offsets for each raw text."""
        texts = list(texts)
        return self.predict_split_texts(texts, [split_words(text) for text in texts])

    def predict_split_texts(self, texts: Sequence[str],
                            split: Sequence[tuple[Sequence[str], Sequence[tuple[int, int]]]]) -> list[list[Entity]]:
        """:meth:`predict_texts` for texts already split into ``(words, character offsets)`` (as
        :func:`tokentune.words.split_words` does), e.g. by a caller that counts the words."""
        flat = self._predict_flat([words for words, _ in split])
        sentence_of_span = np.searchsorted(flat.offsets, flat.span_start, side="right") - 1
        base = flat.offsets[sentence_of_span]
        results: list[list[Entity]] = [[] for _ in texts]
        for index, kind, start, end, score in zip(sentence_of_span.tolist(), flat.span_type.tolist(),
                                                  (flat.span_start - base).tolist(), (flat.span_end - base).tolist(),
                                                  flat.span_score.tolist()):
            offsets = split[index][1]
            char_start, char_end = offsets[start][0], offsets[end - 1][1]
            results[index].append(Entity(self._types[kind], char_start, char_end, texts[index][char_start:char_end],
                                         round(score, 6)))
        return results

    def predict_text(self, text: str) -> list[Entity]:
        return self.predict_texts([text])[0]


def _private_backend(tokenizer):
    """A copy of the fast tokenizer's Rust backend with truncation and padding off: transformers
    leaves the shared backend in whatever state its last call set, and a truncated word would lose
    pieces in silence."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not getattr(tokenizer, "is_fast", False):
        return None
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def _label_table(labels: Sequence[str], scheme: Scheme) -> tuple[list[str], np.ndarray]:
    """Entity types, and per label: [is outside, type index, opens an entity, closes an entity],
    the facts :func:`tokentune.schemes.tags_to_spans` reads off each tag."""
    closing = {scheme.single, scheme.last} - {scheme.inside, scheme.begin}
    opening = {scheme.begin, scheme.single} - {scheme.inside}
    if scheme.after_same:
        opening.add(scheme.after_same)
    types: list[str] = []
    info = np.zeros((len(labels), 4), dtype=np.int64)
    for i, label in enumerate(labels):
        prefix, kind = split_tag(label, scheme)
        if kind not in types:
            types.append(kind)
        outside = prefix == OUTSIDE
        # an unprefixed scheme has one-word spans only: every label both opens and closes
        opens = not scheme.prefixed or prefix in opening
        closes = not scheme.prefixed or prefix in closing
        info[i] = (outside, types.index(kind), opens and not outside, closes and not outside)
    return types, info


def _spans(ids: np.ndarray, offsets: np.ndarray, info: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spans of flat label ids as ``tags_to_spans`` decodes each sentence (lenient repair included):
    an entity starts at a non-O word after O, after a sentence start, after a type change, at an
    opening prefix or after a closing one; it ends before the next O, start, or sentence end."""
    count = len(ids)
    if not count:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    outside, kind = info[ids, 0].astype(bool), info[ids, 1]
    opens, closes = info[ids, 2].astype(bool), info[ids, 3].astype(bool)
    sentence_start = np.zeros(count, dtype=bool)
    sentence_start[offsets[:-1][offsets[:-1] < count]] = True
    prev_outside = np.concatenate([[True], outside[:-1]])
    prev_kind = np.concatenate([[-1], kind[:-1]])
    prev_closes = np.concatenate([[False], closes[:-1]])
    begins = ~outside & (sentence_start | prev_outside | (kind != prev_kind) | opens | prev_closes)
    starts = np.flatnonzero(begins)
    stops = np.flatnonzero(begins | outside | sentence_start)
    ends = np.append(stops, count)[np.searchsorted(stops, starts, side="right")]
    # an entity never runs past its sentence: the next sentence's first word is a stop
    return starts, ends, kind[starts]


def viterbi_batch(log_probs: np.ndarray, lengths: np.ndarray, labels: Sequence[str], scheme: Scheme,
                  group: int = 256, max_cells: int = 1 << 18) -> np.ndarray:
    """:func:`tokentune.decoding.viterbi` for many sentences at once, with the same result (ties
    included): ``log_probs`` is ``[all words, labels]``, sentences of ``lengths`` one after another.

    Sentences are sorted by length and decoded up to ``group`` at a time (fewer when sentences x
    words would pass ``max_cells``: long documents), each step one array operation over the group;
    a sentence that has ended keeps its score and points back to its own label.
    """
    start, trans, end = transition_masks(labels, scheme)
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    result = np.zeros(len(log_probs), dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]
    identity = np.arange(len(labels))
    begin = 0
    while begin < len(order):
        size = min(group, len(order) - begin)
        while size > 1 and size * lengths[order[begin + size - 1]] > max_cells:
            size //= 2
        chosen = order[begin:begin + size]
        begin += size
        lens, rows = lengths[chosen], np.arange(len(chosen))
        steps = np.arange(int(lens.max()))
        active = steps[None, :] < lens[:, None]
        positions = offsets[chosen][:, None] + np.minimum(steps[None, :], lens[:, None] - 1)
        scores = log_probs[positions]  # [group, time, labels]
        score = scores[:, 0] + start
        back = np.zeros((len(chosen), len(steps), len(labels)), dtype=np.int64)
        for t in steps[1:]:
            candidates = score[:, :, None] + trans  # [group, previous, current]
            best_prev = candidates.argmax(axis=1)
            moved = np.take_along_axis(candidates, best_prev[:, None, :], axis=1)[:, 0] + scores[:, t]
            live = active[:, t, None]
            back[:, t] = np.where(live, best_prev, identity)
            score = np.where(live, moved, score)
        score = score + end
        path = np.zeros((len(chosen), len(steps)), dtype=np.int64)
        path[:, -1] = score.argmax(axis=1)
        for t in steps[:0:-1]:
            path[:, t - 1] = back[rows, t, path[:, t]]
        # the label set allows no valid path: do not invent one (as decoding.viterbi does)
        stuck = score[rows, path[:, -1]] <= _FORBIDDEN / 2
        path[stuck] = scores[stuck].argmax(axis=2)
        result[positions[active]] = path[active]
    return result
