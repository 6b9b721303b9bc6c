"""The content owners' web UI: server-rendered pages over the same service as the API.

Sign in with an API key (kept in an HttpOnly, SameSite=Strict cookie, checked on every
request like a bearer key); review queue; article page with the diff against the
published version and approve / reject / publish / re-verify forms; freshness
dashboard by owner and service line; reader feedback. Plain HTML forms: no
JavaScript, keyboard use and labels come from the markup itself.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Cookie, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from governance import audit, diff, freshness, keys, queue, service
from governance.api import SessionDep, get_index, get_policy, today
from governance.errors import CanonError, NotFound, Unauthenticated
from governance.freshness import FreshnessPolicy
from governance.keys import Principal, Scope
from governance.models import ArticleVersion, Status
from governance.service import IndexHook

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
COOKIE = "canon_key"
CONTENT_SCOPES = (Scope.author, Scope.review, Scope.clinical_review, Scope.admin)

router = APIRouter(prefix="/ui", include_in_schema=False)


class SignInRequired(Exception):
    """No valid key in the cookie: the page redirects to the sign-in form."""


def current(session: SessionDep, canon_key: Annotated[str | None, Cookie()] = None) -> Principal:
    try:
        who = keys.authenticate(session, canon_key)
    except Unauthenticated:
        raise SignInRequired() from None
    if not who.scopes.intersection(CONTENT_SCOPES):
        raise SignInRequired()
    return who


WhoDep = Annotated[Principal, Depends(current)]
PolicyDep = Annotated[FreshnessPolicy, Depends(get_policy)]
IndexDep = Annotated[IndexHook, Depends(get_index)]


def page(
    request: Request, name: str, who: Principal | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        name,
        {"who": who, "notice": request.query_params.get("notice"), **context},
        status_code=status_code,
    )


def back(url: str, notice: str) -> RedirectResponse:
    sep = "&" if "?" in url else "?"
    return RedirectResponse(f"{url}{sep}{urlencode({'notice': notice})}", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home() -> RedirectResponse:
    return RedirectResponse("/ui/queue", status_code=303)


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request) -> HTMLResponse:
    return page(request, "sign_in.html", None, error=None)


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in(request: Request, session: SessionDep, key: Annotated[str, Form()] = "") -> Response:
    try:
        who = keys.authenticate(session, key)
        if not who.scopes.intersection(CONTENT_SCOPES):
            raise Unauthenticated("this key has no content role (author, review or admin)")
    except Unauthenticated as exc:
        return page(request, "sign_in.html", None, status_code=401, error=str(exc))
    response = RedirectResponse("/ui/queue", status_code=303)
    response.set_cookie(
        COOKIE,
        key.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui",
    )
    return response


@router.post("/sign-out")
def sign_out() -> RedirectResponse:
    response = RedirectResponse("/ui/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("/queue", response_class=HTMLResponse)
def queue_page(
    request: Request,
    session: SessionDep,
    who: WhoDep,
    policy: PolicyDep,
    owner: str | None = None,
    service_line: str | None = None,
) -> HTMLResponse:
    items = queue.review_queue(
        session, policy, today(), owner=owner or None, service_line=service_line or None
    )
    return page(
        request,
        "queue.html",
        who,
        items=items,
        owner=owner or "",
        service_line=service_line or "",
        title="Review queue",
    )


def _focus(session: Session, article_id: str, number: int | None) -> ArticleVersion:
    """The version the page is about: the one asked for, else the pending one, else the newest."""
    if number is not None:
        return service.find_version(session, article_id, number)
    versions = service.history(session, article_id)
    pending = [v for v in versions if v.status in (Status.in_review, Status.approved, Status.draft)]
    return (pending or versions)[-1]


def _article_context(
    session: Session, who: Principal, policy: PolicyDep, article_id: str, number: int | None
) -> dict[str, Any]:
    article = service.get_article(session, article_id)
    version = _focus(session, article_id, number)
    published = (
        service.get_version(session, article.published_version_id)
        if article.published_version_id is not None
        else None
    )
    changes: diff.VersionDiff | None = None
    if published is not None and published.id != version.id:
        changes = diff.between(published, version)
    actor = who.actor()
    return {
        "title": article.title,
        "article": article,
        "version": version,
        "published": published,
        "changes": changes,
        "history": service.history(session, article_id),
        "feedback": queue.feedback_list(session, article_id=article_id, limit=50),
        "events": audit.events(session, article_id=article_id, limit=200),
        "state": policy.state(article.review_due(), today()) if published else None,
        "can_review": bool(actor.roles & {service.Role.reviewer, service.Role.clinical_reviewer}),
        "own_version": actor.name == version.author,
        "is_admin": service.Role.admin in actor.roles,
    }


@router.get("/articles/{article_id}", response_class=HTMLResponse)
def article_page(
    request: Request,
    article_id: str,
    session: SessionDep,
    who: WhoDep,
    policy: PolicyDep,
    v: int | None = None,
) -> HTMLResponse:
    try:
        context = _article_context(session, who, policy, article_id, v)
    except NotFound as exc:
        return page(request, "error.html", who, status_code=404, title="Not found", error=str(exc))
    return page(request, "article.html", who, error=None, **context)


def _article_url(article_id: str, number: int) -> str:
    return f"/ui/articles/{quote(article_id)}?v={number}"


def _status_of(request: Request, exc: CanonError) -> int:
    """HTTP status for a domain error, from the application's one table."""
    lookup = getattr(request.app.state, "http_status", None)
    return int(lookup(exc)) if lookup is not None else 400


def _act(
    request: Request,
    session: Session,
    who: Principal,
    policy: FreshnessPolicy,
    article_id: str,
    number: int,
    done: str,
    move: Callable[[], object],
) -> Response:
    """Run one service call; on a domain error show the page again, saying why."""
    try:
        move()
    except CanonError as exc:
        session.rollback()
        return page(
            request,
            "article.html",
            who,
            status_code=_status_of(request, exc),
            error=str(exc),
            **_article_context(session, who, policy, article_id, number),
        )
    return back(_article_url(article_id, number), done)


def _version_id(session: Session, article_id: str, number: int) -> int:
    version = service.find_version(session, article_id, number)
    assert version.id is not None
    return version.id


RevisionForm = Annotated[int, Form(description="the revision the reviewer looked at")]
CommentForm = Annotated[str, Form()]


@router.post("/articles/{article_id}/versions/{number}/approve")
def approve(
    request: Request,
    article_id: str,
    number: int,
    session: SessionDep,
    who: WhoDep,
    policy: PolicyDep,
    revision: RevisionForm,
    comment: CommentForm = "",
) -> Response:
    vid = _version_id(session, article_id, number)
    return _act(
        request,
        session,
        who,
        policy,
        article_id,
        number,
        f"Approved v{number}.",
        lambda: service.approve(
            session, vid, who.actor(), expected_revision=revision, comment=comment.strip() or None
        ),
    )


@router.post("/articles/{article_id}/versions/{number}/reject")
def reject(
    request: Request,
    article_id: str,
    number: int,
    session: SessionDep,
    who: WhoDep,
    policy: PolicyDep,
    revision: RevisionForm,
    comment: CommentForm = "",
) -> Response:
    vid = _version_id(session, article_id, number)
    return _act(
        request,
        session,
        who,
        policy,
        article_id,
        number,
        f"Sent v{number} back to its author.",
        lambda: service.reject(session, vid, who.actor(), comment, expected_revision=revision),
    )


@router.post("/articles/{article_id}/versions/{number}/publish")
def publish(
    request: Request,
    article_id: str,
    number: int,
    session: SessionDep,
    who: WhoDep,
    policy: PolicyDep,
    index: IndexDep,
    revision: RevisionForm,
) -> Response:
    vid = _version_id(session, article_id, number)
    return _act(
        request,
        session,
        who,
        policy,
        article_id,
        number,
        f"Published v{number}.",
        lambda: service.publish(session, vid, who.actor(), index, expected_revision=revision),
    )


@router.post("/articles/{article_id}/reverify")
def reverify(
    request: Request,
    article_id: str,
    session: SessionDep,
    who: WhoDep,
    policy: PolicyDep,
    note: CommentForm = "",
    number: Annotated[int, Form()] = 0,
) -> Response:
    return _act(
        request,
        session,
        who,
        policy,
        article_id,
        number or 1,
        "Re-verified: the review clock restarts today.",
        lambda: freshness.reverify(
            session, article_id, who.actor(), today(), note=note.strip() or None
        ),
    )


@router.get("/freshness", response_class=HTMLResponse)
def freshness_page(
    request: Request,
    session: SessionDep,
    who: WhoDep,
    policy: PolicyDep,
    within_days: int = 30,
) -> HTMLResponse:
    items = freshness.report(session, policy, today(), soon_days=within_days)
    return page(
        request,
        "freshness.html",
        who,
        title="Freshness",
        policy=policy,
        today=today(),
        within_days=within_days,
        items=items,
        by_owner=freshness.grouped(items, "owner"),
        by_service_line=freshness.grouped(items, "service_line"),
        can_verify=bool(
            who.actor().roles
            & {service.Role.reviewer, service.Role.clinical_reviewer, service.Role.admin}
        ),
    )


@router.get("/feedback", response_class=HTMLResponse)
def feedback_page(
    request: Request, session: SessionDep, who: WhoDep, owner: str | None = None
) -> HTMLResponse:
    return page(
        request,
        "feedback.html",
        who,
        title="Reader feedback",
        owner=owner or "",
        items=queue.feedback_list(session, owner=owner or None),
    )


def _sign_in_redirect(_request: Request, _exc: Exception) -> Response:
    return RedirectResponse("/ui/sign-in", status_code=303)


def mount(app: FastAPI) -> None:
    """Add the UI to an application (which puts `engine`, `index`, `freshness` on its state)."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.add_exception_handler(SignInRequired, _sign_in_redirect)
