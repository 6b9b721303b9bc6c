"""Micro-batching of query embeddings: concurrent callers share one encoder call.

Callers block on a future (or await it, on an event loop) while one worker thread
encodes. Whatever arrived while the previous batch was encoding goes into the next
batch, so a lone caller pays no wait and 32 concurrent callers pay for a few batched
calls instead of 32 single ones.
An optional window (`max_wait_ms`) holds a batch open a little longer to fill it.
"""

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

Encode = Callable[[Sequence[str]], npt.NDArray[np.float32]]


class MicroBatcher:
    def __init__(self, encode: Encode, *, max_batch: int = 64, max_wait_ms: float = 0.0) -> None:
        self._encode = encode
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._queue: queue.SimpleQueue[tuple[str, Future[npt.NDArray[np.float32]]] | None] = (
            queue.SimpleQueue()
        )
        self.batches = 0
        self.items = 0
        self._worker = threading.Thread(target=self._run, name="query-embedder", daemon=True)
        self._worker.start()

    def submit(self, text: str) -> npt.NDArray[np.float32]:
        return self.future(text).result()

    def future(self, text: str) -> Future[npt.NDArray[np.float32]]:
        """The vector, later: for callers that wait without blocking a thread (asyncio)."""
        future: Future[npt.NDArray[np.float32]] = Future()
        self._queue.put((text, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)

    def _collect(
        self, first: tuple[str, Future[npt.NDArray[np.float32]]]
    ) -> tuple[list[tuple[str, Future[npt.NDArray[np.float32]]]], bool]:
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                remaining = deadline - time.monotonic()
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else (self._queue.get_nowait())
                )
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            try:
                vectors = self._encode([text for text, _ in batch])
            except BaseException as exc:  # hand the failure to every caller, keep serving
                for _, future in batch:
                    future.set_exception(exc)
            else:
                for (_, future), vector in zip(batch, vectors, strict=True):
                    future.set_result(vector)
            self.batches += 1
            self.items += len(batch)
            if stop:
                return


T = TypeVar("T")
R = TypeVar("R")


class TickBatcher(Generic[T, R]):
    """Coalesces calls made on an event loop within one turn of it into one batched call.

    When a micro-batch of embeddings comes back, its requests resume on the loop one
    after another; each `submit`s its query and waits, and the batch runs once they all
    have (scheduled with `call_soon`, so after the callbacks already queued). `run`
    executes on the loop: it must be quick CPU work, not I/O.
    """

    def __init__(self, run: Callable[[list[T]], list[R]]) -> None:
        self._run = run
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[T, asyncio.Future[R]]]] = {}
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        pending = self._pending.setdefault(loop, [])
        if not pending:
            loop.call_soon(self._flush, loop)
        pending.append((item, future))
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop, [])
        if not batch:
            return
        self.batches += 1
        self.items += len(batch)
        try:
            results = self._run([item for item, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # its request may have been cancelled meanwhile
                future.set_result(result)
