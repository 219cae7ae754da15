"""Reading speed: CoNLL-2003 train (14,041 sentences) with tokentune's reader, best of N runs.

    python bench/read_speed.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data", "conll2003", "train.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from tokentune.data import read_corpus

    timings = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        corpus = read_corpus(args.data)
        timings.append(time.perf_counter() - started)
    print(f"{len(corpus):,} sentences, {corpus.num_tokens:,} tokens: best {min(timings):.3f} s, "
          f"median {sorted(timings)[len(timings) // 2]:.3f} s over {args.repeats} runs")


if __name__ == "__main__":
    main()
