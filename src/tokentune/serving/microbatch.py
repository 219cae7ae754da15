"""Micro-batching: requests that arrive within a few milliseconds of each other share one forward pass.

Why: a transformer forward pass over 32 short texts costs little more than over one, so under
concurrent load batching multiplies throughput, while a lone request waits at most ``wait_ms`` more.

One worker task owns the model and feeds it from a bounded queue. The model itself runs in a
single dedicated thread: the event loop must keep answering (``/health``, 503s, new requests)
while a batch runs, and one thread means the Tagger is never called concurrently.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import ConfigError, TokentuneError

log = logging.getLogger("tokentune.serving")

# texts in, one result per text out (Tagger.predict_texts)
Predict = Callable[[list[str]], Sequence]


class Overloaded(TokentuneError):
    """The queue of requests waiting for the model is full (the server answers 503)."""


class Closed(TokentuneError):
    """The batcher is not running: the server is starting or shutting down (the server answers 503)."""


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future


@dataclass
class BatchStats:
    requests: int = 0  # requests answered (with results or an error)
    texts: int = 0
    batches: int = 0  # forward passes (calls of ``predict``)
    largest_batch: int = 0  # texts


class MicroBatcher:
    """Collects jobs from a bounded queue into batches of at most ``max_batch_texts`` texts.

    A batch closes when it is full, or ``wait_ms`` after its first job was taken. A single request
    is never split: one larger than ``max_batch_texts`` runs as a batch of its own.
    """

    def __init__(self, predict: Predict, *, max_batch_texts: int = 64, wait_ms: float = 5.0,
                 max_queue: int = 256) -> None:
        if max_batch_texts < 1:
            raise ConfigError(f"max_batch_texts must be at least 1, found {max_batch_texts}",
                              fix="pass --max-batch-texts 1 (no batching) or more")
        if wait_ms < 0:
            raise ConfigError(f"batch wait must be 0 ms or more, found {wait_ms}", fix="pass --batch-wait-ms 0 or more")
        if max_queue < 1:
            raise ConfigError(f"max_queue must be at least 1, found {max_queue}", fix="pass --max-queue 1 or more")
        self.predict = predict
        self.max_batch_texts = max_batch_texts
        self.wait = wait_ms / 1000
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    @property
    def pending(self) -> int:
        """Requests waiting in the queue (not counting the batch the model is running now)."""
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        """Start the worker on the running event loop (the queue belongs to that loop)."""
        if self.running:
            return
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokentune-model")
        self._worker = asyncio.create_task(self._run(), name="tokentune-batcher")

    async def stop(self) -> None:
        """Stop the worker; queued requests fail with :class:`Closed`. The server drains in-flight
        requests before it calls this, so on a graceful shutdown the queue is already empty."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(Closed("the server is shutting down", fix="retry on another instance"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def submit(self, texts: list[str]) -> list:
        """Queue ``texts`` and wait for their results; raises :class:`Overloaded` at once when full."""
        if not self.running or self._queue is None:
            raise Closed("the model worker is not running", fix="retry in a moment")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Job(list(texts), future))
        except asyncio.QueueFull:
            raise Overloaded(f"{self.max_queue} requests are already waiting for the model (--max-queue)",
                             fix="retry after the Retry-After seconds, or raise --max-queue") from None
        return await future

    async def _run(self) -> None:
        carry: _Job | None = None
        while True:
            try:
                first = carry if carry is not None else await self._queue.get()
                batch, carry = await self._collect(first)
                batch = [job for job in batch if not job.future.done()]  # callers that went away
                if batch:
                    await self._run_batch(batch)
            except asyncio.CancelledError:
                if carry is not None and not carry.future.done():
                    carry.future.set_exception(Closed("the server is shutting down", fix="retry"))
                raise
            except Exception:  # never let the worker die: every later request would hang
                log.exception("micro-batcher: unexpected error")

    async def _collect(self, first: _Job) -> tuple[list[_Job], _Job | None]:
        """Jobs for one batch, starting with ``first``; also the job that did not fit, if any."""
        loop = asyncio.get_running_loop()
        batch, count = [first], len(first.texts)
        deadline = loop.time() + self.wait
        while count < self.max_batch_texts:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if count + len(job.texts) > self.max_batch_texts:
                return batch, job
            batch.append(job)
            count += len(job.texts)
        return batch, None

    async def _run_batch(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        texts = [text for job in batch for text in job.texts]
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(texts))
        try:
            results = await loop.run_in_executor(self._executor, self.predict, texts)
        except Exception as err:
            if len(batch) == 1:
                self._finish(batch[0], error=err)
                return
            # one bad request must not fail the others that happened to share its batch
            log.warning("a batch of %d requests failed (%s); retrying them one at a time", len(batch), err)
            for job in batch:
                await self._run_batch([job])
            return
        position = 0
        for job in batch:
            self._finish(job, results=list(results[position:position + len(job.texts)]))
            position += len(job.texts)

    def _finish(self, job: _Job, *, results: list | None = None, error: Exception | None = None) -> None:
        self.stats.requests += 1
        self.stats.texts += len(job.texts)
        if job.future.done():  # the caller disconnected while the model ran
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(results)
