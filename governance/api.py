"""Read side of the owner API: articles, their history, and the audit chain check."""

from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from governance import audit, keys, service
from governance.keys import Principal, Scope
from governance.models import Article, ArticleVersion, Audience, Status


def get_session(request: Request) -> Iterator[Session]:
    engine: Engine = request.app.state.engine
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="an API key: canon_<prefix>_<secret>")


def get_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return keys.authenticate(session, credentials.credentials if credentials else None)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
CONTENT_SCOPES = (Scope.author, Scope.review, Scope.clinical_review, Scope.admin)

router = APIRouter(prefix="/v1", tags=["governance"])


class VersionPublic(BaseModel):
    article_id: str
    number: int
    status: Status
    revision: int
    title: str
    author: str
    reviewer: str | None
    review_comment: str | None
    audience: Audience
    service_line: str
    clinical: bool
    updated_at: datetime


class ArticlePublic(BaseModel):
    id: str
    title: str
    owner: str
    service_line: str
    audience: Audience
    clinical: bool
    review_every_days: int
    last_reviewed: date | None
    review_due: date | None
    published_version: int | None


def _article_public(session: Session, article: Article) -> ArticlePublic:
    published = (
        service.get_version(session, article.published_version_id).number
        if article.published_version_id is not None
        else None
    )
    return ArticlePublic(
        **article.model_dump(
            include=set(ArticlePublic.model_fields) - {"review_due", "published_version"}
        ),
        review_due=article.review_due(),
        published_version=published,
    )


@router.get("/articles", response_model=list[ArticlePublic])
def list_articles(
    session: SessionDep, who: PrincipalDep, service_line: str | None = None
) -> list[ArticlePublic]:
    who.require(*CONTENT_SCOPES)
    query = select(Article).order_by(col(Article.id))
    if service_line:
        query = query.where(Article.service_line == service_line)
    return [_article_public(session, a) for a in session.exec(query).all()]


@router.get("/articles/{article_id}", response_model=ArticlePublic)
def get_article(article_id: str, session: SessionDep, who: PrincipalDep) -> ArticlePublic:
    who.require(*CONTENT_SCOPES)
    return _article_public(session, service.get_article(session, article_id))


@router.get("/articles/{article_id}/history", response_model=list[VersionPublic])
def article_history(
    article_id: str, session: SessionDep, who: PrincipalDep
) -> list[ArticleVersion]:
    who.require(*CONTENT_SCOPES)
    return service.history(session, article_id)


class ChainStatus(BaseModel):
    ok: bool
    events: int
    first_bad_seq: int | None
    problem: str | None


@router.get("/audit/verify", response_model=ChainStatus)
def audit_verify(session: SessionDep, who: PrincipalDep) -> ChainStatus:
    who.require(Scope.admin)
    report = audit.verify(session)
    return ChainStatus(**report.__dict__)
