"""The owner API: articles, lifecycle moves, diff, review queue, freshness, feedback, audit.

Every move goes through `governance.service`, which checks roles and separation of
duties; this module only authenticates, translates `If-Match` into an expected
revision, and shapes responses. Publishing writes the index through the hook the
application puts on `app.state.index`, so governance never imports ingest.
"""

from collections.abc import Iterator
from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from governance import audit, diff, drafts, freshness, keys, paging, queue, service
from governance.drafts import Chunker
from governance.errors import InvalidInput, PreconditionRequired
from governance.freshness import Freshness, FreshnessMode, FreshnessPolicy
from governance.keys import Principal, Scope
from governance.models import (
    ApiKey,
    Article,
    ArticleMetaBase,
    ArticleVersion,
    Audience,
    AuditEvent,
    Rating,
    Status,
)
from governance.service import IndexHook, Role


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
VersionNumber = Annotated[
    int, Path(ge=1, le=service.MAX_VERSION_NUMBER, description="the version's number (1, 2, ...)")
]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """The one error shape every endpoint uses."""

    error: ErrorBody


ERRORS: dict[int, str] = {
    400: "the body could not be parsed",
    401: "no key, an unknown key or a revoked key",
    403: "the key lacks the scope, or asks outside its pins",
    404: "not found",
    409: "the version moved on: a stale If-Match, or a move its state does not allow",
    413: "request body too large",
    422: "invalid request: the message and details name the field at fault",
    428: "If-Match is required: send the revision you reviewed",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries, in the shared error shape, for the given error statuses."""
    return {s: {"model": ErrorResponse, "description": ERRORS[s]} for s in statuses}


MOVE_ERRORS = documented(409, 428)
Limit = Annotated[
    int,
    Query(
        ge=1,
        le=paging.MAX_PAGE_SIZE,
        description=f"rows per page, at most {paging.MAX_PAGE_SIZE}",
    ),
]
Offset = Annotated[
    int, Query(ge=0, le=paging.MAX_OFFSET, description="rows to skip (the next page: offset+limit)")
]

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
    session: SessionDep,
    who: PrincipalDep,
    service_line: str | None = None,
    limit: Limit = paging.DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> list[ArticlePublic]:
    who.require(*CONTENT_SCOPES)
    query = select(Article).order_by(col(Article.id))
    if service_line:
        query = query.where(Article.service_line == service_line)
    rows = session.exec(query.offset(offset).limit(limit)).all()
    return [_article_public(session, a) for a in rows]


@router.get("/articles/{article_id}", response_model=ArticlePublic)
def get_article(article_id: str, session: SessionDep, who: PrincipalDep) -> ArticlePublic:
    who.require(*CONTENT_SCOPES)
    return _article_public(session, service.get_article(session, article_id))


@router.get("/articles/{article_id}/history", response_model=list[VersionPublic])
def article_history(
    article_id: str,
    session: SessionDep,
    who: PrincipalDep,
    limit: Limit = paging.DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> list[ArticleVersion]:
    """Every version, oldest first."""
    who.require(*CONTENT_SCOPES)
    return paging.page(service.history(session, article_id), limit, offset)


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


# --- writes and owner views ------------------------------------------------


def get_index(request: Request) -> IndexHook:
    index: IndexHook = request.app.state.index
    return index


def get_policy(request: Request) -> FreshnessPolicy:
    policy: FreshnessPolicy = getattr(request.app.state, "freshness", FreshnessPolicy())
    return policy


def today() -> date:
    return freshness.utc_today()


IndexDep = Annotated[IndexHook, Depends(get_index)]
PolicyDep = Annotated[FreshnessPolicy, Depends(get_policy)]
IfMatch = Annotated[
    str,
    Header(
        pattern=r'^\s*((W/)?"?\d{1,10}"?)?\s*$',
        description='the revision you saw, from the ETag of GET .../versions/{n}, e.g. "3"',
    ),
]


def expected_revision(if_match: str | None, *, required: bool) -> int | None:
    """`If-Match: "3"` (or W/"3", or 3) -> 3."""
    if if_match is None or not if_match.strip():
        if required:
            raise PreconditionRequired(
                'If-Match is required: send the revision you reviewed (ETag), e.g. If-Match: "3"'
            )
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise InvalidInput(f"If-Match: expected a revision number, got {if_match!r}")
    return int(value)


def etag(version: ArticleVersion) -> str:
    return f'"{version.revision}"'


class VersionDetail(VersionPublic):
    body: str
    owner: str
    review_every_days: int
    last_reviewed: date | None


def _version(session: Session, article_id: str, number: int) -> ArticleVersion:
    return service.find_version(session, article_id, number)


def _moved(response: Response, version: ArticleVersion) -> ArticleVersion:
    response.headers["ETag"] = etag(version)
    return version


@router.get("/articles/{article_id}/versions/{number}", response_model=VersionDetail)
def get_version(
    article_id: str,
    number: VersionNumber,
    session: SessionDep,
    who: PrincipalDep,
    response: Response,
) -> ArticleVersion:
    """One version with its body; the ETag is its revision, for If-Match on the next move."""
    who.require(*CONTENT_SCOPES)
    return _moved(response, _version(session, article_id, number))


class ReviewBody(BaseModel):
    comment: str | None = Field(default=None, max_length=4000)


class RejectBody(BaseModel):
    comment: str = Field(min_length=1, max_length=4000, description="what the author must change")


class ReasonBody(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)


class ReverifyBody(BaseModel):
    note: str | None = Field(default=None, max_length=4000)


@router.post(
    "/articles/{article_id}/versions/{number}/submit",
    response_model=VersionPublic,
    responses=documented(409),
)
def submit_version(
    article_id: str,
    number: VersionNumber,
    session: SessionDep,
    who: PrincipalDep,
    response: Response,
) -> ArticleVersion:
    """Send a draft to review (author or admin)."""
    who.require(*CONTENT_SCOPES)  # an answering key learns nothing, not even what exists
    version = _version(session, article_id, number)
    assert version.id is not None
    return _moved(response, service.submit(session, version.id, who.actor()))


@router.post(
    "/articles/{article_id}/versions/{number}/approve",
    response_model=VersionPublic,
    responses=MOVE_ERRORS,
)
def approve_version(
    article_id: str,
    number: VersionNumber,
    session: SessionDep,
    who: PrincipalDep,
    response: Response,
    if_match: IfMatch = "",
    body: ReviewBody | None = None,
) -> ArticleVersion:
    """Approve a version in review: not your own; clinical articles need clinical-review.

    `If-Match` is required; a stale revision is 409."""
    who.require(*CONTENT_SCOPES)  # an answering key learns nothing, not even what exists
    version = _version(session, article_id, number)
    assert version.id is not None
    approved = service.approve(
        session,
        version.id,
        who.actor(),
        expected_revision=expected_revision(if_match, required=True),
        comment=body.comment if body else None,
    )
    return _moved(response, approved)


@router.post(
    "/articles/{article_id}/versions/{number}/reject",
    response_model=VersionPublic,
    responses=MOVE_ERRORS,
)
def reject_version(
    article_id: str,
    number: VersionNumber,
    body: RejectBody,
    session: SessionDep,
    who: PrincipalDep,
    response: Response,
    if_match: IfMatch = "",
) -> ArticleVersion:
    """Send a version in review back to its author with a comment."""
    who.require(*CONTENT_SCOPES)  # an answering key learns nothing, not even what exists
    version = _version(session, article_id, number)
    assert version.id is not None
    rejected = service.reject(
        session,
        version.id,
        who.actor(),
        body.comment,
        expected_revision=expected_revision(if_match, required=True),
    )
    return _moved(response, rejected)


@router.post(
    "/articles/{article_id}/versions/{number}/publish",
    response_model=VersionPublic,
    responses=MOVE_ERRORS,
)
def publish_version(
    article_id: str,
    number: VersionNumber,
    session: SessionDep,
    who: PrincipalDep,
    index: IndexDep,
    response: Response,
    if_match: IfMatch = "",
) -> ArticleVersion:
    """Publish an approved version (`If-Match` required; a stale revision is 409)."""
    who.require(*CONTENT_SCOPES)  # an answering key learns nothing, not even what exists
    version = _version(session, article_id, number)
    assert version.id is not None
    published = service.publish(
        session,
        version.id,
        who.actor(),
        index,
        expected_revision=expected_revision(if_match, required=True),
    )
    return _moved(response, published)


@router.post(
    "/articles/{article_id}/retire", response_model=VersionPublic, responses=documented(409)
)
def retire_article(
    article_id: str, body: ReasonBody, session: SessionDep, who: PrincipalDep, index: IndexDep
) -> ArticleVersion:
    """Withdraw the published version from every reader (admin); history stays."""
    who.require(*CONTENT_SCOPES)
    return service.retire(session, article_id, who.actor(), body.reason, index)


@router.post(
    "/articles/{article_id}/reverify", response_model=ArticlePublic, responses=documented(409)
)
def reverify_article(
    article_id: str,
    session: SessionDep,
    who: PrincipalDep,
    body: ReverifyBody | None = None,
) -> ArticlePublic:
    """Confirm unchanged content is still right: the review clock restarts, no new version."""
    who.require(*CONTENT_SCOPES)
    article = freshness.reverify(
        session, article_id, who.actor(), today(), note=body.note if body else None
    )
    return _article_public(session, article)


class FieldChangePublic(BaseModel):
    name: str
    old: str
    new: str


class DiffLinePublic(BaseModel):
    kind: str
    text: str
    old_line: int | None
    new_line: int | None


class DiffPublic(BaseModel):
    article_id: str
    from_version: int
    to_version: int
    added: int
    removed: int
    fields: list[FieldChangePublic]
    lines: list[DiffLinePublic]
    unified: str


def diff_public(d: diff.VersionDiff) -> DiffPublic:
    return DiffPublic(
        article_id=d.article_id,
        from_version=d.from_version,
        to_version=d.to_version,
        added=d.added,
        removed=d.removed,
        fields=[FieldChangePublic(**asdict(f)) for f in d.fields],
        lines=[DiffLinePublic(**asdict(line)) for line in d.lines],
        unified=d.unified,
    )


@router.get("/articles/{article_id}/diff", response_model=DiffPublic)
def article_diff(
    article_id: str,
    session: SessionDep,
    who: PrincipalDep,
    from_: Annotated[
        int | None,
        Query(
            alias="from",
            ge=1,
            le=service.MAX_VERSION_NUMBER,
            description="default: the published version",
        ),
    ] = None,
    to: Annotated[
        int | None,
        Query(ge=1, le=service.MAX_VERSION_NUMBER, description="default: the newest version"),
    ] = None,
) -> DiffPublic:
    """Metadata changes and a line diff of the body between two versions."""
    who.require(*CONTENT_SCOPES)
    return diff_public(diff.versions(session, article_id, from_, to))


class QueueItemPublic(BaseModel):
    article_id: str
    title: str
    owner: str
    service_line: str
    clinical: bool
    audience: str
    published_version: int | None
    freshness: Freshness
    review_due: date | None
    pending_version: int | None
    pending_status: Status | None
    pending_revision: int | None
    pending_author: str | None
    feedback: dict[str, int]
    problems: int
    reasons: list[str]


@router.get("/review-queue", response_model=list[QueueItemPublic])
def review_queue(
    session: SessionDep,
    who: PrincipalDep,
    policy: PolicyDep,
    owner: str | None = None,
    service_line: str | None = None,
    limit: Limit = paging.DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> list[QueueItemPublic]:
    """Articles that need their owner: pending versions, stale content, reader problem reports."""
    who.require(*CONTENT_SCOPES)
    items = queue.review_queue(session, policy, today(), owner=owner, service_line=service_line)
    return [
        QueueItemPublic(**asdict(item), problems=item.problems, reasons=item.reasons)
        for item in paging.page(items, limit, offset)
    ]


class FreshnessPublic(BaseModel):
    mode: FreshnessMode
    grace_days: int
    today: date
    items: list[freshness.DueItem]
    by_owner: dict[str, int]
    by_service_line: dict[str, int]


@router.get("/freshness", response_model=FreshnessPublic)
def freshness_report(
    session: SessionDep,
    who: PrincipalDep,
    policy: PolicyDep,
    owner: str | None = None,
    service_line: str | None = None,
    within_days: Annotated[int, Query(ge=0, le=3650, description="due within this many days")] = 30,
    include_fresh: bool = False,
    limit: Limit = paging.DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> FreshnessPublic:
    """Published content that is due, stale or expired, with counts by owner and service line
    (the counts cover every item; `items` is one page of them)."""
    who.require(*CONTENT_SCOPES)
    now = today()
    items = freshness.report(
        session,
        policy,
        now,
        soon_days=within_days,
        include_fresh=include_fresh,
        owner=owner,
        service_line=service_line,
    )
    return FreshnessPublic(
        mode=policy.mode,
        grace_days=policy.grace_days,
        today=now,
        items=paging.page(items, limit, offset),
        by_owner={k: len(v) for k, v in freshness.grouped(items, "owner").items()},
        by_service_line={k: len(v) for k, v in freshness.grouped(items, "service_line").items()},
    )


class FeedbackItemPublic(BaseModel):
    id: int
    at: datetime
    rating: Rating
    comment: str | None
    by: str
    article_id: str
    version: int
    question: str
    answer: str


@router.get("/feedback", response_model=list[FeedbackItemPublic])
def list_feedback(
    session: SessionDep,
    who: PrincipalDep,
    article_id: str | None = None,
    owner: str | None = None,
    rating: Annotated[list[Rating] | None, Query()] = None,
    limit: Limit = paging.DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> list[FeedbackItemPublic]:
    """Reader feedback on answers, by the article versions those answers cited."""
    who.require(*CONTENT_SCOPES)
    items = queue.feedback_list(
        session, article_id=article_id, owner=owner, ratings=tuple(rating or Rating)
    )
    return [FeedbackItemPublic(**asdict(item)) for item in paging.page(items, limit, offset)]


class AuditEventPublic(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    article_id: str | None
    version_id: int | None
    from_status: str | None
    to_status: str | None
    reason: str | None
    hash: str


@router.get("/audit", response_model=list[AuditEventPublic])
def audit_events(
    session: SessionDep,
    who: PrincipalDep,
    article_id: str | None = None,
    after: Annotated[
        int, Query(ge=0, le=2**31 - 1, description="events after this sequence number")
    ] = 0,
    limit: Limit = paging.DEFAULT_PAGE_SIZE,
) -> list[AuditEvent]:
    """The audit trail in order (admins; content roles see events of a named article)."""
    if article_id is None:
        who.require(Scope.admin)
    else:
        who.require(*CONTENT_SCOPES)
    return audit.events(session, article_id=article_id, after=after, limit=limit)


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1)
    audience: Audience | None = None
    service_lines: list[str] = Field(default_factory=list)


class KeyPublic(BaseModel):
    prefix: str
    name: str
    scopes: str
    audience_pin: Audience | None
    service_lines_pin: str | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="shown once; only its hash is stored")


@router.post("/keys", response_model=KeyCreated, status_code=201)
def create_key(body: KeyCreate, session: SessionDep, who: PrincipalDep) -> KeyCreated:
    """Create an API key (admin). The secret is in this response only."""
    who.actor().require(Role.admin)
    key, secret = keys.create(
        session,
        name=body.name,
        scopes=[s.value for s in body.scopes],
        created_by=who.name,
        audience=body.audience,
        service_lines=body.service_lines,
    )
    return KeyCreated(**key.model_dump(), key=secret)


@router.get("/keys", response_model=list[KeyPublic])
def list_keys(
    session: SessionDep,
    who: PrincipalDep,
    limit: Limit = paging.DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> list[ApiKey]:
    """Every key with scopes and pins, never a secret (admin)."""
    who.actor().require(Role.admin)
    return paging.page(keys.listing(session), limit, offset)


@router.delete("/keys/{prefix}", response_model=KeyPublic)
def revoke_key(prefix: str, session: SessionDep, who: PrincipalDep) -> ApiKey:
    """Revoke a key at once (admin)."""
    who.actor().require(Role.admin)
    return keys.revoke(session, prefix, by=who.name)


class DraftIn(ArticleMetaBase):
    title: str = Field(min_length=1, max_length=500)
    owner: str = Field(min_length=1, max_length=200)
    service_line: str = Field(min_length=1, max_length=100)
    review_every_days: int = Field(default=365, ge=1, le=drafts.MAX_REVIEW_DAYS)
    body: str = Field(min_length=1, max_length=drafts.MAX_BODY_CHARS, description="Markdown")
    submit: bool = Field(default=False, description="send straight to review")


def get_chunker(request: Request) -> Chunker:
    chunker: Chunker = request.app.state.chunker
    return chunker


@router.post(
    "/articles/{article_id}/versions",
    response_model=VersionPublic,
    status_code=201,
    responses={
        200: {"description": "unchanged content: the existing version, nothing added"},
        **documented(409),
    },
)
def write_draft(
    article_id: Annotated[
        str,
        Path(max_length=200, pattern=r"^[^/\\\s?#]+$", description="a slug: no spaces or /?#"),
    ],
    draft: DraftIn,
    session: SessionDep,
    who: PrincipalDep,
    chunker: Annotated[Chunker, Depends(get_chunker)],
    response: Response,
) -> ArticleVersion:
    """Create an article or a new draft of it (author or admin); pending drafts are superseded."""
    who.require(*CONTENT_SCOPES)
    meta = ArticleMetaBase.model_validate(draft.model_dump(exclude={"body", "submit"}))
    result = drafts.write(
        session, who.actor(), article_id, meta, draft.body, chunker, submit=draft.submit
    )
    if result.kind == service.IngestKind.unchanged:
        response.status_code = 200
    return _moved(response, service.find_version(session, article_id, result.version))
