"""The Tagger: words or raw text in, entities with character offsets out.

Path: text -> words with offsets (tokentune.words) -> windows over sub-tokens (tokentune.alignment)
-> batches sorted by length -> model -> per-word probabilities (each word read from the window
where it has the most context) -> constrained decoding -> spans -> entities.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from .alignment import Window, make_windows
from .decoding import decode, scheme_of_labels
from .errors import ConfigError
from .schemes import Span, tags_to_spans
from .words import split_words

AGGREGATIONS = ("first", "average", "max")

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


class Tagger:
    """Predicts entities with a token-classification model. Build it with :meth:`from_pretrained`."""

    def __init__(self, runner: Runner, tokenizer, labels: Sequence[str], *, max_length: int, stride: int = 128,
                 batch_size: int = 32, decoding: str = "viterbi", aggregation: str = "first") -> None:
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"unknown aggregation {aggregation!r}", fix=f"use one of {', '.join(AGGREGATIONS)}")
        if decoding not in ("viterbi", "argmax"):
            raise ConfigError(f"unknown decoding {decoding!r}", fix="use viterbi (default) or argmax")
        self.runner = runner
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.scheme = scheme_of_labels(self.labels)
        self.max_length = max_length
        self.stride = stride
        self.batch_size = batch_size
        self.decoding = decoding
        self.aggregation = aggregation

    @classmethod
    def from_pretrained(cls, model_dir: str, *, device: str | None = None, backend: str = "torch", **options) -> "Tagger":
        """Load a model directory (written by tokentune or any token-classification model)."""
        from .modeling import load_tokenizer, load_trained, model_max_length

        if backend == "onnx":
            from .export import onnx_runner  # optional dependency: onnxruntime

            runner, config = onnx_runner(model_dir, device=device)
            tokenizer = load_tokenizer(model_dir)
        elif backend == "torch":
            model, tokenizer = load_trained(model_dir)
            runner, config = torch_runner(model, device), model.config
        else:
            raise ConfigError(f"unknown backend {backend!r}", fix="use --backend torch or onnx")
        labels = [config.id2label[i] for i in range(len(config.id2label))]
        max_length = model_max_length(tokenizer, config, options.pop("max_length", None))
        return cls(runner, tokenizer, labels, max_length=max_length, **options)

    # -- probabilities -------------------------------------------------------------------------
    def word_probabilities(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """``[words, labels]`` probabilities for each sentence, windows merged."""
        windows = make_windows(self.tokenizer, sentences, max_length=self.max_length, stride=self.stride)
        result = [np.zeros((len(s), len(self.labels)), dtype=np.float32) for s in sentences]
        order = sorted(range(len(windows)), key=lambda i: len(windows[i].input_ids))
        pad = self.tokenizer.pad_token_id or 0
        for begin in range(0, len(order), self.batch_size):
            batch = [windows[i] for i in order[begin:begin + self.batch_size]]
            width = max(len(w.input_ids) for w in batch)
            ids = np.full((len(batch), width), pad, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, window in enumerate(batch):
                ids[row, :len(window.input_ids)] = window.input_ids
                mask[row, :len(window.input_ids)] = 1
            probs = self.runner(ids, mask)
            for row, window in enumerate(batch):
                self._store_window(window, probs[row, :len(window.input_ids)], result[window.sentence])
        return result

    def _store_window(self, window: Window, probs: np.ndarray, target: np.ndarray) -> None:
        word_index = np.asarray(window.word_index)
        owned = (word_index >= window.own_start) & (word_index < window.own_end)
        first = np.asarray(window.first_piece) & owned
        words = word_index[first]
        if self.aggregation == "first":
            target[words] = probs[first]
            return
        pieces = probs[owned]
        starts = np.flatnonzero(first[owned])
        if self.aggregation == "average":
            sums = np.add.reduceat(pieces, starts, axis=0)
            counts = np.diff(np.append(starts, len(pieces)))[:, None]
            target[words] = sums / counts
        else:  # max: each word takes the piece whose best label is the most confident
            piece_best = pieces.max(axis=1)
            group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(pieces))))
            group_best = np.maximum.reduceat(piece_best, starts)
            hits = np.flatnonzero(piece_best == group_best[group])
            _, first_hit = np.unique(group[hits], return_index=True)
            target[words] = pieces[hits[first_hit]]

    # -- predictions ---------------------------------------------------------------------------
    def predict_token_batches(self, sentences: Sequence[Sequence[str]]) -> list[TokenPrediction]:
        """Tags and spans for pre-tokenised sentences."""
        predictions = []
        for words, probs in zip(sentences, self.word_probabilities(sentences)):
            ids = decode(probs, self.labels, self.scheme, self.decoding)
            tags = [self.labels[i] for i in ids]
            spans = tags_to_spans(tags, self.scheme)
            chosen = probs[np.arange(len(ids)), ids] if len(ids) else np.zeros(0)
            scores = [float(chosen[s:e].mean()) for _, s, e in spans]
            predictions.append(TokenPrediction(list(words), tags, spans, scores))
        return predictions

    def predict_tokens(self, words: Sequence[str]) -> TokenPrediction:
        return self.predict_token_batches([words])[0]

    def predict_texts(self, texts: Iterable[str]) -> list[list[Entity]]:
        """Entities with character offsets for each raw text."""
        texts = list(texts)
        split = [split_words(text) for text in texts]
        predictions = self.predict_token_batches([words for words, _ in split])
        results = []
        for text, (_, offsets), prediction in zip(texts, split, predictions):
            entities = []
            for (label, start, end), score in zip(prediction.spans, prediction.scores):
                char_start, char_end = offsets[start][0], offsets[end - 1][1]
                entities.append(Entity(label, char_start, char_end, text[char_start:char_end], round(score, 6)))
            results.append(entities)
        return results

    def predict_text(self, text: str) -> list[Entity]:
        return self.predict_texts([text])[0]
