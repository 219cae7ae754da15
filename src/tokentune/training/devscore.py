"""Dev evaluation during training through the path ``evaluate`` takes, so that dev is read once.

The Trainer's own evaluation scores sub-token windows with an argmax; the figures a run reports come
from the Tagger (whole sentences, windows merged, Viterbi or the CRF's decoding). Evaluating with the
Tagger at every evaluation makes the checkpoint be chosen by the figure that is reported, and the best
evaluation's scores and predictions are the final dev figures: with the best model's weights loaded
back, a second pass would compute exactly the same numbers (``tests/test_devscore.py`` checks it).

Evaluation runs in fp32, also where training runs in bf16, so that the dev figures equal what
``tokentune evaluate`` gives on the saved model.

Under a launcher each process tags its share of dev (:func:`shard_ranges`: about equal words, whole
documents) and every process scores the gathered predictions, so all of them take the same decisions on
the same figures, which are those one process computes (up to the float rounding of other batches).

Where the figures cannot be reused the run evaluates dev again at the end and says why
(:func:`reusable_dev_scores`): ``--max-eval-samples`` (training watched part of dev, the report covers
all of it), a ``--resume`` past the best evaluation (its predictions were not kept on disk), or a model
that FSDP or DeepSpeed shard over several processes (:func:`attach_dev_and_checkpoints`).
"""
from __future__ import annotations

import time

import numpy as np

from ..data import Corpus
from . import distributed

CROSS_ENTROPY_FLOOR = 1e-12  # the log of a probability rounded to 0: a large but finite loss


def attach_dev_and_checkpoints(trainer, config, prep) -> None:
    """Dev scored through the Tagger and the checkpoint policy, on every process. Not where FSDP or DeepSpeed
    shard the model over several processes: each forward is then a collective that every process must run
    alike, which shares of dev of their own sizes would break, so the Trainer's own evaluation and saves stay."""
    from .checkpoints import CheckpointPolicy

    if trainer.args.world_size > 1 and (getattr(trainer, "is_fsdp_enabled", False) or
                                        getattr(trainer, "is_deepspeed_enabled", False)):
        trainer.args.save_total_limit = config.save_total_limit  # the Trainer's rotation, as the policy would
        return
    trainer.checkpoint_policy = CheckpointPolicy(config.checkpoint_minutes, config.save_total_limit)
    if prep.dev is not None:
        trainer.dev_evaluator = DevEvaluator(prep.dev, prep.tokenizer, prep.labels, config, prep.max_length,
                                             whole_split=len(prep.dev) == len(prep.splits.dev))


class DevEvaluator:
    """Scores the model being trained on the dev corpus; keeps the scores of the best evaluation."""

    def __init__(self, corpus: Corpus, tokenizer, labels: list[str], config, max_length: int, *,
                 whole_split: bool) -> None:
        self.corpus, self.tokenizer, self.labels = corpus, tokenizer, labels
        self.config, self.max_length = config, max_length
        self.whole_split = whole_split  # False: --max-eval-samples cut the split; the end evaluates all of it
        label2id = {label: i for i, label in enumerate(labels)}
        sequences = corpus.tag_sequences(config.train_scheme)
        self.gold = np.array([label2id[tag] for tags in sequences for tag in tags], dtype=np.int64)
        self.lengths = np.array([len(tags) for tags in sequences], dtype=np.int64)
        self.last: tuple[int, dict] | None = None  # (step, Scores) of the latest evaluation
        self.best: tuple[int, dict] | None = None  # (step, Scores) of the evaluation the Trainer marked best
        self._tagger = None

    def tagger(self, model, crf=None):
        """One Tagger for the run (encoder and tokenizer backend built once), with a runner made for this pass
        (:func:`model_runner`) and the CRF's current scores."""
        if self._tagger is None:
            self._tagger = model_tagger(model, self.tokenizer, self.labels, self.config, self.max_length, crf)
            return self._tagger
        self._tagger.runner = model_runner(model, self.config)[0]
        if crf is not None:
            self._tagger.crf = crf.scores()
        return self._tagger

    def evaluate(self, model, step: int, crf=None) -> dict:
        """``eval_*`` metrics as the Trainer logs them (precision, recall, f1, accuracy, loss, runtime)."""
        from ..evaluation import evaluate_corpus
        from ..inference.bert import forget_prepared

        started = time.perf_counter()
        recorder = _Recorder(self.tagger(model, crf), distributed.world_size(), distributed.rank())
        try:
            scores = evaluate_corpus(recorder, self.corpus, return_predictions=True, context=self.config.context)
        finally:  # the weights prepared for this pass are not held through the training steps until the next
            forget_prepared(self._tagger.runner.model)
        self.last = (step, scores)
        metrics = {f"eval_{key}": scores[key] for key in ("precision", "recall", "f1", "accuracy")}
        # the loss the head is trained with: a CRF's is over whole tag chains, the softmax's per word
        metrics["eval_loss"] = (self.word_cross_entropy(recorder.probabilities) if crf is None
                                else self.crf_word_nll(recorder.probabilities, crf))
        seconds = time.perf_counter() - started
        metrics.update({"eval_runtime": round(seconds, 4),
                        "eval_samples_per_second": round(len(self.corpus) / seconds, 3) if seconds else None})
        return metrics

    def word_cross_entropy(self, probabilities: np.ndarray) -> float:
        """Mean of -log p(gold label) over dev words: the Trainer's eval loss (cross-entropy over the
        labelled first sub-tokens) for the same model, computed from the probabilities decoded."""
        if not len(self.gold):
            return 0.0
        chosen = probabilities[np.arange(len(self.gold)), self.gold]
        return float(-np.log(np.clip(chosen, CROSS_ENTROPY_FLOOR, None)).mean())

    def crf_word_nll(self, probabilities: np.ndarray, crf) -> float:
        """The CRF head's training loss (:meth:`LinearChainCRF.nll` per labelled word) on dev, one chain
        per sentence (a word's log-softmax differs from its logits by a constant, which cancels in the
        likelihood, so the decoded probabilities give the loss of the logits)."""
        import torch
        from torch.nn.utils.rnn import pad_sequence

        from ..windows import IGNORE

        if not len(self.gold):
            return 0.0
        sizes = self.lengths[self.lengths > 0].tolist()
        device = crf.start.device  # the CRF trains where the model does (a GPU); the probabilities come back on the CPU
        log_probs = torch.from_numpy(np.log(np.clip(probabilities, np.finfo(np.float32).tiny, None))).to(device)
        emissions = pad_sequence(torch.split(log_probs, sizes), batch_first=True)
        gold = torch.from_numpy(self.gold).to(device)
        labels = pad_sequence(torch.split(gold, sizes), batch_first=True, padding_value=IGNORE)
        with torch.no_grad():
            total, words = crf.nll(emissions, labels)
        return float(total) / words

    def mark_best(self) -> None:
        """The latest evaluation is the best so far (the Trainer's own comparison decided)."""
        self.best = self.last


class _Recorder:
    """Tagger-like: predicts through the tagger and keeps the probabilities for the dev loss. With several
    processes each tags its share and all of them get every share's predictions, in order."""

    def __init__(self, tagger, processes: int = 1, rank: int = 0) -> None:
        self.tagger, self.labels, self.scheme, self.context = tagger, tagger.labels, tagger.scheme, tagger.context
        self.processes, self.rank = processes, rank
        self.probabilities = np.zeros((0, len(tagger.labels)), dtype=np.float32)

    def predict_token_batches(self, sentences, documents=None):
        if self.processes == 1:
            predictions, self.probabilities = self.tagger.predict_with_probabilities(sentences, documents)
            return predictions
        lo, hi = shard_ranges([len(words) for words in sentences], documents, self.processes)[self.rank]
        share = (None if documents is None else [(start - lo, end - lo) for start, end in documents if lo <= start < hi])
        empty = ([], np.zeros((0, len(self.labels)), dtype=np.float32))
        mine = self.tagger.predict_with_probabilities(sentences[lo:hi], share) if hi > lo else empty
        shares = distributed.all_gather(mine)
        if len(shares) != self.processes:  # a process group other than WORLD_SIZE says: shares would misalign
            raise RuntimeError(f"dev was shared out to {self.processes} processes, but {len(shares)} answered")
        self.probabilities = np.concatenate([probabilities for _, probabilities in shares])
        return [prediction for predictions, _ in shares for prediction in predictions]


def model_tagger(model, tokenizer, labels, config, max_length: int, crf=None):
    """The Tagger that scores the model being trained (dev during training, dev and test at the end), through
    :func:`~tokentune.training.devscore.model_runner`: whole sentences, ``eval_batch_size * 2`` windows a batch,
    the CRF's current scores if any."""
    from ..inference import Tagger

    runner, precision = model_runner(model, config)
    return Tagger(runner, tokenizer, labels, max_length=max_length,
                  stride=config.stride, batch_size=config.eval_batch_size * 2,
                  crf=crf.scores() if crf is not None else None, context=config.context,
                  context_size=config.context_size, context_marker=config.context_marker, precision=precision)


def model_runner(model, config):
    """``(runner, precision)`` scoring the model being trained, in the precision a later ``evaluate`` of the
    saved model picks on this machine (bf16 where training's auto picks it), through that command's own
    forward where it applies: the plain-torch BERT as a view of the model's tensors at this moment
    (:func:`~tokentune.inference.bert.light_view`), made again for each pass."""
    from ..inference.bert import light_view
    from ..inference.runners import inference_precision, precision_after_training, torch_runner

    precision = inference_precision(precision_after_training(config.precision), str(model.device), model.config)
    model.eval()  # the Trainer's steps put it in training mode (dropout) since the last evaluation
    return torch_runner(light_view(model) or model, str(model.device), precision), precision


def shard_ranges(lengths, documents, parts: int) -> list[tuple[int, int]]:
    """``parts`` consecutive ``[start, end)`` sentence ranges covering all sentences, of about equal words,
    cut only between documents (``documents``: their sentence ranges; None: each sentence is one)."""
    units = documents if documents is not None else [(index, index + 1) for index in range(len(lengths))]
    words = np.cumsum([0, *lengths])
    ends = np.array([end for _, end in units], dtype=np.int64)
    # the unit in which each part's share of the words is reached ends that part
    cuts = [int(ends[np.searchsorted(words[ends], words[-1] * k / parts)]) if len(ends) else 0
            for k in range(1, parts)]
    bounds = [0, *cuts, len(lengths)]
    return [(bounds[k], max(bounds[k], bounds[k + 1])) for k in range(parts)]


def reusable_dev_scores(trainer, notes: list[str]):
    """The best evaluation's dev scores when they are the final dev figures, else None (with a note
    saying why dev is evaluated again)."""
    evaluator = getattr(trainer, "dev_evaluator", None)
    if evaluator is None:
        if trainer.args.world_size > 1 and trainer.eval_dataset is not None:
            notes.append("dev evaluated again at the end: with the model sharded over several processes (FSDP or "
                         "DeepSpeed) the Trainer's own evaluation chose the checkpoint, and each evaluation wrote a "
                         "full checkpoint")
        return None
    best_step = trainer.state.best_global_step
    if evaluator.best is None or evaluator.best[0] != best_step:
        if best_step:
            notes.append(f"dev evaluated again at the end: the best evaluation (step {best_step}) came before "
                         f"--resume, and its predictions were not kept")
        return None
    if not evaluator.whole_split:
        notes.append("dev evaluated again at the end, whole: training watched the first "
                     f"{len(evaluator.corpus)} sentences (--max-eval-samples)")
        return None
    return evaluator.best[1]
