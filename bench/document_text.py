"""Raw-text prediction of whole documents against one sentence at a time (issue 14).

``predict`` on raw text reads each text whole (a text longer than a window is read in overlapping
windows, each word scored from the window where it has the most context). This bench asks whether a
long text gains from that as pre-tokenised document context does: CoNLL-2003 test given as raw text
(a sentence's words joined by single spaces, so every gold entity has exact character offsets)

- one text per sentence (3,453 texts),
- one text per document (231 texts: its sentences joined by newlines), cut into sentences by
  ``predict`` (the default: :mod:`tokentune.sentences`) or read whole (``--whole-texts``), and
- one text per document with its sentences joined by spaces (one line: the sentence cuts must come from
  punctuation alone, and CoNLL's headlines and tables have none),

through ``Tagger.predict_texts`` of each model named, scored by exact label and character span per
sentence (an entity that runs across two sentences of a document text counts as wrong).

Run (under the shared CPU lock): ``flock /tmp/tokentune-cpu.lock .venv/bin/python bench/document_text.py
MODEL_DIR [MODEL_DIR ...]``. Prints a Markdown table; ``--json FILE`` also writes the figures.
"""
from __future__ import annotations

import argparse
import bisect
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from predict_speed import CONLL_TEST, raw_texts  # noqa: E402 - the bench folder is not a package


def document_texts(path: str, separator: str = "\n"):
    """One text per document, and per text the character offset and index of each of its sentences."""
    from tokentune.data import read_corpus

    corpus = read_corpus(path)
    sentence_texts, _, _ = raw_texts(path)
    texts, layouts = [], []
    for first, last in corpus.documents():
        offsets, position = [], 0
        for index in range(first, last):
            offsets.append(position)
            position += len(sentence_texts[index]) + 1
        texts.append(separator.join(sentence_texts[first:last]))
        layouts.append((offsets, list(range(first, last))))
    return texts, layouts


def scores(gold: set, predicted: set) -> dict:
    correct = len(gold & predicted)
    precision = correct / len(predicted) if predicted else 0.0
    recall = correct / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "predicted": len(predicted)}


def per_sentence(texts: list[str], tagger) -> set:
    return {(index, e.label, e.start, e.end) for index, entities in enumerate(tagger.predict_texts(texts))
            for e in entities}


def per_document(texts: list[str], layouts, tagger) -> set:
    found = set()
    for (offsets, sentences), entities in zip(layouts, tagger.predict_texts(texts)):
        for e in entities:
            k = bisect.bisect_right(offsets, e.start) - 1  # the sentence the entity starts in
            found.add((sentences[k], e.label, e.start - offsets[k], e.end - offsets[k]))
    return found


def run(model_dir: str) -> list[dict]:
    from tokentune import Tagger

    tagger = Tagger.from_pretrained(model_dir)
    whole = Tagger.from_pretrained(model_dir, split_sentences=False)
    sentence_texts, gold, words = raw_texts(CONLL_TEST)
    doc_texts, layouts = document_texts(CONLL_TEST)
    line_texts, line_layouts = document_texts(CONLL_TEST, " ")
    rows = []
    for shape, predict in (("sentence", lambda: per_sentence(sentence_texts, tagger)),
                           ("document, cut into sentences", lambda: per_document(doc_texts, layouts, tagger)),
                           ("document, read whole", lambda: per_document(doc_texts, layouts, whole)),
                           ("document on one line, cut", lambda: per_document(line_texts, line_layouts, tagger))):
        started = time.perf_counter()
        predicted = predict()
        seconds = time.perf_counter() - started
        rows.append({"model": model_dir, "context": tagger.context, "texts": shape, "seconds": round(seconds, 1),
                     "words_per_second": round(words / seconds), **scores(gold, predicted)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model directories written by tokentune train")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    rows = [row for model in args.models for row in run(model)]
    print("| model | trained with | one text per | P | R | F1 | tagging | words/s |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {os.path.basename(os.path.normpath(r['model']))} | {r['context']} context | {r['texts']} | "
              f"{r['precision']:.4f} | {r['recall']:.4f} | **{r['f1']:.4f}** | {r['seconds']} s | "
              f"{r['words_per_second']:,} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
