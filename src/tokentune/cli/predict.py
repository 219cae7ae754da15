"""`tokentune predict MODEL_DIR [TEXT ...] [--input FILE]`: JSON lines with entities and character offsets."""
from __future__ import annotations

import argparse
import itertools
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR")
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to tag (default: --input or stdin)")
    parser.add_argument("--input", "-i", metavar="FILE", help="one text per line ('-' for stdin)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--decode", default="viterbi", choices=["viterbi", "argmax"])
    parser.add_argument("--aggregation", default="first", choices=["first", "average", "max"])
    parser.add_argument("--stride", type=int, default=128, help="sub-tokens of overlap for long texts")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"])


def run(args: argparse.Namespace) -> int:
    from ..inference import Tagger
    from ._common import quiet_libraries, read_texts

    quiet_libraries()
    tagger = Tagger.from_pretrained(args.model_dir, backend=args.backend, batch_size=args.batch_size,
                                    decoding=args.decode, aggregation=args.aggregation, stride=args.stride)
    texts = read_texts(args.texts, args.input)
    chunk_size = max(args.batch_size * 8, 64)  # stream: memory stays flat on long inputs
    while True:
        chunk = list(itertools.islice(texts, chunk_size))
        if not chunk:
            break
        for text, entities in zip(chunk, tagger.predict_texts(chunk)):
            sys.stdout.write(json.dumps({"text": text, "entities": [e.to_dict() for e in entities]},
                                        ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return 0
