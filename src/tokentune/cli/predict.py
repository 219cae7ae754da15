"""`tokentune predict MODEL_DIR [TEXT ...] [--input FILE] [--format text|jsonl|conll]`.

Inputs, streamed in chunks so memory stays flat on millions of lines:

- ``text``: TEXT arguments, or one text per line (a file, or stdin) -> JSON lines
  ``{"text", "entities": [{label, start, end, text, score}]}`` with character offsets.
- ``jsonl``: one JSON object per line with either ``"text"`` (raw text) -> the object with
  ``"entities"`` added, or ``"tokens"``/``"words"`` (pre-tokenised) -> the object with ``"tags"`` and
  ``"spans"`` (word offsets, end-exclusive) added. Other fields pass through; fields of those names
  are replaced.
- ``conll``: pre-tokenised columns (the first column is the word; blank lines between sentences) ->
  the same lines with the predicted tag as one more column; ``-DOCSTART-`` lines get ``O`` (conlleval
  reads them as words and needs every line's columns alike), comment and blank lines pass through.

``--output-format label-studio`` (text or jsonl input) writes one JSON array of Label Studio tasks
instead, the entities as pre-annotations with their scores (:mod:`tokentune.data.labelstudio`).

The format is guessed from the input's name (.jsonl/.ndjson/.json -> jsonl; .conll/.conllu/.iob/
.bio/.tsv -> conll; a .txt file whose first line is ``-DOCSTART-`` -> conll; else text). The backend
is torch unless ``--backend onnx``, ``--quantize`` or ``--onnx-file`` is given, or the directory has an
exported ``model.onnx`` and no torch weights (a directory written by ``tokentune export --output``).
A normal model directory serves ``--backend onnx`` too once ``tokentune export MODEL_DIR`` (no
``--output``) has added ``model.onnx`` to it; without one it is a user error that says so.

``--workers N``: N spawned processes, each with its own model and physical cores // N threads, are
sent chunks of the input; the output is written in input order, byte for byte as with one process
(:mod:`tokentune.inference.parallel`). ``--ray ADDRESS|auto``: the ``--input`` file (JSON lines,
Parquet or text) is read, predicted by ``--workers`` Ray actors (the cluster's free CPUs shared
among them, or ``--threads`` each) and written to ``--output`` (.jsonl or .parquet) in input order
(:mod:`tokentune.inference.ray_batch`).

A progress bar (words) goes to stderr when it is a terminal, and a last line with the throughput in
words/s unless ``--quiet``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import IO, Iterable

from ..data.documents import check_document_key
from ..data.inputs import FORMATS, Item, check_readable, chunks, guess_format, read_items
from ..inference.saved import saved_context, saved_document_key
from ._common import add_precision_flag, add_text_flags

TORCH_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR")
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to tag (default: --input or stdin)")
    io_group = parser.add_argument_group("input and output")
    io_group.add_argument("--input", "-i", metavar="FILE", help="input file ('-' for stdin); .gz is read as gzip")
    io_group.add_argument("--format", "-f", choices=FORMATS,
                          help="input format (default: guessed from the file name; text for arguments and stdin)")
    io_group.add_argument("--output", "-o", metavar="FILE", help="write here (atomically) instead of stdout")
    io_group.add_argument("--output-format", choices=["label-studio"],
                          help="label-studio: one JSON array of Label Studio tasks with the entities as pre-annotations "
                               "(default: JSON lines, or CoNLL columns for CoNLL input)")
    io_group.add_argument("--model-version", metavar="NAME",
                          help="label-studio: the predictions' model_version (default: the model directory's name)")
    io_group.add_argument("--document-key", metavar="KEY",
                          help="JSON input: key of a document id, read by a document-context model (default: the "
                               "key the model was trained with, else document_id or doc_id when present)")
    io_group.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no throughput line")
    scale = parser.add_argument_group("scale-out")
    scale.add_argument("--workers", type=int, default=1, metavar="N",
                       help="N worker processes, each with its own model and cores // N threads; chunks of input "
                            "go to them and the output is written in input order, as with 1 (default 1); with --ray: "
                            "N actors, sharing the cluster's free CPUs unless --threads gives each its own count")
    scale.add_argument("--ray", metavar="ADDRESS",
                       help="predict over a Ray Dataset with --workers actors: auto (a running local Ray, else a "
                            "new one) or a cluster address; --input and --output are JSON lines (.jsonl), Parquet "
                            "(.parquet) or text lines; needs tokentune[ray]")
    model = parser.add_argument_group("model")
    model.add_argument("--backend", choices=["torch", "onnx"],
                       help="default: torch, or onnx with --quantize/--onnx-file or for an exported directory")
    model.add_argument("--quantize", choices=["int8"], help="onnx backend: load model.int8.onnx")
    model.add_argument("--onnx-file", metavar="NAME", help="onnx backend: this file instead of model.onnx")
    model.add_argument("--device", help="cpu or cuda (default: cuda when available, for torch)")
    model.add_argument("--threads", type=int, metavar="N",
                       help="CPU threads for the model (default: one per physical core); on a machine busy with "
                            "other jobs fewer threads can be much faster")
    add_precision_flag(model)
    model.add_argument("--batch-size", type=int, default=32, help="windows per model call (default 32)")
    model.add_argument("--max-length", type=int, metavar="N",
                       help="sub-tokens per window (default: the one it was trained with, else the model's limit)")
    model.add_argument("--stride", type=int, default=128, help="sub-tokens of overlap for long texts (default 128)")
    model.add_argument("--decode", default="viterbi", choices=["viterbi", "argmax"],
                       help="viterbi: only tag sequences valid in the model's scheme (default)")
    model.add_argument("--aggregation", default="first", choices=["first", "average", "max"],
                       help="how a word's sub-token scores combine (default first)")
    add_text_flags(model, min_score_help="drop entities whose score is below X (0 to 1; default 0: keep all); in token "
                                         "output the words of a dropped span are tagged O")
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


def pick_backend(args: argparse.Namespace) -> str:
    from ..errors import ConfigError
    from ..inference.runners import FP32_FILE

    onnx_only = args.quantize is not None or args.onnx_file is not None  # an empty value is refused, not ignored
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


def _check_threads(threads: int) -> None:
    from ..errors import ConfigError

    if threads < 1:
        raise ConfigError(f"--threads {threads} is not a thread count", fix="pass --threads 1 or more")


def _set_threads(threads: int, backend: str, options: dict) -> None:
    _check_threads(threads)
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
    from ..io import atomic_file, check_output
    from ._common import quiet_libraries

    if pick_backend(args) == "torch":  # the ONNX backend loads without transformers (inference/light.py)
        quiet_libraries(True)  # transformers' weight-loading bar is noise next to ours
    if args.texts and args.input is not None:  # one of them would be ignored without a word
        from ..errors import ConfigError

        raise ConfigError(f"TEXT arguments and --input {args.input} both given; only one can be tagged",
                          fix="pass the texts as arguments, or put them in the --input file, not both")
    check_document_key(args.document_key)
    if args.ray is None:  # (Ray reads Parquet and folders too: it checks the input itself)
        _refuse_parquet(args)
        check_readable(args.input)  # say so before loading the model
    if args.output is not None:  # an existing file is replaced, never the input or the model read
        check_output(args.output, overwrite=True, inputs=(args.input, args.model_dir), what="--output file")
    if args.ray is not None:
        return _run_ray(args)
    fmt = args.format or ("text" if args.texts else guess_format(args.input))
    _check_output_format(args, fmt)
    items = read_items(fmt, texts=args.texts, path=args.input,
                       document_key=args.document_key or saved_document_key(args.model_dir))
    with _predictor(args) as predictor:  # the model(s) load here, before the clock starts
        started = time.perf_counter()
        if args.output is None:
            count, words = _predict_to(predictor, items, sys.stdout, args)
        else:
            with atomic_file(args.output) as handle:
                count, words = _predict_to(predictor, items, handle, args)
        seconds = time.perf_counter() - started
    if not args.quiet:
        unit = "texts" if fmt == "text" else ("records" if fmt == "jsonl" else "sentences")
        pool = f"{args.workers} workers" if args.workers > 1 else None
        _throughput(f"{count} {unit}", words, seconds, predictor.settings["backend"], pool)
    return 0


def _throughput(what: str, words: int, seconds: float, backend: str, pool: str | None) -> None:
    """The last line: ``pool`` names the processes or actors that predicted (None: this process alone)."""
    scale = f", {pool}" if pool else ""
    print(f"tokentune predict: {what}, {words} words in {seconds:.2f} s "
          f"({words / max(seconds, 1e-9):,.0f} words/s, backend {backend}{scale})", file=sys.stderr)


def _tagger_settings(args: argparse.Namespace) -> dict:
    """Keyword arguments of :func:`tokentune.inference.parallel.load_tagger` (picklable, for workers)."""
    from ..inference.runners import check_precision
    from ..inference.tagger import check_min_score

    min_score = check_min_score(getattr(args, "min_score", None))  # named by its flag, before the model loads
    check_precision(args.precision)  # here, not in each worker process
    backend = pick_backend(args)
    options = {"quantize": args.quantize, "onnx_file": args.onnx_file} if backend == "onnx" else {}
    if backend == "onnx" and not args.quiet:
        _note_scales_per_call(args.model_dir, options)
    return dict(model_dir=args.model_dir, backend=backend, device=args.device, batch_size=args.batch_size,
                decoding=args.decode, aggregation=args.aggregation, word_splitter=getattr(args, "word_splitter", None),
                stride=args.stride, max_length=args.max_length, min_score=min_score,
                split_sentences=getattr(args, "split_sentences", True), precision=args.precision, **options)


def _note_scales_per_call(model_dir: str, options: dict) -> None:
    """An int8 file that scales activations once per call (an older export, or quantized elsewhere)."""
    from ..inference.onnx_graph import onnx_graph_kind, scales_per_call_message
    from ..inference.runners import onnx_file_for

    path = onnx_file_for(model_dir, **options)
    if onnx_graph_kind(path)[1]:
        print("note: " + scales_per_call_message(path, model_dir, "so the int8 entities of a text or sentence can "
                                                                  "depend on the others batched with it"),
              file=sys.stderr)


def _predictor(args: argparse.Namespace):
    """One Tagger in this process (``--workers 1``), or ``--workers N`` processes with one each."""
    from ..inference.parallel import ChunkPredictor, check_workers

    workers = check_workers(args.workers)
    settings = _tagger_settings(args)
    if args.threads is not None:
        if workers == 1:
            _set_threads(args.threads, settings["backend"], settings)
        else:
            _check_threads(args.threads)
    return ChunkPredictor(settings, workers=workers, threads=args.threads)


def _run_ray(args: argparse.Namespace) -> int:
    """``--ray``: the input file read, predicted and written back in order with Ray Data."""
    from ..errors import ConfigError
    from ..inference.ray_batch import connect, predict_dataset, require_ray

    if args.input in (None, "-"):
        raise ConfigError("--ray reads a file: TEXT arguments and stdin are not distributed",
                          fix="pass --input FILE (.jsonl, .parquet or text lines), or leave --ray out")
    if args.output_format is not None or args.model_version is not None:
        raise ConfigError("--ray writes JSON lines or Parquet, not --output-format label-studio",
                          fix="leave --ray out for Label Studio output")
    from ..inference.parallel import check_workers

    check_workers(args.workers)  # named by its flag here; predict_dataset names its own argument
    settings = _tagger_settings(args)
    if args.threads is not None:
        _check_threads(args.threads)
    if saved_context(args.model_dir)[0] == "document" and not args.quiet:  # Ray's batches cut documents apart
        print("note: --ray reads each sentence alone, though this model was trained with document context; "
              "leave --ray out (--workers N keeps documents together) to read pre-tokenised documents whole",
              file=sys.stderr)
    require_ray()
    _quiet_ray(args.quiet)
    connect(args.ray)  # a new local Ray starts here, before the clock
    started = time.perf_counter()
    written = predict_dataset(settings.pop("model_dir"), args.input, output=args.output or sys.stdout,
                              concurrency=args.workers, num_cpus=args.threads, input_format=args.format,
                              address=args.ray, **settings)
    if not args.quiet:
        cpus = f"{written.cpus_per_actor:g} CPU{'s' if written.cpus_per_actor != 1 else ''}"
        pool = f"{args.workers} Ray actors of {cpus} each" if args.workers > 1 else f"1 Ray actor of {cpus}"
        _throughput(f"{written.records} records", written.words, time.perf_counter() - started,
                    settings["backend"], pool)
    return 0


def _quiet_ray(quiet: bool) -> None:
    """Ray Data's progress bars only on a terminal, and none of its log lines: errors are ours to say."""
    import logging

    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = not quiet and sys.stderr.isatty()
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _refuse_parquet(args: argparse.Namespace) -> None:
    """Parquet goes through Ray Data: said plainly, rather than a Parquet input read as text that is not
    UTF-8, or JSON lines written under a .parquet name."""
    from ..errors import ConfigError

    for flag, path in (("--input", args.input), ("--output", args.output)):
        if path not in (None, "-") and os.fspath(path).lower().endswith(".parquet"):
            raise ConfigError(f"{flag} {path} is Parquet, which predict reads and writes with --ray only",
                              fix="add --ray auto (a local Ray on this machine; pip install 'tokentune[ray]'), "
                                  "or use a .jsonl file")


def _check_output_format(args: argparse.Namespace, fmt: str) -> None:
    """Refuse, before the model loads, what --output-format cannot write."""
    from ..errors import ConfigError

    if args.output_format is None and args.model_version is not None:
        raise ConfigError("--model-version names Label Studio predictions; it needs --output-format label-studio",
                          fix="add --output-format label-studio, or leave --model-version out")
    if args.output_format == "label-studio" and fmt == "conll":
        raise ConfigError("--output-format label-studio takes text or JSON lines input, not CoNLL columns",
                          fix='give raw text (one per line) or JSON lines {"tokens": [...]}, or leave --output-format out')


def _predict_to(predictor, items: Iterable[Item], handle: IO[str], args: argparse.Namespace) -> tuple[int, int]:
    """Predict into ``handle``: lines as the input came, or one array of Label Studio tasks."""
    if args.output_format != "label-studio":
        return _predict_all(predictor, items, handle, args.quiet)
    from ..data.labelstudio import TaskArray

    version = args.model_version or os.path.basename(os.path.normpath(args.model_dir))
    tasks = TaskArray(handle, version)
    result = _predict_all(predictor, items, tasks, args.quiet)
    tasks.close()
    return result


def _predict_all(predictor, items: Iterable[Item], handle: IO[str], quiet: bool) -> tuple[int, int]:
    """Predict chunk by chunk, writing each as it is done (in input order); returns (items, words)."""
    words = count = 0
    with _progress(quiet) as bar:
        for result in predictor.predict(chunks(items)):
            if result.lines:
                handle.write("\n".join(result.lines) + "\n")
            if handle is sys.stdout:  # a reader at the other end of a pipe sees each chunk as it is done
                handle.flush()
            words += result.words
            count += result.items
            bar.update(result.words)
    return count, words
