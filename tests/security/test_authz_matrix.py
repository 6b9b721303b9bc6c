"""Every route the app serves × every scope, no key, a revoked key and bad keys.

Routes are read from `app.routes`, so a new endpoint fails `test_every_route_is_classified`
until it gets a rule here. Each cell sends a request that would succeed for an allowed
caller (a fresh article in the right state, the right If-Match): allowed callers get a
2xx (the UI: its page, or a redirect back to the article), valid keys without the scope
get 403, and anything that is not a live key gets 401 (the UI: the sign-in page).
"""

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from canon.app import create_app
from canon.runtime import Runtime
from canon.settings import Settings
from governance import keys, service
from governance.keys import Scope
from governance.models import ApiKey, Status
from tests.governance.factory import REVIEWER, draft, live

SCOPES = tuple(s.value for s in Scope)
BAD_KEYS = ("no key", "revoked", "wrong secret", "garbled", "unknown prefix")
IDENTITIES = SCOPES + BAD_KEYS
CONTENT = frozenset({"author", "review", "clinical-review", "admin"})
REVIEWERS = frozenset({"review", "clinical-review"})
PUBLISHERS = REVIEWERS | {"admin"}
WRITERS = frozenset({"author", "admin"})
ADMIN = frozenset({"admin"})
LOG_READERS = frozenset({"answer", "review", "clinical-review", "admin"})
PUBLIC = None  # served to anyone


@dataclass
class Ctx:
    client: TestClient
    runtime: Runtime
    tokens: dict[str, str]
    answer_id: str
    seq: Iterator[int] = field(default_factory=itertools.count)

    def unique(self, stem: str) -> str:
        return f"{stem}-{next(self.seq)}"

    def session(self) -> Session:
        return Session(self.runtime.engine)

    def version(self, state: Status) -> "Made":
        """A fresh, non-clinical article whose newest version is in `state`."""
        with self.session() as s:
            article_id = self.unique(f"m-{state.value}")
            if state == Status.published:
                version = live(s, self.runtime.sync, article_id=article_id)
            else:
                version = draft(s, article_id=article_id, submit=state != Status.draft)
            if state == Status.approved:
                assert version.id is not None
                version = service.approve(s, version.id, REVIEWER)
            return Made(version.article_id, version.number, version.revision)


@dataclass(frozen=True)
class Made:
    article_id: str
    number: int
    revision: int


Request = tuple[str, str, dict[str, Any]]
Build = Callable[[Ctx], Request]


def _move(prefix: str, action: str, state: Status) -> Build:
    def build(ctx: Ctx) -> Request:
        v = ctx.version(state)
        url = f"{prefix}/articles/{v.article_id}/versions/{v.number}/{action}"
        body = {"comment": "needs a source"} if action == "reject" else None
        if prefix == "/ui":
            return "POST", url, {"data": {"revision": v.revision, **(body or {})}}
        return "POST", url, {"json": body, "headers": {"If-Match": f'"{v.revision}"'}}

    return build


def _fixed(method: str, url: str, **kwargs: Any) -> Build:
    return lambda _ctx: (method, url, kwargs)


def _new_key(ctx: Ctx) -> Request:
    with ctx.session() as s:
        key, _secret = keys.create(s, name=ctx.unique("victim"), scopes=["answer"], created_by="t")
    return "DELETE", f"/v1/keys/{key.prefix}", {}


READ = "matrix-read"  # published v1 and a draft v2, made once
DRAFT = {"title": "Parking", "owner": "Facilities", "service_line": "parking", "body": "Free."}


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str] | None
    build: Build
    ui: bool = False  # cookie sign-in; refusals redirect to the sign-in page


RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/openapi.json"): Rule(PUBLIC, _fixed("GET", "/openapi.json")),
    ("GET", "/docs"): Rule(PUBLIC, _fixed("GET", "/docs")),
    ("GET", "/docs/oauth2-redirect"): Rule(PUBLIC, _fixed("GET", "/docs/oauth2-redirect")),
    ("GET", "/redoc"): Rule(PUBLIC, _fixed("GET", "/redoc")),
    ("GET", "/healthz"): Rule(PUBLIC, _fixed("GET", "/healthz")),
    ("GET", "/readyz"): Rule(PUBLIC, _fixed("GET", "/readyz")),
    ("MOUNT", "/ui/static"): Rule(PUBLIC, _fixed("GET", "/ui/static/canon.css")),
    ("POST", "/v1/search"): Rule(
        frozenset({"answer"}), _fixed("POST", "/v1/search", json={"question": "parking"})
    ),
    ("POST", "/v1/answer"): Rule(
        frozenset({"answer"}), _fixed("POST", "/v1/answer", json={"question": "parking"})
    ),
    ("GET", "/v1/answers/{answer_id}"): Rule(
        LOG_READERS, lambda ctx: ("GET", f"/v1/answers/{ctx.answer_id}", {})
    ),
    ("POST", "/v1/feedback"): Rule(
        LOG_READERS,
        lambda ctx: (
            "POST",
            "/v1/feedback",
            {"json": {"answer_id": ctx.answer_id, "rating": "helpful"}},
        ),
    ),
    ("GET", "/v1/articles"): Rule(CONTENT, _fixed("GET", "/v1/articles")),
    ("GET", "/v1/articles/{article_id}"): Rule(CONTENT, _fixed("GET", f"/v1/articles/{READ}")),
    ("GET", "/v1/articles/{article_id}/history"): Rule(
        CONTENT, _fixed("GET", f"/v1/articles/{READ}/history")
    ),
    ("GET", "/v1/articles/{article_id}/versions/{number}"): Rule(
        CONTENT, _fixed("GET", f"/v1/articles/{READ}/versions/2")
    ),
    ("GET", "/v1/articles/{article_id}/diff"): Rule(
        CONTENT, _fixed("GET", f"/v1/articles/{READ}/diff?from=1&to=2")
    ),
    ("POST", "/v1/articles/{article_id}/versions"): Rule(
        WRITERS,
        lambda ctx: ("POST", f"/v1/articles/{ctx.unique('m-new')}/versions", {"json": DRAFT}),
    ),
    ("POST", "/v1/articles/{article_id}/versions/{number}/submit"): Rule(
        WRITERS, _move("/v1", "submit", Status.draft)
    ),
    ("POST", "/v1/articles/{article_id}/versions/{number}/approve"): Rule(
        REVIEWERS, _move("/v1", "approve", Status.in_review)
    ),
    ("POST", "/v1/articles/{article_id}/versions/{number}/reject"): Rule(
        REVIEWERS, _move("/v1", "reject", Status.in_review)
    ),
    ("POST", "/v1/articles/{article_id}/versions/{number}/publish"): Rule(
        PUBLISHERS, _move("/v1", "publish", Status.approved)
    ),
    ("POST", "/v1/articles/{article_id}/retire"): Rule(
        ADMIN,
        lambda ctx: (
            "POST",
            f"/v1/articles/{ctx.version(Status.published).article_id}/retire",
            {"json": {"reason": "moved"}},
        ),
    ),
    ("POST", "/v1/articles/{article_id}/reverify"): Rule(
        PUBLISHERS, _fixed("POST", f"/v1/articles/{READ}/reverify")
    ),
    ("GET", "/v1/review-queue"): Rule(CONTENT, _fixed("GET", "/v1/review-queue")),
    ("GET", "/v1/freshness"): Rule(CONTENT, _fixed("GET", "/v1/freshness")),
    ("GET", "/v1/feedback"): Rule(CONTENT, _fixed("GET", "/v1/feedback")),
    ("GET", "/v1/audit"): Rule(ADMIN, _fixed("GET", "/v1/audit")),
    ("GET", "/v1/audit/verify"): Rule(ADMIN, _fixed("GET", "/v1/audit/verify")),
    ("POST", "/v1/keys"): Rule(
        ADMIN, _fixed("POST", "/v1/keys", json={"name": "new-bot", "scopes": ["answer"]})
    ),
    ("GET", "/v1/keys"): Rule(ADMIN, _fixed("GET", "/v1/keys")),
    ("DELETE", "/v1/keys/{prefix}"): Rule(ADMIN, _new_key),
    ("GET", "/ui/"): Rule(PUBLIC, _fixed("GET", "/ui/")),
    ("GET", "/ui/sign-in"): Rule(PUBLIC, _fixed("GET", "/ui/sign-in")),
    ("POST", "/ui/sign-out"): Rule(PUBLIC, _fixed("POST", "/ui/sign-out")),
    ("POST", "/ui/sign-in"): Rule(CONTENT, _fixed("POST", "/ui/sign-in"), ui=True),
    ("GET", "/ui/queue"): Rule(CONTENT, _fixed("GET", "/ui/queue"), ui=True),
    ("GET", "/ui/articles/{article_id}"): Rule(
        CONTENT, _fixed("GET", f"/ui/articles/{READ}"), ui=True
    ),
    ("GET", "/ui/freshness"): Rule(CONTENT, _fixed("GET", "/ui/freshness"), ui=True),
    ("GET", "/ui/feedback"): Rule(CONTENT, _fixed("GET", "/ui/feedback"), ui=True),
    ("POST", "/ui/articles/{article_id}/versions/{number}/approve"): Rule(
        REVIEWERS, _move("/ui", "approve", Status.in_review), ui=True
    ),
    ("POST", "/ui/articles/{article_id}/versions/{number}/reject"): Rule(
        REVIEWERS, _move("/ui", "reject", Status.in_review), ui=True
    ),
    ("POST", "/ui/articles/{article_id}/versions/{number}/publish"): Rule(
        PUBLISHERS, _move("/ui", "publish", Status.approved), ui=True
    ),
    ("POST", "/ui/articles/{article_id}/reverify"): Rule(
        PUBLISHERS, _fixed("POST", f"/ui/articles/{READ}/reverify", data={"number": "1"}), ui=True
    ),
}
# Requests that are not a route of their own but change who may call one.
VARIANTS: dict[str, Rule] = {
    "GET /v1/audit?article_id=": Rule(CONTENT, _fixed("GET", f"/v1/audit?article_id={READ}")),
}


def served_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of everything the app routes to, through included routers and mounts."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)  # FastAPI's included router
            if inner is not None:
                walk(inner.routes, prefix + getattr(route.include_context, "prefix", ""))
            elif getattr(route, "methods", None):
                found.update((m, prefix + route.path) for m in route.methods if m != "HEAD")
            else:
                found.add(("MOUNT", prefix + route.path))

    walk(app.routes, "")
    return found


ROUTES = served_routes(create_app(Runtime(Settings(home=Path("unused")))))
CELLS = [
    (name, rule, who)
    for name, rule in sorted(
        [(f"{m} {p}", RULES[(m, p)]) for m, p in ROUTES if (m, p) in RULES] + list(VARIANTS.items())
    )
    for who in IDENTITIES
]


def test_every_route_is_classified() -> None:
    unclassified = sorted(ROUTES - set(RULES))
    assert not unclassified, f"add an authorization rule for {unclassified}"
    assert not set(RULES) - ROUTES, "rules for routes that no longer exist"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Ctx]:
    home = tmp_path_factory.mktemp("matrix")
    runtime = Runtime(Settings(home=home), embedder=embedder)
    tokens: dict[str, str] = {}
    with Session(runtime.engine) as s:
        for scope in SCOPES:
            _key, tokens[scope] = keys.create(s, name=f"k-{scope}", scopes=[scope], created_by="t")
        old, tokens["revoked"] = keys.create(s, name="k-old", scopes=list(SCOPES), created_by="t")
        keys.revoke(s, old.prefix, by="t")
        live(s, runtime.sync, article_id=READ)
        draft(s, article_id=READ, body="Call 555-0199.")
    admin_prefix = tokens["admin"].split("_")[1]
    tokens["wrong secret"] = f"canon_{admin_prefix}_{'x' * 43}"
    tokens["garbled"] = "not-a-canon-key"
    tokens["unknown prefix"] = f"canon_ffffffff_{tokens['admin'].split('_', 2)[2]}"
    tokens["no key"] = ""
    with TestClient(create_app(runtime)) as client:
        asked = client.post(
            "/v1/answer",
            json={"question": "billing hours"},
            headers={"Authorization": f"Bearer {tokens['answer']}"},
        )
        assert asked.status_code == 200, asked.text
        yield Ctx(client, runtime, tokens, asked.json()["answer_id"])
    runtime.close()


def _send(ctx: Ctx, rule: Rule, who: str) -> Any:
    method, url, kwargs = rule.build(ctx)
    token = ctx.tokens[who]
    if not rule.ui:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return ctx.client.request(
            method, url, headers={**kwargs.pop("headers", {}), **headers}, **kwargs
        )
    ctx.client.cookies.clear()
    if url == "/ui/sign-in":
        return ctx.client.post(url, data={"key": token}, follow_redirects=False)
    if token:
        ctx.client.cookies.set("canon_key", token, path="/ui")
    try:
        return ctx.client.request(method, url, follow_redirects=False, **kwargs)
    finally:
        ctx.client.cookies.clear()


@pytest.mark.parametrize(
    ("route", "rule", "who"), CELLS, ids=[f"{route} as {who}" for route, _rule, who in CELLS]
)
def test_only_allowed_callers_succeed(ctx: Ctx, route: str, rule: Rule, who: str) -> None:
    response = _send(ctx, rule, who)
    status, where = response.status_code, response.headers.get("location", "")
    allowed = rule.allowed is PUBLIC or who in rule.allowed
    if rule.allowed is PUBLIC:
        assert 200 <= status < 400, (status, response.text[:300])
    elif allowed:
        assert 200 <= status < 400 and "sign-in" not in where, (status, response.text[:300])
    elif rule.ui and (who in BAD_KEYS or who == "answer"):
        if route == "POST /ui/sign-in":
            assert status == 401
        else:
            assert (status, where) == (303, "/ui/sign-in")
    elif who in BAD_KEYS:
        assert status == 401, response.text
        assert response.json()["error"]["code"] == "unauthenticated"
    else:
        assert status == 403, response.text[:300]
        if not rule.ui:
            assert response.json()["error"]["code"] == "permission_denied"


def test_refused_calls_change_nothing(ctx: Ctx) -> None:
    """A refused move leaves the version as it was; a refused key request makes no key."""
    v = ctx.version(Status.in_review)
    for who in ("answer", "author", "admin", *BAD_KEYS):
        token = ctx.tokens[who]
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        approve = ctx.client.post(
            f"/v1/articles/{v.article_id}/versions/{v.number}/approve",
            headers={"If-Match": f'"{v.revision}"'} | auth,
        )
        assert approve.status_code in (401, 403)
        if who != "admin":
            made = ctx.client.post(
                "/v1/keys", json={"name": "sneaky", "scopes": ["admin"]}, headers=auth
            )
            assert made.status_code in (401, 403)
    with ctx.session() as s:
        after = service.find_version(s, v.article_id, v.number)
        assert (after.status, after.revision) == (Status.in_review, v.revision)
        assert "sneaky" not in {k.name for k in s.exec(select(ApiKey)).all()}


def test_an_answering_key_cannot_probe_which_articles_exist(ctx: Ctx) -> None:
    """Was a 404 for a missing article and a 403 (or 428) for a real one."""
    auth = {"Authorization": f"Bearer {ctx.tokens['answer']}"}
    for article in (READ, "no-such-article"):
        for method, url, body in [
            ("POST", f"/v1/articles/{article}/versions/1/submit", None),
            ("POST", f"/v1/articles/{article}/versions/1/approve", None),
            ("POST", f"/v1/articles/{article}/versions/1/reject", {"comment": "x"}),
            ("POST", f"/v1/articles/{article}/versions/1/publish", None),
            ("POST", f"/v1/articles/{article}/retire", {"reason": "x"}),
            ("POST", f"/v1/articles/{article}/reverify", None),
            ("POST", f"/v1/articles/{article}/versions", DRAFT),
            ("GET", f"/v1/articles/{article}", None),
            ("GET", f"/v1/articles/{article}/versions/1", None),
        ]:
            response = ctx.client.request(method, url, json=body, headers=auth)
            assert response.status_code == 403, (url, response.status_code)
