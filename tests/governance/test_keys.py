"""API keys: hashed storage, scopes, pins, revocation; and the HTTP matrix over them."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from canon.app import create_app
from canon.runtime import Runtime
from governance import audit, keys
from governance.errors import PermissionDenied, Unauthenticated
from governance.models import ApiKey, Audience


def test_only_a_hash_is_stored_and_the_key_authenticates(engine: Engine) -> None:
    with Session(engine) as s:
        _key, secret = keys.create(s, name="chat-bot", scopes=["answer"], created_by="ada")
        stored = s.exec(select(ApiKey)).one()
        assert secret.split("_", 2)[2] not in (stored.secret_hash, stored.prefix, stored.name)
        who = keys.authenticate(s, secret)
        assert who.name == "chat-bot" and who.scopes == {keys.Scope.answer}
        assert audit.verify(s).ok


@pytest.mark.parametrize("presented", [None, "", "not-a-key", "canon_deadbeef_wrong"])
def test_missing_or_wrong_keys_are_unauthenticated(engine: Engine, presented: str | None) -> None:
    with Session(engine) as s:
        keys.create(s, name="bot", scopes=["answer"], created_by="ada")
        with pytest.raises(Unauthenticated):
            keys.authenticate(s, presented)


def test_a_tampered_secret_fails(engine: Engine) -> None:
    with Session(engine) as s:
        _key, secret = keys.create(s, name="bot", scopes=["answer"], created_by="ada")
        with pytest.raises(Unauthenticated, match="unknown"):
            keys.authenticate(s, secret[:-1] + ("A" if secret[-1] != "A" else "B"))


def test_revoked_key_is_refused(engine: Engine) -> None:
    with Session(engine) as s:
        key, secret = keys.create(s, name="bot", scopes=["answer"], created_by="ada")
        keys.revoke(s, key.prefix, by="ada")
        with pytest.raises(Unauthenticated, match="revoked"):
            keys.authenticate(s, secret)


def test_pins_narrow_but_never_widen(engine: Engine) -> None:
    with Session(engine) as s:
        _k, secret = keys.create(
            s,
            name="patient-chat",
            scopes=["answer"],
            created_by="ada",
            audience=Audience.patient,
            service_lines=["billing", "portal"],
        )
        who = keys.authenticate(s, secret)
    assert who.audience(Audience.patient) == Audience.patient
    with pytest.raises(PermissionDenied, match="pinned to the patient audience"):
        who.audience(Audience.staff)
    assert who.service_lines([]) == ("billing", "portal")
    assert who.service_lines(["billing"]) == ("billing",)
    with pytest.raises(PermissionDenied, match="pinned to service lines"):
        who.service_lines(["billing", "oncology"])


def test_scopes_map_to_governance_roles(engine: Engine) -> None:
    with Session(engine) as s:
        _k, secret = keys.create(
            s, name="dr-chen", scopes=["review", "clinical-review"], created_by="ada"
        )
        actor = keys.authenticate(s, secret).actor()
    assert actor.name == "dr-chen"
    assert {r.value for r in actor.roles} == {"review", "clinical-review"}


@pytest.fixture
def api(runtime: Runtime) -> Iterator[tuple[TestClient, dict[str, str]]]:
    made: dict[str, str] = {}
    with Session(runtime.engine) as s:
        for name, scopes, audience in [
            ("agent", ["answer"], None),
            ("patient-channel", ["answer"], Audience.patient),
            ("author", ["author"], None),
            ("admin", ["admin"], None),
        ]:
            _k, made[name] = keys.create(
                s, name=name, scopes=scopes, created_by="test", audience=audience
            )
        revoked, made["revoked"] = keys.create(s, name="old", scopes=["answer"], created_by="t")
        keys.revoke(s, revoked.prefix, by="test")
    with TestClient(create_app(runtime)) as client:
        yield client, made


ENDPOINTS = [
    ("post", "/v1/search", {"question": "billing hours"}),
    ("post", "/v1/answer", {"question": "billing hours"}),
    ("get", "/v1/articles", None),
    ("get", "/v1/audit/verify", None),
]
ALLOWED = {
    "agent": {"/v1/search", "/v1/answer"},
    "patient-channel": {"/v1/search", "/v1/answer"},
    "author": {"/v1/articles"},
    "admin": {"/v1/articles", "/v1/audit/verify"},
    "revoked": set(),
    "none": set(),
    "wrong": set(),
}


def test_every_endpoint_against_every_kind_of_key(api: tuple[TestClient, dict[str, str]]) -> None:
    client, made = api
    tokens = made | {"none": "", "wrong": "canon_00000000_nope"}
    for who, allowed in ALLOWED.items():
        headers = {"Authorization": f"Bearer {tokens[who]}"} if tokens[who] else {}
        for method, path, body in ENDPOINTS:
            response = client.request(method, path, json=body, headers=headers)
            if path in allowed:
                assert response.status_code == 200, (who, path, response.text)
            else:
                expected = 403 if who in ("agent", "patient-channel", "author", "admin") else 401
                assert response.status_code == expected, (who, path, response.status_code)
                assert response.json()["error"]["code"] in ("permission_denied", "unauthenticated")


def test_patient_key_cannot_ask_as_staff(api: tuple[TestClient, dict[str, str]]) -> None:
    client, made = api
    headers = {"Authorization": f"Bearer {made['patient-channel']}"}
    body = {"question": "prior auth workflow", "audience": "staff"}
    for path in ("/v1/search", "/v1/answer"):
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 403
        assert "pinned to the patient audience" in response.json()["error"]["message"]
