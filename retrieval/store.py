"""One small vector-store interface over Qdrant Edge (in-process) and a Qdrant server.

Both keep the same collection schema: a named dense vector `dense` (cosine), a
named sparse vector `sparse` (IDF modifier, BM25 weights), and payload indexes
on the fields retrieval filters by.
"""

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from governance.errors import IndexUnavailable
from retrieval.sparse import SparseVec

EXPORT_BATCH = 512

# When `EdgeStore.maintain` runs `EdgeShard.optimize()` (HNSW build). qdrant-edge never
# optimises on its own, and `optimize()` holds the GIL for its whole run (about 1 CPU s
# per 1k random 384-d points; every other thread of the process, `canon serve`'s event
# loop included, waits), so it runs only once this many points have been written since
# the last one, or a tenth of the shard if that is more (Qdrant's indexing optimizer
# rebuilds the smallest indexed segment together with the new points, so each run costs
# about that segment's size: the fraction bounds that cost per point written).
# Qdrant's own threshold (10,000 KB: ~6.7k 384-d vectors) is below this, so a run that
# passes the gate indexes. Measurements: bench/README.md, "1M chunks".
INDEX_AFTER_POINTS = 10_000
INDEX_AFTER_FRACTION = 0.1

DENSE = "dense"
SPARSE = "sparse"
KEYWORD_FIELDS = ("article_id", "service_line", "audience", "status")
INTEGER_FIELDS = ("version_id", "version")
BOOL_FIELDS = ("clinical",)

Mode = Literal["hybrid", "dense", "sparse"]
Dense = Sequence[float] | npt.NDArray[np.float32]


@dataclass(frozen=True)
class PointRecord:
    id: str
    dense: Dense
    sparse: SparseVec
    payload: dict[str, Any]


class Hit:
    """One ranked point: its id, the query's score, its payload and dense vector.

    From `EdgeStore.query_many` with `Query.load`, the payload and vector of the hits
    past the first `load` are read on first access (one `retrieve` for all of that
    query's unread hits); a point deleted before then reads as an empty payload and no
    vector, which no live-version check accepts."""

    __slots__ = ("_dense", "_payload", "_unread", "id", "score")

    def __init__(
        self,
        id: str,
        score: float,
        payload: dict[str, Any] | None = None,
        dense: npt.NDArray[np.float32] | None = None,
        *,
        unread: "_Unread | None" = None,
    ) -> None:
        self.id = id
        self.score = score
        self._payload = payload if payload is not None else {}
        self._dense = dense
        self._unread = unread

    @property
    def payload(self) -> dict[str, Any]:
        if self._unread is not None:
            self._unread.read()
        return self._payload

    @property
    def dense(self) -> npt.NDArray[np.float32] | None:
        if self._unread is not None:
            self._unread.read()
        return self._dense

    def __repr__(self) -> str:
        state = "unread" if self._unread is not None else f"payload={self._payload!r}"
        return f"Hit(id={self.id!r}, score={self.score!r}, {state})"


class _Unread:
    """The hits of one query whose payloads and vectors are read on first need."""

    def __init__(self, shard: Any, hits: list[Hit]) -> None:
        self._shard = shard
        self._hits = hits

    def read(self) -> None:
        hits, self._hits = self._hits, []
        if not hits:
            return
        records = {
            str(r.id): r
            for r in self._shard.retrieve(
                [h.id for h in hits], with_payload=True, with_vector=[DENSE]
            )
        }
        for hit in hits:
            record = records.get(hit.id)
            if record is not None:
                hit._payload = record.payload or {}
                hit._dense = _dense_of(record.vector)
            hit._unread = None


@dataclass(frozen=True)
class Scope:
    """Payload filter: which audiences and service lines a query may see."""

    audiences: tuple[str, ...] = ()
    service_lines: tuple[str, ...] = ()
    version_ids: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class Query:
    """One `VectorStore.query` call's arguments, for `query_many`."""

    dense: Dense
    sparse: SparseVec
    scope: Scope
    limit: int
    mode: Mode = "hybrid"
    fusion_k: int = 60
    # RRF weight of the sparse (BM25) list against the dense list's 1.0 (hybrid only).
    # Qdrant's weighted RRF: a hit at 0-based position p adds 1 / ((p + 1) / w + k - 1),
    # so a weight stretches the list's ranks (w = 0: the list counts for nothing).
    sparse_weight: float = 1.0
    # Read payloads and vectors of the first `load` hits (by score, then id) with the
    # query and the rest only if asked for (0: all with the query). Retrieval reads hits
    # in that order until it has its `top_k` live passages, usually the first `top_k` of
    # the `top_k x overfetch` ranked; reading all 15 cost more than the ranking itself.
    load: int = 0


class VectorStore(Protocol):
    def upsert(self, points: Sequence[PointRecord]) -> None: ...

    def delete_version(self, version_id: int) -> None: ...

    def delete_versions(self, version_ids: Sequence[int]) -> None: ...

    def delete_points(self, ids: Sequence[str]) -> None: ...

    def maintain(self, *, force: bool = False) -> bool:
        """Build search indexes over recently written points if enough have piled up
        (`force`: ask the engine regardless). True if anything was rebuilt."""
        ...

    def query(
        self,
        dense: Dense,
        sparse: SparseVec,
        scope: Scope,
        limit: int,
        mode: Mode = "hybrid",
        fusion_k: int = 60,
        sparse_weight: float = 1.0,
    ) -> list[Hit]: ...

    def query_many(self, queries: Sequence[Query]) -> list[list[Hit]]:
        """Several queries at once, results in order (cheaper than one by one when the
        store can plan them together)."""
        ...

    def point_versions(self) -> dict[str, int]:
        """Every point id in the collection with its version id (for `canon doctor`)."""
        ...

    def count(self) -> int: ...

    def export_points(self) -> Iterator[PointRecord]:
        """Every point with both vectors and its payload, exactly as stored (backups)."""
        ...

    def clear(self) -> None:
        """Delete every point (a restore replaces the collection's content)."""
        ...

    def close(self) -> None: ...


def _batches(items: Sequence[PointRecord], size: int) -> Iterable[Sequence[PointRecord]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class EdgeStore:
    """Qdrant Edge shard in a local directory; one process holds it at a time."""

    def __init__(
        self,
        path: Path,
        dim: int | None,
        *,
        index_after: int = INDEX_AFTER_POINTS,
        index_after_fraction: float = INDEX_AFTER_FRACTION,
    ) -> None:
        """`dim=None` opens an existing shard as it is (no model needed to know its size)."""
        import qdrant_edge as qe

        self._qe = qe
        self.path = path
        self.index_after = index_after
        self.index_after_fraction = index_after_fraction
        self._maintaining = threading.Lock()
        self._filters: dict[Scope, Any] = {}
        config = (
            qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            )
            if dim is not None
            else None
        )
        try:
            if (path / "wal").exists() or (path / "segments").exists():
                self._shard = qe.EdgeShard.load(str(path), config)
            elif config is None:
                raise IndexUnavailable(f"there is no index at {path}")
            else:
                path.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(path), config)
        except IndexUnavailable:
            raise
        except Exception as exc:
            message = str(exc)
            if "WouldBlock" in message or "lock" in message.lower():
                raise IndexUnavailable(
                    f"the index at {path} is open in another process (is `canon serve` "
                    "running?); stop it or publish through the API"
                ) from exc
            raise IndexUnavailable(f"cannot open the index at {path}: {message}") from exc
        self._ensure_payload_indexes()
        self._unindexed = self._unindexed_estimate()

    def _unindexed_estimate(self) -> int:
        """Dense vectors outside any HNSW graph, from `info()`: every point has a sparse
        vector, which always counts as indexed, so that is 2 x points - indexed. Deleted
        points still stored count as indexed until a vacuum, so after replacements this
        is low; the count of points written since (kept in `upsert`) makes up for it in a
        long-running process, and `maintain(force=True)` asks Qdrant itself."""
        info = self._shard.info()
        return max(0, 2 * int(info.points_count) - int(info.indexed_vectors_count))

    @property
    def unindexed(self) -> int:
        """Points written since the last optimize (or estimated unindexed at open)."""
        return self._unindexed

    def maintain(self, *, force: bool = False) -> bool:
        """Run `EdgeShard.optimize()` once enough points are outside an HNSW graph:
        `index_after` points, or `index_after_fraction` of the shard if that is more.

        Small publishes return at once (no engine call). Called after every write batch
        of `IndexSync` and by `canon doctor`'s repair (`force=True`: Qdrant's own
        optimizers decide; with nothing to do that costs about 0.1 ms). Readers are never
        broken by it (queries during an optimize return full results) but they wait: the
        engine holds the GIL until the optimize ends. One optimize at a time; a caller
        that finds one running returns False."""
        if not force:
            if self._unindexed < self.index_after:
                return False
            points = int(self._shard.info().points_count)
            if self._unindexed < self.index_after_fraction * points:
                return False
        if not self._maintaining.acquire(blocking=False):
            return False
        try:
            changed = self._optimize()
            self._unindexed = self._unindexed_estimate()
        finally:
            self._maintaining.release()
        return changed

    def _optimize(self) -> bool:
        return bool(self._shard.optimize())

    def _ensure_payload_indexes(self) -> None:
        qe = self._qe
        have = set(self._shard.info().payload_schema)
        wanted = (
            [(name, qe.PayloadSchemaType.Keyword) for name in KEYWORD_FIELDS]
            + [(name, qe.PayloadSchemaType.Integer) for name in INTEGER_FIELDS]
            + [(name, qe.PayloadSchemaType.Bool) for name in BOOL_FIELDS]
        )
        for name, schema in wanted:
            if name not in have:
                self._shard.update(qe.UpdateOperation.create_field_index(name, schema))

    def upsert(self, points: Sequence[PointRecord]) -> None:
        qe = self._qe
        for batch in _batches(points, 256):
            self._shard.update(
                qe.UpdateOperation.upsert_points(
                    [
                        qe.Point(
                            id=p.id,
                            vector={
                                DENSE: [float(x) for x in p.dense],
                                SPARSE: qe.SparseVector(p.sparse.indices, p.sparse.values),
                            },
                            payload=p.payload,
                        )
                        for p in batch
                    ]
                )
            )
        self._shard.flush()
        self._unindexed += len(points)

    def delete_version(self, version_id: int) -> None:
        qe = self._qe
        self._shard.update(
            qe.UpdateOperation.delete_points_by_filter(
                qe.Filter(
                    must=[qe.FieldCondition(key="version_id", match=qe.MatchValue(version_id))]
                )
            )
        )
        self._shard.flush()

    def delete_versions(self, version_ids: Sequence[int]) -> None:
        qe = self._qe
        if not version_ids:
            return
        self._shard.update(
            qe.UpdateOperation.delete_points_by_filter(
                qe.Filter(
                    must=[qe.FieldCondition(key="version_id", match=qe.MatchAny(list(version_ids)))]
                )
            )
        )
        self._shard.flush()

    def delete_points(self, ids: Sequence[str]) -> None:
        if ids:
            self._shard.update(self._qe.UpdateOperation.delete_points(list(ids)))
            self._shard.flush()

    def _filter(self, scope: Scope) -> Any:
        qe = self._qe
        must: list[Any] = []
        if scope.audiences:
            must.append(qe.FieldCondition(key="audience", match=qe.MatchAny(list(scope.audiences))))
        if scope.service_lines:
            must.append(
                qe.FieldCondition(key="service_line", match=qe.MatchAny(list(scope.service_lines)))
            )
        if scope.version_ids:
            must.append(
                qe.FieldCondition(key="version_id", match=qe.MatchAny(list(scope.version_ids)))
            )
        return qe.Filter(must=must) if must else None

    def query(
        self,
        dense: Dense,
        sparse: SparseVec,
        scope: Scope,
        limit: int,
        mode: Mode = "hybrid",
        fusion_k: int = 60,
        sparse_weight: float = 1.0,
    ) -> list[Hit]:
        return self.query_many([Query(dense, sparse, scope, limit, mode, fusion_k, sparse_weight)])[
            0
        ]

    def query_many(self, queries: Sequence[Query]) -> list[list[Hit]]:
        """Ranked ids from one `query_batch` (Qdrant plans the batch together: about half
        the CPU per query of single calls at 100k points), then every hit's payload and
        dense vector from one `retrieve` by id.

        Two steps because asking the query itself for payloads and vectors cost more
        than the search at 100k points (3.4 ms a query against 1.4 ms for ids and
        scores alone; the `retrieve` of the same 15 points with both takes about
        0.1 ms). A point deleted between the two steps (its version was just replaced)
        is left out, as a reader would drop it a moment later anyway."""
        requests = [self._request(q) for q in queries]
        if len(requests) == 1:
            ranked = [self._shard.query(requests[0])]
        else:
            ranked = self._shard.query_batch(self._qe.QueryBatchRequest(requests))
        # (score, id) order, as retrieval reads them: the first `load` are read now
        ordered = [
            sorted(((str(p.id), float(p.score)) for p in points), key=lambda h: (-h[1], h[0]))
            for points in ranked
        ]
        now = [
            hits[: q.load] if q.load > 0 else hits for q, hits in zip(queries, ordered, strict=True)
        ]
        ids: list[Any] = list({point_id: None for hits in now for point_id, _ in hits})
        records = (
            {
                str(record.id): record
                for record in self._shard.retrieve(ids, with_payload=True, with_vector=[DENSE])
            }
            if ids
            else {}
        )
        out: list[list[Hit]] = []
        for first, hits in zip(now, ordered, strict=True):
            found = [
                Hit(
                    point_id,
                    score,
                    record.payload or {},  # a new dict on every access: no copy
                    _dense_of(record.vector),
                )
                for point_id, score in first
                if (record := records.get(point_id)) is not None
            ]
            rest = [Hit(point_id, score) for point_id, score in hits[len(first) :]]
            if rest:
                unread = _Unread(self._shard, rest)
                for hit in rest:
                    hit._unread = unread
            out.append(found + rest)
        return out

    def _request(self, q: Query) -> Any:
        qe = self._qe
        flt = self._filters.get(q.scope)
        if flt is None:  # a handful of scopes recur: build each filter once
            if len(self._filters) >= 1024:
                self._filters.clear()
            flt = self._filters[q.scope] = self._filter(q.scope)
        dense_q = qe.Query.Nearest(_floats(q.dense), using=DENSE)
        sparse_q = qe.Query.Nearest(
            qe.SparseVector(q.sparse.indices, q.sparse.values), using=SPARSE
        )
        if q.mode == "hybrid":
            return qe.QueryRequest(
                limit=q.limit,
                prefetches=[
                    qe.Prefetch(limit=q.limit * 2, query=dense_q, filter=flt),
                    qe.Prefetch(limit=q.limit * 2, query=sparse_q, filter=flt),
                ],
                query=qe.Fusion.Rrf(k=q.fusion_k, weights=[1.0, q.sparse_weight])
                if q.sparse_weight != 1.0
                else qe.Fusion.Rrf(k=q.fusion_k),
                filter=flt,
                with_payload=False,
                with_vector=False,
            )
        return qe.QueryRequest(
            limit=q.limit,
            query=dense_q if q.mode == "dense" else sparse_q,
            filter=flt,
            with_payload=False,
            with_vector=False,
        )

    def point_versions(self) -> dict[str, int]:
        qe = self._qe
        found: dict[str, int] = {}
        offset: Any = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=1024,
                    with_payload=qe.PayloadSelector.Include(["version_id"]),
                )
            )
            for record in records:
                found[str(record.id)] = int((record.payload or {}).get("version_id", -1))
            if offset is None:
                return found

    def count(self) -> int:
        return int(self._shard.count(self._qe.CountRequest(exact=True)))

    def export_points(self) -> Iterator[PointRecord]:
        qe = self._qe
        offset: Any = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(
                    offset=offset, limit=EXPORT_BATCH, with_payload=True, with_vector=True
                )
            )
            for record in records:
                yield _exported(record.id, record.vector, record.payload)
            if offset is None:
                return

    def clear(self) -> None:
        self._shard.update(self._qe.UpdateOperation.delete_points_by_filter(self._qe.Filter()))
        self._shard.flush()

    def close(self) -> None:
        self._shard.flush()
        self._shard.close()


def _exported(point_id: Any, vector: Any, payload: Any) -> PointRecord:
    sparse = vector.get(SPARSE) if isinstance(vector, dict) else None
    return PointRecord(
        id=str(point_id),
        dense=np.asarray(vector[DENSE], dtype=np.float32),
        sparse=SparseVec(list(sparse.indices), list(sparse.values))
        if sparse
        else SparseVec([], []),
        payload=dict(payload or {}),
    )


def _floats(vector: Dense) -> list[float]:
    if isinstance(vector, np.ndarray):
        return list(vector.astype(np.float64).tolist())  # Python floats at once, in C
    return [float(x) for x in vector]


def _hits(points: Iterable[Any]) -> list[Hit]:
    return [
        Hit(
            id=str(point.id),
            score=float(point.score),
            payload=dict(point.payload or {}),
            dense=_dense_of(point.vector),
        )
        for point in points
    ]


def _dense_of(vector: Any) -> npt.NDArray[np.float32] | None:
    if isinstance(vector, dict) and DENSE in vector:
        values = vector[DENSE]
        if isinstance(values, list):  # Python floats: about half the time of np.asarray
            return np.fromiter(values, dtype=np.float32, count=len(values))
        return np.asarray(values, dtype=np.float32)
    return None


class ServerStore:
    """A Qdrant server or cluster through qdrant-client (the scale path)."""

    def __init__(
        self,
        url: str,
        dim: int,
        *,
        api_key: str | None = None,
        collection: str = "canon",
        shard_number: int | None = None,
        replication_factor: int | None = None,
    ) -> None:
        from qdrant_client import QdrantClient, models

        self._m = models
        self.collection = collection
        try:
            self._client = QdrantClient(url=url, api_key=api_key, timeout=30)
            exists = self._client.collection_exists(collection)
        except Exception as exc:
            raise IndexUnavailable(f"cannot reach Qdrant at {url}: {exc}") from exc
        if not exists:
            self._client.create_collection(
                collection,
                vectors_config={
                    DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)
                },
                sparse_vectors_config={
                    SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
                shard_number=shard_number,
                replication_factor=replication_factor,
            )
            for name in KEYWORD_FIELDS:
                self._client.create_payload_index(
                    collection, name, models.PayloadSchemaType.KEYWORD
                )
            for name in INTEGER_FIELDS:
                self._client.create_payload_index(
                    collection, name, models.PayloadSchemaType.INTEGER
                )
            for name in BOOL_FIELDS:
                self._client.create_payload_index(collection, name, models.PayloadSchemaType.BOOL)

    def upsert(self, points: Sequence[PointRecord]) -> None:
        m = self._m
        for batch in _batches(points, 256):
            self._client.upsert(
                self.collection,
                points=[
                    m.PointStruct(
                        id=p.id,
                        vector={
                            DENSE: [float(x) for x in p.dense],
                            SPARSE: m.SparseVector(
                                indices=p.sparse.indices, values=p.sparse.values
                            ),
                        },
                        payload=p.payload,
                    )
                    for p in batch
                ],
                wait=True,
            )

    def delete_version(self, version_id: int) -> None:
        m = self._m
        self._client.delete(
            self.collection,
            points_selector=m.FilterSelector(
                filter=m.Filter(
                    must=[m.FieldCondition(key="version_id", match=m.MatchValue(value=version_id))]
                )
            ),
            wait=True,
        )

    def delete_versions(self, version_ids: Sequence[int]) -> None:
        m = self._m
        if not version_ids:
            return
        self._client.delete(
            self.collection,
            points_selector=m.FilterSelector(
                filter=m.Filter(
                    must=[
                        m.FieldCondition(key="version_id", match=m.MatchAny(any=list(version_ids)))
                    ]
                )
            ),
            wait=True,
        )

    def delete_points(self, ids: Sequence[str]) -> None:
        if ids:
            self._client.delete(
                self.collection, points_selector=self._m.PointIdsList(points=list(ids)), wait=True
            )

    def maintain(self, *, force: bool = False) -> bool:
        """Nothing to do: a Qdrant server runs its optimizers itself, in the background."""
        return False

    def _filter(self, scope: Scope) -> Any:
        m = self._m
        must: list[Any] = []
        if scope.audiences:
            must.append(
                m.FieldCondition(key="audience", match=m.MatchAny(any=list(scope.audiences)))
            )
        if scope.service_lines:
            must.append(
                m.FieldCondition(
                    key="service_line", match=m.MatchAny(any=list(scope.service_lines))
                )
            )
        if scope.version_ids:
            must.append(
                m.FieldCondition(key="version_id", match=m.MatchAny(any=list(scope.version_ids)))
            )
        return m.Filter(must=must) if must else None

    def query(
        self,
        dense: Dense,
        sparse: SparseVec,
        scope: Scope,
        limit: int,
        mode: Mode = "hybrid",
        fusion_k: int = 60,
        sparse_weight: float = 1.0,
    ) -> list[Hit]:
        m = self._m
        flt = self._filter(scope)
        dense_list = [float(x) for x in dense]
        sparse_vec = m.SparseVector(indices=sparse.indices, values=sparse.values)
        if mode == "hybrid":
            response = self._client.query_points(
                self.collection,
                prefetch=[
                    m.Prefetch(query=dense_list, using=DENSE, limit=limit * 2, filter=flt),
                    m.Prefetch(query=sparse_vec, using=SPARSE, limit=limit * 2, filter=flt),
                ],
                query=m.RrfQuery(
                    rrf=m.Rrf(k=fusion_k, weights=[1.0, sparse_weight])
                    if sparse_weight != 1.0
                    else m.Rrf(k=fusion_k)
                ),
                query_filter=flt,
                limit=limit,
                with_payload=True,
                with_vectors=[DENSE],
            )
        else:
            response = self._client.query_points(
                self.collection,
                query=dense_list if mode == "dense" else sparse_vec,
                using=DENSE if mode == "dense" else SPARSE,
                query_filter=flt,
                limit=limit,
                with_payload=True,
                with_vectors=[DENSE],
            )
        return _hits(response.points)

    def query_many(self, queries: Sequence[Query]) -> list[list[Hit]]:
        return [
            self.query(q.dense, q.sparse, q.scope, q.limit, q.mode, q.fusion_k, q.sparse_weight)
            for q in queries
        ]

    def point_versions(self) -> dict[str, int]:
        found: dict[str, int] = {}
        offset: Any = None
        while True:
            records, offset = self._client.scroll(
                self.collection, limit=1024, offset=offset, with_payload=["version_id"]
            )
            for record in records:
                found[str(record.id)] = int((record.payload or {}).get("version_id", -1))
            if offset is None:
                return found

    def count(self) -> int:
        return int(self._client.count(self.collection, exact=True).count)

    def export_points(self) -> Iterator[PointRecord]:
        offset: Any = None
        while True:
            records, offset = self._client.scroll(
                self.collection,
                limit=EXPORT_BATCH,
                offset=offset,
                with_payload=True,
                with_vectors=True,
            )
            for record in records:
                yield _exported(record.id, record.vector, record.payload)
            if offset is None:
                return

    def clear(self) -> None:
        self._client.delete(
            self.collection,
            points_selector=self._m.FilterSelector(filter=self._m.Filter()),
            wait=True,
        )

    def close(self) -> None:
        self._client.close()
