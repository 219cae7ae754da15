"""`tokentune export MODEL_DIR [--output DIR] [--quantize int8]`: ONNX for onnxruntime.

With ``--output DIR`` a self-contained directory appears (atomically): model.onnx (+ model.int8.onnx),
config.json, tokenizer files. Without it the ONNX files are added to MODEL_DIR itself, which then
serves both ``--backend torch`` and ``--backend onnx``.
"""
from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a model directory written by tokentune train")
    parser.add_argument("--output", "-o", metavar="DIR",
                        help="directory to write (default: add the ONNX files to MODEL_DIR)")
    parser.add_argument("--quantize", choices=["int8"],
                        help="also write model.int8.onnx (int8 weights, activations scaled per token: "
                             "smaller, faster on CPU; runs on onnxruntime)")
    parser.add_argument("--opset", type=int, default=17,
                        help="ONNX opset: 14 up to the newest the installed torch exports (20 in torch 2.13); default 17")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output directory")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the output directory")


def _size(path: str) -> str:
    return f"{os.path.getsize(path) / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    from ..export import export_model
    from ._common import quiet_libraries

    quiet_libraries(True)
    # export_model checks every option (opset range, --output against MODEL_DIR) before loading anything
    result = export_model(args.model_dir, args.output, quantize=args.quantize, opset=args.opset,
                          overwrite=args.overwrite)
    if args.quiet:
        print(result.output_dir)
        return 0
    for kind, name in result.files.items():
        print(f"{kind}: {os.path.join(result.output_dir, name)} ({_size(os.path.join(result.output_dir, name))})")
    print(f"check against torch: max logit difference {result.max_abs_diff:.2e}"
          + (f", int8 max probability difference {result.int8_max_prob_diff:.3f}"
             if result.int8_max_prob_diff is not None else ""))
    for note in result.notes:
        print(f"note: {note}")
    flag = " --quantize int8" if "int8" in result.files else ""
    print(f"use it: tokentune predict {result.output_dir} --backend onnx{flag} \"some text\"")
    return 0
