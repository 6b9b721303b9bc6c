"""The owner's review queue: versions waiting for a decision, stale content, and answer feedback.

Feedback on an answer belongs to every article version that answer cited; the queue
counts it against the version readers are being served now (the published one).
"""

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from governance.freshness import Freshness, FreshnessPolicy
from governance.models import (
    AnswerCitation,
    AnswerLog,
    Article,
    ArticleVersion,
    Feedback,
    Rating,
    Status,
)

WAITING = (Status.in_review, Status.approved)
PROBLEMS = (Rating.wrong, Rating.outdated, Rating.unclear)


@dataclass
class QueueItem:
    article_id: str
    title: str
    owner: str
    service_line: str
    clinical: bool
    audience: str
    published_version: int | None
    freshness: Freshness
    review_due: date | None
    pending_version: int | None = None
    pending_status: Status | None = None
    pending_revision: int | None = None
    pending_author: str | None = None
    pending_since: datetime | None = None
    feedback: dict[str, int] = field(default_factory=dict)

    @property
    def problems(self) -> int:
        return sum(self.feedback.get(r.value, 0) for r in PROBLEMS)

    @property
    def reasons(self) -> list[str]:
        out: list[str] = []
        if self.pending_status is not None:
            out.append(
                "waiting for review"
                if self.pending_status == Status.in_review
                else "approved, not yet published"
            )
        if self.freshness in (Freshness.stale, Freshness.expired):
            out.append(f"{self.freshness.value}: review was due {self.review_due}")
        if self.problems:
            out.append(f"{self.problems} problem report(s) from readers")
        return out


def feedback_counts(session: Session, version_ids: list[int]) -> dict[int, dict[str, int]]:
    """Feedback per cited version, by rating (an answer citing a version twice counts once)."""
    if not version_ids:
        return {}
    rows = session.exec(
        select(
            AnswerCitation.version_id,
            Feedback.rating,
            func.count(func.distinct(Feedback.id)),
        )
        .join(AnswerCitation, col(AnswerCitation.answer_id) == col(Feedback.answer_id))
        .where(col(AnswerCitation.version_id).in_(version_ids))
        .group_by(col(AnswerCitation.version_id), col(Feedback.rating))
    ).all()
    counts: dict[int, dict[str, int]] = {}
    for version_id, rating, n in rows:
        counts.setdefault(version_id, {})[Rating(rating).value] = int(n)
    return counts


def review_queue(
    session: Session,
    policy: FreshnessPolicy,
    today: date,
    *,
    owner: str | None = None,
    service_line: str | None = None,
) -> list[QueueItem]:
    """Every article that needs its owner: a pending version, stale content or problem reports."""
    query = select(Article).order_by(col(Article.id))
    if owner:
        query = query.where(Article.owner == owner)
    if service_line:
        query = query.where(Article.service_line == service_line)
    articles = list(session.exec(query).all())
    ids = [a.id for a in articles]
    pending: dict[str, ArticleVersion] = {}
    published: dict[int, ArticleVersion] = {}
    if ids:
        for version in session.exec(
            select(ArticleVersion).where(
                col(ArticleVersion.article_id).in_(ids),
                col(ArticleVersion.status).in_([*WAITING, Status.published]),
            )
        ).all():
            assert version.id is not None
            if version.status == Status.published:
                published[version.id] = version
            else:
                pending[version.article_id] = version
    counts = feedback_counts(session, list(published))

    items: list[QueueItem] = []
    for article in articles:
        live = (
            published.get(article.published_version_id)
            if article.published_version_id is not None
            else None
        )
        due = article.review_due() if live is not None else None
        pending_version = pending.get(article.id)
        item = QueueItem(
            article_id=article.id,
            title=(pending_version or live or article).title,
            owner=article.owner,
            service_line=article.service_line,
            clinical=(pending_version or article).clinical,
            audience=article.audience.value,
            published_version=live.number if live else None,
            freshness=policy.state(due, today) if live else Freshness.unknown,
            review_due=due,
            feedback=counts.get(article.published_version_id or -1, {}),
        )
        if pending_version is not None:
            item.pending_version = pending_version.number
            item.pending_status = pending_version.status
            item.pending_revision = pending_version.revision
            item.pending_author = pending_version.author
            item.pending_since = pending_version.updated_at
        if item.reasons:
            items.append(item)
    # Decisions first (oldest waiting first), then content with reader problems, then stale.
    items.sort(
        key=lambda i: (
            i.pending_status is None,
            i.pending_since or datetime.max,
            -i.problems,
            i.article_id,
        )
    )
    return items


@dataclass(frozen=True)
class FeedbackItem:
    id: int
    at: datetime
    rating: Rating
    comment: str | None
    by: str
    article_id: str
    version: int
    question: str
    answer: str


def feedback_list(
    session: Session,
    *,
    article_id: str | None = None,
    owner: str | None = None,
    ratings: tuple[Rating, ...] = tuple(Rating),
    limit: int = 200,
) -> list[FeedbackItem]:
    """Feedback, newest first, one row per cited article (the answer's question attached)."""
    query = (
        select(Feedback, AnswerCitation.article_id, AnswerCitation.version, AnswerLog)
        .join(AnswerCitation, col(AnswerCitation.answer_id) == col(Feedback.answer_id))
        .join(AnswerLog, col(AnswerLog.id) == col(Feedback.answer_id))
        .where(col(Feedback.rating).in_(list(ratings)))
        .distinct()
        .order_by(col(Feedback.at).desc(), col(Feedback.id).desc())
    )
    if article_id:
        query = query.where(AnswerCitation.article_id == article_id)
    if owner:
        query = query.join(Article, col(Article.id) == col(AnswerCitation.article_id)).where(
            Article.owner == owner
        )
    items: list[FeedbackItem] = []
    for fb, cited_article, cited_version, log in session.exec(query.limit(limit)).all():
        assert fb.id is not None
        items.append(
            FeedbackItem(
                id=fb.id,
                at=fb.at,
                rating=fb.rating,
                comment=fb.comment,
                by=fb.by,
                article_id=cited_article,
                version=cited_version,
                question=log.question_deid,
                answer=log.answer,
            )
        )
    return items
