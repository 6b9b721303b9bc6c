"""EdgeStore.query_many: ranked ids from the query, payloads and vectors by id after."""

import uuid
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.sparse import SparseVec
from retrieval.store import EdgeStore, PointRecord, Query, Scope


def _store(tmp_path: Path, n: int = 40) -> tuple[EdgeStore, np.ndarray, list[str]]:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]
    store = EdgeStore(tmp_path / "shard", 8)
    store.upsert(
        [
            PointRecord(
                id=ids[i],
                dense=vectors[i],
                sparse=SparseVec([i % 5, 10 + i % 3], [1.0, 0.5]),
                payload={
                    "version_id": i,
                    "audience": "patient" if i % 4 else "staff",
                    "text": f"passage {i}",
                },
            )
            for i in range(n)
        ]
    )
    return store, vectors, ids


def test_hits_carry_payload_and_vector_in_rank_order(tmp_path: Path) -> None:
    store, vectors, ids = _store(tmp_path)
    try:
        scope = Scope(audiences=("patient",))
        queries = [
            Query(vectors[3], SparseVec([3], [1.0]), scope, limit=6),
            Query(vectors[9], SparseVec([4], [1.0]), scope, limit=6, mode="dense"),
        ]
        for q, hits in zip(queries, store.query_many(queries), strict=True):
            assert len(hits) == 6
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            for hit in hits:
                i = ids.index(hit.id)
                assert hit.payload["version_id"] == i and hit.payload["text"] == f"passage {i}"
                assert hit.payload["audience"] == "patient"  # the filter applied
                assert hit.dense is not None
                assert np.allclose(hit.dense, vectors[i], atol=1e-6)
            if q.mode == "dense":  # plain cosine: the scores are the vectors' dot products
                cosines = [float(np.dot(h.dense, q.dense)) for h in hits if h.dense is not None]
                assert np.allclose([h.score for h in hits], cosines)
        assert store.query(queries[0].dense, queries[0].sparse, scope, 6)[0].id == ids[3]
    finally:
        store.close()


def test_a_point_gone_before_its_payload_is_read_is_left_out(tmp_path: Path) -> None:
    store, vectors, _ = _store(tmp_path)
    try:
        q = Query(vectors[5], SparseVec([0], [1.0]), Scope(), limit=5, mode="dense")
        before = store.query_many([q])[0]
        gone = before[1].id
        shard: Any = store._shard

        class Racing:  # the version is replaced between the ranking and the read by id
            def __getattr__(self, name: str) -> Any:
                return getattr(shard, name)

            def retrieve(self, point_ids: list[Any], **kw: Any) -> Any:
                return [r for r in shard.retrieve(point_ids, **kw) if str(r.id) != gone]

        store._shard = Racing()  # type: ignore[assignment]
        after = store.query_many([q])[0]
        store._shard = shard
        assert [h.id for h in after] == [h.id for h in before if h.id != gone]
    finally:
        store.close()


def test_with_load_only_the_first_hits_are_read_and_the_rest_on_first_need(
    tmp_path: Path,
) -> None:
    store, vectors, _ = _store(tmp_path)
    shard: Any = store._shard
    reads: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(shard, name)

        def retrieve(self, point_ids: list[Any], **kw: Any) -> Any:
            reads.append(len(point_ids))
            return shard.retrieve(point_ids, **kw)

    try:
        scope = Scope(audiences=("patient",))
        queries = [  # dense: cosines do not tie, so both runs rank the same 8 points
            Query(vectors[3], SparseVec([3], [1.0]), scope, limit=8, mode="dense"),
            Query(vectors[9], SparseVec([4], [1.0]), Scope(), limit=8, mode="dense"),
        ]
        eager = store.query_many(queries)
        store._shard = Counting()  # type: ignore[assignment]
        lazy = store.query_many([Query(**{**q.__dict__, "load": 3}) for q in queries])
        assert reads == [6]  # the first 3 of each query, in one retrieve
        for got, expected in zip(lazy, eager, strict=True):
            # the same hits in (score, id) order, the unread ones read on first need
            assert [(h.id, h.score) for h in got] == sorted(
                ((h.id, h.score) for h in expected), key=lambda h: (-h[1], h[0])
            )
            by_id = {h.id: h for h in expected}
            assert all(h._unread is None for h in got[:3])
            assert all(h._unread is not None for h in got[3:])
            assert got[5].payload == by_id[got[5].id].payload  # reads all 5 unread at once
            assert reads[-1] == 5 and all(h._unread is None for h in got)
            for hit in got:
                dense, expected_dense = hit.dense, by_id[hit.id].dense
                assert dense is not None and expected_dense is not None
                assert np.array_equal(dense, expected_dense)
        assert reads == [6, 5, 5]
    finally:
        store._shard = shard
        store.close()


def test_a_point_gone_before_a_deferred_read_has_no_payload(tmp_path: Path) -> None:
    store, vectors, _ = _store(tmp_path)
    try:
        q = Query(vectors[5], SparseVec([0], [1.0]), Scope(), limit=5, mode="dense", load=1)
        hits = store.query_many([q])[0]
        store.delete_points([hits[2].id])
        assert hits[2].payload == {} and hits[2].dense is None  # no version: never served
        assert hits[1].payload["text"] and hits[3].dense is not None
    finally:
        store.close()


def test_the_sparse_weight_tilts_the_fusion_toward_the_dense_list(tmp_path: Path) -> None:
    """Weighted RRF (Qdrant: a hit at 0-based position p adds 1 / ((p + 1) / w + k - 1)):
    a BM25 weight of 0 orders hybrid hits as the dense list does; an equal weight lets
    the sparse list's best rise above the dense list's."""
    store, vectors, ids = _store(tmp_path)
    try:
        # the sparse query matches points 0, 5, 10 ... (term 0); the dense one points near 7
        base = Query(vectors[7], SparseVec([0], [1.0]), Scope(), limit=10)
        dense = [h.id for h in store.query_many([Query(**{**base.__dict__, "mode": "dense"})])[0]]
        equal, tilted = store.query_many([base, Query(**{**base.__dict__, "sparse_weight": 0.0})])
        matched = {ids[i] for i in range(0, 40, 5)}
        assert [h.id for h in tilted] == dense
        assert sum(h.id in matched for h in equal[:5]) > sum(h.id in matched for h in tilted[:5])
    finally:
        store.close()
