"""/v1/answer's log, /v1/answers/{id}, /v1/feedback, the error model and the size limits."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from canon.app import create_app
from canon.runtime import Runtime
from governance import keys
from governance.models import AnswerCitation, AnswerLog, Audience

Keys = dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def api(sample_runtime: Runtime) -> Iterator[tuple[TestClient, Keys]]:
    made: Keys = {}
    with Session(sample_runtime.engine) as s:
        for name, scopes, audience in [
            ("agent-a", ["answer"], None),
            ("agent-b", ["answer"], None),
            ("patient-chat", ["answer"], Audience.patient),
            ("reviewer", ["review"], None),
            ("author", ["author"], None),
        ]:
            _k, secret = keys.create(
                s, name=name, scopes=scopes, created_by="test", audience=audience
            )
            made[name] = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(sample_runtime)) as client:
        yield client, made


QUESTION = "My name is Jane Doe, MRN 99887766 - what are the billing phone hours?"


def test_every_answer_is_logged_de_identified_with_the_versions_it_cited(
    api: tuple[TestClient, Keys], sample_runtime: Runtime
) -> None:
    client, made = api
    body = client.post("/v1/answer", json={"question": QUESTION}, headers=made["agent-a"]).json()
    assert not body["abstained"] and body["answer_id"]
    logged = client.get(f"/v1/answers/{body['answer_id']}", headers=made["agent-a"]).json()
    assert "Jane" not in logged["question"] and "99887766" not in logged["question"]
    assert logged["answer"] == body["answer"]
    assert [(c["article_id"], c["version"]) for c in logged["citations"]] == [
        (c["article_id"], c["version"]) for c in body["citations"]
    ]
    live = {(v.article_id, v.number): v.version_id for v in sample_runtime.catalog.live().values()}
    with Session(sample_runtime.engine) as s:
        rows = s.exec(
            select(AnswerCitation).where(AnswerCitation.answer_id == body["answer_id"])
        ).all()
        assert rows and all(live[(r.article_id, r.version)] == r.version_id for r in rows)
        stored = s.get(AnswerLog, body["answer_id"])
        assert stored is not None and "Jane" not in stored.question_deid


def test_feedback_links_to_the_cited_versions_and_only_the_asker_or_reviewers_see_it(
    api: tuple[TestClient, Keys],
) -> None:
    client, made = api
    body = client.post("/v1/answer", json={"question": QUESTION}, headers=made["agent-a"]).json()
    answer_id = body["answer_id"]
    feedback = client.post(
        "/v1/feedback",
        json={"answer_id": answer_id, "rating": "outdated", "comment": "call 617-555-0142"},
        headers=made["agent-a"],
    )
    assert feedback.status_code == 201, feedback.text
    payload = feedback.json()
    assert payload["versions"] and "555-0142" not in payload["comment"]
    assert {(v["article_id"], v["version"]) for v in payload["versions"]} == {
        (c["article_id"], c["version"]) for c in body["citations"]
    }
    assert client.get(f"/v1/answers/{answer_id}", headers=made["agent-b"]).status_code == 404
    other = client.post(
        "/v1/feedback", json={"answer_id": answer_id, "rating": "wrong"}, headers=made["agent-b"]
    )
    assert other.status_code == 404
    reviewed = client.get(f"/v1/answers/{answer_id}", headers=made["reviewer"])
    assert reviewed.status_code == 200 and len(reviewed.json()["feedback"]) == 1
    assert client.get(f"/v1/answers/{answer_id}", headers=made["author"]).status_code == 403
    assert client.get(f"/v1/answers/{answer_id}").status_code == 401
    assert client.get("/v1/answers/no-such-id", headers=made["reviewer"]).status_code == 404


def test_patient_key_never_reads_staff_content(
    api: tuple[TestClient, Keys], sample_runtime: Runtime
) -> None:
    from evals import datasets

    client, made = api
    staff = {
        v.article_id for v in sample_runtime.catalog.live().values() if v.audience == Audience.staff
    }
    probes = [q for q in datasets.load("sample") if q.category == "staff_only"]
    leaks = 0
    for q in probes:
        for path in ("/v1/answer", "/v1/search"):
            asked_staff = client.post(
                path,
                json={"question": q.question, "audience": "staff"},
                headers=made["patient-chat"],
            )
            assert asked_staff.status_code == 403
            body = client.post(
                path, json={"question": q.question, "top_k": 20}, headers=made["patient-chat"]
            ).json()
            seen = {c["article_id"] for c in body.get("citations", body.get("passages", []))}
            leaks += len(seen & staff)
    assert leaks == 0


def test_one_error_model_for_validation_unknown_routes_and_oversized_bodies(
    api: tuple[TestClient, Keys],
) -> None:
    client, made = api
    too_long = client.post("/v1/answer", json={"question": "x" * 1001}, headers=made["agent-a"])
    assert too_long.status_code == 422
    error = too_long.json()["error"]
    assert error["code"] == "invalid_input" and error["message"].startswith("question")
    bad_channel = client.post(
        "/v1/answer", json={"question": "hours", "channel": "fax"}, headers=made["agent-a"]
    )
    assert bad_channel.status_code == 422 and bad_channel.json()["error"]["details"]
    missing = client.get("/v1/nothing-here", headers=made["agent-a"])
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    huge = client.post(
        "/v1/answer",
        content=b'{"question": "' + b"a" * 20_000 + b'"}',
        headers=made["agent-a"] | {"content-type": "application/json"},
    )
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"


def test_openapi_documents_examples_and_the_error_model(api: tuple[TestClient, Keys]) -> None:
    client, _made = api
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("AnswerRequest", "SearchRequest", "AnswerResponse", "FeedbackRequest"):
        assert schemas[name].get("examples"), name
    for path, method in [
        ("/v1/answer", "post"),
        ("/v1/search", "post"),
        ("/v1/answers/{answer_id}", "get"),
        ("/v1/feedback", "post"),
    ]:
        responses = spec["paths"][path][method]["responses"]
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "ErrorResponse"
        ), path


def test_search_grouped_by_article_returns_one_passage_per_article(
    api: tuple[TestClient, Keys],
) -> None:
    client, made = api
    ask = {"question": "billing office hours and payment plans", "top_k": 10}
    flat = client.post("/v1/search", json=ask, headers=made["agent-a"]).json()["passages"]
    grouped = client.post(
        "/v1/search", json=ask | {"group_by": "article"}, headers=made["agent-a"]
    ).json()["passages"]
    articles = [p["article_id"] for p in grouped]
    assert len(articles) == len(set(articles)) == 10
    assert len({p["article_id"] for p in flat}) < 10  # chunks of one article crowd the list
    assert grouped[0] == flat[0]  # the best passage stays first
    # each article's passage is its best-ranked one among the flat results
    first: dict[str, object] = {}
    for p in flat:
        first.setdefault(p["article_id"], p)
    assert all(first[g["article_id"]] == g for g in grouped if g["article_id"] in first)
    bad = client.post("/v1/search", json=ask | {"group_by": "section"}, headers=made["agent-a"])
    assert bad.status_code == 422 and "group_by" in bad.text
