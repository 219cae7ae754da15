"""tokentune's own prediction work without the model: windows, batching, Viterbi and spans on CoNLL-2003
test, with a runner that returns random probabilities. Prints the best of N passes.

    python bench/tagger_overhead.py [--model DIR] [--repeats 5]

Run it under two versions (PYTHONPATH=OLD/src, then NEW/src) to see whether a change touched the hot path.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data", "conll2003", "test.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model directory for its tokenizer (default: the embedded MiniLM)")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from tokentune.data import read_corpus
    from tokentune.inference import Tagger
    from tokentune.modeling import embedded_model_path, load_tokenizer

    sentences = [s.words for s in read_corpus(args.data)]
    tokenizer = load_tokenizer(args.model or str(embedded_model_path()))
    labels = ["O"] + [f"{p}-{t}" for t in ("LOC", "MISC", "ORG", "PER") for p in "BI"]
    rng = np.random.default_rng(0)

    def runner(ids, mask):
        probs = rng.random(ids.shape + (len(labels),), dtype=np.float32)
        return probs / probs.sum(-1, keepdims=True)

    tagger = Tagger(runner, tokenizer, labels, max_length=512)
    best = float("inf")
    for _ in range(args.repeats):
        started = time.perf_counter()
        tagger.predict_token_batches(sentences)
        best = min(best, time.perf_counter() - started)
    words = sum(len(s) for s in sentences)
    print(json.dumps({"sentences": len(sentences), "words": words, "seconds": round(best, 3),
                      "words_per_second": round(words / best)}))


if __name__ == "__main__":
    main()
