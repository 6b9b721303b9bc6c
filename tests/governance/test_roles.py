"""Every role rule, checked in the service layer (the API and the UI only pass actors in)."""

from datetime import date

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from governance import freshness, keys, service
from governance.errors import PermissionDenied
from governance.models import Status
from governance.service import Actor, Role
from tests.governance.factory import (
    ADMIN,
    AUTHOR,
    CLINICIAN,
    REVIEWER,
    NullIndex,
    draft,
    live,
)

TODAY = date(2026, 11, 20)


def test_only_authors_and_admins_submit(engine: Engine) -> None:
    with Session(engine) as s:
        v = draft(s, submit=False)
        assert v.id is not None
        with pytest.raises(PermissionDenied, match="author"):
            service.submit(s, v.id, REVIEWER)
        assert service.submit(s, v.id, AUTHOR).status == Status.in_review


def test_authors_cannot_approve_reject_or_publish(engine: Engine) -> None:
    with Session(engine) as s:
        v = draft(s, author="someone-else")
        assert v.id is not None
        with pytest.raises(PermissionDenied):
            service.approve(s, v.id, AUTHOR)
        with pytest.raises(PermissionDenied):
            service.reject(s, v.id, AUTHOR, "no")
        service.approve(s, v.id, REVIEWER)
        with pytest.raises(PermissionDenied):
            service.publish(s, v.id, AUTHOR, NullIndex())
        assert service.get_version(s, v.id).status == Status.approved


def test_nobody_approves_their_own_version_whatever_their_roles(engine: Engine) -> None:
    everything = Actor("ada", frozenset(Role))
    with Session(engine) as s:
        v = draft(s, author="ada", clinical=True)
        assert v.id is not None
        with pytest.raises(PermissionDenied, match="cannot approve"):
            service.approve(s, v.id, everything)
        assert service.get_version(s, v.id).status == Status.in_review


def test_clinical_content_needs_the_clinical_scope_to_approve_and_reverify(engine: Engine) -> None:
    with Session(engine) as s:
        v = draft(s, clinical=True)
        assert v.id is not None
        with pytest.raises(PermissionDenied, match="clinical-review"):
            service.approve(s, v.id, REVIEWER)
        service.approve(s, v.id, CLINICIAN)
        service.publish(s, v.id, CLINICIAN, NullIndex())
        with pytest.raises(PermissionDenied, match="clinical-review"):
            freshness.reverify(s, "billing-hours", REVIEWER, TODAY)
        assert freshness.reverify(s, "billing-hours", CLINICIAN, TODAY).last_reviewed == TODAY


def test_only_admins_retire(engine: Engine) -> None:
    with Session(engine) as s:
        live(s)
        for who in (AUTHOR, REVIEWER, CLINICIAN):
            with pytest.raises(PermissionDenied, match="admin"):
                service.retire(s, "billing-hours", who, "closed", NullIndex())
        assert service.retire(s, "billing-hours", ADMIN, "closed", NullIndex()).status == (
            Status.retired
        )


def test_authors_cannot_reverify(engine: Engine) -> None:
    with Session(engine) as s:
        live(s)
        with pytest.raises(PermissionDenied):
            freshness.reverify(s, "billing-hours", AUTHOR, TODAY)


def test_key_scopes_become_the_roles_the_service_checks(engine: Engine) -> None:
    with Session(engine) as s:
        _k, reviewer_key = keys.create(s, name="rob", scopes=["review"], created_by="ada")
        _k, author_key = keys.create(s, name="alice", scopes=["author"], created_by="ada")
        rob = keys.authenticate(s, reviewer_key).actor()
        alice = keys.authenticate(s, author_key).actor()
        v = draft(s, author="alice")
        assert v.id is not None
        with pytest.raises(PermissionDenied):
            service.approve(s, v.id, alice)
        assert service.approve(s, v.id, rob).reviewer == "rob"
