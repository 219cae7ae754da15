"""The seed's small-data regime: 200 training and 200 dev sentences (seeded slices of CoNLL-2003 train and
dev), the full test set, the embedded model. Side by side, as whole processes:

* train: ``tokentune train`` with the recipe's settings (lr 1.5e-5, 20 epochs, batch 16), and with the
  embedded model's default learning rate (1e-4);
* tune: ``tokentune tune --trials N`` (median pruner), the best trial's dev and test F1 and settings;
* unpruned: the same search with ``--pruner none`` (``--unpruned SEED``), for what pruning saves in
  trial-epochs and wall time. Without it, the saving is still shown against the same trials: the
  epochs each trial drew, less those it trained before it was pruned.

The slices are written to a temporary folder (never into the repository). Run alone (the machine is shared):

    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/small_data_tune.py --slices 1 2 --trials 16
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data", "conll2003")
TOKENTUNE = os.path.join(os.path.dirname(sys.executable), "tokentune")


def write_slice(folder: str, seed: int, size: int) -> str:
    """``size`` seeded sentences of train and of dev, and the full test file, as CoNLL files in ``folder``."""
    from tokentune.data import read_corpus
    from tokentune.data.conll import write_conll

    if os.path.exists(os.path.join(folder, "test.txt")):
        return folder
    os.makedirs(folder, exist_ok=True)
    for split in ("train", "dev"):
        corpus = read_corpus(os.path.join(DATA, f"{split}.txt"))
        picked = sorted(random.Random(seed).sample(range(len(corpus)), size))
        write_conll(corpus.select(picked), os.path.join(folder, f"{split}.txt"), separator=" ")
    os.symlink(os.path.abspath(os.path.join(DATA, "test.txt")), os.path.join(folder, "test.txt"))
    return folder


def timed(command: list[str], log: str) -> float:
    started = time.perf_counter()
    with open(log, "w") as handle:
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT)
    return time.perf_counter() - started


def f1s(model_dir: str) -> tuple[float, float]:
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    return metrics["dev"]["f1"], metrics["test"]["f1"]


def cached(path: str, measure) -> dict:
    """A finished run's row is kept in ``path``: a bench run that was stopped continues where it was."""
    if os.path.exists(path):
        return json.load(open(path))
    row = measure()
    with open(path, "w") as handle:
        json.dump(row, handle)
    return row


def train_row(root: str, seed: int, data: str, name: str, learning_rate: str) -> dict:
    out = os.path.join(root, f"{name}{seed}")
    seconds = timed([TOKENTUNE, "train", "--data", data, "--output", out, "-q", "--learning-rate", learning_rate],
                    out + ".log")
    return {"slice": seed, "run": f"train (lr {learning_rate}, 20 epochs)", "seconds": seconds,
            **dict(zip(("dev_f1", "test_f1"), f1s(out)))}


def tune_row(root: str, seed: int, data: str, pruner: str, trials: int) -> dict:
    out = os.path.join(root, f"tune{seed}-{pruner}")
    seconds = timed([TOKENTUNE, "tune", "--data", data, "--output", out, "--trials", str(trials), "--pruner", pruner],
                    out + ".log")
    search = json.load(open(os.path.join(out, "search.json")))
    return {"slice": seed, "run": f"tune --trials {trials} --pruner {pruner}", "seconds": seconds,
            **dict(zip(("dev_f1", "test_f1"), f1s(out))), "trial_epochs": search["trial_epochs"],
            "pruned": search["pruned"], "planned_epochs": planned_epochs(out), "best": search["best_params"]}


def planned_epochs(out: str) -> float:
    """The epochs the finished trials drew: what they would have trained unpruned."""
    rows = [json.loads(line) for line in open(os.path.join(out, "trials.jsonl"))]
    return float(sum(r["epochs"] for r in rows if r["state"] in ("complete", "pruned")))


def run_slice(root: str, seed: int, args) -> list[dict]:
    data = write_slice(os.path.join(root, f"slice{seed}"), seed, args.size)
    rows = []
    for name, rate in (("recipe", "1.5e-5"), ("embedded", "1e-4")):  # the recipe's rate, the embedded default
        rows.append(cached(os.path.join(root, f"row-{name}{seed}.json"),
                           lambda name=name, rate=rate: train_row(root, seed, data, name, rate)))
    pruners = ["median", "none"] if seed in args.unpruned else ["median"]
    for pruner in pruners:
        rows.append(cached(os.path.join(root, f"row-tune{seed}-{pruner}.json"),
                           lambda pruner=pruner: tune_row(root, seed, data, pruner, args.trials)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[1, 2], help="seeds of the slices")
    parser.add_argument("--size", type=int, default=200, help="sentences per train and dev slice")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--unpruned", type=int, nargs="*", default=[], metavar="SEED",
                        help="slices that also get the same search with --pruner none")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    args = parser.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="tokentune-small-")
    rows = []
    for seed in args.slices:
        rows.extend(run_slice(root, seed, args))
    print(f"\n{'slice':>5}  {'run':<36} {'dev F1':>7} {'test F1':>7} {'seconds':>8} {'trial-epochs':>12} "
          f"{'unpruned':>8} {'pruned':>6}")
    for row in rows:
        print(f"{row['slice']:>5}  {row['run']:<36} {row['dev_f1']:>7.4f} {row['test_f1']:>7.4f} {row['seconds']:>8.0f} "
              f"{row.get('trial_epochs', ''):>12} {row.get('planned_epochs', ''):>8} {row.get('pruned', ''):>6}")
    for row in rows:
        if "best" in row:
            print(f"slice {row['slice']} {row['run']}: best settings {json.dumps(row['best'])}")
    print(f"\nwork folder: {root}")


if __name__ == "__main__":
    main()
