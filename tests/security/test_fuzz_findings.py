"""Regression tests for what the schemathesis run (test_fuzz.py) found, on SQLite and PostgreSQL."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from canon.app import create_app
from canon.runtime import Runtime
from governance import keys, service
from governance.errors import NotFound
from governance.keys import Scope
from governance.models import AnswerLog, ApiKey, Article
from tests.governance.factory import draft

Api = tuple[TestClient, dict[str, str]]
DRAFT = {"title": "Parking", "owner": "Facilities", "service_line": "parking", "body": "Free."}


@pytest.fixture
def api(runtime: Runtime) -> Iterator[Api]:
    with Session(runtime.engine) as s:
        _key, secret = keys.create(
            s, name="everything", scopes=[scope.value for scope in Scope], created_by="test"
        )
        draft(s, article_id="billing-hours")
    with TestClient(create_app(runtime)) as client:
        yield client, {"Authorization": f"Bearer {secret}"}


def _error(response: object, status: int) -> dict[str, str]:
    assert getattr(response, "status_code", None) == status, getattr(response, "text", "")
    body: dict[str, dict[str, str]] = response.json()  # type: ignore[attr-defined]
    return body["error"]


def test_version_numbers_past_an_integer_column_are_refused_not_a_crash(
    api: Api, runtime: Runtime
) -> None:
    """Was a 500: OverflowError (SQLite) / out of range (PostgreSQL) on `number=2**63`."""
    client, h = api
    base = "/v1/articles/billing-hours"
    for path in (f"{base}/versions/{2**63}", f"{base}/versions/0", f"{base}/diff?to={2**63}"):
        error = _error(client.get(path, headers=h), 422)
        assert error["code"] == "invalid_input"
        assert error["message"].split(":")[0] in ("number", "to")
    moved = client.post(f"{base}/versions/{2**63}/submit", headers=h)
    assert _error(moved, 422)["message"].startswith("number")
    assert client.get(f"/v1/audit?after={2**63}", headers=h).status_code == 422
    with Session(runtime.engine) as s, pytest.raises(NotFound):
        service.find_version(s, "billing-hours", 2**63)  # the CLI and UI path too
    client.cookies.set("canon_key", h["Authorization"].removeprefix("Bearer "), path="/ui")
    try:
        assert client.get(f"/ui/articles/billing-hours?v={2**63}").status_code == 404
    finally:
        client.cookies.clear()


def test_review_intervals_that_overflow_dates_are_refused(api: Api, runtime: Runtime) -> None:
    """Was stored and then a 500 on every listing (date + timedelta overflow)."""
    client, h = api
    for days in (10**9, 0, -5):
        made = client.post(
            "/v1/articles/parking/versions", headers=h, json=DRAFT | {"review_every_days": days}
        )
        assert _error(made, 422)["message"].startswith("review_every_days")
    assert client.get("/v1/articles", headers=h).status_code == 200
    with Session(runtime.engine) as s:
        assert s.get(Article, "parking") is None


def test_nul_characters_are_refused_before_anything_is_stored(api: Api, runtime: Runtime) -> None:
    """Was a 500 on PostgreSQL: text fields cannot contain NUL (0x00) bytes."""
    client, h = api
    cases = [
        ("get", "/v1/articles?service_line=%00", None, "query"),
        ("get", "/v1/articles/bad%00id", None, "path"),
        ("post", "/v1/answer", {"question": "billing\u0000hours"}, "body"),
        ("post", "/v1/keys", {"name": "a\u0000b", "scopes": ["answer"]}, "body"),
        ("post", "/v1/articles/parking/versions", DRAFT | {"body": "Free\u0000"}, "body"),
    ]
    for method, path, body, where in cases:
        response = client.request(method, path, json=body, headers=h)
        assert _error(response, 422)["message"] == (
            f"{where}: NUL characters (U+0000) are not allowed"
        ), path
    smuggled = client.get("/v1/articles", headers=h | {"X-Note": "a\x00b"})
    assert _error(smuggled, 422)["message"].startswith("header x-note")
    escaped = client.post(  # the six characters \u0000 as text are not a NUL
        "/v1/articles/parking/versions", headers=h, json=DRAFT | {"body": "Free \\u0000 parking."}
    )
    assert escaped.status_code == 201, escaped.text
    with Session(runtime.engine) as s:
        assert s.exec(select(AnswerLog)).all() == []
        assert [k.name for k in s.exec(select(ApiKey)).all()] == ["everything"]


def test_unparseable_bodies_and_bad_if_match_get_the_documented_error_shape(api: Api) -> None:
    """Was an undocumented 400 `http_error`, and a free-text If-Match reached the service."""
    client, h = api
    broken = client.post(
        "/v1/answer", content=b"\xff\xfe{", headers=h | {"content-type": "application/json"}
    )
    error = _error(broken, 400)
    assert error["code"] == "malformed_body" and error["message"].startswith("body:")
    approve = client.post(
        "/v1/articles/billing-hours/versions/1/approve", headers=h | {"If-Match": "yesterday"}
    )
    assert _error(approve, 422)["message"].startswith("if-match")
    spec = client.get("/openapi.json").json()["paths"]
    move = spec["/v1/articles/{article_id}/versions/{number}/approve"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "422", "428"} <= set(move)
