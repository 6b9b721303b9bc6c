"""The query encoder in a child process, so its compute never waits for the server's GIL.

In `canon serve` the event loop and the query encoder's worker thread share one GIL.
onnxruntime releases it while it computes, but the worker needs it back after every
call, and the loop holds it for long stretches that no switch interval can cut short:
a batched Qdrant Edge query at 100k points holds it for the whole batch (Edge does not
release it). Under 32 clients the two took turns instead of using both cores (1.3 of 2
cores busy). In a child process the model runs on its own core while the loop does
everything else; the worker thread only sends texts and receives vectors over a pipe.

The child loads the same encoder from the same settings (model directory, backend,
ONNX cache), so a vector is bit-for-bit what the in-process encoder gives (tested). If
the child dies, the next call starts a new one and tries once more.
"""

import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from governance.errors import IndexUnavailable

log = logging.getLogger("canon.encoder")
START_TIMEOUT_S = 300.0  # a cold ONNX export (first run on a machine) takes about 10 s


def _serve(conn: Connection, model_dir: str, backend: str, onnx_cache: str | None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from retrieval.embed import load_encoder

        encoder = load_encoder(Path(model_dir), backend, Path(onnx_cache) if onnx_cache else None)
    except BaseException as exc:  # the parent reports it; nothing to serve
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", encoder.dim, encoder.version))
    # An encoder that runs texts one per call (`run_batch = 1`, the int8 graph: a vector
    # must not depend on its batch-mates) has a batch spread over one thread per core;
    # onnxruntime releases the GIL while it computes. Any other encoder (PyTorch) gets the
    # batch in one call, as `Embedder.embed` gives it in-process, on its own threads.
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)

    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        if len(texts) == 1 or encoder.run_batch != 1:
            return encoder.encode(texts, 32)
        return np.concatenate(list(pool.map(lambda t: encoder.encode([t], 32), texts)))

    while True:
        try:
            texts = conn.recv()
        except (EOFError, OSError):  # the server went away
            return
        try:
            vectors = np.ascontiguousarray(encode(texts), dtype=np.float32)
        except Exception as exc:
            conn.send_bytes(b"E" + f"{type(exc).__name__}: {exc}".encode())
        else:
            conn.send_bytes(b"V" + vectors.tobytes())


class EncoderProcess:
    """`encode(texts)` in a child process; one caller at a time (the micro-batcher's thread)."""

    def __init__(self, model_dir: Path, backend: str, onnx_cache: Path | None = None) -> None:
        self._args = (str(model_dir), backend, str(onnx_cache) if onnx_cache else None)
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Connection | None = None
        self.dim = 0
        self.version = ""
        self.starts = 0
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=_serve, args=(child, *self._args), name="canon-query-encoder", daemon=True
        )
        process.start()
        child.close()
        if not parent.poll(START_TIMEOUT_S):
            process.kill()
            raise IndexUnavailable("the query encoder process did not start")
        try:
            reply = parent.recv()
        except EOFError:
            raise IndexUnavailable(
                f"the query encoder process exited while starting (code {process.exitcode})"
            ) from None
        if reply[0] != "ready":
            process.join(timeout=5)
            raise IndexUnavailable(f"the query encoder process failed to start: {reply[1]}")
        self._process, self._conn = process, parent
        self.dim, self.version = int(reply[1]), str(reply[2])
        self.starts += 1

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        with self._lock:
            try:
                return self._ask(texts)
            except (EOFError, OSError, BrokenPipeError):
                code = self._process.exitcode if self._process else None
                log.warning("query encoder process died (exit code %s); starting another", code)
                self._stop()
                self._start()
                return self._ask(texts)

    def _ask(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        conn = self._conn
        if conn is None:
            raise EOFError("no encoder process")
        conn.send(list(texts))
        payload = conn.recv_bytes()
        if payload[:1] != b"V":  # b"E" + the encoder's error
            raise RuntimeError(f"query encoder: {payload[1:].decode(errors='replace')}")
        vectors = np.frombuffer(payload, dtype=np.float32, offset=1)
        return vectors.reshape(len(texts), self.dim).copy()

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.kill()
            self._process = None

    def close(self) -> None:
        with self._lock:
            self._stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None
