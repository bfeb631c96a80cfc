"""Dynamic batching: requests' rows queue up FIFO and run together, off the event loop.

Requests are tokenized in their own thread (see :mod:`squeezebert.serving.app`) while the model runs, so the rows of
the next batch are ready when the current batch ends. One runner thread then takes every row waiting, in arrival
order, up to ``max_batch_tokens`` (padded length x rows) and ``max_batch_requests`` requests, pads them into tensors
(well under a millisecond) and runs them through their pipeline's ``forward``; a request gets its outputs when its
last row has run. Taking the batch only when the model is free makes it as large as the waiting rows allow. Rows of
a request whose client went away are dropped before inference. A forward pass that raises fails the requests of that
batch (``backend``, 424) and the runner goes on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

from ..pipelines import Pipeline
from .errors import ServeError
from .metrics import ServeMetrics

logger = logging.getLogger(__name__)


@dataclass
class Timing:
    """Where a request's time went, in seconds."""

    tokenization: float = 0.0
    queue: float = 0.0
    inference: float = 0.0


@dataclass(eq=False)
class Job:
    """The rows of one request, waiting for their outputs."""

    pipeline: Pipeline
    rows: list[dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    outputs: list[dict[str, torch.Tensor]] = field(default_factory=list)
    remaining: int = 0
    started: float | None = None
    inference: float = 0.0
    gone: bool = False  # the client went away: drop the rest

    def __post_init__(self) -> None:
        self.outputs = [{}] * len(self.rows)
        self.remaining = len(self.rows)

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        """Hand the outputs (or the error) to the waiting request, from any thread."""

        def set_on_loop() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        self.loop.call_soon_threadsafe(set_on_loop)


@dataclass
class Batch:
    pipeline: Pipeline
    entries: list[tuple[Job, int]]  # (job, row index)


class BatchEngine:
    """The queue and the runner thread.

    Args:
        max_batch_tokens: most padded tokens (rows x longest row) in one forward pass.
        max_batch_requests: most requests with rows in one forward pass (None: no limit).
        metrics: where to count batches and the queue.
    """

    def __init__(self, max_batch_tokens: int, max_batch_requests: int | None, metrics: ServeMetrics) -> None:
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_requests = max_batch_requests
        self.metrics = metrics
        self.healthy = True
        self._pending: deque[tuple[Job, int]] = deque()
        self._queued = threading.Condition()
        self._stopping = False
        self._runner: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------------------------
    # The event loop's side

    def start(self) -> None:
        self._stopping = False
        self._runner = threading.Thread(target=self._run_batches, name="squeezebert-runner", daemon=True)
        self._runner.start()

    def stop(self) -> None:
        """Run what is queued, then end the runner."""
        with self._queued:
            self._stopping = True
            self._queued.notify_all()
        if self._runner is not None:
            self._runner.join()
            self._runner = None

    async def run(self, pipeline: Pipeline, rows: list[dict[str, Any]]) -> tuple[list[dict[str, torch.Tensor]], Job]:
        """The outputs of ``rows`` (one dict of tensors per row) and the job (for its timing).

        Cancelling the awaiting task (its client went away) drops the rows that have not run yet.
        """
        loop = asyncio.get_running_loop()
        job = Job(pipeline, rows, loop, loop.create_future())
        if not rows:
            return [], job
        with self._queued:
            if self._stopping:
                raise ServeError("unhealthy", "the server is shutting down")
            self._pending.extend((job, i) for i in range(len(rows)))
            self.metrics.queue_size.inc(len(rows))
            self._queued.notify()
        try:
            return await job.future, job
        except asyncio.CancelledError:
            job.gone = True  # the runner skips its rows
            self.metrics.dropped.inc()
            raise

    # ------------------------------------------------------------------------------------------------------------
    # The runner's thread

    def _run_batches(self) -> None:
        while True:
            with self._queued:
                while not self._pending and not self._stopping:
                    self._queued.wait()
                if not self._pending:  # stopping, and nothing left
                    return
                batch = self._take()
            if batch.entries:
                self._run(batch)

    def _take(self) -> Batch:
        """Pop the next batch from the queue (the caller holds the lock): rows in arrival order, of one pipeline,
        within the token and request limits; rows of requests whose client went away are dropped on the way."""
        pipeline = self._pending[0][0].pipeline
        entries: list[tuple[Job, int]] = []
        jobs: set[Job] = set()
        width = 0
        while self._pending:
            job, i = self._pending[0]
            if job.gone:
                self._pending.popleft()
                self.metrics.queue_size.dec()
                continue
            length = len(job.rows[i]["input_ids"])
            if job.pipeline is not pipeline or (
                entries and max(width, length) * (len(entries) + 1) > self.max_batch_tokens
            ):
                break
            if job not in jobs and self.max_batch_requests is not None and len(jobs) == self.max_batch_requests:
                break
            self._pending.popleft()
            self.metrics.queue_size.dec()
            entries.append((job, i))
            jobs.add(job)
            width = max(width, length)
        return Batch(pipeline, entries)

    def _run(self, batch: Batch) -> None:
        start = time.perf_counter()
        for job, _ in batch.entries:
            if job.started is None:
                job.started = start
        inputs = batch.pipeline.collate([job.rows[i] for job, i in batch.entries])
        rows, width = inputs["input_ids"].shape  # [rows, width]
        self.metrics.batch_size.observe(rows)
        self.metrics.batch_tokens.observe(rows * width)
        try:
            with torch.inference_mode():
                outputs = batch.pipeline.forward(inputs)
                outputs = {key: value.float().cpu() for key, value in outputs.items()}
        except Exception as err:  # noqa: BLE001 - out of memory, a kernel error...: this batch fails, not the server
            self.healthy = False
            self.metrics.batch_failure.inc()
            logger.warning("squeezebert serve: a forward pass of %d x %d tokens failed: %r", rows, width, err)
            error = ServeError("backend", f"inference failed: {type(err).__name__}: {err}", reason="inference")
            for job in {job for job, _ in batch.entries}:
                job.gone = True  # its other rows need not run
                job.settle(error=error)
            return
        self.healthy = True
        elapsed = time.perf_counter() - start
        self.metrics.batch_duration.observe(elapsed)
        for job in {job for job, _ in batch.entries}:
            job.inference += elapsed
        for n, (job, i) in enumerate(batch.entries):
            job.outputs[i] = {key: value[n] for key, value in outputs.items()}
            job.remaining -= 1
            if job.remaining == 0:
                job.settle(result=job.outputs)
