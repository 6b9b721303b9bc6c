"""Freshness: when published content is due for review, and re-verification.

An article's review clock runs from its `last_reviewed` date for `review_every_days`
(front matter, a folder `_manifest.yaml` for the whole service line, or the default).
`stale` is derived, never stored: past the due date the content is stale; past the
due date plus the policy's grace period it is expired. Retrieval applies the policy
(`flag`, `downrank`, `withhold` from patients); owners see what is due here.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from sqlmodel import Session, col, select

from governance import audit
from governance.errors import IllegalTransition, PermissionDenied
from governance.models import Article, ArticleVersion, LiveVersion, Status
from governance.service import Actor, Role, get_article


class FreshnessMode(StrEnum):
    flag = "flag"  # served, marked stale
    downrank = "downrank"  # served after fresh content
    withhold = "withhold"  # expired content withheld from patients; staff see it flagged


class Freshness(StrEnum):
    fresh = "fresh"
    due_soon = "due_soon"
    stale = "stale"  # past its review date, still inside the grace period
    expired = "expired"  # past the grace period as well
    unknown = "unknown"  # never reviewed: no date to count from


@dataclass(frozen=True)
class FreshnessPolicy:
    mode: FreshnessMode = FreshnessMode.withhold
    grace_days: int = 30

    def state(self, review_due: date | None, today: date, *, soon_days: int = 30) -> Freshness:
        if review_due is None:
            return Freshness.unknown
        if review_due + timedelta(days=self.grace_days) < today:
            return Freshness.expired
        if review_due < today:
            return Freshness.stale
        if review_due <= today + timedelta(days=soon_days):
            return Freshness.due_soon
        return Freshness.fresh

    def stale(self, live: LiveVersion, today: date) -> bool:
        return self.state(live.review_due, today) in (Freshness.stale, Freshness.expired)

    def expired(self, live: LiveVersion, today: date) -> bool:
        return self.state(live.review_due, today) == Freshness.expired


@dataclass(frozen=True)
class DueItem:
    article_id: str
    title: str
    owner: str
    service_line: str
    audience: str
    clinical: bool
    version: int
    last_reviewed: date | None
    review_every_days: int
    review_due: date | None
    days_overdue: int | None
    state: Freshness
    withheld_from_patients: bool


def report(
    session: Session,
    policy: FreshnessPolicy,
    today: date,
    *,
    soon_days: int = 30,
    include_fresh: bool = False,
    owner: str | None = None,
    service_line: str | None = None,
) -> list[DueItem]:
    """Published articles and where each stands, most overdue first."""
    query = select(Article, ArticleVersion).where(
        Article.published_version_id == ArticleVersion.id,
        ArticleVersion.status == Status.published,
    )
    if owner:
        query = query.where(Article.owner == owner)
    if service_line:
        query = query.where(Article.service_line == service_line)
    items: list[DueItem] = []
    for article, version in session.exec(query.order_by(col(Article.id))).all():
        due = article.review_due()
        state = policy.state(due, today, soon_days=soon_days)
        if state == Freshness.fresh and not include_fresh:
            continue
        items.append(
            DueItem(
                article_id=article.id,
                title=article.title,
                owner=article.owner,
                service_line=article.service_line,
                audience=article.audience.value,
                clinical=article.clinical,
                version=version.number,
                last_reviewed=article.last_reviewed,
                review_every_days=article.review_every_days,
                review_due=due,
                days_overdue=(today - due).days if due is not None else None,
                state=state,
                withheld_from_patients=(
                    policy.mode == FreshnessMode.withhold
                    and state == Freshness.expired
                    and article.audience.value == "patient"
                ),
            )
        )
    never = 10**6  # never reviewed sorts first: nobody has vouched for it
    items.sort(key=lambda i: (-(never if i.days_overdue is None else i.days_overdue), i.article_id))
    return items


def grouped(items: list[DueItem], by: str) -> dict[str, list[DueItem]]:
    """Items keyed by `owner` or `service_line`, keys sorted."""
    groups: dict[str, list[DueItem]] = {}
    for item in items:
        groups.setdefault(getattr(item, by), []).append(item)
    return dict(sorted(groups.items()))


def reverify(
    session: Session, article_id: str, actor: Actor, today: date, *, note: str | None = None
) -> Article:
    """Confirm the published content is still right: the clock restarts, no new version.

    A reviewer (clinical-review for clinical articles) or an admin may do it; the
    epoch moves so retrieval's catalog picks up the new review date at once.
    """
    article = get_article(session, article_id)
    if article.clinical:
        if not actor.roles.intersection({Role.clinical_reviewer, Role.admin}):
            raise PermissionDenied(
                f"{article_id} is clinical: re-verifying needs the clinical-review role"
            )
    else:
        actor.require(Role.reviewer, Role.clinical_reviewer, Role.admin)
    if article.published_version_id is None:
        raise IllegalTransition(f"article {article_id!r} has no published version to re-verify")
    version = session.get(ArticleVersion, article.published_version_id)
    assert version is not None
    ledger = audit.lock_ledger(session)
    before = article.last_reviewed
    article.last_reviewed = today
    session.add(article)
    ledger.epoch += 1
    audit.record(
        session,
        actor=actor.name,
        action="reverify",
        article_id=article_id,
        version_id=version.id,
        from_status=version.status.value,
        to_status=version.status.value,
        reason=(note + "; " if note else "")
        + f"content unchanged at v{version.number}; last reviewed {before or 'never'} -> {today}",
    )
    session.commit()
    session.refresh(article)
    return article


def utc_today() -> date:
    """The date review clocks count in."""
    return datetime.now(UTC).date()
