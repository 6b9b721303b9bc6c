"""API keys: hashed storage, scopes, pins, revocation. The HTTP matrix over every route and
scope is tests/security/test_authz_matrix.py; crafted requests against pins, test_pins.py."""

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

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
