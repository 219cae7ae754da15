"""``tokentune inspect DATA``: what is in a data set, what reading it changed, and what a model sees.

DATA is a directory (train/dev/test files), one file, a ``save_to_disk`` directory or ``hf:ID``.
Problems that stop reading exit 2 with one line; problems reading could repair are listed as notes.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..data import load_splits, read_corpus, unseen_labels
from ..data.options import add_reader_arguments, parse_label_map, reader_options
from ..data.splits import map_labels
from ..errors import ConfigError, DataError
from ..data.stats import corpus_stats, default_model_path, load_tokenizer, subtoken_stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="a data directory, one file, a save_to_disk directory or hf:ID")
    parser.add_argument("--model", nargs="?", const="", metavar="M",
                        help="also count sub-tokens with this model's tokenizer (a local directory or Hub name; "
                             "without a value: the embedded default model)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_reader_arguments(parser)


def run(args: argparse.Namespace) -> int:
    options = reader_options(args)
    corpora, notes = read_data(args.data, options)
    report: dict[str, Any] = {"splits": {name: corpus_stats(corpus) for name, corpus in corpora.items()}}
    if args.model is not None:
        model = args.model or default_model_path()
        tokenizer = load_tokenizer(model)
        report["model"] = model
        for name, corpus in corpora.items():
            report["splits"][name]["subtokens"] = subtoken_stats(corpus, tokenizer)
    notes.extend(_unseen_notes(corpora))
    report["notes"] = notes
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(render(report))
    return 0


def read_data(data: str, options: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``{split name: corpus}`` and the notes, for a directory, a file or a Hugging Face dataset."""
    from ..data.hf import is_hf_source
    from ..data.options import SPLIT_OPTIONS
    from ..data.splits import split_of

    if os.path.isdir(data) or (is_hf_source(data) and not options.get("hf_split")):
        splits = load_splits(data, require=(), **options)
        if not splits.items():
            raise DataError("no train/dev/test data found", path=data,
                            expected="files named train*, dev*/valid*, test* (or a save_to_disk directory)",
                            found=", ".join(sorted(os.listdir(data))[:10]) or "an empty directory",
                            fix="rename the files, or inspect one file: tokentune inspect FILE")
        return dict(splits.items()), list(splits.notes)
    reader = {k: v for k, v in options.items() if k not in SPLIT_OPTIONS}
    _check_single_file_options(data, options)
    corpus = read_corpus(data, **reader)
    name = split_of(os.path.basename(data)) or os.path.basename(data.rstrip("/")) or data
    notes = [f"{name}: tag scheme {corpus.scheme} detected (pass --scheme to override)"] if corpus.scheme_detected else []
    notes.extend(f"{name}: {note}" for note in corpus.notes)
    if options.get("label_map"):
        notes.extend(map_labels([corpus], parse_label_map(options["label_map"])))
    return {name: corpus}, notes


def _check_single_file_options(data: str, options: dict[str, Any]) -> None:
    for option in ("dev_split", "drop_unknown_labels"):
        if options.get(option):
            raise ConfigError(f"--{option.replace('_', '-')} needs train and dev splits, but {data} is one file",
                              fix="pass the data directory (train/dev/test files) instead")


def _unseen_notes(corpora: dict[str, Any]) -> list[str]:
    train = corpora.get("train")
    if train is None:
        return []
    known = train.entity_types()
    notes = []
    for name, corpus in corpora.items():
        unseen = unseen_labels(corpus, known) if name != "train" else {}
        if unseen:
            listing = ", ".join(f"{label} ({corpus.location(sentence)})" for label, (_, sentence) in sorted(unseen.items()))
            notes.append(f"{name}: labels never seen in training: {listing}; training would refuse them "
                         f"(--label-map OLD=NEW or --drop-unknown-labels)")
    return notes


def render(report: dict[str, Any]) -> str:
    """The report as an aligned table, one column per split, then first problem locations and notes."""
    splits = report["splits"]
    names = list(splits)
    rows: list[tuple[str, list[str]]] = [
        ("file", [os.path.basename(s["file"] or "") for s in splits.values()]),
        ("sentences", [f"{s['sentences']:,}" for s in splits.values()]),
        ("tokens", [f"{s['tokens']:,}" for s in splits.values()]),
        ("entities", [f"{s['entities']:,}" for s in splits.values()]),
    ]
    types = sorted({t for s in splits.values() for t in s["per_type"]})
    rows += [(f"  {t}", [f"{s['per_type'].get(t, 0):,}" for s in splits.values()]) for t in types]
    rows.append(("scheme", [s["scheme"] + (" (detected)" if s["scheme_detected"] else "") for s in splits.values()]))
    rows.append(("invalid transitions", [f"{s['invalid_transitions']['count']:,}" for s in splits.values()]))
    for key in ("p50", "p90", "p99", "max"):
        rows.append((f"words {key}", [str(s["length_words"][key]) for s in splits.values()]))
    if "model" in report:
        for key in ("p50", "p90", "p99", "max"):
            rows.append((f"sub-tokens {key}", [str(s["subtokens"][key]) for s in splits.values()]))
        rows.append(("over max length", [_over(s["subtokens"]) for s in splits.values()]))
    lines = _table(["", *names], rows)
    for name, s in splits.items():
        if s["invalid_transitions"]["count"]:
            lines.append(f"{name}: first invalid transitions at {', '.join(s['invalid_transitions']['first'])}")
        if s["adjustments"]:
            lines.append(f"{name}: adjusted while reading: "
                         + ", ".join(f"{k}={v}" for k, v in s["adjustments"].items()))
    if "model" in report:
        lines.append(f"sub-tokens counted with the tokenizer of {report['model']} (special tokens included)")
    lines.extend(f"note: {note}" for note in report.get("notes", []))
    return "\n".join(lines)


def _over(sub: dict[str, Any]) -> str:
    return "no limit" if sub["max_length"] is None else f"{sub['over_max_length']:,} (> {sub['max_length']})"


def _table(header: list[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    widths = [max(len(header[0]), *(len(r[0]) for r in rows))]
    for col in range(1, len(header)):
        widths.append(max(len(header[col]), *(len(r[1][col - 1]) for r in rows)))
    out = ["  ".join([header[0].ljust(widths[0])] + [h.rjust(w) for h, w in zip(header[1:], widths[1:])])]
    for label, cells in rows:
        out.append("  ".join([label.ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells, widths[1:])]))
    return [line.rstrip() for line in out]
