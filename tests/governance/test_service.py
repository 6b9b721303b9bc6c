"""Governance rules against real SQLite and PostgreSQL."""

from collections.abc import Sequence
from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from governance import audit, service
from governance.errors import Conflict, IllegalTransition, InvalidInput, PermissionDenied
from governance.models import (
    Article,
    ArticleMetaBase,
    ArticleVersion,
    Audience,
    Chunk,
    ChunkDraft,
    Status,
)
from governance.service import Actor, IngestKind, Role
from tests.governance.factory import disable_audit_guard

AUTHOR = Actor("alice", frozenset({Role.author}))
REVIEWER = Actor("rob", frozenset({Role.reviewer}))
CLINICIAN = Actor("dr-chen", frozenset({Role.reviewer, Role.clinical_reviewer}))
ADMIN = Actor("ada", frozenset({Role.admin}))


class ObservingIndex:
    """An IndexHook that records what the database said when each index step ran."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls: list[tuple[str, int, str]] = []

    def _status(self, version_id: int) -> str:
        with Session(self.engine) as s:
            version = s.get(ArticleVersion, version_id)
            assert version is not None
            return version.status.value

    def add_version(
        self, article: Article, version: ArticleVersion, chunks: Sequence[Chunk]
    ) -> None:
        assert version.id is not None
        assert chunks, "a version is indexed with its chunks"
        self.calls.append(("add", version.id, self._status(version.id)))

    def remove_version(self, version_id: int) -> None:
        self.calls.append(("remove", version_id, self._status(version_id)))


def record(
    session: Session, body: str = "Call 555-0142.", *, clinical: bool = False, author: str = "alice"
) -> int:
    meta = ArticleMetaBase(
        title="Billing hours",
        owner="Maria",
        service_line="billing",
        audience=Audience.patient,
        clinical=clinical,
        last_reviewed=date(2026, 11, 1),
    )
    result = service.record_source(
        session,
        article_id="billing-hours",
        meta=meta,
        body=body,
        content_hash=str(hash((body, clinical))),
        chunks=[ChunkDraft("Phone", body, 4, "h")],
        source_path="billing/hours.md",
        author=author,
        submit=True,
    )
    return service.find_version(session, "billing-hours", result.version).id or 0


def test_unchanged_content_adds_nothing(engine: Engine) -> None:
    with Session(engine) as s:
        record(s)
        again = service.record_source(
            s,
            article_id="billing-hours",
            meta=service.get_version(s, 1).model_copy(),
            body="Call 555-0142.",
            content_hash=str(hash(("Call 555-0142.", False))),
            chunks=[ChunkDraft("Phone", "x", 1, "h")],
            source_path="billing/hours.md",
            author="alice",
        )
        assert again.kind == IngestKind.unchanged
        assert len(s.exec(select(ArticleVersion)).all()) == 1


def test_author_cannot_approve_own_version(engine: Engine) -> None:
    with Session(engine) as s:
        vid = record(s, author="rob")
        with pytest.raises(PermissionDenied, match="cannot approve"):
            service.approve(s, vid, REVIEWER)
        assert service.get_version(s, vid).status == Status.in_review


def test_clinical_article_needs_clinical_reviewer(engine: Engine) -> None:
    with Session(engine) as s:
        vid = record(s, clinical=True)
        with pytest.raises(PermissionDenied, match="clinical-review"):
            service.approve(s, vid, REVIEWER)
        assert service.approve(s, vid, CLINICIAN).status == Status.approved


def test_author_role_cannot_approve(engine: Engine) -> None:
    with Session(engine) as s:
        vid = record(s, author="someone-else")
        with pytest.raises(PermissionDenied):
            service.approve(s, vid, AUTHOR)


def test_rejection_needs_a_comment_and_returns_to_draft(engine: Engine) -> None:
    with Session(engine) as s:
        vid = record(s)
        with pytest.raises(InvalidInput, match="comment"):
            service.reject(s, vid, REVIEWER, "  ")
        version = service.reject(s, vid, REVIEWER, "Phone number is wrong")
        assert version.status == Status.draft
        assert version.review_comment == "Phone number is wrong"


def test_publish_writes_points_then_flips_then_removes_old(engine: Engine) -> None:
    index = ObservingIndex(engine)
    with Session(engine) as s:
        v1 = record(s, "Open 8 to 5.")
        service.approve(s, v1, REVIEWER)
        service.publish(s, v1, REVIEWER, index)
        v2 = record(s, "Open 7:30 to 6.")
        service.approve(s, v2, REVIEWER)
        service.publish(s, v2, REVIEWER, index)
        assert index.calls == [
            ("add", v1, "approved"),  # points written while the version is not yet live
            ("add", v2, "approved"),
            ("remove", v1, "superseded"),  # old points go only after the flip committed
        ]
        article = service.get_article(s, "billing-hours")
        assert article.published_version_id == v2
        assert set(service.published_view(s)) == {v2}


def test_publish_needs_approval(engine: Engine) -> None:
    index = ObservingIndex(engine)
    with Session(engine) as s:
        vid = record(s)
        with pytest.raises(IllegalTransition, match="publish"):
            service.publish(s, vid, REVIEWER, index)
        assert index.calls == []


def test_stale_revision_is_a_conflict(engine: Engine) -> None:
    with Session(engine) as s:
        vid = record(s)
        seen = service.get_version(s, vid).revision
        service.approve(s, vid, REVIEWER)
        with pytest.raises(Conflict):
            service.publish(s, vid, REVIEWER, ObservingIndex(engine), expected_revision=seen)


def test_retire_needs_admin_and_reason_and_keeps_history(engine: Engine) -> None:
    index = ObservingIndex(engine)
    with Session(engine) as s:
        vid = record(s)
        service.approve(s, vid, REVIEWER)
        service.publish(s, vid, REVIEWER, index)
        with pytest.raises(PermissionDenied):
            service.retire(s, "billing-hours", REVIEWER, "outdated", index)
        with pytest.raises(InvalidInput):
            service.retire(s, "billing-hours", ADMIN, "", index)
        service.retire(s, "billing-hours", ADMIN, "clinic closed", index)
        assert service.published_view(s) == {}
        assert [v.status for v in service.history(s, "billing-hours")] == [Status.retired]
        assert index.calls[-1] == ("remove", vid, "retired")


def test_new_draft_supersedes_pending_versions(engine: Engine) -> None:
    with Session(engine) as s:
        first = record(s, "one")
        second = record(s, "two")
        assert service.get_version(s, first).status == Status.superseded
        assert service.get_version(s, second).status == Status.in_review


def test_audit_chain_verifies_and_names_tampering(engine: Engine) -> None:
    with Session(engine) as s:
        vid = record(s)
        service.approve(s, vid, REVIEWER)
        report = audit.verify(s)
        assert report.ok and report.events == 3  # create, submit, approve
    with engine.begin() as conn:
        disable_audit_guard(conn)
        conn.execute(text("UPDATE auditevent SET actor = 'mallory' WHERE seq = 2"))
    with Session(engine) as s:
        report = audit.verify(s)
        assert not report.ok and report.first_bad_seq == 2


def test_audit_chain_detects_deleted_tail(engine: Engine) -> None:
    with Session(engine) as s:
        vid = record(s)
        service.approve(s, vid, REVIEWER)
    with engine.begin() as conn:
        disable_audit_guard(conn)
        conn.execute(text("DELETE FROM auditevent WHERE seq = 3"))
    with Session(engine) as s:
        report = audit.verify(s)
        assert not report.ok and report.first_bad_seq == 3
