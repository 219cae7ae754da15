"""``tokentune inspect DATA``: what is in a data set, what reading it changed, and what a model sees.

DATA is a directory (train/dev/test files), one file, a ``save_to_disk`` directory or ``hf:ID``.
Problems that stop reading exit 2 with one line; problems reading could repair are listed as notes.
"""
from __future__ import annotations

import argparse
import json

from ..data.options import ReadOptions
from ..data.stats import inspect_data
from ..reporting.tables import data_report_table
from ..settings import add_flags, flag_values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="a data directory, one file, a save_to_disk directory or hf:ID")
    parser.add_argument("--model", nargs="?", const="", metavar="M",
                        help="also count sub-tokens with this model's tokenizer (a local directory or Hub name; "
                             "without a value: the embedded default model)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_flags(parser, ReadOptions)


def run(args: argparse.Namespace) -> int:
    options = ReadOptions(**flag_values(args, ReadOptions)).read_options()
    report = inspect_data(args.data, options, model=args.model)
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else data_report_table(report))
    return 0
