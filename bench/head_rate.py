"""The classifier's own learning rate (``--head-lr-factor``) and document context, on CoNLL-2003 (issue 14).

Runs ``tokentune train`` once per row, each as its own process, and prints dev and test F1 (test P/R, per
type) and the seconds of training from each run's metrics.json:

* ``sentence``: sentence context, CRF head, at each ``--rates`` with the classifier at 1x and at 20x;
* ``document``: FLERT's windows (``--context document --context-size 64 --context-dropout 0.5
  --context-marker``) at 5e-5 with the classifier at 20x: the figure issue 14 asks for (test F1 >= 0.8811).

Full data, 3 epochs: about 15 minutes a sentence row and 50 a document row on 2 cores. Run alone (the
machine is shared), rows one after the other:

    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/head_rate.py --work /tmp/head-rate [--only document]

``--max-train-samples N --epochs E`` shorten every row (a smoke run, not a measurement).
"""
from __future__ import annotations

import argparse
import json
import os

from small_data_tune import DATA, TOKENTUNE, timed

FLERT = ["--context", "document", "--context-size", "64", "--context-dropout", "0.5", "--context-marker"]


def rows(rates: list[str], only: list[str]) -> list[tuple[str, list[str]]]:
    planned = []
    if "sentence" in only:
        planned += [(f"sentence lr {rate} classifier {factor}x", ["--learning-rate", rate, "--head-lr-factor", factor])
                    for rate in rates for factor in ("1", "20")]
    if "document" in only:
        planned.append(("document (FLERT) lr 5e-5 classifier 20x",
                        ["--learning-rate", "5e-5", "--head-lr-factor", "20", *FLERT]))
    return planned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder for the runs' models and logs")
    parser.add_argument("--rates", nargs="+", default=["5e-5", "1e-4"])
    parser.add_argument("--only", nargs="+", choices=("sentence", "document"), default=["sentence", "document"])
    parser.add_argument("--epochs", default="3")
    parser.add_argument("--max-train-samples", type=int)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    shorten = ["--max-train-samples", str(args.max_train_samples)] if args.max_train_samples else []
    print("| run | dev F1 | test F1 | test P / R | test F1 per type | training | whole process |\n"
          "|---|---:|---:|---|---|---:|---:|")
    for number, (name, flags) in enumerate(rows(args.rates, args.only)):
        out = os.path.join(args.work, f"run{number}")
        seconds = timed([TOKENTUNE, "train", "--data", DATA, "--output", out, "--overwrite", "--quiet",
                         "--epochs", args.epochs, *shorten, *flags], out + ".log")
        metrics = json.load(open(os.path.join(out, "metrics.json")))
        dev, test = metrics["dev"], metrics["test"]
        types = ", ".join(f"{kind} {scores['f1']:.3f}" for kind, scores in sorted(test.get("per_type", {}).items()))
        print(f"| {name} | {dev['f1']:.4f} | {test['f1']:.4f} | {test['precision']:.4f} / {test['recall']:.4f} | "
              f"{types} | {metrics['time']['seconds']['training']:.0f} s | {seconds:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
