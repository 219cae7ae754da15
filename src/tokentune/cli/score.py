"""``tokentune score``: score a predictions file (gold and predicted tag columns) without a model.

Reads conlleval-style input (one word per line, the gold and predicted tags in the last two columns,
blank lines between sentences) or two files with the same words, and prints entity-level P/R/F1.

Reading is plain line splitting into two flat tag lists plus sentence lengths, so a million tokens
read in about a second; nothing here imports torch (only NumPy, through :mod:`tokentune.metrics`).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from dataclasses import dataclass

from ..errors import ConfigError, DataError

DOCSTART = "-DOCSTART-"


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

    gold, pred, lengths, where = _load(args)
    try:
        result = metrics.score_flat_tags(gold, pred, lengths, mode=args.mode, scheme=args.scheme)
        partial = _partial(metrics, gold, pred, lengths, args) if args.partial else None
    except metrics.InvalidTagError as err:
        path, line = where(err.side, err.sentence, err.position)
        raise DataError(f"tag {err.tag!r} cannot be scored", path=path, line=line,
                        expected=err.expected, found=err.found, fix=err.fix) from None
    if partial is not None:
        result["partial"] = partial
    if args.json:
        print(json.dumps(result))
    else:
        print(format_report(result, sentences=len(lengths), tokens=len(gold), source=_describe(args)))
    return 0


def _partial(metrics, gold, pred, lengths, args) -> dict:
    bounds = [0]
    for n in lengths:
        bounds.append(bounds[-1] + n)
    split = lambda tags: [tags[a:b] for a, b in zip(bounds, bounds[1:])]  # noqa: E731
    return metrics.partial_match_report(split(gold), split(pred), mode=args.mode, scheme=args.scheme)


# ---------------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------------
@dataclass
class Columns:
    """Two columns of a CoNLL file laid end to end, with where each sentence starts."""

    path: str
    first: list[str]
    second: list[str]
    lengths: list[int]  # words per sentence
    lines: list[int]  # 1-based line of each sentence's first word


def _load(args):
    """(gold tags, predicted tags, sentence lengths, where(side, sentence, word) -> (path, line))."""
    if args.file and (args.gold or args.pred):
        raise ConfigError("give either FILE or --gold and --pred, not both",
                          fix="use `tokentune score FILE` for one file with both tag columns")
    if args.file:
        gold_column = -2 if args.gold_column is None else args.gold_column
        cols = read_columns(args.file, gold_column, args.pred_column, names=("gold", "pred"))
        where = lambda side, s, w: (cols.path, cols.lines[s] + w)  # noqa: E731
        return cols.first, cols.second, cols.lengths, where
    if not (args.gold and args.pred):
        raise ConfigError("nothing to score: give FILE, or both --gold FILE and --pred FILE",
                          fix="e.g. `tokentune score predictions.txt` (word gold-tag predicted-tag per line)")
    gold_column = -1 if args.gold_column is None else args.gold_column
    gold = read_columns(args.gold, 0, gold_column, names=("token", "gold"))
    pred = read_columns(args.pred, 0, args.pred_column, names=("token", "pred"))
    check_same_words(gold, pred)
    where = lambda side, s, w: ((gold if side == "gold" else pred).path,  # noqa: E731
                                (gold if side == "gold" else pred).lines[s] + w)
    return gold.second, pred.second, gold.lengths, where


def _read_text(path: str) -> str:
    """The whole file as text (BOM dropped, CRLF and CR folded), read in one go: per-line I/O is slow."""
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataError("file not found", path=path, fix="check the path") from None
    except IsADirectoryError:
        raise DataError("is a directory, not a file", path=path, fix="pass a file") from None
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read the file ({err})", path=path, fix="check that it is complete") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError("the file is not UTF-8 text", path=path, line=raw.count(b"\n", 0, err.start) + 1,
                        expected="UTF-8 text", found=f"byte {raw[err.start:err.start + 1]!r}",
                        fix="convert it with `iconv -t utf-8`") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _tab_fields(line: str) -> list[str]:
    """Tab-separated columns may hold spaces (inside words); a line of only blanks has no fields."""
    return [field.strip() for field in line.split("\t")] if line.strip() else []


def read_columns(path: str | os.PathLike, first: int, second: int, *, names: tuple[str, str]) -> Columns:
    """Read two columns of a CoNLL file: tabs or runs of spaces between columns, blank lines between
    sentences, ``-DOCSTART-`` lines as boundaries, ``#`` comment lines before a sentence skipped
    (by the rules of :mod:`tokentune.data.conll`, so ``#NFL`` as a word stays a word).

    The loop's first branch is the common case (another word of the current sentence) and does
    nothing else: that keeps a million lines to about half a second.
    """
    path = os.fspath(path)
    text = _read_text(path)
    lines = text.split("\n")
    rows = map(_tab_fields, lines) if "\t" in text else map(str.split, lines)
    out = Columns(path, [], [], [], [])
    add_first, add_second = out.first.append, out.second.append
    ncols = -1  # columns of the first word line (-1: none seen yet)
    count = 0  # words so far in the current sentence
    for number, fields in enumerate(rows, 1):
        if count and len(fields) == ncols and fields[0] != DOCSTART:
            add_first(fields[first])
            add_second(fields[second])
            count += 1
            continue
        if not fields or fields[0] == DOCSTART:
            if count:
                out.lengths.append(count)
                count = 0
            continue
        if len(fields) != ncols:
            if not count and fields[0][0] == "#" and _is_comment(lines[number - 1].strip(), len(fields), ncols):
                continue
            if ncols != -1:
                _wrong_columns(path, number, ncols, fields, lines[number - 1])
            ncols = len(fields)
            _check_columns(path, number, ncols, (first, second), names)
        out.lines.append(number)  # count is 0 here: the first word of a sentence
        add_first(fields[first])
        add_second(fields[second])
        count = 1
    if count:
        out.lengths.append(count)
    if not out.lengths:
        raise DataError("no sentences found", path=path, expected="word lines such as 'EU B-ORG B-ORG'",
                        found="an empty file (or only blank, comment or -DOCSTART- lines)",
                        fix="check that this is the right file")
    return out


def _is_comment(line: str, nfields: int, ncols: int) -> bool:
    if ncols == -1:  # before the first word line: '#' alone or '# ...' is a comment
        return len(line) == 1 or line[1] == " "
    return nfields != ncols  # later: a '#' line that cannot be a word line


def _wrong_columns(path: str, number: int, ncols: int, fields: list[str], line: str) -> None:
    raise DataError(
        "wrong number of columns", path=path, line=number,
        expected=f"{ncols} columns like the file's first word line", found=f"{len(fields)} in {line[:80]!r}",
        fix="give every word line the same columns (word ... gold-tag predicted-tag), "
            "or separate columns with tabs if words contain spaces",
    )


def _check_columns(path: str, number: int, ncols: int, columns: tuple[int, int], names: tuple[str, str]) -> None:
    if ncols < 2:
        raise DataError("a word line needs at least two columns", path=path, line=number,
                        expected="columns separated by tabs or spaces", found="1 column",
                        fix="add the tag columns (e.g. 'EU<TAB>B-ORG<TAB>B-ORG')")
    for name, col in zip(names, columns):
        if not -ncols <= col < ncols:
            option = {"gold": "--gold-column", "pred": "--pred-column"}.get(name, "--gold/--pred files")
            raise DataError(
                f"the {name} column {col} does not exist", path=path, line=number,
                expected=f"a column index between {-ncols} and {ncols - 1}", found=f"{ncols} columns",
                fix=f"pass {option} with an index that exists",
            )


def check_same_words(gold: Columns, pred: Columns) -> None:
    """--gold and --pred must hold the same sentences of the same words, in the same order."""
    if len(gold.lengths) != len(pred.lengths):
        raise DataError(
            "the predicted file has a different number of sentences", path=pred.path,
            expected=f"{len(gold.lengths)} sentences like {gold.path}", found=str(len(pred.lengths)),
            fix="predict on exactly the gold file's sentences (blank lines between them)",
        )
    if gold.lengths != pred.lengths:
        s = next(i for i, (a, b) in enumerate(zip(gold.lengths, pred.lengths)) if a != b)
        raise DataError(
            f"sentence {s + 1} has a different number of words than at {gold.path}:{gold.lines[s]}",
            path=pred.path, line=pred.lines[s], expected=f"{gold.lengths[s]} words", found=str(pred.lengths[s]),
            fix="keep the gold file's tokenisation: one line per gold word",
        )
    if gold.first != pred.first:
        i = next(i for i, (a, b) in enumerate(zip(gold.first, pred.first)) if a != b)
        s, w = _sentence_of(gold.lengths, i)
        raise DataError(
            f"the words differ from {gold.path}:{gold.lines[s] + w}", path=pred.path, line=pred.lines[s] + w,
            expected=repr(gold.first[i]), found=repr(pred.first[i]),
            fix="score predictions made on the same file (same words, same order)",
        )


def _sentence_of(lengths: list[int], index: int) -> tuple[int, int]:
    for s, n in enumerate(lengths):
        if index < n:
            return s, index
        index -= n
    raise IndexError(index)


# ---------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------
_MODES = {"default": "default (lenient, as conlleval and seqeval's default)",
          "strict": "strict (only entities that follow the scheme)"}


def _describe(args) -> str:
    if args.file:
        gold_column = -2 if args.gold_column is None else args.gold_column
        return f"{args.file} (gold column {gold_column}, predicted column {args.pred_column})"
    return f"gold {args.gold}, predicted {args.pred}"


def format_report(result: dict, *, sentences: int, tokens: int, source: str) -> str:
    """A readable table: overall scores, the mode, then one row per type and the three averages."""
    pct = lambda x: f"{100 * x:9.2f}"  # noqa: E731
    names = list(result["per_type"])
    width = max([12, *map(len, names)])
    lines = [
        f"scores for {source}",
        f"mode: {_MODES[result['mode']]}; scheme: {result['scheme'] or 'as written'}",
        f"sentences {sentences:,}; tokens {tokens:,}; accuracy {100 * result['accuracy']:.2f}%",
        "entities: gold {gold:,}; predicted {predicted:,}; correct {correct:,}".format(**result["counts"]),
        f"precision {100 * result['precision']:.2f}%; recall {100 * result['recall']:.2f}%; "
        f"F1 {100 * result['f1']:.2f}%",
        "",
        f"{'type':<{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}   (percent)",
    ]
    for name, row in result["per_type"].items():
        lines.append(f"{name:<{width}} {pct(row['precision'])} {pct(row['recall'])} {pct(row['f1'])} "
                     f"{row['support']:>9,}")
    lines.append("")
    gold = result["counts"]["gold"]
    averages = (("micro avg", result), ("macro avg", result["macro"]), ("weighted avg", result["weighted"]))
    for label, row in averages:
        lines.append(f"{label:<{width}} {pct(row['precision'])} {pct(row['recall'])} {pct(row['f1'])} {gold:>9,}")
    if "partial" in result:
        lines += ["", *_format_partial(result["partial"]["overall"])]
    return "\n".join(lines)


def _format_partial(overall: dict) -> list[str]:
    head = ("correct", "incorrect", "partial", "missed", "spurious")
    lines = ["partial matches (SemEval-2013 task 9.1; precision, recall and f1 in percent)",
             f"{'':<8}" + "".join(f"{h:>10}" for h in head) + f"{'precision':>10}{'recall':>10}{'f1':>10}"]
    for kind, row in overall.items():
        counts = "".join(f"{row[h]:>10,}" for h in head)
        scores = "".join(f"{100 * row[k]:>10.2f}" for k in ("precision", "recall", "f1"))
        lines.append(f"{kind:<8}{counts}{scores}")
    return lines


if __name__ == "__main__":  # pragma: no cover - `python -m tokentune.cli.score FILE` for quick checks
    from .main import main

    sys.exit(main(["score", *sys.argv[1:]]))
