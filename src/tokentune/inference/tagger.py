"""The Tagger: words or raw text in, entities with character offsets out.

Path: text -> words with offsets (the tagger's word splitter, tokentune.words) -> sub-token windows
(tokentune.windows) -> batches sorted by length -> runner (torch or ONNX, :mod:`.runners`) -> per-word
probabilities (each word read from the window where it has the most context) -> constrained decoding
and span cutting (tokentune.decoding) -> entities.

The hot path works on flat arrays: all words of a call are rows of one ``[words, labels]`` array,
gathered batch by batch, decoded with one Viterbi pass over many sentences at once, and cut into spans
by array operations. Python loops run per sentence, window or entity, never per word or sub-token.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import partial
from typing import Callable, Iterable, Sequence

import numpy as np

from ..decoding import SCORE_DIGITS, crf_marginals, cut_spans, label_table, viterbi_batch
from ..errors import ConfigError
from ..schemes import Span, scheme_of_labels
from ..sentences import sentence_ranges
from ..settings import check_choice
from ..windows import Pieces, WindowEncoder, Windows, sentence_offsets
from ..words import Split, check_splitter, get_splitter
from .aggregation import AGGREGATIONS, owned_positions, word_values
from .arguments import check_sentences, check_text, check_texts, check_words, checked_splitter
from .packed import pack_inputs, plan_batches
from .runners import BACKENDS, Runner
from .saved import CONTEXTS, saved_context, saved_context_marker, saved_number, saved_precision, saved_word_splitter

DECODINGS = ("viterbi", "argmax")


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
    scores: list[float]  # one per span: mean probability of its words' decoded labels (CRF: marginals)


@dataclass
class _Flat:
    """Predictions of a batch of sentences as flat arrays (rows = words of all sentences)."""

    offsets: np.ndarray  # [sentences + 1]: sentence i is rows offsets[i]:offsets[i + 1]
    ids: np.ndarray  # [words] decoded label ids
    span_start: np.ndarray  # [spans] flat row of the first word
    span_end: np.ndarray  # [spans] flat row one past the last word
    span_type: np.ndarray  # [spans] index into Tagger._types
    span_score: np.ndarray  # [spans] mean probability of the decoded labels over the span
    probabilities: np.ndarray | None = None  # [words, labels] what was decoded (before min_score)


def check_sizes(**sizes: int | None) -> None:
    """``batch_size`` (1 or more), ``stride`` and ``context_size`` (0 or more) and ``max_length`` (3 or
    more), each named by its flag; ``None`` is not given. Checked before a model is loaded."""
    least = {"batch_size": 1, "stride": 0, "max_length": 3, "context_size": 0}
    for name, value in sizes.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least[name]):
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} must be a whole number of at least {least[name]}, found {value!r}",
                              fix=f"pass {flag} {least[name]} or more")


def check_min_score(value, flag: str = "--min-score") -> float:
    """A score threshold: a finite number from 0 to 1 (not a bool, NaN or a string); ``None`` -> 0."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:  # NaN fails too
        raise ConfigError(f"{flag} must be a number from 0 to 1, found {value!r}",
                          fix=f"pass {flag} 0 (keep every entity) up to 1, e.g. {flag} 0.5")
    return float(value)


def check_flag(name: str, value, note: str) -> bool:
    """A True/False option, refused when it is anything else (a string "false" would be true)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, found {value!r}", fix=f"pass {name}=True {note} or False")
    return value


def check_documents(documents: Sequence[tuple[int, int]], sentences: int) -> None:
    """``documents`` must be consecutive ``[start, end)`` ranges covering sentences ``0..sentences``."""
    end = 0
    for start, stop in documents:
        if start != end or stop < start:
            break
        end = stop
    else:
        if end == sentences:
            return
    raise ConfigError("the documents do not cover the sentences exactly once, in order",
                      fix="pass documents as consecutive [start, end) sentence ranges from 0 to the end")


class Tagger:
    """Predicts entities with a token-classification model. Build it with :meth:`from_pretrained`."""
    batch_dependent = False  # a text's answer depends on its batch beyond float rounding (int8 ONNX scaled per call)

    def __init__(self, runner: Runner, tokenizer, labels: Sequence[str], *, max_length: int, stride: int = 128,
                 batch_size: int = 32, decoding: str = "viterbi", aggregation: str = "first",
                 word_splitter: str | Callable[[str], Split] | None = "default", min_score: float = 0.0,
                 crf=None, context: str = "sentence", context_size: int = 0, context_marker: bool = False,
                 split_sentences: bool = True, precision: str | None = None, packing: bool = True) -> None:
        """``word_splitter``: how raw text becomes words, a name of :data:`tokentune.words.SPLITTERS`
        (default, whitespace, chars, model, thai) or a function ``text -> (words, offsets)``.

        ``min_score`` (0 to 1): entities whose score (mean probability of their words' decoded labels;
        with a CRF head, the CRF's marginal probabilities) is below it are dropped, from raw-text
        entities and token spans alike; the words of a dropped span are tagged ``O`` (when the model
        has an ``O`` label), so tags and spans agree.

        ``context``: ``document`` when the model was trained reading sentences with their documents;
        callers that know the documents of pre-tokenised input (evaluation, CoNLL input) pass them.
        ``context_size``: 0 = a document's sentences fill each window; N = each sentence is read with up
        to N sub-tokens of its document on either side (as the model was trained); ``context_marker``:
        the sentence is set off from that context by the separator token on either side (as trained).

        ``split_sentences``: raw text is cut into sentences (:mod:`tokentune.sentences`) and each is read
        alone, or with the rest of its text by a document-context model; entities never cross a cut.
        False: each text is read as one sequence.

        ``precision``: what the runner computes in (fp32, bf16, fp16, int8; None: not said), for reports;
        the runner itself was built for it (:func:`tokentune.inference.runners.torch_runner`).
        ``packing``: windows packed into rows where the runner can (:mod:`.packed`), else padded batches."""
        aggregation = check_choice(aggregation, AGGREGATIONS, "aggregation")
        decoding = check_choice(decoding, DECODINGS, "decoding", "--decode")
        check_sizes(batch_size=batch_size, stride=stride, max_length=max_length)
        self.min_score = check_min_score(min_score, "min_score")
        self.context = check_choice(context, CONTEXTS, "context", "--context")
        check_sizes(context_size=context_size)
        self.context_size = context_size or 0
        self.context_marker = check_flag("context_marker", context_marker, "(as a model trained with --context-marker)")
        self.split_sentences = check_flag("split_sentences", split_sentences, "(the default)")
        self.packing = check_flag("packing", packing, "(the default)")
        self.precision = precision
        self.crf = crf  # a CRF head's learned scores (tokentune.crf.CrfScores), added to the scheme's masks
        self.runner = runner
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.scheme = scheme_of_labels(self.labels)
        self.max_length = max_length
        self.stride = stride
        self.batch_size = batch_size
        self.decoding = decoding
        self.aggregation = aggregation
        if callable(word_splitter):
            self.word_splitter = getattr(word_splitter, "__name__", "custom")
            self.split_text = checked_splitter(word_splitter)
        else:
            self.word_splitter = check_splitter(word_splitter)
            self.split_text = get_splitter(self.word_splitter, tokenizer)
        self.encoder = WindowEncoder(tokenizer, max_length=max_length, stride=stride, context_marker=context_marker)
        self._label_array = np.array(self.labels, dtype=object)
        self._types, self._label_info = label_table(self.labels, self.scheme)

    @classmethod
    def from_pretrained(cls, model_dir: str, *, device: str | None = None, backend: str = "torch",
                        word_splitter: str | Callable[[str], Split] | None = None, **options) -> "Tagger":
        """Load a model directory (written by tokentune or any token-classification model).

        ``word_splitter`` (see :meth:`__init__`) defaults to the one the model was trained for: the
        ``word_splitter`` of its ``tokentune_config.json``, else ``default``.

        ``backend="onnx"`` reads ``model.onnx`` from the directory (see :mod:`tokentune.export`); pass
        ``quantize="int8"`` for ``model.int8.onnx`` or ``onnx_file=NAME`` for another file.
        """
        from ..crf import load_crf
        from ..modeling import load_for_prediction, load_tokenizer, model_max_length
        from . import runners
        from .bert import settled

        model_dir = os.fspath(model_dir) if isinstance(model_dir, os.PathLike) else model_dir
        batch_dependent = False  # the torch backend: only in float rounding
        check_sizes(**{key: options.get(key) for key in ("batch_size", "stride", "max_length")})
        check_min_score(options.get("min_score"), "min_score")  # before the model loads
        if not callable(word_splitter):
            word_splitter = check_splitter(word_splitter or saved_word_splitter(model_dir))
        saved = saved_context(model_dir)
        options["context"] = options.get("context") or saved[0]
        options.setdefault("context_size", saved[1] if options["context"] == saved[0] else 0)
        # the marker sets sentences off from the context around them: only a model trained with one has it
        options.setdefault("context_marker", options["context"] == saved[0] and saved[1] > 0
                           and saved_context_marker(model_dir))
        onnx_options = {key: options.pop(key) for key in ("quantize", "onnx_file", "threads") if key in options}
        precision = runners.check_precision(options.pop("precision", None))
        if backend == "onnx":
            from .light import light_tokenizer

            runner, config, options["precision"], batch_dependent = runners.load_onnx(model_dir, device, precision,
                                                                                      **onnx_options)
            tokenizer = light_tokenizer(model_dir) or load_tokenizer(model_dir)
        elif backend == "torch":
            if any(value is not None for value in onnx_options.values()):
                raise ConfigError(f"{', '.join(onnx_options)} only apply to the onnx backend",
                                  fix="add --backend onnx, or leave those options out")
            device = runners.check_device(device)
            if precision == "auto":  # a model trained in fp32 predicts in fp32
                precision = runners.precision_after_training(saved_precision(model_dir) if os.path.isdir(model_dir) else None)
            runners.check_device_precision(precision, device)  # refused before the model loads
            model, tokenizer, config = load_for_prediction(model_dir)
            # auto by the loaded config, as training sized the same model: dev figures and `evaluate` agree
            options["precision"] = runners.inference_precision(precision, device, config)
            runner = runners.torch_runner(settled(model, options["precision"]), device, options["precision"])
        else:
            raise ConfigError(f"unknown backend {backend!r}", fix=f"use one of {', '.join(BACKENDS)}")
        labels = [config.id2label[i] for i in range(len(config.id2label))]
        # the window size the model was trained with (--max-length), unless the caller picks one
        trained_length = saved_number(model_dir, "max_length", 3) if os.path.isdir(model_dir) else None
        max_length = model_max_length(tokenizer, config, options.pop("max_length", None) or trained_length)
        options.setdefault("crf", load_crf(model_dir, labels) if os.path.isdir(model_dir) else None)
        tagger = cls(runner, tokenizer, labels, max_length=max_length, word_splitter=word_splitter, **options)
        tagger.batch_dependent = batch_dependent
        return tagger

    # -- probabilities -------------------------------------------------------------------------
    def _flat_probabilities(self, sentences: Sequence[Sequence[str]],
                            documents: Sequence[tuple[int, int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``[all words, labels]`` probabilities and the sentence offsets into them. With ``documents``
        (``[start, end)`` ranges of consecutive sentences) each document is windowed as one sequence, so
        a word is read with the sentences around it; the rows are the same words in the same order."""
        offsets = sentence_offsets(sentences)
        if documents is not None:
            check_documents(documents, len(sentences))
        result = np.zeros((int(offsets[-1]), len(self.labels)), dtype=np.float32)
        pieces = self.encoder.pieces(sentences, offsets)
        windows = self.encoder.document_windows(pieces, offsets, documents, self.context_size)
        packed = getattr(self.runner, "packed", None) if self.packing else None
        if packed is None or len(windows.lo) < 2:  # one window (a serve request): nothing to pack it with
            for chosen in self._batches(windows.hi - windows.lo):
                inputs = self.encoder.inputs(pieces, windows, chosen)
                self._store(pieces, windows, chosen, partial(self.runner, *inputs), result)
            return result, offsets
        # with the first piece of each word read, a runner that takes select= is asked for those alone
        selecting = self.aggregation == "first" and getattr(packed, "selects", False)
        for batch in plan_batches(self.encoder.input_lengths(windows), self.batch_size):
            inputs = pack_inputs(*self.encoder.inputs(pieces, windows, batch.chosen), batch,
                                 pad_id=self.encoder.pad_id, first_position=self.runner.first_position)
            self._store(pieces, windows, batch.chosen, partial(packed, *inputs), result, batch.row, batch.start,
                        selecting=selecting)
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

    def _store(self, pieces: Pieces, windows: Windows, chosen: np.ndarray, run: Callable[..., np.ndarray],
               target: np.ndarray, row: np.ndarray | None = None, start: np.ndarray | None = None, *,
               selecting: bool = False) -> None:
        """Run one batch (``run()``: its probabilities) and copy the owned words' into the flat array,
        aggregating pieces; ``selecting``: ``run(select=(rows, columns))`` gives each word's first piece
        alone. ``row`` and ``start``: where each chosen window is in the batch (packed rows; default:
        window i is row i from column 0)."""
        rows, cols, piece, first = owned_positions(pieces, windows, chosen, row, start, self.encoder.first_column())
        if not len(piece):
            return
        words = pieces.word[piece[first]]
        if selecting:
            target[words] = run(select=(rows[first], cols[first]))
        else:
            target[words] = word_values(run()[rows, cols], first, self.aggregation)

    def word_probabilities(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """``[words, labels]`` probabilities for each sentence, windows merged."""
        flat, offsets = self._flat_probabilities(sentences)
        return [flat[offsets[i]:offsets[i + 1]] for i in range(len(sentences))]

    # -- decoding ------------------------------------------------------------------------------
    def _predict_flat(self, sentences: Sequence[Sequence[str]], documents=None) -> _Flat:
        probs, offsets = self._flat_probabilities(sentences, documents)
        lengths = np.diff(offsets)
        confidence = probs
        if self.decoding == "argmax" or (not self.scheme.prefixed and self.crf is None):
            ids = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
        else:  # a CRF's scores are learned against log-probabilities far below 1e-12: keep them
            floor = 1e-12 if self.crf is None else np.finfo(np.float32).tiny
            log_probs = np.log(np.clip(probs, floor, None))
            ids = viterbi_batch(log_probs, lengths, self.labels, self.scheme, learned=self.crf)
            if self.crf is not None:  # the CRF's own probability of each word's label, transitions included
                confidence = crf_marginals(log_probs, lengths, self.labels, self.scheme, self.crf)
        starts, ends, types = cut_spans(ids, offsets, self._label_info)
        chosen = np.cumsum(np.concatenate([[0.0], confidence[np.arange(len(ids)), ids].astype(np.float64)]))
        scores = (chosen[ends] - chosen[starts]) / np.maximum(ends - starts, 1)
        return _Flat(offsets, ids, starts, ends, types, scores, probs)

    def _confident(self, flat: _Flat) -> _Flat:
        """``flat`` without the spans scoring below ``min_score``; their words become ``O``."""
        drop = np.round(flat.span_score, SCORE_DIGITS) < self.min_score  # as the score is shown: 1.0 keeps 1.0
        if not drop.any():
            return flat
        ids = flat.ids
        outside = np.flatnonzero(self._label_info[:, 0])
        if len(outside):
            starts, ends = flat.span_start[drop], flat.span_end[drop]
            rows = np.repeat(starts, ends - starts) + np.arange(int((ends - starts).sum())) - np.repeat(
                np.cumsum(ends - starts) - (ends - starts), ends - starts)
            ids = ids.copy()
            ids[rows] = outside[0]
        keep = ~drop
        return _Flat(flat.offsets, ids, flat.span_start[keep], flat.span_end[keep], flat.span_type[keep],
                     flat.span_score[keep])

    # -- predictions ---------------------------------------------------------------------------
    def predict_token_batches(self, sentences: Sequence[Sequence[str]],
                              documents: Sequence[tuple[int, int]] | None = None) -> list[TokenPrediction]:
        """Tags and spans for pre-tokenised sentences. ``documents``: ``[start, end)`` ranges of
        consecutive sentences read together (document context); decoding and spans stay per sentence."""
        return self.predict_with_probabilities(sentences, documents)[0]

    def predict_with_probabilities(self, sentences: Sequence[Sequence[str]],
                                   documents: Sequence[tuple[int, int]] | None = None
                                   ) -> tuple[list[TokenPrediction], np.ndarray]:
        """:meth:`predict_token_batches` and the ``[words of all sentences, labels]`` probabilities it
        decoded, rows in sentence order (e.g. for a loss against gold labels, without a second pass)."""
        sentences = check_sentences(sentences)  # a generator is read once, here
        raw = self._predict_flat(sentences, documents)
        flat = self._confident(raw)
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
        return predictions, raw.probabilities

    def predict_tokens(self, words: Sequence[str]) -> TokenPrediction:
        check_words(words)
        return self.predict_token_batches([words])[0]

    def predict_texts(self, texts: Iterable[str]) -> list[list[Entity]]:
        """Entities with character offsets for each raw text."""
        texts = check_texts(texts)
        return self.predict_split_texts(texts, [self.split_text(text) for text in texts])

    def predict_split_texts(self, texts: Sequence[str],
                            split: Sequence[tuple[Sequence[str], Sequence[tuple[int, int]]]]) -> list[list[Entity]]:
        """:meth:`predict_texts` for texts already split into ``(words, character offsets)`` (as
        :meth:`split_text` does), e.g. by a caller that counts the words."""
        sentences, documents, origin = [], [], []  # origin: (text, its first word) of each sentence
        for index, (text, (words, offsets)) in enumerate(zip(texts, split)):
            ranges = sentence_ranges(text, words, offsets) if self.split_sentences else [(0, len(words))]
            documents.append((len(sentences), len(sentences) + len(ranges)))
            sentences.extend(words[start:end] for start, end in ranges)
            origin.extend((index, start) for start, _ in ranges)
        flat = self._confident(self._predict_flat(sentences, documents if self.context == "document" else None))
        sentence_of_span = np.searchsorted(flat.offsets, flat.span_start, side="right") - 1
        base = flat.offsets[sentence_of_span]
        results: list[list[Entity]] = [[] for _ in texts]
        for sentence, kind, start, end, score in zip(sentence_of_span.tolist(), flat.span_type.tolist(),
                                                     (flat.span_start - base).tolist(),
                                                     (flat.span_end - base).tolist(), flat.span_score.tolist()):
            index, first = origin[sentence]
            offsets = split[index][1]
            char_start, char_end = offsets[first + start][0], offsets[first + end - 1][1]
            results[index].append(Entity(self._types[kind], char_start, char_end, texts[index][char_start:char_end],
                                         round(score, SCORE_DIGITS)))
        return results

    def predict_text(self, text: str) -> list[Entity]:
        check_text(text)
        return self.predict_texts([text])[0]
