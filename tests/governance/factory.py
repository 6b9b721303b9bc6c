"""Builders for governance tests: articles through the real service, feedback through the tables."""

import hashlib
import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import Session

from governance import service
from governance.models import (
    AnswerCitation,
    AnswerLog,
    Article,
    ArticleMetaBase,
    ArticleVersion,
    Audience,
    Chunk,
    ChunkDraft,
    Feedback,
    Rating,
)
from governance.service import Actor, Role

AUTHOR = Actor("alice", frozenset({Role.author}))
REVIEWER = Actor("rob", frozenset({Role.reviewer}))
REVIEWER_2 = Actor("rita", frozenset({Role.reviewer}))
CLINICIAN = Actor("dr-chen", frozenset({Role.reviewer, Role.clinical_reviewer}))
ADMIN = Actor("ada", frozenset({Role.admin}))


class NullIndex:
    """An IndexHook for tests that need no vector store: it records what it was asked."""

    def __init__(self) -> None:
        self.added: list[int] = []
        self.removed: list[int] = []

    def add_version(
        self, article: Article, version: ArticleVersion, chunks: Sequence[Chunk]
    ) -> None:
        assert version.id is not None
        self.added.append(version.id)

    def remove_version(self, version_id: int) -> None:
        self.removed.append(version_id)


def draft(
    session: Session,
    article_id: str = "billing-hours",
    body: str = "Call 555-0142.",
    *,
    owner: str = "Maria",
    service_line: str = "billing",
    clinical: bool = False,
    author: str = "alice",
    last_reviewed: date | None = date(2026, 11, 1),
    review_every_days: int = 365,
    audience: Audience = Audience.patient,
    submit: bool = True,
) -> ArticleVersion:
    meta = ArticleMetaBase(
        title=article_id.replace("-", " ").title(),
        owner=owner,
        service_line=service_line,
        audience=audience,
        clinical=clinical,
        last_reviewed=last_reviewed,
        review_every_days=review_every_days,
    )
    paragraphs = [p for p in body.split("\n\n") if p.strip()] or [body]
    result = service.record_source(
        session,
        article_id=article_id,
        meta=meta,
        body=body,
        content_hash=hashlib.sha256(f"{body}{meta}".encode()).hexdigest(),
        chunks=[
            ChunkDraft("Body", p, len(p.split()), hashlib.sha256(p.encode()).hexdigest())
            for p in paragraphs
        ],
        source_path=f"{service_line}/{article_id}.md",
        author=author,
        submit=submit,
    )
    return service.find_version(session, article_id, result.version)


def live(session: Session, index: NullIndex | None = None, **kwargs: object) -> ArticleVersion:
    """A published version (submitted, approved by rob or dr-chen, published)."""
    version = draft(session, **kwargs)  # type: ignore[arg-type]
    assert version.id is not None
    reviewer = CLINICIAN if version.clinical else REVIEWER
    service.approve(session, version.id, reviewer)
    return service.publish(session, version.id, reviewer, index or NullIndex())


def answer_citing(
    session: Session, versions: Sequence[ArticleVersion], question: str = "when are you open?"
) -> str:
    """An answer log row citing these versions, as the answer API writes it."""
    answer_id = str(uuid.uuid4())
    session.add(
        AnswerLog(
            id=answer_id,
            channel="chat",
            audience=Audience.patient,
            question_deid=question,
            answer="We are open 8 to 5.",
            abstained=False,
            grounded=True,
            support=1.0,
        )
    )
    session.flush()
    for ordinal, v in enumerate(versions):
        assert v.id is not None
        session.add(
            AnswerCitation(
                answer_id=answer_id,
                ordinal=ordinal,
                article_id=v.article_id,
                version_id=v.id,
                version=v.number,
                section="Body",
            )
        )
    session.commit()
    return answer_id


def feedback(
    session: Session, answer_id: str, rating: Rating, comment: str | None = None
) -> Feedback:
    row = Feedback(answer_id=answer_id, rating=rating, comment=comment, by="patient-chat")
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def disable_audit_guard(conn: Connection) -> None:
    """Play an attacker with owner rights: switch off the append-only triggers (migration 0002)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE auditevent DISABLE TRIGGER auditevent_append_only"))
    else:
        conn.execute(text("DROP TRIGGER auditevent_no_update"))
        conn.execute(text("DROP TRIGGER auditevent_no_delete"))
