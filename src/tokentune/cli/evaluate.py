"""`tokentune evaluate MODEL_DIR --data FILE_OR_DIR`: entity-level scores of a trained model,
optionally partial matches (--partial) and a full report directory (--report DIR)."""
from __future__ import annotations

import argparse
import json
import sys

from ._common import add_precision_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a model directory written by tokentune train")
    parser.add_argument("--data", required=True, help="a labelled file, or a directory with split files")
    parser.add_argument("--split", default=None, help="which split when --data is a directory (default test)")
    parser.add_argument("--mode", default="default", choices=["default", "strict"],
                        help="seqeval mode: default (the default; lenient, as conlleval) or strict (the scheme's "
                             "rules); gold and predicted entities are written in IOB2 before scoring, so both give "
                             "the same figures here (tokentune score --mode strict judges tags as written)")
    parser.add_argument("--decode", default="viterbi", choices=["viterbi", "argmax"],
                        help="viterbi: only tag sequences valid in the model's scheme (default); argmax: each "
                             "word's most likely tag")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                        help="torch (default), or onnx: the directory's model.onnx, written by tokentune export")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per model call (default 32)")
    add_precision_flag(parser)
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--partial", action="store_true",
                        help="also count partial matches (SemEval-2013: strict, exact, partial, type); "
                             "printed, and saved under \"partial\" in JSON and metrics.json")
    parser.add_argument("--min-score", type=float, default=0.0, metavar="X",
                        help="drop predicted entities whose score is below X (0 to 1; default 0: keep all) "
                             "before scoring, as predict and serve --min-score do")
    parser.add_argument("--threshold-curve", action="store_true",
                        help="also print precision, recall and F1 at thresholds 0.0, 0.05, ..., 0.95 (from one "
                             "prediction pass; saved under \"threshold_curve\" in JSON and metrics.json)")
    parser.add_argument("--report", metavar="DIR",
                        help="write metrics.json, errors.jsonl, plots/*.png and report.html into DIR "
                             "(a new or empty directory; replaced as a whole)")
    from ..data.options import ReadOptions
    from ..settings import add_flags

    add_flags(parser, ReadOptions, skip={"dev_split", "split_seed"})  # the same reader flags as train


def run(args: argparse.Namespace) -> int:
    from ..data.options import ReadOptions
    from ..evaluation import evaluate
    from ..reporting.tables import metrics_table, partial_table, threshold_table
    from ..settings import flag_values
    from ..timing import RunClock, describe
    from ._common import quiet_libraries

    clock = RunClock(startup=True)
    quiet_libraries(quiet=True)
    metrics = evaluate(args.model_dir, args.data, split=args.split, mode=args.mode, backend=args.backend,
                       batch_size=args.batch_size, decoding=args.decode, precision=args.precision, partial=args.partial,
                       report=args.report, min_score=args.min_score, curve=args.threshold_curve, clock=clock,
                       **flag_values(args, ReadOptions))
    if args.json:
        print(json.dumps(metrics))
    else:
        threshold = f", min score {metrics['min_score']:g}" if metrics.get("min_score") else ""
        print(f"precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  f1 {metrics['f1']:.4f}  "
              f"accuracy {metrics['accuracy']:.4f}  (mode: {metrics.get('mode', args.mode)}{threshold}, "
              f"computed in {metrics['computed_in']})")
        print(metrics_table(metrics))
        if "partial" in metrics:
            print("\n" + partial_table(metrics["partial"]))
        if "threshold_curve" in metrics:
            print("\n" + threshold_table(metrics["threshold_curve"], metrics.get("min_score", 0.0)))
        for note in metrics.get("notes", []):
            print(f"note: {note}", file=sys.stderr)
    if args.report:
        # stderr, so that --json output on stdout stays one parseable object
        print(f"report written to {args.report} (open report.html)", file=sys.stderr)
    print(describe(metrics["time"]), file=sys.stderr)
    return 0
