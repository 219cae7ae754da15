"""Two tag columns of CoNLL files, read fast for scoring: gold and predicted tags laid end to end.

:func:`read_tag_file` reads one conlleval-style file (word ... gold-tag predicted-tag);
:func:`read_tag_files` reads a gold and a predicted file and checks that they hold the same words.
Either way the result (:class:`TagColumns`) can say where any tag came from (file:line), so errors
found later (by :mod:`tokentune.metrics`) still name the line.

Reading is plain line splitting into flat lists plus sentence lengths, so a million tokens read in
about a second; nothing here imports torch. Layout rules are those of :mod:`tokentune.data.conll`:
tabs or runs of spaces between columns, blank lines between sentences, ``-DOCSTART-`` lines as
boundaries, ``#`` comment lines before a sentence skipped (so ``#NFL`` as a word stays a word).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import DataError
from .conll import columns, empty_field
from .documents import DOCSTART
from .files import read_text


@dataclass
class Columns:
    """Two columns of a CoNLL file laid end to end, with where each sentence starts."""

    path: str
    first: list[str]
    second: list[str]
    lengths: list[int]  # words per sentence
    lines: list[int]  # 1-based line of each sentence's first word

    def where(self, sentence: int, word: int) -> tuple[str, int]:
        return self.path, self.lines[sentence] + word


@dataclass
class TagColumns:
    """Gold and predicted tags (flat), sentence lengths, and the columns each side was read from."""

    gold: list[str]
    pred: list[str]
    lengths: list[int]
    gold_source: Columns
    pred_source: Columns

    def where(self, side: str, sentence: int, word: int) -> tuple[str, int]:
        """(file, line) of word ``word`` of sentence ``sentence`` on ``side`` ('gold' or 'pred')."""
        return (self.gold_source if side == "gold" else self.pred_source).where(sentence, word)

    def sentences(self, side: str) -> list[list[str]]:
        """One side's tags cut back into sentences."""
        tags = self.gold if side == "gold" else self.pred
        bounds = [0]
        for n in self.lengths:
            bounds.append(bounds[-1] + n)
        return [tags[a:b] for a, b in zip(bounds, bounds[1:])]

    def check_typed(self) -> None:
        """Refuse a bare prefix (``B-``, ``I-``: a scheme prefix with no entity type), as the data
        readers do; tags are checked once per distinct value, so this costs little."""
        for side, tags in (("gold", self.gold), ("pred", self.pred)):
            bad = {tag for tag in set(tags) if len(tag) == 2 and tag[1] == "-"}
            if bad:
                index = next(i for i, tag in enumerate(tags) if tag in bad)
                path, line = self.where(side, *sentence_of(self.lengths, index))
                raise DataError(f"{side} tag {tags[index]!r} has a prefix but no entity type", path=path, line=line,
                                expected="'O' or PREFIX-TYPE such as 'B-PER'", found=repr(tags[index]),
                                fix="write the entity type after the prefix, or pass --scheme PLAIN if such "
                                    "tags are plain labels")


def read_tag_file(path: str | os.PathLike, gold_column: int = -2, pred_column: int = -1) -> TagColumns:
    """One conlleval-style file with both tag columns."""
    cols = read_columns(path, gold_column, pred_column, names=("gold", "pred"))
    return TagColumns(cols.first, cols.second, cols.lengths, cols, cols)


def read_tag_files(gold_path: str | os.PathLike, pred_path: str | os.PathLike, gold_column: int = -1,
                   pred_column: int = -1) -> TagColumns:
    """A gold file and a predicted file (word ... tag) with the same sentences of the same words."""
    gold = read_columns(gold_path, 0, gold_column, names=("token", "gold"))
    pred = read_columns(pred_path, 0, pred_column, names=("token", "pred"))
    check_same_words(gold, pred)
    return TagColumns(gold.second, pred.second, gold.lengths, gold, pred)


def read_columns(path: str | os.PathLike, first: int, second: int, *, names: tuple[str, str]) -> Columns:
    """Read two columns of a CoNLL file (see the module's notes for the layout rules).

    The loop's first branch is the common case (another word of the current sentence) and does
    nothing else: that keeps a million lines to about half a second.
    """
    path = os.fspath(path)
    text = read_text(path)
    lines = text.split("\n")
    rows = map(columns, lines) if "\t" in text else map(str.split, lines)
    out = Columns(path, [], [], [], [])
    add_first, add_second = out.first.append, out.second.append
    ncols = -1  # columns of the first word line (-1: none seen yet)
    count = 0  # words so far in the current sentence
    for number, fields in enumerate(rows, 1):
        if count and len(fields) == ncols and fields[0] and fields[0] != DOCSTART:
            add_first(fields[first])
            add_second(fields[second])
            count += 1
            continue
        if not fields or fields[0] == DOCSTART:
            if count:
                out.lengths.append(count)
                count = 0
            continue
        if not fields[0]:  # a line starting with a tab
            raise empty_field(path, number, lines[number - 1], "token")
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
        s, w = sentence_of(gold.lengths, i)
        raise DataError(
            f"the words differ from {gold.path}:{gold.lines[s] + w}", path=pred.path, line=pred.lines[s] + w,
            expected=repr(gold.first[i]), found=repr(pred.first[i]),
            fix="score predictions made on the same file (same words, same order)",
        )


def sentence_of(lengths: list[int], index: int) -> tuple[int, int]:
    """(sentence, word in it) of the ``index``-th word of sentences of ``lengths`` words."""
    for s, n in enumerate(lengths):
        if index < n:
            return s, index
        index -= n
    raise IndexError(index)
