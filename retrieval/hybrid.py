"""Hybrid retrieval: dense + sparse prefetch, RRF fusion in Qdrant, live and fresh checks."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from governance.models import Audience, LiveVersion
from retrieval.batching import TickBatcher
from retrieval.catalog import Catalog, FreshnessMode, FreshnessPolicy
from retrieval.embed import Embedder
from retrieval.rerank import Reranker
from retrieval.sparse import SparseEncoder
from retrieval.store import Hit, Mode, Query, Scope, VectorStore


@dataclass(frozen=True)
class Passage:
    article_id: str
    version: int
    version_id: int
    title: str
    section: str
    text: str
    service_line: str
    audience: str
    clinical: bool
    stale: bool
    score: float  # rank-fusion score: order only
    relevance: float  # cosine of question and passage: comparable across queries
    point_id: str


# `group_by: article` reads this many passages per article asked for, at most ARTICLE_DEPTH
ARTICLE_OVERREAD = 5
ARTICLE_DEPTH = 100


def one_per_article(passages: Sequence[Passage], k: int) -> list[Passage]:
    """The first (best-ranked) passage of each article, in rank order, at most `k`."""
    seen: set[str] = set()
    out: list[Passage] = []
    for p in passages:
        if p.article_id not in seen:
            seen.add(p.article_id)
            out.append(p)
            if len(out) == k:
                break
    return out


def visible_audiences(audience: Audience) -> tuple[str, ...]:
    """Patients see patient content only; staff see both."""
    if audience == Audience.patient:
        return (Audience.patient.value,)
    return (Audience.patient.value, Audience.staff.value)


class Retriever:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        sparse: SparseEncoder,
        catalog: Catalog,
        *,
        freshness: FreshnessPolicy | None = None,
        fusion_k: int = 60,
        sparse_weight: float = 1.0,
        overfetch: int = 3,
        today: Callable[[], date] = date.today,
        reranker: Reranker | None = None,
        rerank_depth: int = 20,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.sparse = sparse
        self.catalog = catalog
        self.freshness = freshness or FreshnessPolicy()
        self.fusion_k = fusion_k
        self.sparse_weight = sparse_weight
        self.overfetch = overfetch
        self.today = today
        self.reranker = reranker
        self.rerank_depth = rerank_depth
        self._batched = TickBatcher(store.query_many)
        # the requests resumed together by one index batch share one epoch read
        self._epochs: TickBatcher[None, int] = TickBatcher(
            lambda waiting: [catalog.epoch()] * len(waiting)
        )

    def search(
        self,
        question: str,
        *,
        audience: Audience,
        service_lines: Sequence[str] = (),
        top_k: int = 5,
        mode: Mode = "hybrid",
        query_vector: npt.NDArray[np.float32] | None = None,
    ) -> list[Passage]:
        dense = self.embedder.embed_query(question) if query_vector is None else query_vector
        query = self._query(question, dense, audience, service_lines, top_k, mode)
        if query is None:
            return []
        hits = self.store.query_many([query])[0]
        return self._passages(question, dense, hits, self.catalog.live(), audience, top_k)

    async def search_async(
        self,
        question: str,
        query_vector: npt.NDArray[np.float32],
        *,
        audience: Audience,
        service_lines: Sequence[str] = (),
        top_k: int = 5,
    ) -> list[Passage]:
        """`search` on an event loop: concurrent requests' index queries run as one batch.
        (Without a reranker: that model is too slow for the loop.)"""
        query = self._query(question, query_vector, audience, service_lines, top_k, "hybrid")
        if query is None:
            return []
        hits = await self._batched.submit(query)
        live = self.catalog.live_at(await self._epochs.submit(None))
        return self._passages(question, query_vector, hits, live, audience, top_k)

    def _query(
        self,
        question: str,
        dense: npt.NDArray[np.float32],
        audience: Audience,
        service_lines: Sequence[str],
        top_k: int,
        mode: Mode,
    ) -> Query | None:
        sparse = self.sparse.query(question)
        if not sparse.indices:
            if mode == "sparse":
                return None
            mode = "dense"
        depth = max(top_k, self.rerank_depth) if self.reranker else top_k
        return Query(
            dense,
            sparse,
            Scope(audiences=visible_audiences(audience), service_lines=tuple(service_lines)),
            limit=depth * self.overfetch,
            mode=mode,
            fusion_k=self.fusion_k,
            sparse_weight=self.sparse_weight,
            load=depth,
        )

    def _passages(
        self,
        question: str,
        dense: npt.NDArray[np.float32],
        hits: Sequence[Hit],
        live: Mapping[int, LiveVersion],
        audience: Audience,
        top_k: int,
    ) -> list[Passage]:
        depth = max(top_k, self.rerank_depth) if self.reranker else top_k
        # Qdrant returns equal fused scores in arbitrary order (RRF ties are common), so
        # break ties by point id: the same question gets the same answer every time.
        hits = sorted(hits, key=lambda h: (-h.score, h.id))
        today = self.today()
        fresh: list[Passage] = []
        stale: list[Passage] = []
        for hit in hits:
            version = live.get(int(hit.payload.get("version_id", -1)))
            if version is None:
                continue  # not (or no longer) published
            if audience == Audience.patient and version.audience != Audience.patient:
                continue
            is_stale = self.freshness.stale(version, today)
            if (
                is_stale
                and audience == Audience.patient
                and self.freshness.mode == FreshnessMode.withhold
                and self.freshness.expired(version, today)
            ):
                continue
            relevance = float(np.dot(dense, hit.dense)) if hit.dense is not None else 0.0
            passage = Passage(
                article_id=version.article_id,
                version=version.number,
                version_id=version.version_id,
                title=version.title,
                section=str(hit.payload.get("section", "")),
                text=str(hit.payload.get("text", "")),
                service_line=version.service_line,
                audience=version.audience.value,
                clinical=version.clinical,
                stale=is_stale,
                score=hit.score,
                relevance=relevance,
                point_id=hit.id,
            )
            downrank = is_stale and self.freshness.mode == FreshnessMode.downrank
            (stale if downrank else fresh).append(passage)
            if len(fresh) >= depth:
                break  # what follows could only come after these: no need to read it
        if self.reranker is not None:
            fresh = self.reranker.rerank(question, fresh[:depth])
            stale = self.reranker.rerank(question, stale[:depth]) if stale else []
        return (fresh + stale)[:top_k]
