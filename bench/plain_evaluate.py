"""Scoring a saved model as a user of the plain recipe does, as one whole process: the baseline of
bench/whole_job.py for `tokentune evaluate`. run_ner.py's ``do_predict``: the test file through
``tokenize_and_align_labels`` and ``Trainer.predict`` (batch 16), argmax, seqeval's entity-level
precision, recall and F1 and token accuracy. Prints one JSON line with the figures and the time of each part.

    .venv/bin/python bench/plain_evaluate.py MODEL_DIR DATA_DIR
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402 - the clock starts before the imports: they are part of start-up
import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
from datasets import Dataset  # noqa: E402
from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
)

from plain_recipe import read_conll  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("data")
    args = parser.parse_args()
    times = {"start-up": time.perf_counter() - STARTED}
    clock = time.perf_counter()
    model = AutoModelForTokenClassification.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    labels = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    times["model"] = time.perf_counter() - clock
    clock = time.perf_counter()
    test = read_conll(os.path.join(args.data, "test.txt"))
    label2id = {label: i for i, label in enumerate(labels)}
    encoded = tokenizer([words for words, _ in test], truncation=True, is_split_into_words=True)
    rows = []
    for i, (_, tags) in enumerate(test):
        previous, row = None, []
        for word in encoded.word_ids(batch_index=i):
            row.append(-100 if word is None or word == previous else label2id[tags[word]])
            previous = word
        rows.append(row)
    data = Dataset.from_dict({**encoded, "labels": rows})
    times["reading"] = time.perf_counter() - clock
    clock = time.perf_counter()
    trainer = Trainer(model=model, args=TrainingArguments(output_dir="/tmp/plain-evaluate", per_device_eval_batch_size=16,
                                                          report_to="none", disable_tqdm=True),
                      processing_class=tokenizer, data_collator=DataCollatorForTokenClassification(tokenizer))
    output = trainer.predict(data)
    predictions = np.argmax(output.predictions, axis=2)
    gold = [[labels[g] for g in row if g != -100] for row in output.label_ids]
    pred = [[labels[p] for p, g in zip(prow, grow) if g != -100] for prow, grow in zip(predictions, output.label_ids)]
    figures = {"precision": precision_score(gold, pred), "recall": recall_score(gold, pred), "f1": f1_score(gold, pred),
               "accuracy": accuracy_score(gold, pred)}
    times["evaluation"] = time.perf_counter() - clock
    times["total"] = time.perf_counter() - STARTED
    print(json.dumps({**figures, "seconds": {k: round(v, 2) for k, v in times.items()}}))


if __name__ == "__main__":
    main()
