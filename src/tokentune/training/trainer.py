"""Wiring of transformers.Trainer for tokentune: arguments, metrics, logging, and the files a run writes."""
from __future__ import annotations

import json
import os

from ..config import TrainConfig
from ..windows import IGNORE


def training_arguments(config: TrainConfig, staging: str, has_dev: bool, *, precision: str = "fp32",
                       batch_size: int | None = None, accumulation: int | None = None, packed: bool = False):
    """TrainingArguments for one attempt; ``batch_size``/``accumulation`` differ from the config's only
    after the batch-size finder halved the batch."""
    from transformers import TrainingArguments

    from .distributed import world_size
    from .hardware import has_cuda
    from .tracking import trainer_report_to

    if config.eval_steps:
        strategy = {"eval_strategy": "steps", "eval_steps": config.eval_steps,
                    "save_strategy": "steps", "save_steps": config.eval_steps}
    else:
        strategy = {"eval_strategy": "epoch", "save_strategy": "epoch"}
    if not has_dev:  # no dev F1 to pick by: checkpoints only for --resume, the last model is kept
        strategy = {**strategy, "eval_strategy": "no"}
    return TrainingArguments(
        output_dir=os.path.join(staging, "checkpoints"),
        learning_rate=config.learning_rate,
        per_device_train_batch_size=batch_size or config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        num_train_epochs=config.epochs,
        adam_beta1=config.adam_beta1,
        adam_beta2=config.adam_beta2,
        adam_epsilon=config.adam_epsilon,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of all steps
        lr_scheduler_type=config.lr_scheduler,
        gradient_accumulation_steps=accumulation or config.gradient_accumulation_steps,
        **checkpointing_setting(TrainingArguments, config.gradient_checkpointing),
        torch_compile=config.torch_compile,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        seed=config.seed,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        load_best_model_at_end=has_dev,
        metric_for_best_model="f1" if has_dev else None,
        greater_is_better=True,
        save_total_limit=None,  # checkpoints.CheckpointPolicy keeps the newest config.save_total_limit and the best
        save_only_model=False,  # optimizer, scheduler and RNG states too: what --resume needs
        remove_unused_columns=False,  # the features hold only the model's inputs, and context dropout's marks
        # packed batches are the recipe's random ones: grouping them by length would only cost variety
        train_sampling_strategy="group_by_length" if config.group_by_length and not packed else "random",
        disable_tqdm=config.quiet,
        dataloader_pin_memory=has_cuda(),
        # without a GPU, say CPU: the launchers' processes then form a CPU (gloo) group instead of each
        # training alone, and bf16 autocast is allowed on the CPU
        use_cpu=not has_cuda() and (world_size() > 1 or precision == "bf16"),
        report_to=trainer_report_to(config),
        run_name=os.path.basename(os.path.normpath(config.output)) if config.output else None,
        **strategy,
        **_ddp_settings(config),
        **(config.trainer or {}),  # --trainer-arg: checked against TrainingArguments when the config was built
    )


def checkpointing_setting(arguments_class, enabled: bool) -> dict:
    """transformers renamed ``gradient_checkpointing`` to ``activation_checkpointing`` during 5.x (the old
    name stays a deprecated alias): the name this version knows (5.17 and 5.25 tested)."""
    import dataclasses

    names = {field.name for field in dataclasses.fields(arguments_class)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


def _ddp_settings(config: TrainConfig) -> dict:
    """The CRF's scores are used in the loss, outside the model's forward: DDP's search for unused
    parameters would mark them ready after the forward and again in the backward (an error), so with
    the CRF head every parameter is taken as used, unless ``--trainer-arg`` says otherwise."""
    if config.head != "crf" or "ddp_find_unused_parameters" in (config.trainer or {}):
        return {}
    return {"ddp_find_unused_parameters": False}


def make_compute_metrics(labels: list[str]):
    """Entity-level metrics on the dev windows: each word is labelled in exactly one window."""
    from ..metrics import score_tags

    def compute_metrics(eval_prediction) -> dict:
        predictions, label_ids = eval_prediction.predictions, eval_prediction.label_ids
        gold, pred = [], []
        for pred_row, gold_row in zip(predictions, label_ids):
            keep = gold_row != IGNORE
            gold.append([labels[i] for i in gold_row[keep]])
            pred.append([labels[i] for i in pred_row[keep]])
        scores = score_tags(gold, pred)
        return {k: scores[k] for k in ("precision", "recall", "f1", "accuracy")}

    return compute_metrics


def _argmax_logits(logits, labels):
    return logits.argmax(dim=-1)  # keeps evaluation memory at one id per token


def _crf_decoder(crf, labels: list[str]):
    """Dev predictions of a CRF head: Viterbi with the learned scores and the scheme's masks."""
    from ..schemes import scheme_of_labels
    from .crf import viterbi_ids

    scheme = scheme_of_labels(labels)

    def decode(logits, label_ids):
        return viterbi_ids(logits, label_ids, crf, labels, scheme)

    return decode


class JsonLinesLog:
    """A TrainerCallback writing every log record (loss, learning rate, eval metrics) as one JSON line."""

    def __init__(self, path: str) -> None:
        from transformers import TrainerCallback

        outer = self

        class _Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if state.is_world_process_zero and logs:
                    outer.write({"step": state.global_step, "epoch": state.epoch, **logs})

        self.path = path
        self.callback = _Callback()

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step``: a resumed run logs again what followed its checkpoint."""
        if not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as handle:
            kept = []
            for line in handle:
                try:
                    if json.loads(line).get("step", 0) <= step:
                        kept.append(line)
                except ValueError:  # a line cut short when the run was killed
                    break
        from ..io import atomic_write_text

        atomic_write_text(self.path, "".join(kept))


def thread_follower():
    """A TrainerCallback taking the command's thread advice before every step (:func:`tokentune.threads.follow`;
    nothing without a watch)."""
    from transformers import TrainerCallback

    from ..threads import follow

    class FollowThreads(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            follow()

    return FollowThreads()


def trainer_class():
    """transformers.Trainer with tokentune's samplers, loss, dev evaluation and checkpoint policy (a
    function, so importing this module stays light: hf_trainer.py imports transformers)."""
    from .hf_trainer import TokentuneTrainer

    return TokentuneTrainer


def tokens_per_step(train_features: list[dict], batch_size: int, accumulation: int) -> float:
    """Labelled sub-tokens in one process's share of an optimizer step, on average over the data."""
    labelled = sum(sum(1 for label in f["labels"] if label != IGNORE) for f in train_features)
    return max(1.0, labelled / max(1, len(train_features)) * batch_size * accumulation)


def build_trainer(config, model, tokenizer, labels, train_features, dev_features, staging, notes, *,
                  precision: str = "fp32", batch_size: int | None = None, accumulation: int | None = None,
                  max_length: int | None = None, extra_callbacks=()):
    from transformers import DataCollatorForTokenClassification, EarlyStoppingCallback

    from .packing import packing_plan
    from .tracking import tracking_callbacks

    has_dev = dev_features is not None
    first_position, note = packing_plan(config.packing, model.config)
    if not config.group_by_length and first_position is None:
        note = "batches: random, padded to their longest sentence (--no-group-by-length)"
    if note not in notes:  # build_trainer runs again after an out-of-memory halving
        notes.append(note)
    args = training_arguments(config, staging, has_dev, precision=precision, batch_size=batch_size,
                              accumulation=accumulation, packed=first_position is not None)
    log = JsonLinesLog(os.path.join(staging, "training_log.jsonl"))
    callbacks = [log.callback, thread_follower(), *tracking_callbacks(config, staging), *extra_callbacks]
    if config.patience and has_dev:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.patience))
    if config.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    trainer = trainer_class()(
        model=model,
        args=args,
        data_collator=DataCollatorForTokenClassification(
            tokenizer, pad_to_multiple_of=pad_multiple(config, precision, max_length)),
        train_dataset=train_features,
        eval_dataset=dev_features,
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(labels) if has_dev else None,
        preprocess_logits_for_metrics=_argmax_logits,
        callbacks=callbacks,
    )
    set_head(trainer, config, model, labels, train_features, notes)
    _set_step_savings(trainer, config, model, tokenizer, train_features, notes)
    trainer.tokentune_log = log
    trainer.length_group_batches = config.length_group_batches
    set_train_collator(trainer, config, model, tokenizer, precision, max_length, first_position)
    # the loss above is already scaled for accumulation and processes; no per-step token count needed
    trainer.loss_is_scaled_for_ga, trainer.model_accepts_loss_kwargs = True, False
    if config.token_weighted_loss:
        trainer.tokens_per_step = tokens_per_step(train_features, args.per_device_train_batch_size,
                                                  args.gradient_accumulation_steps)
    if config.quiet:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer


def set_train_collator(trainer, config, model, tokenizer, precision, max_length, first_position) -> None:
    """The training batches' collator, layer on layer: packed rows, context dropout, the CRF's chains."""
    from .packing import PackingCollator

    if first_position is not None:
        trainer.train_collator = PackingCollator(
            tokenizer.pad_token_id, pad_to_multiple_of=pad_multiple(config, precision, max_length),
            additive_mask=getattr(model.config, "_attn_implementation", "eager") == "eager",
            first_position=first_position)
    if config.context_dropout:
        from .context import ContextDropoutCollator, epoch_callback

        trainer.train_collator = ContextDropoutCollator(trainer.train_collator or trainer.data_collator,
                                                        config.context_dropout, config.seed)
        trainer.add_callback(epoch_callback(trainer.train_collator))
    if trainer.crf is not None and not slices_batches(trainer.args):
        # the chains found on the host, so that the loss never waits for the device
        from .crf import ChainLayoutCollator

        trainer.train_collator = ChainLayoutCollator(trainer.train_collator or trainer.data_collator)


def slices_batches(args) -> bool:
    """Whether accelerate cuts each collated batch between processes (``--trainer-arg`` with
    ``accelerator_config`` split_batches or dispatch_batches, or context parallelism): a chain layout
    made for the whole batch would then not match a process's slice of it."""
    accelerator = getattr(args, "accelerator_config", None)
    return bool(getattr(accelerator, "split_batches", False) or getattr(accelerator, "dispatch_batches", False)
                or getattr(args, "parallelism_config", None))


def set_head(trainer, config, model, labels, train_features, notes) -> None:
    """The CRF (``--head crf``: attached as ``model.crf``, dev F1 from Viterbi) or the class weights, and
    the classifier's own learning rate (``--head-lr-factor``)."""
    import torch

    if config.head_lr_factor != 1.0:
        head_rate(trainer, config, model, notes)
    if config.head == "crf":
        from .crf import CRF_LR_FACTOR, attach_crf, crf_of

        trainer.crf = crf_of(model) or attach_crf(model, len(labels))
        trainer.crf_learning_rate = config.crf_learning_rate or config.learning_rate * CRF_LR_FACTOR
        trainer.preprocess_logits_for_metrics = _crf_decoder(trainer.crf, labels)
    elif config.class_weights is not None:
        from .weights import class_weights

        weights = class_weights(config.class_weights, labels, train_features)
        trainer.class_weights = torch.tensor(weights, dtype=torch.float32)
        trainer.class_weight_map = dict(zip(labels, (round(float(w), 6) for w in weights)))


def _set_step_savings(trainer, config, model, tokenizer, train_features, notes) -> None:
    """Faster dropout on a CPU, and the word-embedding rows the data uses trained alone (after the CRF,
    so that a resumed run's parameters come in the same order)."""
    from .dropout import cpu_dropout
    from .rows import train_used_rows

    trainer.cpu_dropout = cpu_dropout(config, model, notes)
    trainer.embedding_rows = train_used_rows(config, trainer.args, model, tokenizer, train_features, notes)


def head_rate(trainer, config, model, notes) -> None:
    """``--head-lr-factor``: the layers outside the encoder (taken from the model as built, before any
    wrapping) at their own rate, or a note that says why not."""
    from .hf_trainer import head_parameters

    sharded = (getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False)
               or trainer.args.fsdp or trainer.args.deepspeed)  # accelerate's config can turn them on too
    params = [] if sharded else head_parameters(model)
    if params:
        trainer.head_learning_rate, trainer.head_parameters = config.learning_rate * config.head_lr_factor, params
        note = (f"classifier learning rate {trainer.head_learning_rate:g}: {config.head_lr_factor:g} x "
                f"--learning-rate (--head-lr-factor; 1 gives the recipe's one rate for all)")
    else:
        why = ("FSDP and DeepSpeed flatten the parameters" if sharded
               else "the model has no trainable layer outside its encoder (model.base_model)")
        note = (f"--head-lr-factor {config.head_lr_factor:g} not applied: {why}, so every weight trains at "
                f"--learning-rate")
    if note not in notes:
        notes.append(note)


def pad_multiple(config, precision: str, max_length: int | None = None) -> int | None:
    """Batch lengths rounded up to this. Under bf16 on a CPU each new matrix shape costs a kernel
    compiled and cached by oneDNN: with every length its own shape, memory grows through the epoch and
    steps are slower (bench/train_speed.py); multiples of 8 keep about 20 shapes."""
    multiple = config.pad_to_multiple_of
    if multiple is None:
        multiple = 8 if precision in ("bf16", "fp16") else 1
    if multiple <= 1 or (max_length and max_length % multiple):  # never pad past the position embeddings
        return None
    return multiple


def effective_batch_size(args) -> int:
    """Examples per optimizer step: per device x devices (processes, or GPUs of one process) x accumulation."""
    return args.per_device_train_batch_size * max(1, args.n_gpu) * args.world_size * args.gradient_accumulation_steps


def final_evaluation(model, tokenizer, labels, splits, config, max_length, test_when=None, dev_scores=None) -> dict:
    """Dev and test figures of the kept model, on whole sentences (windows merged), as `evaluate` gives;
    test only where ``test_when(dev_metrics)`` allows it (when given). ``dev_scores``: the kept model's dev
    figures from its evaluation during training (devscore.py): dev is then not run again."""
    from ..evaluation import evaluate_corpus
    from .crf import crf_of
    from .devscore import model_tagger

    tagger = model_tagger(model, tokenizer, labels, config, max_length, crf_of(model))
    metrics = {"dev": dev_scores} if dev_scores is not None else {}
    for name in ("dev", "test"):
        corpus = getattr(splits, name)
        if name in metrics:
            continue
        if name == "test" and test_when is not None and "dev" in metrics and not test_when(metrics["dev"]):
            continue
        if corpus is not None:
            metrics[name] = evaluate_corpus(tagger, corpus, return_predictions=True,  # kept for the report
                                            context=config.context)
    return metrics


def write_outputs(staging, trainer, tokenizer, config, result, splits, clock) -> None:
    """The model, its card, reports and ``metrics.json`` (written last: its ``"time"`` covers the rest)."""
    from ..io import atomic_write_json, atomic_write_text
    from ..modeling import base_model_name, save_tokenizer
    from ..reporting.card import model_card, write_reports
    from .crf import save_without_crf

    with clock.part("writing"):
        labels = [trainer.model.config.id2label[i] for i in range(len(trainer.model.config.id2label))]
        save_without_crf(trainer.model, staging, labels)  # the CRF's scores, if any, in crf.safetensors
        save_tokenizer(tokenizer, staging)
        atomic_write_json(os.path.join(staging, "tokentune_config.json"), config.to_dict())
    with clock.part("reports"):
        card = model_card(config, base_model_name(config.model), result.metrics, result.log_history, splits,
                          result.notes)
        atomic_write_text(os.path.join(staging, "README.md"), card)
        write_reports(staging, result, splits, config)  # errors.jsonl, plots/, report.html
    result.time = clock.summary()
    summary = {**result.metrics, "train_seconds": round(result.train_seconds, 1),
               "train_sentences_per_second": round(result.train_sentences_per_second, 2),
               "training": result.run,  # precision, per-device and effective batch size, processes, steps
               "head": config.head, "class_weights": getattr(trainer, "class_weight_map", None),
               "time": result.time, "notes": result.notes}
    atomic_write_json(os.path.join(staging, "metrics.json"), summary)
