"""Index sync: the IndexHook that publishing drives, and `doctor`, which repairs drift."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from governance import service
from governance.models import Article, ArticleVersion, Chunk
from retrieval.embed import Embedder
from retrieval.sparse import SparseEncoder
from retrieval.store import PointRecord, VectorStore


def embed_text(title: str, section: str, text: str) -> str:
    """What the encoders see: the passage with its title and section for context."""
    return f"{title}. {section}.\n{text}" if section else f"{title}.\n{text}"


class IndexSync:
    """Writes and removes a version's points; publishing decides when."""

    def __init__(self, store: VectorStore, embedder: Embedder, sparse: SparseEncoder) -> None:
        self.store = store
        self.embedder = embedder
        self.sparse = sparse

    def points(
        self, article: Article, version: ArticleVersion, chunks: Sequence[Chunk]
    ) -> list[PointRecord]:
        texts = [embed_text(version.title, c.section, c.text) for c in chunks]
        dense = self.embedder.embed(texts)
        return [
            PointRecord(
                id=chunk.point_id,
                dense=dense[i],
                sparse=self.sparse.document(texts[i]),
                payload={
                    "article_id": article.id,
                    "version_id": version.id,
                    "version": version.number,
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

    def remove_version(self, version_id: int) -> None:
        self.store.delete_version(version_id)


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
    report.points = sync.store.count() if repair else len(in_index)
    return report
