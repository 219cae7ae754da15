"""Prediction over a Ray Dataset: an actor pool of Taggers, results in input order.

:func:`predict_dataset` takes a ``ray.data.Dataset`` (or a JSON lines, Parquet or text file or folder:
:mod:`.ray_inputs`) with a column of raw texts or of pre-tokenised words, and adds what ``tokentune
predict`` adds to a JSON line: ``entities`` (label, start, end, text, score) for raw text, ``tags``
and ``spans`` (label, start, end, score) for words. A path is read by :mod:`.ray_inputs` (the records
and errors of ``tokentune predict``). The rows are numbered first (the input is read once, in order,
each block numbered from the row counts before it and cut so that every actor gets some), predicted by
``map_batches`` with a pool of :class:`TaggerActor`s (one Tagger each, loaded on its first batch),
with ``preserve_order`` on in the Dataset's own context, so that Ray hands the blocks back in input
order to any consumer. Written, the rows are also checked and put in order by that number as they
stream in (:func:`~tokentune.inference.ray_results.in_row_order`); it is then dropped. The output has one
row per input row, in input order, whatever order the actors finished in.

Given ``output`` (a ``.parquet`` path, else JSON lines: a path or a text handle) the rows are written
there as one file, atomically, in order, by this process; else the (lazy) Dataset is returned.

Ray is optional (``pip install 'tokentune[ray]'``) and imported only when these functions run. A user
error raised in an actor (a model that does not load, a record without text) is raised here as the
same :class:`~tokentune.errors.TokentuneError`. On a cluster, tokentune and the model directory must
be on every node (the same path everywhere).
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import IO

from ..errors import ConfigError, DataError, TokentuneError
from ..settings import check_choice
from .aggregation import AGGREGATIONS
from .parallel import load_tagger, prepare_worker
from .ray_inputs import PIECES_PER_ACTOR, read_rows, source_format
from .ray_results import ROW, WORDS, RemoteError, check_output_name, write_predictions

RAY_FIX = "pip install 'tokentune[ray]'"
TAGGER_OPTIONS = ("backend", "device", "batch_size", "decoding", "aggregation", "word_splitter", "stride",
                  "max_length", "min_score", "quantize", "onnx_file", "context", "split_sentences",
                  "precision")


def require_ray():
    """The ``ray`` module with Ray Data, or a user error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("Ray Data is not installed, so --ray / predict_dataset cannot run", fix=RAY_FIX) from None
    return ray


def connect(address: str | None = "auto") -> bool:
    """Attach to Ray unless this process already is: ``auto`` (or None) finds a running local cluster
    (RAY_ADDRESS, or the last ``ray start``) or starts one; anything else is a cluster address.
    True when this call connected."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    import logging

    where = {"include_dashboard": False} if address in (None, "auto") else {"address": address}
    if address not in (None, "auto"):
        check_reachable(address)
    try:
        ray.init(log_to_driver=False, logging_level=logging.ERROR, **where)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise ConfigError(f"cannot connect to Ray at {address}: {str(err).splitlines()[0] if str(err) else err!r}",
                          fix="start a cluster with `ray start --head` and pass its address, or use --ray auto") from None
    return True


def check_reachable(address: str, seconds: float = 5.0) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) nothing answers on, at once: Ray itself retries
    an unreachable cluster for minutes."""
    import socket

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port: Ray says what it makes of it
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as err:
        raise ConfigError(f"cannot connect to Ray at {address}: {err.strerror or err}",
                          fix="start a cluster with `ray start --head` and pass its address, or use --ray auto") from None


def predict_dataset(model_dir: str, data, *, text_column: str | None = None, tokens_column: str | None = None,
                    output: str | os.PathLike | IO[str] | None = None, concurrency: int = 1, num_cpus: float | None = None,
                    num_gpus: float = 0, rows_per_batch: int = 256, input_format: str | None = None,
                    address: str | None = "auto", **tagger_options):
    """Predict every row of ``data`` (a ``ray.data.Dataset``, or a path: ``.jsonl``/``.json``/
    ``.ndjson``, ``.parquet``, else text with one text per line, or ``input_format`` jsonl, parquet or
    text) with ``concurrency`` actors of ``num_cpus`` CPUs (and CPU threads) and ``num_gpus`` GPUs each.
    ``num_cpus`` None: the cluster's free CPUs shared among the actors (:func:`shared_cpus`), 1 with
    GPUs.

    The column tagged is ``text_column`` (raw text -> ``entities``) or ``tokens_column`` (lists of
    words -> ``tags`` and ``spans``); by default ``text``, else ``tokens``, else ``words``.
    ``tagger_options``: those of :meth:`Tagger.from_pretrained` (``batch_size`` is windows per model
    call; ``rows_per_batch`` rows go to an actor at once). Returns the Dataset, in input order, or with
    ``output`` writes it and returns :class:`Written`. Ray is attached to (``address``) if it is not."""
    settings = tagger_settings(model_dir, tagger_options)
    check_pool(concurrency, num_cpus, num_gpus, rows_per_batch)
    check_output_name(output)
    require_ray()
    if isinstance(output, (str, os.PathLike)):  # never over the input or the model
        from ..io import check_output

        check_output(output, overwrite=True, inputs=(data if isinstance(data, (str, os.PathLike)) else None,
                                                     model_dir), what="output file")
    fmt = source_format(data, input_format)
    connect(address)
    if num_cpus is None:
        num_cpus = 1 if num_gpus else shared_cpus(concurrency)
    rows = read_rows(data, fmt, text_column, tokens_column, pieces=concurrency * PIECES_PER_ACTOR)
    if rows.indexed is None:  # no rows: nothing for an actor to do; the input's columns and the prediction's
        empty = _empty(rows.schema, rows.kind)
        if output is None:
            from ray.data import from_arrow

            return from_arrow(empty)
        return replace(write_predictions(None, output, empty.schema), cpus_per_actor=num_cpus)
    import warnings

    from ray.data import ActorPoolStrategy

    with warnings.catch_warnings():  # ray_remote_args_fn: deprecated in Ray 2.60, see actor_options
        warnings.simplefilter("ignore", DeprecationWarning)
        predicted = rows.indexed.map_batches(
            TaggerActor, fn_constructor_kwargs={"settings": settings, "column": rows.column, "kind": rows.kind,
                                                "where": rows.where, "threads": max(1, int(num_cpus)),
                                                "driver": os.getpid()},
            compute=ActorPoolStrategy(size=concurrency), num_cpus=num_cpus, num_gpus=num_gpus or None,
            batch_size=rows_per_batch, batch_format="pyarrow", **actor_options(rows.indexed.map_batches),
        )
    if output is None:  # in input order however it is consumed: preserve_order is on in its own context
        return predicted.drop_columns([ROW, WORDS])
    return replace(write_predictions(predicted, output), cpus_per_actor=num_cpus)


def node_cpus() -> list[float]:
    """The CPUs of each live node of the Ray cluster this process is attached to (their totals)."""
    import ray

    return [node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node.get("Alive")]


def shared_cpus(actors: int, probe_seconds: float = 1.0) -> int:
    """The CPUs (and threads) for each of ``actors`` actors when the caller names none: the cluster's
    shared out (:func:`cpus_per_actor`), no more than its free CPUs allow, and lowered (halved) until
    all of them can be placed now, as a placement group tried for ``probe_seconds`` and removed shows:
    an actor asking for CPUs that another job holds would wait for them for ever. Ray's public API
    gives the free CPUs of the whole cluster only, not of each node."""
    import ray

    free = ray.available_resources().get("CPU", 0.0)
    each = min(cpus_per_actor(actors, node_cpus()), max(1, int(free // actors)))
    while each > 1 and not placeable(actors, each, probe_seconds):
        each //= 2
    return each


def placeable(actors: int, cpus: int, seconds: float) -> bool:
    """Whether ``actors`` bundles of ``cpus`` CPUs each can be placed on the cluster within ``seconds``."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    group = placement_group([{"CPU": cpus}] * actors, strategy="PACK")
    try:
        return bool(ray.wait([group.ready()], timeout=seconds)[0])
    finally:
        remove_placement_group(group)


def cpus_per_actor(actors: int, cpus: list[float]) -> int:
    """The CPUs (and threads) for each of ``actors`` actors: the most that still lets every actor be
    placed at once on nodes of ``cpus`` CPUs; at least 1. One actor on a
    machine of 8 CPUs gets 8 (one CPU each left 7 idle); 3 actors on nodes of 5 and 5 get 2 each, not
    3 (two nodes hold only two actors of 3)."""
    for each in range(int(sum(cpus) // max(1, actors)), 1, -1):
        if sum(int(node // each) for node in cpus) >= actors:
            return each
    return 1


def tagger_settings(model_dir: str, options: dict) -> dict:
    """``model_dir`` and the Tagger options, checked here before any actor starts."""
    from .runners import check_precision
    from .tagger import DECODINGS, check_min_score, check_sizes

    unknown = sorted(set(options) - set(TAGGER_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown Tagger option(s) {', '.join(unknown)}", fix=f"use {', '.join(TAGGER_OPTIONS)}")
    check_sizes(**{key: options.get(key) for key in ("batch_size", "stride", "max_length")})
    check_min_score(options.get("min_score"), "min_score")
    check_precision(options.get("precision"))
    for name, choices in (("decoding", DECODINGS), ("aggregation", AGGREGATIONS)):
        if options.get(name) is not None:
            check_choice(options[name], choices, name)
    model_dir = os.fspath(model_dir)
    if os.path.isdir(model_dir):  # checked here where it is; elsewhere it may be on the cluster's machines only
        from ..modeling import check_model_dir

        check_model_dir(model_dir, head=True)
    return {"model_dir": model_dir, **options}


def check_pool(concurrency, num_cpus, num_gpus, rows_per_batch) -> None:
    # the command line passes --workers as concurrency: both names, so that either caller finds its own
    for name, value, fix in (("concurrency (--workers)", concurrency, "pass concurrency=1 or more (--workers 1 or more)"),
                             ("rows_per_batch", rows_per_batch, "pass rows_per_batch=1 or more")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number of at least 1, found {value!r}", fix=fix)
    for name, value in (("num_cpus", 0 if num_cpus is None else num_cpus), ("num_gpus", num_gpus)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ConfigError(f"{name} must be a number of at least 0, found {value!r}", fix=f"pass {name}=1, say")


def prediction_types(kind: str) -> dict:
    """The Arrow types of the columns a prediction adds (``entities``, or ``tags`` and ``spans``)."""
    import pyarrow as pa

    if kind == "text":
        entity = pa.struct([("label", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("text", pa.string()),
                            ("score", pa.float64())])
        return {"entities": pa.list_(entity)}
    span = pa.struct([("label", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("score", pa.float64())])
    return {"tags": pa.list_(pa.string()), "spans": pa.list_(span)}


def put_column(table, name: str, column):
    """``table`` with ``column`` as ``name``: in place of a column of that name, else appended."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)


def _empty(schema, kind: str):
    """An Arrow table of no rows with the input's columns (``schema``; None: not even they are known)
    and the prediction's."""
    import pyarrow as pa

    table = schema.empty_table() if schema is not None else pa.table({})
    for name, kind_type in prediction_types(kind).items():
        table = put_column(table, name, pa.array([], type=kind_type))
    return table


def no_restarts() -> dict:
    """Actor options: an actor that dies fails the run (nothing to restart it for)."""
    return {"max_restarts": 0}


def actor_options(map_batches) -> dict:
    """Actors that are not restarted, where this Ray's ``map_batches`` takes ``ray_remote_args_fn``:
    restartable actors make Ray log an error line per run about restarting them."""
    import inspect

    return {"ray_remote_args_fn": no_restarts} if "ray_remote_args_fn" in inspect.signature(map_batches).parameters else {}


class TaggerActor:
    """One Tagger in a Ray actor: adds the prediction columns (and ``WORDS``) to batches of rows. The
    Tagger loads on the first batch, so that a loading error fails that task at once (errors in an
    actor's constructor are retried by Ray Data)."""

    def __init__(self, settings: dict, column: str, kind: str, where: str, threads: int, driver: int | None = None) -> None:
        self.settings, self.column, self.kind, self.where, self.threads = settings, column, kind, where, threads
        self.driver = driver  # the process that called predict_dataset: the user's own
        self.tagger = None

    def __call__(self, batch):
        try:
            if self.tagger is None:
                self.tagger = self._load()
            return self._predict(batch)
        except TokentuneError as err:
            raise RemoteError(type(err), str(err)) from None

    def _load(self):
        # an actor runs in a process of its own, except in the driver's (older Ray's local mode)
        return load_tagger(prepare_worker(self.settings, self.threads, own_process=os.getpid() != self.driver))

    def _values(self, batch) -> list:
        values = batch.column(self.column).to_pylist()
        rows = batch.column(ROW).to_pylist()
        for value, row in zip(values, rows):
            good = (isinstance(value, str) if self.kind == "text"
                    else isinstance(value, list) and all(isinstance(word, str) for word in value))
            if not good:
                expected = "a string" if self.kind == "text" else "a list of strings"
                raise DataError(f"record {row + 1}: column {self.column!r} is not {expected}", path=self.where,
                                found=ascii(value)[:80], fix=f"give every record {expected} in {self.column!r}")
        return values

    def _predict(self, batch):
        import pyarrow as pa

        values = self._values(batch)
        types = prediction_types(self.kind)
        if self.kind == "text":
            split = [self.tagger.split_text(text) for text in values]
            found = self.tagger.predict_split_texts(values, split)
            batch = put_column(batch, "entities", pa.array([[e.to_dict() for e in row] for row in found],
                                                           type=types["entities"]))
            words = [len(row_words) for row_words, _ in split]
        else:
            predictions = self.tagger.predict_token_batches(values)
            spans = [[{"label": label, "start": start, "end": end, "score": round(score, 6)}
                      for (label, start, end), score in zip(p.spans, p.scores)] for p in predictions]
            batch = put_column(batch, "tags", pa.array([p.tags for p in predictions], type=types["tags"]))
            batch = put_column(batch, "spans", pa.array(spans, type=types["spans"]))
            words = [len(row_words) for row_words in values]
        return put_column(batch, WORDS, pa.array(words, type=pa.int64()))
