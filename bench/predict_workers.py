"""Batch prediction throughput: `tokentune predict` in one process, with `--workers N`, and over Ray.

On CoNLL-2003 test given as raw text (each sentence's words joined by single spaces, one text per
line, written to a temporary folder outside the checkout), for a model directory:

- ``--workers 1`` (today's single process) and ``--workers 2`` (spawned processes, cores // N threads
  each; models loaded before the clock starts);
- ``--ray auto --workers 1`` and ``--ray auto --workers 2`` (a local Ray started by each run before its
  clock starts; the time includes reading, starting the actors, loading their models and writing in
  input order).

Each configuration runs as its own ``python -m tokentune.cli.main predict`` process; its words/s is the
one the command prints on its last line, and "whole command" the process's wall time as a user waits
for it (with ``--ray auto``, starting a local Ray too). The outputs are compared with the single process's, line by
line (scores can differ in the last digit where the thread count per process differs).

Run (under the shared CPU lock): ``flock /tmp/tokentune-cpu.lock .venv/bin/python bench/predict_workers.py
MODEL_DIR [--limit N] [--no-ray]``. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONLL_TEST = os.path.join(ROOT, "..", "shared", "data", "conll2003", "test.txt")
THROUGHPUT = re.compile(r"(\d+) words in ([\d.]+) s \(([\d,]+) words/s")


def write_texts(path: str, source: str, limit: int | None) -> int:
    """CoNLL sentences as raw text lines in ``path``; returns the number of words."""
    from tokentune.data import read_corpus

    sentences = list(read_corpus(source))[:limit]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(" ".join(sentence.words) + "\n" for sentence in sentences))
    return sum(len(sentence.words) for sentence in sentences)


def run(model: str, texts: str, output: str, extra: list[str]) -> tuple[float, float, int, float]:
    """``(words/s, seconds, words, whole)`` of one `tokentune predict` run: the first three from its
    throughput line, ``whole`` the process's own wall time (start-up, Ray's start, model loads included)."""
    command = [sys.executable, "-m", "tokentune.cli.main", "predict", model, "--input", texts, "--output", output,
               *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    whole = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    found = THROUGHPUT.findall(done.stderr)
    if not found:
        raise SystemExit(f"no throughput line in the output of {' '.join(command)}:\n{done.stderr}")
    words, seconds, rate = found[-1]
    return float(rate.replace(",", "")), float(seconds), int(words), whole


def differing_lines(path: str, reference: str) -> int:
    with open(path, encoding="utf-8") as ours, open(reference, encoding="utf-8") as theirs:
        mine, base = ours.read().splitlines(), theirs.read().splitlines()
    return sum(a != b for a, b in zip(mine, base)) + abs(len(mine) - len(base))


def configurations(args) -> list[tuple[str, list[str]]]:
    runs = [(f"--workers {n}", ["--workers", str(n)]) for n in args.workers]
    if not args.no_ray:
        runs += [(f"--ray auto --workers {n}", ["--ray", "auto", "--workers", str(n)]) for n in args.ray_actors]
    if args.threads is not None:
        runs = [(name, [*extra, "--threads", str(args.threads)]) for name, extra in runs]
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", metavar="MODEL_DIR")
    parser.add_argument("--data", default=CONLL_TEST, help="CoNLL file (default: CoNLL-2003 test)")
    parser.add_argument("--limit", type=int, help="only the first N sentences")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="process counts (default 1 2)")
    parser.add_argument("--ray-actors", type=int, nargs="+", default=[1, 2], help="Ray actor counts (default 1 2)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray runs")
    parser.add_argument("--threads", type=int, help="threads per process / actor (default: cores // N; Ray: its CPUs shared out)")
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="tokentune-bench-workers-")
    try:
        texts = os.path.join(folder, "conll2003-test.txt")
        words = write_texts(texts, args.data, args.limit)
        print(f"{args.data}: {words} words as raw text; model {args.model}\n")
        print("| configuration | words/s | seconds | whole command | lines differing from the first run |")
        print("|---|---:|---:|---:|---:|")
        reference = None
        for index, (name, extra) in enumerate(configurations(args)):
            output = os.path.join(folder, f"out{index}.jsonl")
            rate, seconds, _, whole = run(args.model, texts, output, extra)
            reference = reference or output
            print(f"| `{name}` | {rate:,.0f} | {seconds:.2f} | {whole:.2f} s | {differing_lines(output, reference)} |",
                  flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
