"""Audience and service-line pins hold under crafted requests, over the published sample corpus.

(The patient key's leak count over every staff-only golden question is in
tests/retrieval/test_answer_api.py; this file tries to get around the pins.)
"""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from canon.app import create_app
from canon.runtime import Runtime
from governance import keys
from governance.models import Audience

Keys = dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def api(sample_runtime: Runtime) -> Iterator[tuple[TestClient, Keys, Runtime]]:
    made: Keys = {}
    with Session(sample_runtime.engine) as s:
        for name, audience, lines in [
            ("pin-patient", Audience.patient, ()),
            ("pin-billing", None, ("billing",)),
            ("pin-patient-billing", Audience.patient, ("billing", "insurance")),
            ("staff-agent", None, ()),
        ]:
            _k, secret = keys.create(
                s,
                name=name,
                scopes=["answer"],
                created_by="test",
                audience=audience,
                service_lines=lines,
            )
            made[name] = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(sample_runtime)) as client:
        yield client, made, sample_runtime


def _cited(body: dict[str, list[dict[str, str]]]) -> list[dict[str, str]]:
    return body.get("citations", body.get("passages", []))


STAFF_QUESTION = "What is the prior authorization submission workflow for staff?"


def test_a_patient_pin_cannot_be_talked_out_of(api: tuple[TestClient, Keys, Runtime]) -> None:
    client, made, runtime = api
    staff = {v.article_id for v in runtime.catalog.live().values() if v.audience == Audience.staff}
    assert staff, "the sample corpus has staff-only content to protect"
    h = made["pin-patient"] | {"content-type": "application/json"}
    for path in ("/v1/search", "/v1/answer"):
        for raw in (
            b'{"question": "prior auth workflow", "audience": "staff"}',
            # a duplicate key: the JSON parser keeps the last one
            b'{"question": "prior auth workflow", "audience": "patient", "audience": "staff"}',
        ):
            refused = client.post(path, content=raw, headers=h)
            assert refused.status_code == 403, refused.text
            assert "pinned to the patient audience" in refused.json()["error"]["message"]
        for audience in ("STAFF", "admin", "", None, ["staff"]):
            odd = client.post(path, json={"question": "x", "audience": audience}, headers=h)
            assert odd.status_code == 422, (audience, odd.text)
        # fields the request does not define change nothing
        smuggled = client.post(
            path,
            json={
                "question": STAFF_QUESTION,
                "top_k": 20,
                "audience_pin": None,
                "scopes": ["admin"],
                "filter": {"audience": "staff"},
            },
            headers=h,
        )
        assert smuggled.status_code == 200
        assert not {c["article_id"] for c in _cited(smuggled.json())} & staff


def test_service_line_pins_narrow_and_refuse_the_rest(
    api: tuple[TestClient, Keys, Runtime],
) -> None:
    client, made, _runtime = api
    h = made["pin-billing"]
    for lines in (["cardiology"], ["billing", "pharmacy"], ["Billing"], ["billing "], [""]):
        refused = client.post(
            "/v1/search", json={"question": "hours", "service_lines": lines}, headers=h
        )
        assert refused.status_code == 403, (lines, refused.text)
    for question in ("pharmacy refill hours", "MRI preparation", "visitor policy", "parking"):
        for path in ("/v1/search", "/v1/answer"):
            body = client.post(path, json={"question": question, "top_k": 20}, headers=h).json()
            assert {c["service_line"] for c in _cited(body)} <= {"billing"}, (question, path)
    both = made["pin-patient-billing"]
    body = client.post(
        "/v1/search", json={"question": "prior authorization", "top_k": 20}, headers=both
    ).json()
    assert {c["service_line"] for c in body["passages"]} <= {"billing", "insurance"}
    unpinned = client.post(
        "/v1/search", json={"question": "pharmacy refill hours"}, headers=made["staff-agent"]
    ).json()
    assert "pharmacy" in {c["service_line"] for c in unpinned["passages"]}  # the pin mattered


@pytest.mark.parametrize("top_k", [0, -1, 21, 10**9, "5; DROP TABLE", 2.5, None])
def test_top_k_outside_its_bounds_is_a_422_naming_it(
    api: tuple[TestClient, Keys, Runtime], top_k: object
) -> None:
    client, made, _runtime = api
    for path in ("/v1/search", "/v1/answer"):
        response = client.post(
            path, json={"question": "hours", "top_k": top_k}, headers=made["pin-patient"]
        )
        assert response.status_code == 422
        assert response.json()["error"]["message"].startswith("top_k")


def test_logged_answers_belong_to_the_key_that_asked(
    api: tuple[TestClient, Keys, Runtime],
) -> None:
    """Another answering key cannot read, or judge, someone else's answer; ids are not
    guessable and unknown ids look the same as other keys' ids."""
    client, made, _runtime = api
    mine = client.post(
        "/v1/answer", json={"question": "billing phone hours"}, headers=made["pin-billing"]
    ).json()["answer_id"]
    assert len(mine) == 36  # a UUID4
    for other in ("pin-patient", "staff-agent"):
        looked = client.get(f"/v1/answers/{mine}", headers=made[other])
        unknown = client.get(f"/v1/answers/{mine[:-4]}0000", headers=made[other])
        assert looked.status_code == unknown.status_code == 404
        assert looked.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
        judged = client.post(
            "/v1/feedback", json={"answer_id": mine, "rating": "wrong"}, headers=made[other]
        )
        assert judged.status_code == 404
    own = client.get(f"/v1/answers/{mine}", headers=made["pin-billing"])
    assert own.status_code == 200 and own.json()["feedback"] == []


def test_keys_are_read_from_the_authorization_header_only(
    api: tuple[TestClient, Keys, Runtime],
) -> None:
    client, made, _runtime = api
    token = made["staff-agent"]["Authorization"].removeprefix("Bearer ")
    body = {"question": "hours"}
    assert client.post("/v1/search", json=body, headers=made["staff-agent"]).status_code == 200
    for headers, params in [
        ({}, {"api_key": token}),
        ({"X-API-Key": token}, {}),
        ({"Authorization": f"Basic {token}"}, {}),
        ({"Authorization": token}, {}),
        ({"Cookie": f"canon_key={token}"}, {}),
        ({"Authorization": f"Bearer {token}x"}, {}),
        ({"Authorization": f"Bearer {token[:-1]}"}, {}),
    ]:
        response = client.post("/v1/search", json=body, headers=headers, params=params)
        assert response.status_code == 401, (headers.keys(), params.keys())
