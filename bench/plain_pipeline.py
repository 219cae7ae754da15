"""The transformers pipeline as a user runs it, as one whole process: the baseline of bench/whole_job.py
for `tokentune predict`. Reads one text per line, tags them with
``pipeline("token-classification", aggregation_strategy="first", batch_size=B)`` and writes one JSON
line of entities (label, start, end, text, score) per text. Prints one JSON line with the time of each part.

    .venv/bin/python bench/plain_pipeline.py MODEL_DIR TEXTS OUTPUT [--batch-size 32]
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402 - the clock starts before the imports: they are part of start-up
import json  # noqa: E402

from transformers import pipeline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("texts")
    parser.add_argument("output")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None, help="default: cuda when available (as a GPU user passes it), else cpu")
    args = parser.parse_args()
    times = {"start-up": time.perf_counter() - STARTED}
    clock = time.perf_counter()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    tagger = pipeline("token-classification", model=args.model, aggregation_strategy="first", device=args.device)
    times["model"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with open(args.texts, encoding="utf-8") as handle:
        texts = [line.rstrip("\n") for line in handle]
    results = tagger(texts, batch_size=args.batch_size)
    times["prediction"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with open(args.output, "w", encoding="utf-8") as handle:
        for entities in results:
            handle.write(json.dumps([{"label": e["entity_group"], "start": int(e["start"]), "end": int(e["end"]),
                                      "text": e["word"], "score": round(float(e["score"]), 6)} for e in entities])
                         + "\n")
    times["writing"] = time.perf_counter() - clock
    times["total"] = time.perf_counter() - STARTED
    print(json.dumps({"seconds": {k: round(v, 2) for k, v in times.items()}, "texts": len(texts)}))


if __name__ == "__main__":
    main()
