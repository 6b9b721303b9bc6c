"""EdgeStore.maintain: the HNSW build (`EdgeShard.optimize()`) that qdrant-edge never runs
by itself, gated so that small publishes do not pay for it."""

import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.index import IndexSync
from retrieval.sparse import SparseVec
from retrieval.store import EdgeStore, PointRecord, Scope

DIM = 384  # Qdrant's own indexing threshold is in KB (~6.7k vectors of this size)


def _records(n: int, start: int = 0, seed: int = 3) -> tuple[list[PointRecord], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, 50, n)] + 0.3 * rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = [
        PointRecord(
            id=str(uuid.UUID(int=start + i + 1)),
            dense=vectors[i],
            sparse=SparseVec([i % 40, 50 + i % 7], [1.0, 0.5]),
            payload={"version_id": (start + i) % 20, "audience": "patient", "text": f"p{i}"},
        )
        for i in range(n)
    ]
    return records, vectors


def _spy(store: EdgeStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = store._optimize

    def spy() -> bool:
        calls.append(1)
        return real()

    monkeypatch.setattr(store, "_optimize", spy)
    return calls


def _dense_ids(store: EdgeStore, queries: np.ndarray) -> list[list[str]]:
    return [
        [h.id for h in store.query(q, SparseVec([1], [1.0]), Scope(), 5, "dense")] for q in queries
    ]


def test_past_the_threshold_the_shard_gets_its_hnsw_graph(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard", DIM, index_after=5000)
    try:
        records, vectors = _records(7000)
        store.upsert(records)
        info = store._shard.info()
        assert info.indexed_vectors_count == 7000  # the sparse vectors only: dense is plain
        assert store.unindexed == 7000
        before = _dense_ids(store, vectors[:30])

        assert store.maintain() is True
        info = store._shard.info()
        assert info.points_count == 7000
        assert info.indexed_vectors_count == 14000  # dense vectors now in an HNSW graph
        assert store.unindexed == 0
        after = _dense_ids(store, vectors[:30])
        assert [ids[0] for ids in after] == [ids[0] for ids in before]  # each finds itself
        overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(before, after, strict=True)])
        assert overlap >= 0.9
        assert store.maintain() is False  # nothing new: no engine call
    finally:
        store.close()


def test_reopening_counts_what_earlier_processes_left_unindexed(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    store = EdgeStore(tmp_path / "shard", 8)
    store.upsert(
        [
            PointRecord(
                str(uuid.UUID(int=i + 1)),
                rng.normal(size=8).astype(np.float32),
                SparseVec([i], [1.0]),
                {},
            )
            for i in range(120)
        ]
    )
    store.close()
    store = EdgeStore(tmp_path / "shard", None)
    try:
        assert store.unindexed == 120
    finally:
        store.close()


class _Sync(IndexSync):
    """IndexSync's write path with ready-made points (no model, no database)."""

    def __init__(self, store: EdgeStore, batches: list[list[PointRecord]]) -> None:
        self.store = store
        self._batches = iter(batches)

    def points(self, *_: Any) -> list[PointRecord]:
        return next(self._batches)


def test_small_publishes_do_not_optimize_but_enough_of_them_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EdgeStore(tmp_path / "shard", DIM, index_after=1000, index_after_fraction=0.5)
    calls = _spy(store, monkeypatch)
    records, _ = _records(1200)
    batches = [records[i : i + 200] for i in range(0, 800, 200)] + [records[800:]]
    sync = _Sync(store, batches)
    try:
        for _ in range(4):  # 800 points in publishes of 200: under the gate
            sync.add_version(None, None, [])  # type: ignore[arg-type]
        assert calls == []
        sync.add_versions([(None, None, [])])  # type: ignore[list-item]
        assert calls == [1]  # 1,200 >= 1,000 and >= half of 1,200
    finally:
        store.close()


def test_fraction_gate_waits_for_a_tenth_of_a_large_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EdgeStore(tmp_path / "shard", 8, index_after=10, index_after_fraction=0.5)
    calls = _spy(store, monkeypatch)
    rng = np.random.default_rng(2)
    pts = [
        PointRecord(
            str(uuid.UUID(int=i + 1)),
            rng.normal(size=8).astype(np.float32),
            SparseVec([i], [1.0]),
            {},
        )
        for i in range(100)
    ]
    try:
        store.upsert(pts)
        assert store.maintain() is False and calls == [1]  # engine: too small to index
        store._unindexed = 20  # 20 of 100: past 10 points, under half the shard
        assert store.maintain() is False and calls == [1]
        store.maintain(force=True)
        assert calls == [1, 1]
    finally:
        store.close()


def test_queries_during_an_optimize_return_full_results(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard", DIM, index_after=5000)
    records, vectors = _records(7000, seed=5)
    store.upsert(records)
    results: list[list[str]] = []
    errors: list[BaseException] = []
    started = threading.Event()

    def reader() -> None:
        started.set()
        for q in vectors[:20]:
            try:
                hits = store.query(q, SparseVec([1], [1.0]), Scope(audiences=("patient",)), 5)
                results.append([h.id for h in hits])
            except BaseException as exc:  # pragma: no cover - the failure being tested
                errors.append(exc)

    try:
        thread = threading.Thread(target=reader)
        thread.start()
        started.wait()
        assert store.maintain() is True
        thread.join(timeout=120)
        assert not thread.is_alive()
        assert errors == []
        assert len(results) == 20 and all(len(ids) == 5 for ids in results)
    finally:
        store.close()
