"""tokentune's metrics against seqeval on a real model's CoNLL-2003 test predictions, both modes.

Usage: python bench/metrics_conformance.py MODEL_DIR [../shared/data/conll2003/test.txt]
Prints both reports' micro/macro/weighted/per-type figures and whether they are identical.
"""
from __future__ import annotations

import sys

from seqeval.metrics import accuracy_score, classification_report
from seqeval.scheme import IOB2

from tokentune.data import read_corpus
from tokentune.inference import Tagger
from tokentune.metrics import score_tags


def _seqeval(gold, pred, strict: bool) -> dict:
    options = {"mode": "strict", "scheme": IOB2} if strict else {}
    return classification_report(gold, pred, output_dict=True, zero_division=0, **options)


def _differences(ours: dict, theirs: dict, accuracy: float) -> list[str]:
    pairs = [("micro avg", ours), ("macro avg", ours["macro"]), ("weighted avg", ours["weighted"])]
    pairs += [(name, row) for name, row in ours["per_type"].items()]
    diffs = []
    for name, row in pairs:
        for key, their_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            if abs(row[key] - theirs[name][their_key]) > 1e-12:
                diffs.append(f"{name} {key}: ours {row[key]!r}, seqeval {theirs[name][their_key]!r}")
    if abs(ours["accuracy"] - accuracy) > 1e-12:
        diffs.append(f"accuracy: ours {ours['accuracy']!r}, seqeval {accuracy!r}")
    return diffs


def main(model_dir: str, test_file: str = "../shared/data/conll2003/test.txt") -> int:
    corpus = read_corpus(test_file)
    predictions = Tagger.from_pretrained(model_dir, decoding="argmax").predict_token_batches([s.words for s in corpus])
    gold = [s.tags("IOB2") for s in corpus]
    pred = [p.tags for p in predictions]  # raw argmax tags: invalid sequences included, as seqeval sees them
    failures = 0
    for mode in ("default", "strict"):
        ours = score_tags(gold, pred, mode=mode, scheme="IOB2" if mode == "strict" else None)
        diffs = _differences(ours, _seqeval(gold, pred, mode == "strict"), accuracy_score(gold, pred))
        print(f"{mode}: f1 {ours['f1']:.6f}, macro f1 {ours['macro']['f1']:.6f}, "
              f"{len(ours['per_type'])} types: {'identical to seqeval' if not diffs else 'DIFFERENT'}")
        for line in diffs:
            print("  " + line)
        failures += bool(diffs)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
