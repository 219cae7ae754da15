"""tokentune's transformers.Trainer: samplers, loss, dev evaluation through the Tagger, checkpoint policy.

Imported only when a run builds its Trainer (``trainer.trainer_class``): importing it imports transformers.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext

from torch.utils.data import SequentialSampler
from transformers import Trainer

from ..windows import IGNORE
from .batches import MEGABATCH, LengthGroupedSampler
from .crf import SLOTS, TAGS

NOT_MODEL_INPUTS = ("labels", SLOTS, TAGS)  # batch entries the loss reads, not the model


class TokentuneTrainer(Trainer):
    tokens_per_step: float | None = None  # set by build_trainer when the loss is token-weighted
    length_group_batches: int = MEGABATCH  # set by build_trainer from the config
    train_collator = None  # packing.PackingCollator with --packing; evaluation keeps the plain one
    # --head crf: a training.crf.LinearChainCRF (also model.crf) and its learning rate; --class-weights: a tensor
    crf = crf_learning_rate = class_weights = None
    head_learning_rate = None  # --head-lr-factor x --learning-rate for the layers outside the encoder, or None
    head_parameters = ()  # those layers' parameters (hf_trainer.head_parameters of the unwrapped model)
    dev_evaluator = None  # devscore.DevEvaluator: dev scored as `evaluate` scores it
    checkpoint_policy = None  # checkpoints.CheckpointPolicy: what each save writes
    clock = None  # timing.RunClock of the run
    cpu_dropout = None  # dropout.CpuDropout: faster dropout for the training forward on a CPU
    embedding_rows = None  # rows.EmbeddingRows: the word-embedding rows the data uses, trained alone

    def create_optimizer(self, model=None):  # the CRF's scores and the classifier at rates of their own
        optimizer = own_rate_parameter_groups(super().create_optimizer(model), self)
        if self.embedding_rows is not None:
            self.embedding_rows.follow(optimizer)  # the full matrix gets the rows' values after every step
        return optimizer

    def get_train_dataloader(self):
        if self.train_collator is None:
            return super().get_train_dataloader()
        plain, self.data_collator = self.data_collator, self.train_collator
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = plain

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        lengths = [len(feature["input_ids"]) for feature in dataset]
        return LengthGroupedSampler(lengths, self._train_batch_size, self.args.seed, self.length_group_batches)

    def _get_eval_sampler(self, eval_dataset):
        # dev features come sorted by length (encode_split): batches in that order carry the least
        # padding; the base class would shuffle them into length groups again
        if self.args.world_size <= 1:
            return SequentialSampler(eval_dataset)
        return None  # distributed: accelerate shards the sequential batches over the ranks

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """Dev through the Tagger (devscore.py), timed as the run's "dev evaluation"."""
        with timed_part(self, "dev evaluation"):
            if self.dev_evaluator is None or eval_dataset is not None or metric_key_prefix != "eval":
                return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            metrics = self.dev_evaluator.evaluate(self.model, self.state.global_step, self.crf)
            metrics["epoch"] = self.state.epoch
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    def _determine_best_metric(self, metrics, trial):
        is_best = super()._determine_best_metric(metrics, trial)
        if is_best and self.dev_evaluator is not None:
            self.dev_evaluator.mark_best()
        return is_best

    def _save_checkpoint(self, model, trial):
        with timed_part(self, "checkpoints"):
            if self.checkpoint_policy is None:
                return super()._save_checkpoint(model, trial)
            self.checkpoint_policy.save(self, lambda: super(TokentuneTrainer, self)._save_checkpoint(model, trial))

    def _load_best_model(self):
        """The best evaluation's weights from memory where the checkpoint policy kept them there."""
        policy, step = self.checkpoint_policy, self.state.best_global_step
        kept = policy.best_weights(step) if policy else None
        if kept is not None:
            kept.load_into(self.model)
        elif policy is None or not policy.holds_best(step):
            super()._load_best_model()
        # else: another process under a launcher; rank 0 holds the best weights and alone uses the model after training

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Cross-entropy over labelled sub-tokens, scaled here for accumulation and processes.

        Token-weighted (default): the sum over the micro-batch divided by the labelled tokens an
        optimizer step holds on average, so every token weighs the same whatever its batch; a
        batch mean would give a batch of 16 short headlines the pull of 16 long sentences, which
        length-grouped batches make common. Otherwise: the batch mean, averaged over accumulation.
        (transformers takes models with ``**kwargs`` to scale their own loss; BERT's doesn't.)
        """
        swap = self.cpu_dropout.training_forward() if self.cpu_dropout and model.training else nullcontext()
        with swap:
            outputs = model(**{k: v for k, v in inputs.items() if k not in NOT_MODEL_INPUTS})
        total, loss = head_loss(self, outputs.logits, inputs)
        if model.training and self.tokens_per_step:
            loss = total / self.tokens_per_step
        elif model.training:
            loss = loss / self.current_gradient_accumulation_steps
        return (loss, outputs) if return_outputs else loss


@contextmanager
def timed_part(trainer, name: str):
    if trainer.clock is None:
        yield
    else:
        with trainer.clock.part(name):
            yield


def own_rate_parameter_groups(optimizer, trainer):
    """The CRF's scores, then the classifier (with ``--head-lr-factor``), in groups of their own rate."""
    from .crf import own_rate_groups, split_crf_parameters

    if trainer.crf is not None and trainer.crf_learning_rate:
        split_crf_parameters(optimizer, trainer.crf, trainer.crf_learning_rate)
    if trainer.head_learning_rate:
        own_rate_groups(optimizer, list(trainer.head_parameters), trainer.head_learning_rate, "head")
    return optimizer


def head_parameters(model) -> list:
    """The task layers around the pretrained encoder (BERT's ``classifier``): every trainable parameter
    outside ``model.base_model``, other than tokentune's own modules (the CRF, the embedding rows)."""
    prefix = getattr(model, "base_model_prefix", "")
    if not prefix or getattr(model, prefix, None) is None:
        return []
    skip = (prefix + ".", "crf.", "tokentune_embedding_rows.")
    return [p for name, p in model.named_parameters() if p.requires_grad and not name.startswith(skip)]


def head_loss(trainer, logits, inputs):
    """``(sum, mean)`` of the loss over a micro-batch's labelled sub-tokens: the CRF's chain NLL
    (mean: per labelled token), or the cross-entropy with the optional class weights (mean: over the
    tokens' weights, as torch's ``cross_entropy(weight=...)`` takes it)."""
    import torch.nn.functional as F

    labels = inputs["labels"]
    if trainer.crf is not None and SLOTS in inputs:  # a training batch (ChainLayoutCollator)
        total, tokens = trainer.crf.nll_of_layout(logits, inputs[SLOTS], inputs[TAGS])
        return total, total / tokens.clamp(min=1)
    if trainer.crf is not None:
        total, tokens = trainer.crf.nll(logits, labels, inputs.get("position_ids"))
        return total, total / max(1, tokens)
    logits = logits.float().view(-1, logits.shape[-1])
    weight = None if trainer.class_weights is None else trainer.class_weights.to(logits.device)
    flat = labels.view(-1)
    total = F.cross_entropy(logits, flat, weight=weight, ignore_index=IGNORE, reduction="sum")
    # the mean's denominator without reading the labels back from the device (a GPU stall)
    labelled = flat != IGNORE
    if weight is not None:
        return total, total / (weight[flat.clamp(min=0)] * labelled).sum().clamp(min=1e-12)
    return total, total / labelled.sum().clamp(min=1)
