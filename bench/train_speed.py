"""Training speed: the plain Hugging Face recipe vs tokentune, same data, model, hyperparameters, seed, epochs.

* plain: the recipe as usually written: ``tokenize_and_align_labels`` with the tokenizer (label on the
  first sub-token, -100 elsewhere), ``Trainer`` + ``DataCollatorForTokenClassification``, the default
  random sampler, fp32, dev evaluation with seqeval each epoch, a checkpoint each epoch.
* tokentune: ``tokentune.train`` with its defaults (plus any ``--variant`` settings to measure one
  candidate at a time).

Each engine runs in its own subprocess (honest peak RSS). For each: sentences/s (training sentences x
epochs / wall time of ``Trainer.train``, in-training dev evaluation included, as a user waits for it),
real (non-pad) sub-tokens/s, the padded fraction of computed sub-tokens, peak RSS after training, dev F1
of the final model (both scored by ``tokentune.evaluate`` on the whole dev split, Viterbi decoding),
and achieved GFLOP/s: 64 MFLOP per sub-token for MiniLM forward+backward (6 x 10.6M encoder weights,
attention included), counted on computed sub-tokens (padding included) and on real ones, over the
training time without the in-training evaluation; next to the machine's matmul peak measured here.

Run (the machine is shared: take the lock):
    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/train_speed.py --train-samples 2000
    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/train_speed.py            # all 14,041 sentences
    ... --engines tokentune --variant fp32:precision=fp32 --variant frozen:freeze_embeddings=true
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data", "conll2003")
MFLOP_PER_TOKEN = 64.0  # MiniLM-L6-H384 forward + backward per sub-token


# ---------------------------------------------------------------- measurements inside a worker

class Meter:
    """Counts what the Trainer computes: training batches' real and padded sub-tokens, in-training
    evaluation time, wall time of Trainer.train and the peak RSS when it returns."""

    def __init__(self) -> None:
        self.real = self.computed = self.steps = 0
        self.eval_seconds = self.train_seconds = self.cpu_seconds = 0.0
        self.rss_mb = 0.0

    def install(self) -> None:
        from transformers import Trainer

        meter, step, evaluate, train = self, Trainer.training_step, Trainer.evaluate, Trainer.train

        def training_step(self, model, inputs, *args, **kwargs):
            mask = inputs["attention_mask"]
            if mask.dim() == 4:  # packed rows (--packing): real tokens are the non-[PAD] ones (id 0 in BERT vocabularies)
                mask = inputs["input_ids"] != 0
            meter.real += int(mask.sum())
            meter.computed += mask.numel()
            meter.steps += 1
            return step(self, model, inputs, *args, **kwargs)

        def timed_evaluate(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return evaluate(self, *args, **kwargs)
            finally:
                meter.eval_seconds += time.perf_counter() - started

        def timed_train(self, *args, **kwargs):
            started, cpu = time.perf_counter(), time.process_time()
            output = train(self, *args, **kwargs)
            meter.train_seconds += time.perf_counter() - started
            meter.cpu_seconds += time.process_time() - cpu
            meter.rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            return output

        Trainer.training_step, Trainer.evaluate, Trainer.train = training_step, timed_evaluate, timed_train


def _splits(args):
    """The same training slice tokentune takes for --max-train-samples (seeded sample, kept in order)."""
    from tokentune.config import TrainConfig
    from tokentune.training import prepare_splits

    return prepare_splits(TrainConfig(data=args.data, max_train_samples=args.train_samples, seed=args.seed))


def run_plain(args, out_dir: str, meter: Meter) -> float:
    """The Hugging Face token-classification recipe; returns the dev F1 of the final model."""
    import numpy as np
    from datasets import Dataset
    from seqeval.metrics import f1_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    import tokentune
    from plain_recipe import tokenize_and_align_labels
    from tokentune.modeling import embedded_model_path
    from tokentune.schemes import labels_for

    splits = _splits(args)
    labels = labels_for(splits.train.entity_types(), "IOB2")
    label2id = {label: i for i, label in enumerate(labels)}

    def to_dataset(corpus):
        return Dataset.from_dict({"tokens": [s.words for s in corpus],
                                  "ner_tags": [[label2id[t] for t in tags] for tags in corpus.tag_sequences("IOB2")]})

    path = embedded_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)

    def align(batch):
        return tokenize_and_align_labels(tokenizer, batch)

    train = to_dataset(splits.train).map(align, batched=True, remove_columns=["tokens", "ner_tags"])
    dev = to_dataset(splits.dev).map(align, batched=True, remove_columns=["tokens", "ner_tags"])

    def compute_metrics(prediction):
        predictions = np.argmax(prediction.predictions, axis=2)
        gold = [[labels[g] for g in row if g != -100] for row in prediction.label_ids]
        pred = [[labels[p] for p, g in zip(prow, grow) if g != -100] for prow, grow in zip(predictions, prediction.label_ids)]
        return {"f1": f1_score(gold, pred)}

    set_seed(args.seed)
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
    training_args = TrainingArguments(
        output_dir=os.path.join(out_dir, "checkpoints"), eval_strategy="epoch", save_strategy="epoch",
        learning_rate=args.learning_rate, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, num_train_epochs=args.epochs, weight_decay=0.0,
        seed=args.seed, logging_steps=50, report_to="none", disable_tqdm=True)
    trainer = Trainer(model=model, args=training_args, train_dataset=train, eval_dataset=dev,
                      processing_class=tokenizer, data_collator=DataCollatorForTokenClassification(tokenizer),
                      compute_metrics=compute_metrics)
    trainer.train()
    trainer.save_model(os.path.join(out_dir, "model"))
    return tokentune.evaluate(os.path.join(out_dir, "model"), args.data, split="dev")["f1"]


def run_tokentune(args, out_dir: str, meter: Meter, settings: dict) -> tuple[float, dict]:
    import tokentune
    import tokentune.training.run as training

    prepare, timing = training.prepare_data, {}

    def timed_prepare(config):  # reading + encoding the data, once per run (not per epoch)
        started = time.perf_counter()
        try:
            return prepare(config)
        finally:
            timing["prepare_seconds"] = round(time.perf_counter() - started, 2)

    training.prepare_data = timed_prepare
    result = tokentune.train(data=args.data, output=os.path.join(out_dir, "model"), epochs=args.epochs,
                             learning_rate=args.learning_rate, batch_size=args.batch_size, seed=args.seed,
                             max_train_samples=args.train_samples, quiet=True, **settings)
    return result.metrics["dev"]["f1"], {**timing, **result.run}


def worker(args) -> None:
    import torch
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    meter = Meter()
    meter.install()
    settings = json.loads(args.settings)
    with tempfile.TemporaryDirectory(prefix="train_speed_") as out_dir:
        if args.worker == "plain":
            f1, extra = run_plain(args, out_dir, meter), {}
        else:
            f1, extra = run_tokentune(args, out_dir, meter, settings)
    sentences = len(_splits(args).train) * args.epochs
    compute_seconds = meter.train_seconds - meter.eval_seconds
    record = {
        "engine": args.name, "settings": settings, "threads": torch.get_num_threads(),
        "sentences": sentences, "train_seconds": round(meter.train_seconds, 2),
        "eval_seconds": round(meter.eval_seconds, 2), "steps": meter.steps,
        "sentences_per_second": sentences / meter.train_seconds,
        # CPU time is what other people's jobs on a shared machine steal least from: sentences per
        # second of all threads' CPU time, times the thread count (= wall-clock rate on an idle machine)
        "cpu_seconds": round(meter.cpu_seconds, 1),
        "sentences_per_cpu_second_x_threads": sentences * torch.get_num_threads() / meter.cpu_seconds,
        "real_tokens_per_second": meter.real / meter.train_seconds,
        "padded_fraction": 1 - meter.real / meter.computed,
        "peak_rss_mb": round(meter.rss_mb), "dev_f1": f1,
        "gflops_computed": meter.computed * MFLOP_PER_TOKEN / 1e3 / compute_seconds,
        "gflops_real": meter.real * MFLOP_PER_TOKEN / 1e3 / compute_seconds, **extra,
    }
    with open(args.worker_out, "w") as handle:
        json.dump(record, handle)


# ---------------------------------------------------------------- the parent: peak, engines, table

def matmul_peak(threads: int, size: int = 2048, repeats: int = 5) -> dict:
    """GFLOP/s of a square fp32 and bf16 matrix product with ``threads`` threads (best of ``repeats``)."""
    import torch

    torch.set_num_threads(threads)
    peak = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(4):
                a @ b
            best = min(best, (time.perf_counter() - started) / 4)
        peak[name] = 2 * size ** 3 / best / 1e9
    return peak


def run_engine(args, name: str, engine: str, settings: dict) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    command = [sys.executable, os.path.abspath(__file__), "--worker", engine, "--name", name, "--worker-out", out,
               "--settings", json.dumps(settings), "--data", args.data, "--epochs", str(args.epochs),
               "--learning-rate", str(args.learning_rate), "--batch-size", str(args.batch_size),
               "--seed", str(args.seed), "--threads", str(args.threads)]
    if args.train_samples:
        command += ["--train-samples", str(args.train_samples)]
    print(f"running {name} ...", file=sys.stderr, flush=True)
    load_before = os.getloadavg()[0]
    subprocess.run(command, check=True)
    with open(out) as handle:
        record = json.load(handle)
    os.unlink(out)
    record["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # 1-minute, before/after
    return record


def _variant(text: str) -> tuple[str, dict]:
    name, _, pairs = text.partition(":")
    settings = {}
    for pair in filter(None, pairs.split(",")):
        key, _, value = pair.partition("=")
        try:
            settings[key] = json.loads(value)
        except ValueError:  # a bare word: a string setting such as precision=fp32
            settings[key] = value
    return name, settings


def print_table(records: list[dict], peak: dict) -> None:
    head = (f"{'engine':<16}{'sent/s':>8}{'cpu-norm':>9}{'real tok/s':>11}{'padded':>8}{'peak RSS':>10}{'dev F1':>8}"
            f"{'train s':>9}{'eval s':>8}{'GFLOP/s':>9}{'(real)':>8}{'of peak':>9}")
    print(head)
    for r in records:
        bf16 = r.get("precision") == "bf16"
        share = r["gflops_computed"] / peak["bf16" if bf16 else "fp32"]
        print(f"{r['engine']:<16}{r['sentences_per_second']:>8.1f}{r['sentences_per_cpu_second_x_threads']:>9.1f}"
              f"{r['real_tokens_per_second']:>11.0f}"
              f"{r['padded_fraction']:>8.1%}{r['peak_rss_mb']:>8.0f}MB{r['dev_f1'] * 100:>8.2f}"
              f"{r['train_seconds']:>9.1f}{r['eval_seconds']:>8.1f}{r['gflops_computed']:>9.1f}"
              f"{r['gflops_real']:>8.1f}{share:>9.1%}")
    print(f"\nmatmul peak, {records[0]['threads']} thread(s): fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s "
          f"('of peak': computed GFLOP/s over the peak of the engine's precision; "
          f"'cpu-norm': sentences per CPU-second x threads, the rate an idle machine would give)")
    base = next((r for r in records if r["engine"] == "plain"), None)
    for r in records:
        if base is not None and r is not base:
            cpu_ratio = r['sentences_per_cpu_second_x_threads'] / base['sentences_per_cpu_second_x_threads']
            print(f"{r['engine']} / plain: sentences/s {r['sentences_per_second'] / base['sentences_per_second']:.2f}x "
                  f"(CPU-time normalised {cpu_ratio:.2f}x), "
                  f"dev F1 {100 * (r['dev_f1'] - base['dev_f1']):+.2f} points, "
                  f"peak RSS {r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--train-samples", type=int, help="a seeded slice of the training sentences (quick mode)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--engines", default="plain,tokentune", help="comma-separated: plain, tokentune")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:key=value,...",
                        help="an extra tokentune run with these TrainConfig settings, e.g. fp32:precision=fp32")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every engine and the peak")
    parser.add_argument("--json", help="write the records and the peak here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    peak = matmul_peak(args.threads)
    runs = [(engine, engine, {}) for engine in args.engines.split(",") if engine]
    runs += [(name, "tokentune", settings) for name, settings in map(_variant, args.variant)]
    records = [run_engine(args, name, engine, settings) for name, engine, settings in runs]
    # measured again at the end: on a shared machine the best of the two is closer to the true peak
    peak = {k: max(v, w) for (k, v), w in zip(peak.items(), matmul_peak(args.threads).values())}
    loads = ", ".join(f"{r['engine']} {r['load_average'][0]}/{r['load_average'][1]}" for r in records)
    print(f"\nCoNLL-2003 train: {records[0]['sentences']:.0f} sentence passes ({args.epochs:g} epoch(s)), "
          f"batch {args.batch_size}, lr {args.learning_rate:g}, seed {args.seed}; "
          f"1-minute load average before/after each engine: {loads}\n")
    print_table(records, peak)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"peak": peak, "records": records, "args": vars(args)}, handle, indent=2)


if __name__ == "__main__":
    main()
