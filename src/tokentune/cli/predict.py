"""`tokentune predict MODEL_DIR [TEXT ...] [--input FILE] [--format text|jsonl|conll]`.

Inputs, streamed in chunks so memory stays flat on millions of lines:

- ``text``: TEXT arguments, or one text per line (a file, or stdin) -> JSON lines
  ``{"text", "entities": [{label, start, end, text, score}]}`` with character offsets.
- ``jsonl``: one JSON object per line with either ``"text"`` (raw text) -> the object with
  ``"entities"`` added, or ``"tokens"``/``"words"`` (pre-tokenised) -> the object with ``"tags"`` and
  ``"spans"`` (word offsets, end-exclusive) added. Other fields pass through; fields of those names
  are replaced.
- ``conll``: pre-tokenised columns (the first column is the word; blank lines between sentences) ->
  the same lines with the predicted tag as one more column; ``-DOCSTART-``, comment and blank lines
  pass through.

The format is guessed from the input's name (.jsonl/.ndjson/.json -> jsonl; .conll/.conllu/.iob/
.bio/.tsv -> conll; a .txt file whose first line is ``-DOCSTART-`` -> conll; else text). The backend
is torch unless ``--backend onnx``, ``--quantize`` or ``--onnx-file`` is given, or the directory has an
exported ``model.onnx`` and no torch weights (a directory written by ``tokentune export --output``).
A normal model directory serves ``--backend onnx`` too once ``tokentune export MODEL_DIR`` (no
``--output``) has added ``model.onnx`` to it; without one it is a user error that says so.

A progress bar (words) goes to stderr when it is a terminal, and a last line with the throughput in
words/s unless ``--quiet``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Iterable, Iterator

FORMATS = ("text", "jsonl", "conll")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CONLL_SUFFIXES = (".conll", ".conllu", ".iob", ".iob2", ".bio", ".bioes", ".tsv", ".col", ".tags")
TORCH_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
# a chunk is predicted at once: enough for full, length-sorted batches, small enough to stay flat
CHUNK_ITEMS = 2048
CHUNK_CHARS = 1 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR")
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to tag (default: --input or stdin)")
    io_group = parser.add_argument_group("input and output")
    io_group.add_argument("--input", "-i", metavar="FILE", help="input file ('-' for stdin); .gz is read as gzip")
    io_group.add_argument("--format", "-f", choices=FORMATS,
                          help="input format (default: guessed from the file name; text for arguments and stdin)")
    io_group.add_argument("--output", "-o", metavar="FILE", help="write here (atomically) instead of stdout")
    io_group.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no throughput line")
    model = parser.add_argument_group("model")
    model.add_argument("--backend", choices=["torch", "onnx"],
                       help="default: torch, or onnx with --quantize/--onnx-file or for an exported directory")
    model.add_argument("--quantize", choices=["int8"], help="onnx backend: load model.int8.onnx")
    model.add_argument("--onnx-file", metavar="NAME", help="onnx backend: this file instead of model.onnx")
    model.add_argument("--device", help="cpu or cuda (default: cuda when available, for torch)")
    model.add_argument("--threads", type=int, metavar="N",
                       help="CPU threads for the model (default: one per physical core); on a machine busy with "
                            "other jobs fewer threads can be much faster")
    model.add_argument("--batch-size", type=int, default=32, help="windows per model call (default 32)")
    model.add_argument("--max-length", type=int, metavar="N", help="sub-tokens per window (default: the model's limit)")
    model.add_argument("--stride", type=int, default=128, help="sub-tokens of overlap for long texts (default 128)")
    model.add_argument("--decode", default="viterbi", choices=["viterbi", "argmax"],
                       help="viterbi: only tag sequences valid in the model's scheme (default)")
    model.add_argument("--aggregation", default="first", choices=["first", "average", "max"],
                       help="how a word's sub-token scores combine (default first)")
    _allow_texts_after_options(parser)


def _allow_texts_after_options(parser: argparse.ArgumentParser) -> None:
    """Parse this command's flags and TEXTs intermixed. Plain argparse gives every positional slot out
    at the first positional (MODEL_DIR), so `predict DIR --backend onnx "some text"` would reject the
    text; the main parser calls ``parse_known_args`` on the sub-parser, so that is what is swapped."""
    plain = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        parser.parse_known_args = plain  # parse_known_intermixed_args calls parse_known_args itself
        try:
            return parser.parse_known_intermixed_args(args, namespace)
        finally:
            parser.parse_known_args = parse_known_args

    parser.parse_known_args = parse_known_args


@dataclass
class Item:
    """One unit of input: a raw text, a pre-tokenised sentence, or lines passed through as they are."""

    kind: str  # "text", "tokens" or "raw"
    text: str = ""
    tokens: list[str] = field(default_factory=list)
    record: dict | None = None  # the JSON object it came from (jsonl)
    lines: list[str] = field(default_factory=list)  # conll: the original lines (raw: what to write)


def pick_backend(args: argparse.Namespace) -> str:
    from ..errors import ConfigError
    from ..inference.runners import FP32_FILE

    onnx_only = args.quantize or args.onnx_file
    if args.backend == "torch" and onnx_only:
        raise ConfigError("--quantize and --onnx-file choose an ONNX file; they do not apply to --backend torch",
                          fix="use --backend onnx (or leave --backend out)")
    if args.backend:
        return args.backend
    if onnx_only:
        return "onnx"
    directory = args.model_dir
    if (os.path.isdir(directory) and os.path.isfile(os.path.join(directory, FP32_FILE))
            and not any(os.path.exists(os.path.join(directory, name)) for name in TORCH_WEIGHTS)):
        return "onnx"
    return "torch"


def guess_format(path: str | None) -> str:
    if path in (None, "-"):
        return "text"
    name = path[:-3] if path.endswith(".gz") else path
    lower = name.lower()
    if lower.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if lower.endswith(CONLL_SUFFIXES):
        return "conll"
    first = next(iter(_lines(path)), "")
    return "conll" if first.split()[:1] == ["-DOCSTART-"] else "text"


def _lines(path: str | None) -> Iterator[str]:
    """Lines without their ends, streamed; the errors say which file and line."""
    from ..errors import DataError

    if path in (None, "-"):
        for line in sys.stdin:
            yield line.rstrip("\r\n")
        return
    number = 0
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, 1):
                yield line.rstrip("\r\n")
    except FileNotFoundError:
        raise DataError("file not found", path=path, fix="check the path given to --input") from None
    except IsADirectoryError:
        raise DataError("is a directory, not a file", path=path, fix="pass one file to --input") from None
    except UnicodeDecodeError:
        raise DataError("the file is not UTF-8 text", path=path, line=number + 1,
                        fix="convert it, e.g. `iconv -f latin1 -t utf-8 FILE > NEW`") from None
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read the file ({err})", path=path, fix="check the file (gzip -t for .gz)") from None


def read_items(args: argparse.Namespace, fmt: str) -> Iterator[Item]:
    from ..errors import ConfigError, DataError

    if args.texts:
        if fmt != "text":
            raise ConfigError(f"TEXT arguments are raw text; --format {fmt} applies to --input",
                              fix="pass the file with --input, or leave --format out")
        return (Item("text", text=text) for text in args.texts)
    if args.input is None and sys.stdin.isatty():
        raise DataError("no input given", fix="pass TEXT arguments, --input FILE, or pipe text on stdin")
    lines = _lines(args.input)
    if fmt == "jsonl":
        return _jsonl_items(lines, args.input or "<stdin>")
    if fmt == "conll":
        return _conll_items(lines)
    return (Item("text", text=line) for line in lines)


def _jsonl_items(lines: Iterable[str], where: str) -> Iterator[Item]:
    from ..errors import DataError

    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"not valid JSON ({err.msg} at column {err.colno})", path=where, line=number,
                            fix="write one JSON object per line") from None
        if isinstance(record, dict) and isinstance(record.get("text"), str):
            yield Item("text", text=record["text"], record=record)
            continue
        tokens = record.get("tokens", record.get("words")) if isinstance(record, dict) else None
        if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
            yield Item("tokens", tokens=tokens, record=record)
            continue
        raise DataError("a line has neither a \"text\" string nor a \"tokens\" list of strings", path=where,
                        line=number, found=line[:80], fix='write {"text": "..."} or {"tokens": ["...", ...]}')


def _conll_items(lines: Iterable[str]) -> Iterator[Item]:
    """Sentences of token lines, and everything else (blank, ``-DOCSTART-``, comments) as raw lines."""
    sentence: list[str] = []
    for line in lines:
        fields = line.split("\t") if "\t" in line else line.split()
        token = fields[0].strip() if fields else ""
        is_comment = not sentence and (line == "#" or line.startswith("# "))
        if not token or token == "-DOCSTART-" or is_comment:
            if sentence:
                yield _conll_sentence(sentence)
                sentence = []
            yield Item("raw", lines=[line])
            continue
        sentence.append(line)
    if sentence:
        yield _conll_sentence(sentence)


def _conll_sentence(lines: list[str]) -> Item:
    tokens = [(line.split("\t") if "\t" in line else line.split())[0].strip() for line in lines]
    return Item("tokens", tokens=tokens, lines=lines)


def chunks(items: Iterator[Item]) -> Iterator[list[Item]]:
    """Groups of items, cut at ``CHUNK_ITEMS`` items or ``CHUNK_CHARS`` characters of text."""
    chunk: list[Item] = []
    size = 0
    for item in items:
        chunk.append(item)
        size += len(item.text) + sum(len(t) + 1 for t in item.tokens)
        if len(chunk) >= CHUNK_ITEMS or size >= CHUNK_CHARS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def predict_chunk(tagger, chunk: list[Item]) -> tuple[list[str], int]:
    """Output lines for one chunk, and how many words it had."""
    from ..words import split_words

    texts = [item for item in chunk if item.kind == "text"]
    sentences = [item for item in chunk if item.kind == "tokens"]
    split = [split_words(item.text) for item in texts]
    entities = iter(tagger.predict_split_texts([item.text for item in texts], split)) if texts else iter(())
    tagged = iter(tagger.predict_token_batches([item.tokens for item in sentences])) if sentences else iter(())
    out = []
    for item in chunk:
        if item.kind == "raw":
            out.extend(item.lines)
        elif item.kind == "text":
            found = [e.to_dict() for e in next(entities)]
            record = {**item.record, "entities": found} if item.record is not None else {"text": item.text,
                                                                                          "entities": found}
            out.append(json.dumps(record, ensure_ascii=False))
        elif item.record is not None:
            prediction = next(tagged)
            spans = [{"label": label, "start": start, "end": end, "score": round(score, 6)}
                     for (label, start, end), score in zip(prediction.spans, prediction.scores)]
            out.append(json.dumps({**item.record, "tags": prediction.tags, "spans": spans}, ensure_ascii=False))
        else:
            prediction = next(tagged)
            out.extend(line + ("\t" if "\t" in line else " ") + tag for line, tag in zip(item.lines, prediction.tags))
    words = sum(len(words) for words, _ in split) + sum(len(item.tokens) for item in sentences)
    return out, words


class _Output:
    """stdout, or a file written under a temporary name and renamed when complete."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.tmp = None
        if path is None:
            self.handle: IO[str] = sys.stdout
            return
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self.tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        self.handle = open(self.tmp, "w", encoding="utf-8")

    def write(self, lines: list[str]) -> None:
        if lines:
            self.handle.write("\n".join(lines) + "\n")
        if self.tmp is None:  # a reader at the other end of a pipe sees each chunk as it is done
            self.handle.flush()

    def close(self, ok: bool) -> None:
        if self.tmp is None:
            return
        self.handle.close()
        if ok:
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.unlink(self.tmp)


def _set_threads(threads: int, backend: str, options: dict) -> None:
    from ..errors import ConfigError

    if threads < 1:
        raise ConfigError(f"--threads {threads} is not a thread count", fix="pass --threads 1 or more")
    if backend == "onnx":
        options["threads"] = threads
    else:
        import torch

        torch.set_num_threads(threads)


def _progress(quiet: bool):
    from tqdm import tqdm

    return tqdm(unit=" words", unit_scale=True, file=sys.stderr, disable=quiet or not sys.stderr.isatty(),
                dynamic_ncols=True, leave=False)


def run(args: argparse.Namespace) -> int:
    from ..inference.tagger import Tagger
    from ._common import quiet_libraries

    quiet_libraries(True)  # transformers' weight-loading bar is noise next to ours
    if args.input not in (None, "-") and not os.path.isfile(args.input):  # say so before loading the model
        next(_lines(args.input))
    fmt = args.format or ("text" if args.texts else guess_format(args.input))
    items = read_items(args, fmt)
    backend = pick_backend(args)
    options = {"quantize": args.quantize, "onnx_file": args.onnx_file} if backend == "onnx" else {}
    if args.threads is not None:
        _set_threads(args.threads, backend, options)
    tagger = Tagger.from_pretrained(args.model_dir, backend=backend, device=args.device,
                                    batch_size=args.batch_size, decoding=args.decode, aggregation=args.aggregation,
                                    stride=args.stride, max_length=args.max_length, **options)
    output, ok = _Output(args.output), False
    words = count = 0
    started = time.perf_counter()
    try:
        with _progress(args.quiet) as bar:
            for chunk in chunks(items):
                lines, chunk_words = predict_chunk(tagger, chunk)
                output.write(lines)
                words += chunk_words
                count += sum(item.kind != "raw" for item in chunk)
                bar.update(chunk_words)
        ok = True
    finally:
        output.close(ok)
    seconds = time.perf_counter() - started
    if not args.quiet:
        unit = "texts" if fmt == "text" else ("records" if fmt == "jsonl" else "sentences")
        print(f"tokentune predict: {count} {unit}, {words} words in {seconds:.2f} s "
              f"({words / max(seconds, 1e-9):,.0f} words/s, backend {backend})", file=sys.stderr)
    return 0
