"""Governance operations: every lifecycle move, each checked and audited.

Services take their collaborators (a session, an index hook) as arguments; the
transition table in `lifecycle` decides what is legal, this module decides who
may do it and keeps the database, the audit chain and the index in step.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from governance import audit
from governance.errors import Conflict, IllegalTransition, InvalidInput, NotFound, PermissionDenied
from governance.lifecycle import Action, next_status
from governance.models import (
    Article,
    ArticleMetaBase,
    ArticleVersion,
    Chunk,
    ChunkDraft,
    EmbeddingCache,
    Ledger,
    LiveVersion,
    Status,
    utcnow,
)

POINT_NAMESPACE = uuid.UUID("6f1c1c52-7f0e-4d1e-9d0a-0c2f3c1a9b11")
PENDING = (Status.draft, Status.in_review, Status.approved)
MAX_VERSION_NUMBER = 2**31 - 1  # the largest number an INTEGER column holds on PostgreSQL


class Role(StrEnum):
    author = "author"
    reviewer = "review"
    clinical_reviewer = "clinical-review"
    admin = "admin"


@dataclass(frozen=True)
class Actor:
    name: str
    roles: frozenset[Role]

    def require(self, *any_of: Role) -> None:
        if not self.roles.intersection(any_of):
            needed = " or ".join(r.value for r in any_of)
            raise PermissionDenied(f"{self.name} needs the {needed} role")


class IndexHook(Protocol):
    """What publishing needs from the index; implemented in `ingest.index`."""

    def add_version(
        self, article: Article, version: ArticleVersion, chunks: Sequence[Chunk]
    ) -> None:
        """Write the version's points; they stay invisible until the version is live."""

    def remove_version(self, version_id: int) -> None:
        """Delete the version's points."""


class BulkIndexHook(IndexHook, Protocol):
    """An index that can take many versions in one write (bulk publishing)."""

    def add_versions(
        self, items: Sequence[tuple[Article, ArticleVersion, Sequence[Chunk]]]
    ) -> None:
        """Write several versions' points in one durable write."""

    def remove_versions(self, version_ids: Sequence[int]) -> None:
        """Delete several versions' points."""


class IngestKind(StrEnum):
    created = "created"
    new_version = "new_version"
    unchanged = "unchanged"


@dataclass(frozen=True)
class RecordResult:
    article_id: str
    version: int
    kind: IngestKind
    status: Status


def point_id(article_id: str, number: int, ordinal: int) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, f"{article_id}\x1f{number}\x1f{ordinal}"))


# --- reads -----------------------------------------------------------------


def get_version(session: Session, version_id: int) -> ArticleVersion:
    version = session.get(ArticleVersion, version_id)
    if version is None:
        raise NotFound(f"version {version_id} does not exist")
    return version


def get_article(session: Session, article_id: str) -> Article:
    article = session.get(Article, article_id)
    if article is None:
        raise NotFound(f"article {article_id!r} does not exist")
    return article


def find_version(session: Session, article_id: str, number: int | None = None) -> ArticleVersion:
    """An article's version by number, or its newest version."""
    if number is not None and not 1 <= number <= MAX_VERSION_NUMBER:
        raise NotFound(f"version {number} of article {article_id!r} does not exist")
    query = select(ArticleVersion).where(ArticleVersion.article_id == article_id)
    if number is not None:
        query = query.where(ArticleVersion.number == number)
    version = session.exec(query.order_by(col(ArticleVersion.number).desc())).first()
    if version is None:
        which = f"version {number} of " if number is not None else ""
        raise NotFound(f"{which}article {article_id!r} does not exist")
    return version


def history(session: Session, article_id: str) -> list[ArticleVersion]:
    get_article(session, article_id)
    return list(
        session.exec(
            select(ArticleVersion)
            .where(ArticleVersion.article_id == article_id)
            .order_by(col(ArticleVersion.number))
        ).all()
    )


def version_ids_in(session: Session, status: Status) -> list[int]:
    """The ids alone, in `versions_in`'s order: bulk work loads each batch's rows itself."""
    ids = session.exec(
        select(ArticleVersion.id)
        .where(ArticleVersion.status == status)
        .order_by(col(ArticleVersion.article_id), col(ArticleVersion.number))
    ).all()
    return [version_id for version_id in ids if version_id is not None]


def versions_in(session: Session, status: Status) -> list[ArticleVersion]:
    return list(
        session.exec(
            select(ArticleVersion)
            .where(ArticleVersion.status == status)
            .order_by(col(ArticleVersion.article_id), col(ArticleVersion.number))
        ).all()
    )


def chunks_of(session: Session, version_id: int) -> list[Chunk]:
    return list(
        session.exec(
            select(Chunk).where(Chunk.version_id == version_id).order_by(col(Chunk.ordinal))
        ).all()
    )


def published_view(session: Session) -> dict[int, LiveVersion]:
    """Every live (published) version, keyed by version id."""
    rows = session.exec(
        select(Article, ArticleVersion).where(
            Article.published_version_id == ArticleVersion.id,
            ArticleVersion.status == Status.published,
        )
    ).all()
    return {
        version.id: LiveVersion(
            article_id=article.id,
            version_id=version.id,
            number=version.number,
            title=version.title,
            service_line=version.service_line,
            audience=version.audience,
            clinical=version.clinical,
            review_due=article.review_due(),
        )
        for article, version in rows
        if version.id is not None
    }


def latest_sources(session: Session) -> dict[str, RecordResult]:
    """Each article's newest version, keyed by the hash of the source it came from."""
    newest = (
        select(ArticleVersion.article_id, func.max(ArticleVersion.number).label("number"))
        .group_by(col(ArticleVersion.article_id))
        .subquery()
    )
    rows = session.exec(
        select(
            ArticleVersion.source_hash,
            ArticleVersion.article_id,
            ArticleVersion.number,
            ArticleVersion.status,
        ).join(
            newest,
            (col(ArticleVersion.article_id) == newest.c.article_id)
            & (col(ArticleVersion.number) == newest.c.number),
        )
    ).all()
    return {
        source: RecordResult(article_id, number, IngestKind.unchanged, Status(status))
        for source, article_id, number, status in rows
        if source
    }


def cached_vectors(session: Session, model: str, text_hashes: Sequence[str]) -> dict[str, bytes]:
    """Stored embeddings for these passage-text hashes under this model."""
    found: dict[str, bytes] = {}
    unique = sorted(set(text_hashes))
    for start in range(0, len(unique), 500):
        for row in session.exec(
            select(EmbeddingCache).where(
                EmbeddingCache.model == model,
                col(EmbeddingCache.text_hash).in_(unique[start : start + 500]),
            )
        ).all():
            found[row.text_hash] = row.vector
    return found


def cache_vectors(session: Session, model: str, vectors: dict[str, bytes]) -> None:
    """Add embeddings to the cache; a hash another writer stored meanwhile is kept as is."""
    if not vectors:
        return
    have = cached_vectors(session, model, list(vectors))
    session.add_all(
        EmbeddingCache(text_hash=h, model=model, vector=v)
        for h, v in vectors.items()
        if h not in have
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()


def epoch(session: Session) -> int:
    """Changes whenever the set of published versions changes."""
    ledger = session.get(Ledger, 1)
    return ledger.epoch if ledger is not None else 0


# --- writes ----------------------------------------------------------------


def record_source(
    session: Session,
    *,
    article_id: str,
    meta: ArticleMetaBase,
    body: str,
    content_hash: str,
    chunks: Sequence[ChunkDraft],
    source_path: str,
    author: str,
    submit: bool = False,
    source_hash: str = "",
) -> RecordResult:
    """Store an ingested file: unchanged content adds nothing, new content a draft."""
    if not chunks:
        raise InvalidInput(f"{source_path}: no text to index")
    article = session.get(Article, article_id)
    latest: ArticleVersion | None = None
    if article is None:
        article = Article(id=article_id, source_path=source_path, **meta.model_dump())
        session.add(article)
        kind = IngestKind.created
    else:
        latest = session.exec(
            select(ArticleVersion)
            .where(ArticleVersion.article_id == article_id)
            .order_by(col(ArticleVersion.number).desc())
        ).first()
        if latest is not None and latest.content_hash == content_hash:
            if source_hash and latest.source_hash != source_hash:
                latest.source_hash = source_hash  # same content, new bytes: skip parsing next time
                session.add(latest)
                session.commit()
            return RecordResult(article_id, latest.number, IngestKind.unchanged, latest.status)
        kind = IngestKind.new_version

    for pending in session.exec(
        select(ArticleVersion).where(
            ArticleVersion.article_id == article_id, col(ArticleVersion.status).in_(PENDING)
        )
    ).all():
        _move(session, pending, Action.supersede, author, reason="replaced by a newer draft")

    number = (latest.number if latest else 0) + 1
    version = ArticleVersion(
        article_id=article_id,
        number=number,
        content_hash=content_hash,
        source_hash=source_hash,
        body=body,
        source_path=source_path,
        author=author,
        **meta.model_dump(),
    )
    session.add(version)
    session.flush()
    assert version.id is not None
    for ordinal, draft in enumerate(chunks):
        session.add(
            Chunk(
                version_id=version.id,
                ordinal=ordinal,
                section=draft.section,
                text=draft.text,
                token_count=draft.token_count,
                content_hash=draft.content_hash,
                point_id=point_id(article_id, number, ordinal),
            )
        )
    audit.record(
        session,
        actor=author,
        action="create",
        article_id=article_id,
        version_id=version.id,
        to_status=Status.draft.value,
        reason=f"ingested from {source_path}",
    )
    if submit:
        _move(session, version, Action.submit, author)
    session.commit()
    return RecordResult(article_id, number, kind, version.status)


def _check_revision(version: ArticleVersion, expected_revision: int | None) -> None:
    """A writer who names the revision it saw gets a conflict if the version moved since,
    before any other rule: whoever acted first, the stale writer learns it lost the race."""
    if expected_revision is not None and expected_revision != version.revision:
        raise Conflict(
            f"version {version.article_id} v{version.number} is at revision "
            f"{version.revision}, not {expected_revision}: someone acted on it first"
        )


def _move(
    session: Session,
    version: ArticleVersion,
    action: Action,
    actor: str,
    *,
    reason: str | None = None,
    expected_revision: int | None = None,
) -> None:
    """Apply one transition with optimistic concurrency and an audit event."""
    _check_revision(version, expected_revision)
    target = next_status(version.status, action)
    seen = version.revision
    result = session.connection().execute(
        update(ArticleVersion)
        .where(col(ArticleVersion.id) == version.id, col(ArticleVersion.revision) == seen)
        .values(status=target, revision=seen + 1, updated_at=utcnow())
    )
    if result.rowcount != 1:
        session.rollback()
        raise Conflict(f"version {version.article_id} v{version.number} changed under you")
    source = version.status
    session.refresh(version)
    audit.record(
        session,
        actor=actor,
        action=action.value,
        article_id=version.article_id,
        version_id=version.id,
        from_status=source.value,
        to_status=target.value,
        reason=reason,
    )


def submit(session: Session, version_id: int, actor: Actor) -> ArticleVersion:
    actor.require(Role.author, Role.admin)
    version = get_version(session, version_id)
    _move(session, version, Action.submit, actor.name)
    session.commit()
    return version


def approve(
    session: Session,
    version_id: int,
    actor: Actor,
    *,
    expected_revision: int | None = None,
    comment: str | None = None,
) -> ArticleVersion:
    version = get_version(session, version_id)
    _check_revision(version, expected_revision)
    next_status(version.status, Action.approve)
    if version.clinical:
        if Role.clinical_reviewer not in actor.roles:
            raise PermissionDenied(
                f"{version.article_id} is clinical: approval needs the clinical-review role"
            )
    else:
        actor.require(Role.reviewer, Role.clinical_reviewer)
    if actor.name == version.author:
        raise PermissionDenied(f"{actor.name} wrote this version and cannot approve it")
    _move(
        session,
        version,
        Action.approve,
        actor.name,
        reason=comment,
        expected_revision=expected_revision,
    )
    version.reviewer = actor.name
    version.review_comment = comment
    session.add(version)
    session.commit()
    return version


def reject(
    session: Session,
    version_id: int,
    actor: Actor,
    comment: str,
    *,
    expected_revision: int | None = None,
) -> ArticleVersion:
    if not comment or not comment.strip():
        raise InvalidInput("comment: a rejection needs a comment for the author")
    actor.require(Role.reviewer, Role.clinical_reviewer)
    version = get_version(session, version_id)
    _move(
        session,
        version,
        Action.reject,
        actor.name,
        reason=comment,
        expected_revision=expected_revision,
    )
    version.reviewer = actor.name
    version.review_comment = comment
    session.add(version)
    session.commit()
    return version


def publish(
    session: Session,
    version_id: int,
    actor: Actor,
    index: IndexHook,
    *,
    expected_revision: int | None = None,
) -> ArticleVersion:
    """The only door into the index.

    1. the new version's points are written (invisible: retrieval serves only
       versions the database calls published);
    2. one transaction flips the published pointer, supersedes the old version
       and bumps the epoch;
    3. the old version's points are deleted.
    A crash between steps leaves extra points that no reader sees; `canon doctor`
    removes them.
    """
    actor.require(Role.reviewer, Role.clinical_reviewer, Role.admin)
    version = get_version(session, version_id)
    _check_revision(version, expected_revision)
    next_status(version.status, Action.publish)
    article = get_article(session, version.article_id)
    index.add_version(article, version, chunks_of(session, version_id))

    old_id: int | None = None
    try:
        old_id = _flip(session, article, version, actor, expected_revision=expected_revision)
        audit.lock_ledger(session).epoch += 1
        session.commit()
    except BaseException:
        session.rollback()
        # A concurrent publisher of this same version may have won the race: its points
        # are live now and must stay. Remove ours only if the version is not published.
        if _status_now(session, version_id) != Status.published:
            index.remove_version(version_id)
        raise
    if old_id is not None:
        index.remove_version(old_id)
    return version


def _flip(
    session: Session,
    article: Article,
    version: ArticleVersion,
    actor: Actor,
    *,
    expected_revision: int | None = None,
) -> int | None:
    """Step 2 of publishing, inside the caller's transaction: supersede the live version,
    publish this one and point the article at it. Returns the superseded version's id."""
    old_id = article.published_version_id
    if old_id is not None:
        old = get_version(session, old_id)
        if old.status != Status.published:  # another publisher got there first
            raise Conflict(
                f"{article.id} changed under you: v{old.number} is already {old.status.value}"
            )
        _move(session, old, Action.supersede, actor.name, reason=f"replaced by v{version.number}")
    _move(session, version, Action.publish, actor.name, expected_revision=expected_revision)
    for field in ArticleMetaBase.model_fields:
        setattr(article, field, getattr(version, field))
    article.published_version_id = version.id
    session.add(article)
    return old_id


def publish_many(
    session: Session, version_ids: Sequence[int], actor: Actor, index: BulkIndexHook
) -> list[ArticleVersion]:
    """Publish several versions (one per article) with the same three steps as `publish`.

    All their points are written in one go, one transaction flips every pointer
    (each move audited), then the old versions' points go: a bulk load costs one
    index write and one commit per batch instead of one per article.
    """
    actor.require(Role.reviewer, Role.clinical_reviewer, Role.admin)
    versions = [get_version(session, version_id) for version_id in version_ids]
    for version in versions:
        next_status(version.status, Action.publish)
    articles = {v.article_id: get_article(session, v.article_id) for v in versions}
    if len(articles) != len(versions):
        raise InvalidInput("publish_many: at most one version per article")
    if not versions:
        return []
    index.add_versions(
        [(articles[v.article_id], v, chunks_of(session, v.id or 0)) for v in versions]
    )
    old_ids: list[int] = []
    try:
        for version in versions:
            old_id = _flip(session, articles[version.article_id], version, actor)
            if old_id is not None:
                old_ids.append(old_id)
        audit.lock_ledger(session).epoch += 1
        session.commit()
    except BaseException:
        session.rollback()
        # As in `publish`: never remove points of a version that is live after all.
        index.remove_versions(
            [
                v.id
                for v in versions
                if v.id is not None and _status_now(session, v.id) != Status.published
            ]
        )
        raise
    index.remove_versions(old_ids)
    return versions


def _status_now(session: Session, version_id: int) -> Status | None:
    """The committed status, bypassing the session's cached copy."""
    status = session.exec(
        select(ArticleVersion.status).where(col(ArticleVersion.id) == version_id)
    ).first()
    return Status(status) if status is not None else None


def retire(
    session: Session, article_id: str, actor: Actor, reason: str, index: IndexHook
) -> ArticleVersion:
    """Withdraw an article's published version from every reader; history stays."""
    actor.require(Role.admin)
    if not reason or not reason.strip():
        raise InvalidInput("reason: retiring an article needs a reason")
    article = get_article(session, article_id)
    if article.published_version_id is None:
        raise IllegalTransition(f"article {article_id!r} has no published version to retire")
    version = get_version(session, article.published_version_id)
    _move(session, version, Action.retire, actor.name, reason=reason)
    article.published_version_id = None
    session.add(article)
    audit.lock_ledger(session).epoch += 1
    session.commit()
    assert version.id is not None
    index.remove_version(version.id)
    return version
