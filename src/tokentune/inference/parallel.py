"""Prediction chunk by chunk, in this process or in worker processes, results in input order.

:func:`predict_chunk` turns one chunk of :class:`~tokentune.data.inputs.Item`s into output lines (what
``tokentune predict`` writes). :class:`ChunkPredictor` does that for a stream of chunks, either with
one :class:`~tokentune.inference.tagger.Tagger` here, or (``workers`` > 1) in that many *spawned*
processes, each holding its own Tagger (loaded from the same settings before the first chunk) and its
share of the CPU threads (physical cores // workers). At most two chunks per worker are in flight, so
memory stays flat on large inputs, and results come back in input order, so the output is the same as
with one process, byte for byte.

A user error in a worker (:class:`~tokentune.errors.TokentuneError`, e.g. a model directory that does
not load) is raised again in the calling process with the same type and message. Workers ignore
Ctrl-C (the caller handles it) and are stopped when the caller stops reading, so an error leaves no
process behind.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

from ..data.documents import DOCSTART
from ..data.inputs import Item
from ..errors import ConfigError, TokentuneError

# a worker process's settings and Tagger (loaded by the warm-up task, which reports a loading error)
_STATE: dict = {}


@dataclass
class ChunkResult:
    """The output of one chunk: its lines, how many words it had and how many items (not raw lines)."""

    lines: list[str]
    words: int
    items: int


def chunk_documents(chunk: list[Item]) -> list[tuple[int, int]] | None:
    """``[start, end)`` ranges of the chunk's sentences by document (CoNLL ``-DOCSTART-`` lines, JSON
    records' document ids or ``-DOCSTART-`` records; None where the chunk marks none)."""
    starts, count, marked = [0], 0, False
    for item in chunk:
        marked |= item.docstart or item.document is not None
        if item.docstart and count:
            starts.append(count)
        if item.kind == "tokens":
            count += 1
    if not marked:
        return None
    bounds = sorted(set(starts)) + [count]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def predict_chunk(tagger, chunk: list[Item]) -> tuple[list[str], int]:
    """Output lines for one chunk, and how many words it had."""
    texts = [item for item in chunk if item.kind == "text"]
    sentences = [item for item in chunk if item.kind == "tokens"]
    split = [tagger.split_text(item.text) for item in texts]
    entities = iter(tagger.predict_split_texts([item.text for item in texts], split)) if texts else iter(())
    documents = chunk_documents(chunk) if getattr(tagger, "context", "sentence") == "document" else None
    tagged = iter(tagger.predict_token_batches([item.tokens for item in sentences], documents)) if sentences else iter(())
    out = []
    for item in chunk:
        if item.kind == "raw":  # a CoNLL -DOCSTART- line gets the O of a word: conlleval reads it as one
            out.extend(line.rstrip() + ("\t" if "\t" in line else " ") + "O"
                       if item.docstart and line.split()[:1] == [DOCSTART] else line for line in item.lines)
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


def _result(tagger, chunk: list[Item]) -> ChunkResult:
    lines, words = predict_chunk(tagger, chunk)
    return ChunkResult(lines, words, sum(item.kind != "raw" for item in chunk))


def check_workers(workers) -> int:
    """A worker count: a whole number of at least 1, named by its flag."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be a whole number of at least 1, found {workers!r}",
                          fix="pass --workers 1 (one process) or more, e.g. the number of CPU cores")
    return workers


def thread_share(workers: int, threads: int | None = None) -> int:
    """CPU threads for each of ``workers`` processes: ``threads`` if given, else physical cores // workers."""
    from .runners import physical_cores

    return threads if threads is not None else max(1, physical_cores() // workers)


def prepare_worker(settings: dict, threads: int, *, own_process: bool = True) -> dict:
    """Set-up of a process that predicts for a job (a ``--workers`` process, a Ray actor): freed memory
    kept as the command keeps it (memory.py; ``own_process=False``: this is the user's process, left
    alone), its thread share, libraries kept quiet. Returns the Tagger settings with that share."""
    from ..memory import reuse_freed_memory
    from ..quiet import quiet_transformers

    if own_process:
        reuse_freed_memory()
    settings = dict(settings)
    if settings.get("backend") == "onnx":
        settings["threads"] = threads
    else:
        import torch

        torch.set_num_threads(threads)
    quiet_transformers(progress_bars=False)  # without importing it (quiet.py)
    return settings


def load_tagger(settings: dict):
    """A Tagger from keyword settings: ``model_dir`` plus :meth:`Tagger.from_pretrained`'s options."""
    from .tagger import Tagger

    options = dict(settings)
    return Tagger.from_pretrained(options.pop("model_dir"), **options)


class ChunkPredictor:
    """Predicts chunks of items, in input order: with one Tagger in this process (``workers`` 1; the
    ``tagger`` given, or one loaded from ``settings``), or in ``workers`` spawned processes that each
    load a Tagger from ``settings`` (keyword arguments of :func:`load_tagger`, hence picklable) and
    run ``threads`` CPU threads (default: physical cores // workers).

    A context manager: entering loads the model(s), so that a throughput measured inside it counts
    prediction only; leaving stops the workers (at once when leaving on an error)."""

    def __init__(self, settings: dict, *, workers: int = 1, threads: int | None = None, tagger=None) -> None:
        self.settings = settings
        self.workers = check_workers(workers)
        self.threads = thread_share(self.workers, threads)
        self.tagger = tagger
        self._executor = None

    def __enter__(self) -> "ChunkPredictor":
        if self.workers == 1:
            self.tagger = self.tagger or load_tagger(self.settings)
            return self
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        ready = context.Barrier(self.workers)
        self._executor = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                             initargs=(self.settings, self.threads, ready))
        try:  # one warm-up task per worker: each waits at the barrier until every worker has its Tagger
            for future in [self._executor.submit(_warm_up) for _ in range(self.workers)]:
                _outcome(future)
        except BaseException:
            _stop(self._executor, (), done=False)
            raise
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self._executor is not None:
            _stop(self._executor, (), done=kind is None)
            self._executor = None

    def predict(self, chunks: Iterable[list[Item]]) -> Iterator[ChunkResult]:
        """:class:`ChunkResult` of each chunk, in input order; at most two chunks per worker in flight."""
        if self._executor is None:
            yield from (_result(self.tagger, chunk) for chunk in chunks)
            return
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append(self._executor.submit(_predict_in_worker, chunk))
                if len(pending) >= 2 * self.workers:
                    yield _outcome(pending.popleft())
            while pending:
                yield _outcome(pending.popleft())
        finally:
            for future in pending:
                future.cancel()


def _stop(executor, pending, done: bool) -> None:
    """Shut the pool down: waiting for it after a complete run, at once when stopped early (an error,
    Ctrl-C, a reader that left)."""
    for future in pending:
        future.cancel()
    if done:
        executor.shutdown(wait=True)
        return
    executor.shutdown(wait=False, cancel_futures=True)
    terminate = getattr(executor, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):  # before 3.14: by hand
        if process.is_alive():
            process.terminate()
        process.join()


def _outcome(future):
    """What a worker's task returned; a worker that died (killed, out of memory) is a one-line error."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        outcome = future.result()
    except BrokenProcessPool:
        raise TokentuneError("a worker process died (killed, or out of memory?)",
                             fix="run fewer --workers, or a smaller --batch-size") from None
    return _unpack(outcome)


def _unpack(outcome):
    """A worker's result, or its user error raised here as the same type with the same message."""
    kind, value = outcome
    if kind == "ok":
        return value
    error_type, message = value
    raise rebuild_error(error_type, message)


def rebuild_error(error_type: type, message: str) -> TokentuneError:
    """A :class:`TokentuneError` of ``error_type`` whose text is ``message`` (an error that crossed a
    process boundary: subclasses take different constructor arguments, so it is built as the base)."""
    if not (isinstance(error_type, type) and issubclass(error_type, TokentuneError)):
        error_type = TokentuneError
    error = error_type.__new__(error_type)
    TokentuneError.__init__(error, message)
    return error


def _start_worker(settings: dict, threads: int, ready) -> None:
    """Worker set-up: Ctrl-C is the caller's to handle; its share of threads sleep at once when they wait
    (:func:`tokentune.threads.sleep_at_barriers`); then :func:`prepare_worker`."""
    import signal

    from ..threads import sleep_at_barriers

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sleep_at_barriers()
    _STATE.update(settings=prepare_worker(settings, threads), ready=ready)


def _tagger():
    if "tagger" not in _STATE:
        _STATE["tagger"] = load_tagger(_STATE["settings"])
    return _STATE["tagger"]


def _warm_up():
    """Load this worker's Tagger, then wait for the others (so each worker takes one warm-up task)."""
    try:
        _tagger()
        return "ok", None
    except TokentuneError as err:
        return "error", (type(err), str(err))
    finally:  # also after an unexpected error, so that the other workers do not wait forever
        _STATE["ready"].wait()


def _predict_in_worker(chunk: list[Item]):
    """``("ok", ChunkResult)``, or ``("error", (type, message))`` for a user error."""
    try:
        return "ok", _result(_tagger(), chunk)
    except TokentuneError as err:
        return "error", (type(err), str(err))
