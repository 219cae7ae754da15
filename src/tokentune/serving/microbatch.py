"""Micro-batching: texts of requests that arrive within a few milliseconds of each other share one
forward pass, and no request holds the model for long.

Why batch: a transformer forward pass over 32 short texts costs little more than over one, so under
concurrent load batching multiplies throughput, while a lone request waits at most ``wait_ms`` more.

Why it is fair: a batch holds at most ``max_batch_texts`` texts and ``max_batch_chars`` characters
(a single longer text runs alone), and it is filled round-robin, one text per waiting request in
turn. A request of many long texts is therefore spread over many batches, and a small request that
arrives meanwhile joins the next one instead of waiting for the whole large request. Each text's
result is the model's answer for that text alone (up to float rounding), so results are the same however
texts are batched, and every request gets its results in its own order. (An int8 model's answers depend
on its batch: the app gives it one text per call, ``app.each_text_alone``.)

One worker task owns the model. The model itself runs in a single dedicated thread: the event loop
must keep answering (``/health``, 503s, new requests) while a batch runs, and one thread means the
Tagger is never called concurrently.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..errors import TokentuneError
from .validation import Limits

log = logging.getLogger("tokentune.serving")

# texts in, one result per text out (Tagger.predict_texts)
Predict = Callable[[list[str]], Sequence]


class Overloaded(TokentuneError):
    """The queue of requests waiting for the model is full (the server answers 503)."""


class Closed(TokentuneError):
    """The batcher is not running: the server is starting or shutting down (the server answers 503)."""


@dataclass(eq=False)  # compared and hashed by identity
class _Job:
    texts: list[str]
    future: asyncio.Future
    taken: int = 0  # texts handed to a batch so far
    answered: int = 0  # results received so far
    results: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.results = [None] * len(self.texts)


# one text of a batch: its request and its index in that request
Slot = tuple[_Job, int]


@dataclass
class BatchStats:
    requests: int = 0  # requests answered (with results or an error)
    texts: int = 0
    batches: int = 0  # forward passes (calls of ``predict``)
    largest_batch: int = 0  # texts


class MicroBatcher:
    """Runs the texts of queued requests in bounded batches, round-robin across requests.

    A batch closes when it is full (``max_batch_texts`` texts or ``max_batch_chars`` characters), or
    ``batch_wait_ms`` after the worker found the first waiting request. ``max_queue`` bounds the
    requests with texts not yet taken into a batch. The settings come from :class:`Limits`, which
    checks them.
    """

    def __init__(self, predict: Predict, limits: Limits | None = None) -> None:
        limits = limits or Limits()
        self.predict = predict
        self.max_batch_texts = limits.max_batch_texts
        self.max_batch_chars = limits.max_batch_chars
        self.wait = limits.batch_wait_ms / 1000
        self.max_queue = limits.max_queue
        self.stats = BatchStats()
        self._waiting: deque[_Job] = deque()  # round-robin order: the front gives the next text
        self._jobs: set[_Job] = set()  # every accepted request not answered yet
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    @property
    def pending(self) -> int:
        """Requests with texts still waiting for a batch (not counting those wholly in the running one)."""
        return len(self._waiting)

    async def start(self) -> None:
        """Start the worker on the running event loop."""
        if self.running:
            return
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokentune-model")
        self._worker = asyncio.create_task(self._run(), name="tokentune-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests not answered yet fail with :class:`Closed`. The server drains
        in-flight requests before it calls this, so on a graceful shutdown none are left."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        for job in list(self._jobs):
            self._fail(job, Closed("the server is shutting down", fix="retry on another instance"))
        self._waiting.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def submit(self, texts: list[str]) -> list:
        """Queue ``texts`` and wait for their results, in order; raises :class:`Overloaded` at once when full."""
        if not self.running or self._wake is None:
            raise Closed("the model worker is not running", fix="retry in a moment")
        if not texts:
            return []
        if len(self._waiting) >= self.max_queue:
            raise Overloaded(f"{self.max_queue} requests are already waiting for the model (--max-queue)",
                             fix="retry after the Retry-After seconds, or raise --max-queue")
        job = _Job(list(texts), asyncio.get_running_loop().create_future())
        self._waiting.append(job)
        self._jobs.add(job)
        self._wake.set()
        try:
            return await job.future
        finally:
            if job.future.cancelled():  # the caller went away: its texts need not run
                self._forget(job)

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                if batch:
                    await self._run_batch(batch)
            except Exception:  # never let the worker die: every later request would hang
                log.exception("micro-batcher: unexpected error")
                for job in {job for job, _ in batch}:
                    self._fail(job, RuntimeError("micro-batcher error"))

    async def _next_batch(self) -> list[Slot]:
        """Wait for a waiting request, then up to ``wait`` for more unless a batch is already full."""
        loop = asyncio.get_running_loop()
        while not self._waiting:
            self._wake.clear()
            await self._wake.wait()
        deadline = loop.time() + self.wait
        while not self._full():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return self._take()

    def _full(self) -> bool:
        """Whether the waiting texts fill a batch (stops counting as soon as they do)."""
        texts = chars = 0
        for job in self._waiting:
            for text in job.texts[job.taken:]:
                texts, chars = texts + 1, chars + len(text)
                if texts >= self.max_batch_texts or chars >= self.max_batch_chars:
                    return True
        return False

    def _take(self) -> list[Slot]:
        """The next batch: one text from each waiting request in turn, within the batch's bounds."""
        batch: list[Slot] = []
        chars = 0
        while self._waiting and len(batch) < self.max_batch_texts:
            job = self._waiting[0]
            if job.future.done():  # cancelled: its caller went away
                self._forget(job)
                continue
            text = job.texts[job.taken]
            if batch and chars + len(text) > self.max_batch_chars:
                break  # this request is first in line for the next batch
            self._waiting.popleft()
            batch.append((job, job.taken))
            chars += len(text)
            job.taken += 1
            if job.taken < len(job.texts):
                self._waiting.append(job)  # to the back of the line
        return batch

    async def _run_batch(self, batch: list[Slot]) -> None:
        loop = asyncio.get_running_loop()
        texts = [job.texts[index] for job, index in batch]
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(texts))
        try:
            results = await loop.run_in_executor(self._executor, self.predict, texts)
            if len(results) != len(texts):
                raise RuntimeError(f"the model gave {len(results)} results for {len(texts)} texts")
        except Exception as err:
            jobs = list(dict.fromkeys(job for job, _ in batch))
            if len(jobs) == 1:
                self._fail(jobs[0], err)
                return
            # one bad request must not fail the others that happened to share its batch
            log.warning("a batch of %d requests failed (%s); retrying them one at a time", len(jobs), err)
            for job in jobs:
                await self._run_batch([slot for slot in batch if slot[0] is job])
            return
        for (job, index), result in zip(batch, results):
            self._answer(job, index, result)

    def _answer(self, job: _Job, index: int, result) -> None:
        if job not in self._jobs:  # failed or forgotten meanwhile
            return
        job.results[index] = result
        job.answered += 1
        if job.answered == len(job.texts):
            self._finish(job)
            if not job.future.done():
                job.future.set_result(job.results)

    def _fail(self, job: _Job, error: Exception) -> None:
        if job not in self._jobs:
            return
        self._finish(job)
        if job in self._waiting:
            self._waiting.remove(job)
        if not job.future.done():
            job.future.set_exception(error)

    def _finish(self, job: _Job) -> None:
        self._jobs.discard(job)
        self.stats.requests += 1
        self.stats.texts += len(job.texts)

    def _forget(self, job: _Job) -> None:
        self._jobs.discard(job)
        if job in self._waiting:
            self._waiting.remove(job)
