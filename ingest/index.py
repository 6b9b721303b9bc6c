"""Index sync: the IndexHook that publishing drives, and `doctor`, which repairs drift."""

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from governance import service
from governance.models import Article, ArticleVersion, Chunk
from ingest.chunk import embed_text
from retrieval.embed import Embedder
from retrieval.sparse import SparseEncoder
from retrieval.store import PointRecord, VectorStore


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class IndexSync:
    """Writes and removes a version's points; publishing decides when.

    With an engine, dense vectors are cached in the database by the hash of the
    exact text the model reads, so a new version re-embeds only what changed.
    """

    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        sparse: SparseEncoder,
        engine: Engine | None = None,
        *,
        warm_batch: int = 512,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.sparse = sparse
        self.engine = engine
        self.warm_batch = warm_batch
        self.embedded = 0  # passages run through the model (cache misses)
        self.reused = 0  # passages whose vector came from the cache

    def vectors(self, texts: Sequence[str], *, count_reuse: bool = True) -> npt.NDArray[np.float32]:
        """Dense vectors for `texts`, from the cache where possible."""
        if self.engine is None:
            self.embedded += len(texts)
            return self.embedder.embed(texts)
        keys = [text_key(t) for t in texts]
        model = self.embedder.cache_key
        with Session(self.engine) as session:
            cached = service.cached_vectors(session, model, keys)
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in cached}
        fresh: dict[str, bytes] = {}
        if missing:
            encoded = self.embedder.embed(list(missing.values()))
            fresh = {k: encoded[i].tobytes() for i, k in enumerate(missing)}
            with Session(self.engine) as session:
                service.cache_vectors(session, model, fresh)
        self.embedded += len(missing)
        if count_reuse:
            self.reused += len(texts) - len(missing)
        out = np.empty((len(texts), self.embedder.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = np.frombuffer(cached.get(key) or fresh[key], dtype=np.float32)
        return out

    def warm(self, session: Session, version_ids: Iterable[int]) -> None:
        """Embed many versions' passages ahead of publishing, in large length-sorted batches.

        Publishing then finds every vector in the cache; without this, each version
        would be embedded alone in batches of a few passages.
        """
        if self.engine is None:
            return
        pending: list[str] = []
        for version_id in version_ids:
            version = service.get_version(session, version_id)
            pending += [
                embed_text(version.title, c.section, c.text)
                for c in service.chunks_of(session, version_id)
            ]
            if len(pending) >= self.warm_batch:
                self.vectors(pending, count_reuse=False)
                pending = []
        if pending:
            self.vectors(pending, count_reuse=False)

    def points(
        self, article: Article, version: ArticleVersion, chunks: Sequence[Chunk]
    ) -> list[PointRecord]:
        texts = [embed_text(version.title, c.section, c.text) for c in chunks]
        dense = self.vectors(texts)
        return [
            PointRecord(
                id=chunk.point_id,
                dense=dense[i],
                sparse=self.sparse.document(texts[i]),
                payload={
                    "article_id": article.id,
                    "version_id": version.id,
                    "version": version.number,
                    "status": "published",
                    "title": version.title,
                    "section": chunk.section,
                    "text": chunk.text,
                    "ordinal": chunk.ordinal,
                    "chunk_hash": chunk.content_hash,
                    "service_line": version.service_line,
                    "audience": version.audience.value,
                    "clinical": version.clinical,
                },
            )
            for i, chunk in enumerate(chunks)
        ]

    def add_version(
        self, article: Article, version: ArticleVersion, chunks: Sequence[Chunk]
    ) -> None:
        self.store.upsert(self.points(article, version, chunks))
        self.store.maintain()

    def add_versions(
        self, items: Sequence[tuple[Article, ArticleVersion, Sequence[Chunk]]]
    ) -> None:
        self.store.upsert([p for item in items for p in self.points(*item)])
        self.store.maintain()

    def remove_version(self, version_id: int) -> None:
        self.store.delete_version(version_id)

    def remove_versions(self, version_ids: Sequence[int]) -> None:
        self.store.delete_versions(version_ids)


@dataclass
class DoctorReport:
    published_versions: int = 0
    points: int = 0
    reindexed: list[str] = field(
        default_factory=list
    )  # "article vN" whose points were missing or wrong
    orphans_removed: int = 0

    @property
    def healthy(self) -> bool:
        return not self.reindexed and not self.orphans_removed


def doctor(session: Session, sync: IndexSync, *, repair: bool = True) -> DoctorReport:
    """Make the index hold exactly the published versions' chunks, and say what changed."""
    report = DoctorReport()
    in_index = sync.store.point_versions()
    live = service.published_view(session)
    report.published_versions = len(live)
    expected: dict[str, int] = {}
    chunks_by_version: dict[int, list[Chunk]] = {}
    if live:
        for chunk in session.exec(
            select(Chunk).where(col(Chunk.version_id).in_(list(live))).order_by(col(Chunk.ordinal))
        ).all():
            expected[chunk.point_id] = chunk.version_id
            chunks_by_version.setdefault(chunk.version_id, []).append(chunk)
    orphans = [pid for pid, vid in in_index.items() if expected.get(pid) != vid]
    broken = sorted(
        {vid for pid, vid in expected.items() if in_index.get(pid) != vid},
    )
    report.orphans_removed = len(orphans)
    for version_id in broken:
        version = service.get_version(session, version_id)
        report.reindexed.append(f"{version.article_id} v{version.number}")
    if repair:
        sync.store.delete_points(orphans)
        for version_id in broken:
            version = service.get_version(session, version_id)
            article = service.get_article(session, version.article_id)
            sync.add_version(article, version, chunks_by_version[version_id])
        sync.store.maintain(force=True)  # HNSW over what publishes left unindexed
    report.points = sync.store.count() if repair else len(in_index)
    return report
