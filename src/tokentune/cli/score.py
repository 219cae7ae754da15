"""``tokentune score``: score a predictions file (gold and predicted tag columns) without a model.

Reads conlleval-style input (one word per line, the gold and predicted tags in the last two columns,
blank lines between sentences) or two files with the same words, and prints entity-level P/R/F1.

Reading is :mod:`tokentune.data.columns` (fast, with file:line for every tag), scoring is
:mod:`tokentune.metrics`; nothing here imports torch.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..data.columns import TagColumns, read_tag_file, read_tag_files
from ..errors import ConfigError, DataError
from ..reporting.tables import score_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", metavar="FILE",
                        help="conlleval-style file: word ... gold-tag predicted-tag (gzip read as it is)")
    parser.add_argument("--gold-column", type=int, default=None, metavar="N",
                        help="column of the gold tags (0-based, negative from the end); "
                             "default -2 with FILE, -1 with --gold")
    parser.add_argument("--pred-column", type=int, default=-1, metavar="M",
                        help="column of the predicted tags (default -1, the last)")
    parser.add_argument("--gold", metavar="FILE", help="gold CoNLL file (word ... tag); use with --pred")
    parser.add_argument("--pred", metavar="FILE", help="predicted CoNLL file with the same words as --gold")
    parser.add_argument("--mode", choices=("default", "strict"), default="default",
                        help="default: lenient, as conlleval and seqeval's default; "
                             "strict: only entities that follow --scheme count")
    parser.add_argument("--scheme", metavar="S",
                        help="tag scheme: IOB2, IOE2, BIOES, BILOU (needed by --mode strict), "
                             "IOB1, IO, or PLAIN for tags without prefixes (POS)")
    parser.add_argument("--partial", action="store_true",
                        help="also count partial matches (SemEval-2013: strict, exact, partial, type)")
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object")


def run(args: argparse.Namespace) -> int:
    from .. import metrics

    data = _load(args)
    if (args.scheme or "").upper() != "PLAIN":
        data.check_typed()
    scheme = args.scheme or _bilou_when_written(data)
    try:
        result = metrics.score_flat_tags(data.gold, data.pred, data.lengths, mode=args.mode, scheme=scheme)
        if args.partial:
            result["partial"] = metrics.partial_match_report(data.sentences("gold"), data.sentences("pred"),
                                                             mode=args.mode, scheme=scheme)
    except metrics.InvalidTagError as err:
        path, line = data.where(err.side, err.sentence, err.position)
        raise DataError(f"tag {err.tag!r} cannot be scored", path=path, line=line,
                        expected=err.expected, found=err.found, fix=err.fix) from None
    if args.mode == "strict":
        # the lenient count reads U-/L- as BILOU's too, or it merges U-PER U-PER and misses what strict dropped
        lenient_scheme = "BILOU" if (scheme or "").upper() == "BILOU" else None
        _say_what_strict_dropped(result, metrics.score_flat_tags(data.gold, data.pred, data.lengths,
                                                                 scheme=lenient_scheme))
    elif (args.scheme or "").upper() != "PLAIN":  # (strict mode reads both columns in --scheme, said above)
        _say_when_schemes_differ(data, result)
    if args.json:
        print(json.dumps(result))
    else:
        print(score_report(result, sentences=len(data.lengths), tokens=len(data.gold), source=_describe(args)))
    return 0


def _bilou_when_written(data: TagColumns) -> str | None:
    """BILOU when the tags use its U- or L- prefixes (the readers detect it too): read without it, adjacent
    one-word entities (U-PER U-PER) merged into one and a U- after a B- extended it, silently."""
    prefixes = {tag[:2] for tag in set(data.gold) | set(data.pred)}
    if not prefixes & {"U-", "L-"}:
        return None
    print("tokentune score: note: U- and L- tags are read as BILOU's (one-word and last tags of entities); pass "
          "--scheme to read them otherwise", file=sys.stderr)
    return "BILOU"


def _say_what_strict_dropped(result: dict, lenient: dict) -> None:
    """Strict mode does not count entities whose tags break the scheme (an ``I-`` that starts one in
    IOB2): said, with the counts the default mode reads, since a gold column in another scheme (CoNLL-2003's
    IOB1) would otherwise score as if it had few or no entities. Kept in the result as ``not_counted``."""
    dropped = {side: lenient["counts"][side] - result["counts"][side] for side in ("gold", "predicted")}
    if not any(count > 0 for count in dropped.values()):
        return
    result["not_counted"] = dropped
    print(f"tokentune score: note: --mode strict --scheme {result['scheme']} did not count "
          f"{dropped['gold']} of {lenient['counts']['gold']} gold and {dropped['predicted']} of "
          f"{lenient['counts']['predicted']} predicted entities (as the default mode reads them): their tags do not "
          f"follow {result['scheme']}. If a column is in another scheme (CoNLL-2003's is IOB1), score in the default "
          f"mode (leave --mode strict out), or convert that column to {result['scheme']} first", file=sys.stderr)


def _say_when_schemes_differ(data: TagColumns, result: dict) -> None:
    """Token accuracy compares tags as written: gold in IOB1 next to predictions in IOB2 (what ``predict``
    adds to a CoNLL-2003 file) differ on an entity's first word where the entities agree. Said on stderr,
    with the accuracy of the predictions written in the gold's scheme, as ``evaluate`` counts it (the
    figures themselves stay conlleval's)."""
    from ..schemes import detect_scheme, spans_to_tags, tags_to_spans

    sides = data.sentences("gold"), data.sentences("pred")
    gold_scheme, pred_scheme = (detect_scheme(side) for side in sides)
    if gold_scheme.name == pred_scheme.name or not (gold_scheme.prefixed and pred_scheme.prefixed):
        return
    same = sum(g == p for gold, pred in zip(*sides)
               for g, p in zip(gold, spans_to_tags(tags_to_spans(pred, pred_scheme), len(pred), gold_scheme)))
    print(f"tokentune score: note: the gold tags read as {gold_scheme.name} and the predicted as {pred_scheme.name}: "
          f"token accuracy compares tags as written ({result['accuracy']:.2%}); with the predictions written in "
          f"{gold_scheme.name} it is {same / max(1, len(data.gold)):.2%}. Entities are compared by their spans either way",
          file=sys.stderr)


def _load(args: argparse.Namespace) -> TagColumns:
    if args.file and (args.gold or args.pred):
        raise ConfigError("give either FILE or --gold and --pred, not both",
                          fix="use `tokentune score FILE` for one file with both tag columns")
    if args.file:
        return read_tag_file(args.file, -2 if args.gold_column is None else args.gold_column, args.pred_column)
    if not (args.gold and args.pred):
        raise ConfigError("nothing to score: give FILE, or both --gold FILE and --pred FILE",
                          fix="e.g. `tokentune score predictions.txt` (word gold-tag predicted-tag per line)")
    return read_tag_files(args.gold, args.pred, -1 if args.gold_column is None else args.gold_column,
                          args.pred_column)


# ---------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------
def _describe(args) -> str:
    if args.file:
        gold_column = -2 if args.gold_column is None else args.gold_column
        return f"{args.file} (gold column {gold_column}, predicted column {args.pred_column})"
    return f"gold {args.gold}, predicted {args.pred}"


if __name__ == "__main__":  # pragma: no cover - `python -m tokentune.cli.score FILE` for quick checks
    from .main import main

    sys.exit(main(["score", *sys.argv[1:]]))
