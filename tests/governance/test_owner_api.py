"""The owner API over HTTP: If-Match on moves, each role through its key, diff, queue,
freshness, feedback, audit and key management."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from canon.app import create_app
from canon.runtime import Runtime
from governance import keys, service
from governance.models import Rating
from tests.governance.factory import answer_citing, draft, feedback, live

KEYS = {
    "alice": ["author"],
    "rob": ["review"],
    "rita": ["review"],
    "dr-chen": ["review", "clinical-review"],
    "ada": ["admin"],
    "bot": ["answer"],
}


@pytest.fixture
def api(runtime: Runtime) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    headers: dict[str, dict[str, str]] = {}
    with Session(runtime.engine) as s:
        for name, scopes in KEYS.items():
            _k, secret = keys.create(s, name=name, scopes=scopes, created_by="setup")
            headers[name] = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(runtime)) as client:
        yield client, headers


def test_moves_need_if_match_and_refuse_a_stale_revision(
    api: tuple[TestClient, dict[str, dict[str, str]]], runtime: Runtime
) -> None:
    client, h = api
    today = datetime.now(UTC).date()
    with Session(runtime.engine) as s:
        live(s, runtime.sync, body="Phone: 8 to 5.", last_reviewed=today)
        draft(s, body="Phone: 7:30 to 6.", last_reviewed=today)
    base = "/v1/articles/billing-hours/versions/2"

    got = client.get(base, headers=h["rob"])
    assert got.status_code == 200 and got.json()["status"] == "in_review"
    tag = got.headers["ETag"]
    assert tag == f'"{got.json()["revision"]}"'

    assert client.post(f"{base}/approve", headers=h["rob"]).status_code == 428
    stale = client.post(f"{base}/approve", headers=h["rob"] | {"If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "conflict"
    assert client.post(f"{base}/approve", headers=h["alice"] | {"If-Match": tag}).status_code == (
        403
    )
    ok = client.post(
        f"{base}/approve", headers=h["rob"] | {"If-Match": tag}, json={"comment": "matches"}
    )
    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    again = client.post(f"{base}/approve", headers=h["rita"] | {"If-Match": tag})
    assert again.status_code == 409  # the second reviewer acted on what they saw: too late

    approved_tag = ok.headers["ETag"]
    assert (
        client.post(f"{base}/publish", headers=h["alice"] | {"If-Match": approved_tag}).status_code
        == 403
    )
    assert client.post(f"{base}/publish", headers=h["rob"] | {"If-Match": tag}).status_code == 409
    published = client.post(f"{base}/publish", headers=h["rita"] | {"If-Match": approved_tag})
    assert published.status_code == 200 and published.json()["status"] == "published"
    assert (
        client.post(f"{base}/publish", headers=h["rob"] | {"If-Match": approved_tag}).status_code
        == 409
    )

    answer = client.post(
        "/v1/search", headers=h["bot"], json={"question": "phone hours 7:30 to 6", "top_k": 3}
    )
    assert [(p["article_id"], p["version"]) for p in answer.json()["passages"]] == [
        ("billing-hours", 2)
    ]

    d = client.get("/v1/articles/billing-hours/diff?from=1&to=2", headers=h["alice"]).json()
    assert (d["from_version"], d["to_version"], d["added"], d["removed"]) == (1, 2, 1, 1)
    assert "+Phone: 7:30 to 6." in d["unified"]

    retire = client.post(
        "/v1/articles/billing-hours/retire", headers=h["rob"], json={"reason": "x"}
    )
    assert retire.status_code == 403
    retired = client.post(
        "/v1/articles/billing-hours/retire", headers=h["ada"], json={"reason": "office moved"}
    )
    assert retired.status_code == 200 and retired.json()["status"] == "retired"
    history = client.get("/v1/articles/billing-hours/history", headers=h["alice"]).json()
    assert [v["status"] for v in history] == ["superseded", "retired"]


def test_reject_needs_a_comment_and_clinical_needs_clinical_review(
    api: tuple[TestClient, dict[str, dict[str, str]]], runtime: Runtime
) -> None:
    client, h = api
    with Session(runtime.engine) as s:
        draft(s, article_id="chest-pain", clinical=True, body="Call 911.")
    base = "/v1/articles/chest-pain/versions/1"
    tag = client.get(base, headers=h["rob"]).headers["ETag"]
    assert (
        client.post(f"{base}/reject", headers=h["rob"] | {"If-Match": tag}, json={}).status_code
        == 422
    )
    assert client.post(f"{base}/approve", headers=h["rob"] | {"If-Match": tag}).status_code == 403
    rejected = client.post(
        f"{base}/reject",
        headers=h["dr-chen"] | {"If-Match": tag},
        json={"comment": "cite the guideline"},
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "draft"
    assert rejected.json()["review_comment"] == "cite the guideline"
    submitted = client.post(f"{base}/submit", headers=h["alice"])
    assert submitted.status_code == 200 and submitted.json()["status"] == "in_review"


def test_owner_views_queue_freshness_feedback_and_audit(
    api: tuple[TestClient, dict[str, dict[str, str]]], runtime: Runtime
) -> None:
    client, h = api
    long_ago = datetime.now(UTC).date() - timedelta(days=500)
    with Session(runtime.engine) as s:
        old = live(s, runtime.sync, owner="Raj", service_line="pharmacy", last_reviewed=long_ago)
        feedback(s, answer_citing(s, [old]), Rating.outdated, "refill rules changed")

    queue = client.get("/v1/review-queue?owner=Raj", headers=h["rob"]).json()
    assert [(i["article_id"], i["feedback"], i["freshness"]) for i in queue] == [
        ("billing-hours", {"outdated": 1}, "expired")
    ]
    fresh = client.get("/v1/freshness", headers=h["rob"]).json()
    assert fresh["mode"] == "withhold" and fresh["by_owner"] == {"Raj": 1}
    assert fresh["by_service_line"] == {"pharmacy": 1}
    assert fresh["items"][0]["withheld_from_patients"] is True
    listed = client.get("/v1/feedback?owner=Raj", headers=h["rob"]).json()
    assert [(f["rating"], f["comment"]) for f in listed] == [("outdated", "refill rules changed")]

    assert client.post("/v1/articles/billing-hours/reverify", headers=h["alice"]).status_code == 403
    reverified = client.post(
        "/v1/articles/billing-hours/reverify", headers=h["rob"], json={"note": "checked"}
    )
    assert reverified.status_code == 200
    assert reverified.json()["last_reviewed"] == datetime.now(UTC).date().isoformat()
    assert client.get("/v1/freshness", headers=h["rob"]).json()["items"] == []

    assert client.get("/v1/audit", headers=h["rob"]).status_code == 403
    events = client.get("/v1/audit", headers=h["ada"]).json()
    assert [e["action"] for e in events][-1] == "reverify"
    mine = client.get("/v1/audit?article_id=billing-hours", headers=h["rob"]).json()
    assert [e["action"] for e in mine] == ["create", "submit", "approve", "publish", "reverify"]
    assert client.get("/v1/audit/verify", headers=h["ada"]).json()["ok"] is True


def test_only_admins_manage_keys(api: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, h = api
    body = {"name": "new-bot", "scopes": ["answer"], "audience": "patient"}
    assert client.post("/v1/keys", headers=h["rob"], json=body).status_code == 403
    made = client.post("/v1/keys", headers=h["ada"], json=body)
    assert made.status_code == 201 and made.json()["key"].startswith("canon_")
    prefix = made.json()["prefix"]
    assert client.get("/v1/keys", headers=h["alice"]).status_code == 403
    listed = client.get("/v1/keys", headers=h["ada"]).json()
    assert "key" not in listed[0] and prefix in [k["prefix"] for k in listed]
    new = {"Authorization": f"Bearer {made.json()['key']}"}
    assert client.post("/v1/search", headers=new, json={"question": "hours"}).status_code == 200
    assert client.delete(f"/v1/keys/{prefix}", headers=h["rob"]).status_code == 403
    assert client.delete(f"/v1/keys/{prefix}", headers=h["ada"]).json()["revoked_at"]
    assert client.post("/v1/search", headers=new, json={"question": "hours"}).status_code == 401
    actions = [e["action"] for e in client.get("/v1/audit", headers=h["ada"]).json()]
    assert actions[-2:] == ["key.create", "key.revoke"]


def test_authors_write_drafts_over_http(
    api: tuple[TestClient, dict[str, dict[str, str]]], runtime: Runtime
) -> None:
    client, h = api
    body = {
        "title": "Pharmacy hours",
        "owner": "Raj",
        "service_line": "pharmacy",
        "audience": "patient",
        "body": "# Pharmacy hours\n\n## Weekdays\n\nOpen 9 to 6.\n\n## Weekends\n\nClosed.\n",
    }
    path = "/v1/articles/pharmacy-hours/versions"
    assert client.post(path, headers=h["rob"], json=body).status_code == 403
    made = client.post(path, headers=h["alice"], json=body | {"submit": True})
    assert made.status_code == 201, made.text
    assert (made.json()["number"], made.json()["status"]) == (1, "in_review")
    same = client.post(path, headers=h["alice"], json=body)
    assert same.status_code == 200 and same.json()["number"] == 1  # unchanged: nothing added
    with Session(runtime.engine) as s:
        sections = [
            c.section
            for c in service.chunks_of(s, service.find_version(s, "pharmacy-hours", 1).id or 0)
        ]
    assert any("Weekends" in section for section in sections)
    changed = client.post(
        path, headers=h["alice"], json=body | {"body": "# Pharmacy hours\n\nOpen 8 to 8.\n"}
    )
    assert changed.status_code == 201 and changed.json()["number"] == 2
    history = client.get("/v1/articles/pharmacy-hours/history", headers=h["alice"]).json()
    assert [v["status"] for v in history] == ["superseded", "draft"]
    bad = client.post("/v1/articles/bad%20id/versions", headers=h["alice"], json=body)
    assert bad.status_code == 422


def test_reader_feedback_reaches_the_owners_queue(
    api: tuple[TestClient, dict[str, dict[str, str]]], runtime: Runtime
) -> None:
    """The whole loop over HTTP: an answer cites a version, a reader says it is outdated,
    and the owner's queue counts it against that version."""
    client, h = api
    today = datetime.now(UTC).date()
    with Session(runtime.engine) as s:
        live(
            s,
            runtime.sync,
            owner="Maria",
            body="The billing office is open 8 to 5.",
            last_reviewed=today,
        )
    answer = client.post(
        "/v1/answer",
        headers=h["bot"],
        json={"question": "When is the billing office open?", "audience": "patient"},
    ).json()
    assert [(c["article_id"], c["version"]) for c in answer["citations"]] == [("billing-hours", 1)]
    sent = client.post(
        "/v1/feedback",
        headers=h["bot"],
        json={"answer_id": answer["answer_id"], "rating": "outdated", "comment": "Now 7:30 to 6"},
    )
    assert sent.status_code == 201, sent.text
    queue = client.get("/v1/review-queue?owner=Maria", headers=h["rob"]).json()
    assert [(i["article_id"], i["feedback"], i["problems"]) for i in queue] == [
        ("billing-hours", {"outdated": 1}, 1)
    ]
    listed = client.get("/v1/feedback?article_id=billing-hours", headers=h["rob"]).json()
    assert [(f["rating"], f["comment"], f["version"]) for f in listed] == [
        ("outdated", "Now 7:30 to 6", 1)
    ]
