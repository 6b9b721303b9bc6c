"""SQLModel tables: articles, their versions and chunks, the audit log."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Column, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Status(StrEnum):
    draft = "draft"
    in_review = "in_review"
    approved = "approved"
    published = "published"
    superseded = "superseded"
    retired = "retired"


class Audience(StrEnum):
    patient = "patient"
    staff = "staff"


class ArticleMetaBase(SQLModel):
    """Metadata an author declares for an article (front matter or sidecar)."""

    title: str
    owner: str
    service_line: str = Field(index=True)
    audience: Audience = Audience.patient
    clinical: bool = False
    review_every_days: int = 365
    last_reviewed: date | None = None
    source_url: str | None = None


class Article(ArticleMetaBase, table=True):
    """A stable article identity; its content lives in versions."""

    id: str = Field(primary_key=True, max_length=200)
    source_path: str = ""
    published_version_id: int | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=utcnow)

    def review_due(self) -> date | None:
        if self.last_reviewed is None:
            return None
        return self.last_reviewed + timedelta(days=self.review_every_days)


class ArticleVersion(ArticleMetaBase, table=True):
    __table_args__ = (UniqueConstraint("article_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    article_id: str = Field(foreign_key="article.id", index=True, max_length=200)
    number: int
    status: Status = Field(default=Status.draft, index=True)
    revision: int = 1
    content_hash: str = Field(max_length=64)
    # Hash of the raw file bytes, its path and its sidecar/manifests: an unchanged
    # re-ingest is recognised before anything is parsed.
    source_hash: str = Field(default="", max_length=64, index=True)
    body: str = Field(sa_column=Column(Text, nullable=False))
    source_path: str = ""
    author: str
    reviewer: str | None = None
    review_comment: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Chunk(SQLModel, table=True):
    """One retrievable passage of a version, with its section path."""

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="articleversion.id", index=True)
    ordinal: int
    section: str
    text: str = Field(sa_column=Column(Text, nullable=False))
    token_count: int
    content_hash: str = Field(max_length=64)
    point_id: str = Field(max_length=36, index=True)


class EmbeddingCache(SQLModel, table=True):
    """A passage's dense vector, keyed by the hash of the exact text the model read."""

    text_hash: str = Field(primary_key=True, max_length=64)
    model: str = Field(primary_key=True, max_length=200)
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AuditEvent(SQLModel, table=True):
    """Append-only, hash-chained record of every governance action."""

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(unique=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str
    action: str
    article_id: str | None = None
    version_id: int | None = None
    from_status: str | None = None
    to_status: str | None = None
    reason: str | None = None
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class Ledger(SQLModel, table=True):
    """Single row: the audit chain head and the publication epoch.

    Writers lock this row, so audit events chain in commit order, and readers
    compare `epoch` to know when the set of published versions changed.
    """

    id: int = Field(default=1, primary_key=True)
    audit_seq: int = 0
    audit_head: str = "0" * 64
    epoch: int = 0


class ApiKey(SQLModel, table=True):
    """An API key: only its SHA-256 is stored; the secret is shown once at creation."""

    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(unique=True, max_length=16)
    secret_hash: str = Field(max_length=64)
    name: str = Field(description="the actor this key acts as, recorded in the audit trail")
    scopes: str = Field(description="comma-separated scopes")
    audience_pin: Audience | None = None
    service_lines_pin: str | None = Field(default=None, description="comma-separated")
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class AnswerLog(SQLModel, table=True):
    """One served answer: the de-identified question and exactly what it cited."""

    id: str = Field(primary_key=True, max_length=36)
    at: datetime = Field(default_factory=utcnow)
    key_name: str | None = None
    channel: str
    audience: Audience
    question_deid: str = Field(sa_column=Column(Text, nullable=False))
    answer: str = Field(sa_column=Column(Text, nullable=False))
    abstained: bool
    abstain_reason: str | None = None
    escalate: bool = False
    grounded: bool = False
    support: float = 0.0


class AnswerCitation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    answer_id: str = Field(foreign_key="answerlog.id", index=True, max_length=36)
    ordinal: int
    article_id: str = Field(index=True, max_length=200)
    version_id: int = Field(foreign_key="articleversion.id", index=True)
    version: int
    section: str


class Rating(StrEnum):
    helpful = "helpful"
    wrong = "wrong"
    outdated = "outdated"
    unclear = "unclear"


class Feedback(SQLModel, table=True):
    """A judgment on an answer, tied to the versions that answer cited."""

    id: int | None = Field(default=None, primary_key=True)
    answer_id: str = Field(foreign_key="answerlog.id", index=True, max_length=36)
    rating: Rating
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    by: str
    at: datetime = Field(default_factory=utcnow)


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk as ingest produces it, before it belongs to a stored version."""

    section: str
    text: str
    token_count: int
    content_hash: str


@dataclass(frozen=True)
class LiveVersion:
    """What retrieval needs to know about one published version."""

    article_id: str
    version_id: int
    number: int
    title: str
    service_line: str
    audience: Audience
    clinical: bool
    review_due: date | None
