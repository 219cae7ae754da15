"""``tokentune convert IN OUT``: rewrite labelled data in another format and/or tag scheme.

IN is a file, a data directory, a save_to_disk directory or ``hf:ID``; a file gives a file, the
others give a directory OUT with train/dev/test files. Tags are written in ``--to-scheme``
(default: the scheme IN was written in). A conversion that loses entities (IO cannot separate two
adjacent entities of one type; PLAIN has no multi-word entities) says how many.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..data import Corpus, write_corpus
from ..data.options import ReadOptions
from ..data.splits import read_data
from ..errors import ConfigError
from ..schemes import get_scheme, spans_to_tags, tags_to_spans
from ..settings import add_flags, flag_values

# the name of each split written into a directory OUT; brat writes a folder of .txt/.ann pairs per split
EXTENSIONS = {"conll": ".conll", "jsonl": ".jsonl", "label-studio": ".json", "brat": "", "spacy": ".spacy"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="a data file, a data directory, a save_to_disk directory or hf:ID")
    parser.add_argument("output", metavar="OUT", help="the file (or, for a directory IN, the directory) to write")
    parser.add_argument("--to-scheme", help="tag scheme to write (IOB1, IOB2, BIOES, BILOU, IO, PLAIN; "
                                            "default: the input's)")
    parser.add_argument("--format", "--to", dest="output_format", choices=tuple(EXTENSIONS),
                        help="output format (default: from OUT's name: .jsonl/.json -> jsonl, .spacy -> spacy, "
                             "else conll); label-studio writes pre-annotations, brat a folder of .txt/.ann pairs")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing OUT (by default it is refused: it may be someone's data)")
    add_flags(parser, ReadOptions, rename={"format": "--input-format"})


def run(args: argparse.Namespace) -> int:
    from ..io import check_output

    # an existing OUT (a file, a directory with files) only with --overwrite; never the input or inside it
    empty = os.path.isdir(args.output) and not os.listdir(args.output)
    check_output(args.output, overwrite=args.overwrite or empty, inputs=(args.input,), what="OUT", flag="OUT")
    options = ReadOptions(**flag_values(args, ReadOptions)).read_options()
    if args.to_scheme:
        get_scheme(args.to_scheme)  # refuse an unknown scheme before reading anything
    corpora, notes = read_data(args.input, options)
    from ..data.splits import is_one_split_folder

    single = os.path.isfile(args.input) or bool(options.get("hf_split")) or is_one_split_folder(args.input, options)
    if not single and os.path.isfile(args.output):
        raise ConfigError(f"{args.output} is a file, but {args.input} has several splits",
                          fix="pass a directory as OUT (train/dev/test files are written inside)")
    formats = set()
    for name, corpus in corpora.items():
        scheme = get_scheme(args.to_scheme or corpus.scheme).name
        target = args.output if single else os.path.join(args.output, name + EXTENSIONS[args.output_format or "conll"])
        written = write_corpus(corpus, target, format=args.output_format, scheme=scheme)
        formats.add(written)
        tagged = written in TAGGED_FORMATS  # the others keep spans, not tags: no scheme, nothing lost to one
        entities, lost = entities_after(corpus, scheme) if tagged else (sum(len(s.spans) for s in corpus), 0)
        print(f"{name}: wrote {len(corpus):,} sentences, {entities:,} entities to {target} "
              f"({written}{', ' + scheme if tagged else ''})")
        if lost:
            notes.append(f"{name}: {scheme} cannot represent {lost} entities exactly (adjacent entities of one "
                         f"type merge in IO; PLAIN keeps one label per word); choose another --to-scheme to keep them")
    if args.to_scheme and formats - set(TAGGED_FORMATS):
        notes.append(f"--to-scheme {args.to_scheme} has no effect on {', '.join(sorted(formats - set(TAGGED_FORMATS)))}: "
                     f"they keep entities as spans, not tags")
    if "brat" in formats:
        notes.append("brat keeps text, not words: reading it back splits the text into words again with the word "
                     "splitter, which may cut them otherwise (docs/formats.md, brat)")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


TAGGED_FORMATS = ("conll", "jsonl")  # written as one tag per word, in a scheme


def entities_after(corpus: Corpus, scheme: str) -> tuple[int, int]:
    """Entities that writing in ``scheme`` and reading again gives, and how many of the corpus's do not
    come back unchanged (IO merges adjacent entities of one type)."""
    count = lost = 0
    for sentence in corpus:
        if not sentence.spans:
            continue
        back = set(tags_to_spans(spans_to_tags(sentence.spans, len(sentence.words), scheme), scheme))
        count += len(back)
        lost += sum(1 for span in sentence.spans if span not in back)
    return count, lost
