"""Prediction speed and accuracy: the transformers pipeline vs tokentune (torch, ONNX fp32, ONNX int8).

On CoNLL-2003 test given as raw text (each sentence's words joined by single spaces, so the gold
entities have exact character offsets), for a model fine-tuned by tokentune:

1. words/s, entity F1 against gold (exact label and character span) and peak RSS of
   - ``pipeline("token-classification", aggregation_strategy="first")`` at batch sizes 1, 8, 32, 64,
   - ``Tagger.predict_texts`` with the torch backend, ONNX fp32 and ONNX int8;
   every engine runs in its own subprocess (so peak RSS is its own), warmed up on 64 texts, timed
   over the whole test set ``--repeats`` times (the fastest pass counts), in wall-clock seconds and in
   CPU seconds of the process (with ``--threads 1`` CPU time is what a pass costs even when other
   jobs share the machine);
2. labels: torch vs ONNX fp32 (and fp32 vs int8) on the pre-tokenised test set, differing labels counted;
3. decoding: entity F1 of constrained Viterbi minus argmax on CoNLL-2003 test and, with
   ``--wnut-model``, WNUT-17 test (pre-tokenised, torch backend, one model pass per data set).

Run (under the shared CPU lock): ``flock /tmp/tokentune-cpu.lock .venv/bin/python bench/predict_speed.py
[MODEL_DIR] [--wnut-model DIR]``. MODEL_DIR defaults to runs/conll2003-minilm. Prints a Markdown
report; ``--json FILE`` also writes every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(ROOT, "..", "shared", "data")
CONLL_TEST = os.path.join(SHARED, "conll2003", "test.txt")
WNUT_TEST = os.path.join(SHARED, "wnut17", "test.conll")
DEFAULT_MODEL = os.path.join(ROOT, "runs", "conll2003-minilm")
PIPELINE_BATCH_SIZES = (1, 8, 32, 64)
ENGINES = [f"pipeline-{b}" for b in PIPELINE_BATCH_SIZES] + ["torch", "onnx-fp32", "onnx-int8"]


def raw_texts(path: str, limit: int | None = None):
    """Sentences joined by spaces, gold ``(sentence, label, char start, char end)``, and the word count."""
    from tokentune.data import read_corpus

    sentences = list(read_corpus(path))[:limit]
    texts, gold, words = [], set(), 0
    for index, sentence in enumerate(sentences):
        starts, position = [], 0
        for word in sentence.words:
            starts.append(position)
            position += len(word) + 1
        texts.append(" ".join(sentence.words))
        words += len(sentence.words)
        for label, start, end in sentence.spans:
            gold.add((index, label, starts[start], starts[end - 1] + len(sentence.words[end - 1])))
    return texts, gold, words


def f1(gold: set, predicted: set) -> float:
    correct = len(gold & predicted)
    precision = correct / len(predicted) if predicted else 0.0
    recall = correct / len(gold) if gold else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _predictor(args):
    """texts -> per text a list of (label, start, end), for the engine asked for."""
    if args.engine.startswith("pipeline-"):
        from transformers import pipeline

        batch_size = int(args.engine.split("-")[1])
        pipe = pipeline("token-classification", model=args.model, aggregation_strategy="first", device="cpu")
        return lambda texts: [[(e["entity_group"], e["start"], e["end"]) for e in found]
                              for found in pipe(texts, batch_size=batch_size)]
    from tokentune.inference import Tagger

    if args.engine == "torch":
        tagger = Tagger.from_pretrained(args.model, batch_size=args.batch_size)
    else:
        tagger = Tagger.from_pretrained(args.onnx_dir, backend="onnx", batch_size=args.batch_size, threads=args.threads,
                                        quantize="int8" if args.engine == "onnx-int8" else None)
    return lambda texts: [[(e.label, e.start, e.end) for e in found] for found in tagger.predict_texts(texts)]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_speed(args) -> dict:
    """One engine, in this process: wall and CPU time per pass, F1 and peak RSS."""
    from transformers.utils import logging

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    texts, gold, words = raw_texts(args.data, args.limit)
    predict = _predictor(args)
    predict(texts[:64])  # warm-up: first calls allocate and pick kernels
    seconds, cpu = [], []
    for _ in range(args.repeats):
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        found = predict(texts)
        seconds.append(time.perf_counter() - started)
        cpu.append(_cpu_seconds() - cpu_started)
    predicted = {(i, label, start, end) for i, entities in enumerate(found) for label, start, end in entities}
    return {"engine": args.engine, "words": words, "seconds": seconds, "cpu_seconds": cpu,
            "words_per_second": words / min(seconds), "words_per_cpu_second": words / min(cpu),
            "f1": f1(gold, predicted), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_labels(args) -> dict:
    """Differing labels between torch and ONNX fp32, and between ONNX fp32 and int8, pre-tokenised."""
    from tokentune.data import read_corpus
    from tokentune.inference import Tagger

    sentences = [s.words for s in list(read_corpus(args.data))[:args.limit]]
    tags = {}
    for name, tagger in (("torch", lambda: Tagger.from_pretrained(args.model)),
                         ("fp32", lambda: Tagger.from_pretrained(args.onnx_dir, backend="onnx")),
                         ("int8", lambda: Tagger.from_pretrained(args.onnx_dir, backend="onnx", quantize="int8"))):
        tags[name] = [t for p in tagger().predict_token_batches(sentences) for t in p.tags]
    differ = lambda a, b: sum(x != y for x, y in zip(tags[a], tags[b]))  # noqa: E731
    return {"labels": len(tags["torch"]), "torch_vs_fp32": differ("torch", "fp32"),
            "fp32_vs_int8": differ("fp32", "int8")}


def run_decoding(args) -> dict:
    """Entity F1 (seqeval default mode) with constrained Viterbi and with argmax, from one model pass."""
    from tokentune.data import read_corpus
    from tokentune.evaluation import evaluate_corpus
    from tokentune.inference import Tagger

    corpus = read_corpus(args.data)
    tagger = Tagger.from_pretrained(args.model)
    cache, model_run = {}, tagger.runner

    def cached(ids, mask):  # the second decoding reads the same batches: skip the model
        key = ids.tobytes() + mask.tobytes()
        if key not in cache:
            cache[key] = model_run(ids, mask)
        return cache[key]

    tagger.runner = cached
    scores = {}
    for decoding in ("viterbi", "argmax"):
        tagger.decoding = decoding
        scores[decoding] = evaluate_corpus(tagger, corpus)["f1"]
    return {"data": args.data, "viterbi_f1": scores["viterbi"], "argmax_f1": scores["argmax"],
            "change_points": 100 * (scores["viterbi"] - scores["argmax"])}


def _child(args, engine: str, **extra) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--engine", engine, "--model", extra.get("model", args.model),
               "--onnx-dir", args.onnx_dir, "--data", extra.get("data", args.data), "--repeats", str(args.repeats),
               "--batch-size", str(args.batch_size)] + (["--limit", str(args.limit)] if args.limit else [])
    env = dict(os.environ)
    if args.threads:
        command += ["--threads", str(args.threads)]
        env.update(RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    print(f"... {engine} {extra.get('data', '')}", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(speed: list[dict], labels: dict, decoding: list[dict], export_seconds: float) -> str:
    pipelines = [r for r in speed if r["engine"].startswith("pipeline-")] or speed
    best = max(pipelines, key=lambda r: r["words_per_second"])
    cpu_best = max(pipelines, key=lambda r: r["words_per_cpu_second"])
    lines = ["| engine | words/s | x best pipeline | words per CPU second | x best pipeline | entity F1 | peak RSS (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in speed:
        mark = " (best)" if r is best else ""
        lines.append(f"| {r['engine']}{mark} | {r['words_per_second']:,.0f} | "
                     f"{r['words_per_second'] / best['words_per_second']:.2f} | {r['words_per_cpu_second']:,.0f} | "
                     f"{r['words_per_cpu_second'] / cpu_best['words_per_cpu_second']:.2f} | {100 * r['f1']:.2f} | "
                     f"{r['peak_rss_mb']:,.0f} |")
    by_engine = {r["engine"]: r for r in speed}
    lines += ["", f"{speed[0]['words']:,} words; ONNX export (fp32 + int8) took {export_seconds:.0f} s."]
    if {"onnx-int8", "onnx-fp32"} <= set(by_engine):
        lines.append(f"int8 F1 - fp32 F1: {100 * (by_engine['onnx-int8']['f1'] - by_engine['onnx-fp32']['f1']):+.2f} points.")
    if labels:
        lines.append(f"Labels differing on the pre-tokenised test set ({labels['labels']:,} words): torch vs ONNX "
                     f"fp32 {labels['torch_vs_fp32']}, ONNX fp32 vs int8 {labels['fp32_vs_int8']}.")
    if not decoding:
        return "\n".join(lines)
    lines += ["", "| data | F1 Viterbi | F1 argmax | change (points) |", "|---|---:|---:|---:|"]
    for r in decoding:
        lines.append(f"| {os.path.relpath(r['data'], ROOT)} | {100 * r['viterbi_f1']:.2f} | "
                     f"{100 * r['argmax_f1']:.2f} | {r['change_points']:+.2f} |")
    return "\n".join(lines)


def _export(args) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tokentune.cli.main", "export", args.model, "--output", args.onnx_dir,
                           "--quantize", "int8", "--overwrite", "--quiet"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"export failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", nargs="?", default=None, help=f"default {DEFAULT_MODEL}")
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", default=CONLL_TEST)
    parser.add_argument("--wnut-model", help="a model trained on WNUT-17, for the decoding comparison")
    parser.add_argument("--wnut-data", default=WNUT_TEST)
    parser.add_argument("--onnx-dir", help="where to export (default: a temporary directory)")
    parser.add_argument("--engine", help=argparse.SUPPRESS)  # internal: run one engine and print JSON
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per engine; the fastest counts")
    parser.add_argument("--batch-size", type=int, default=32, help="tokentune's windows per model call")
    parser.add_argument("--limit", type=int, help="only the first N sentences (quick checks)")
    parser.add_argument("--threads", type=int, help="threads for every engine (default: each library's own, "
                                                    "= physical cores); 1 makes CPU time a fair measure on a busy machine")
    parser.add_argument("--json", metavar="FILE", help="also write every figure here")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)}")
    parser.add_argument("--speed-only", action="store_true", help="skip the label and decoding comparisons")
    args = parser.parse_args()
    args.model = args.model or args.model_dir or DEFAULT_MODEL
    if args.engine:
        run = {"labels": run_labels, "decoding": run_decoding}.get(args.engine, run_speed)
        print(json.dumps(run(args)))
        return 0
    if not os.path.isdir(args.model):
        raise SystemExit(f"no model at {args.model}: train one with `tokentune train --data ../shared/data/conll2003 "
                         f"--output {DEFAULT_MODEL}` or pass MODEL_DIR")
    with tempfile.TemporaryDirectory(prefix="predict-speed-") as tmp:
        args.onnx_dir = args.onnx_dir or os.path.join(tmp, "onnx")
        export_seconds = _export(args)
        speed = [_child(args, engine) for engine in args.engines.split(",")]
        labels, decoding = {}, []
        if not args.speed_only:
            labels = _child(args, "labels")
            decoding = [_child(args, "decoding")]
            if args.wnut_model:
                decoding.append(_child(args, "decoding", model=args.wnut_model, data=args.wnut_data))
    text = report(speed, labels, decoding, export_seconds)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"speed": speed, "labels": labels, "decoding": decoding, "export_seconds": export_seconds,
                       "model": os.path.abspath(args.model)}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
