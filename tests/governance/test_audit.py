"""The audit trail: every action is an event, chained by hash; any edit, deletion or reordering
of the stored rows is found, and the first bad event named."""

from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from governance import audit, freshness, keys, service
from tests.governance.factory import ADMIN, REVIEWER, NullIndex, disable_audit_guard, draft


def test_every_action_is_an_event_with_actor_states_and_reason(engine: Engine) -> None:
    with Session(engine) as s:
        v = draft(s, body="Open 8 to 5.")
        service.reject(s, v.id or 0, REVIEWER, "Saturday hours are missing")
        service.submit(s, v.id or 0, service.Actor("alice", frozenset({service.Role.author})))
        service.approve(s, v.id or 0, REVIEWER, comment="checked with the office")
        service.publish(s, v.id or 0, REVIEWER, NullIndex())
        freshness.reverify(s, "billing-hours", REVIEWER, date(2026, 11, 20))
        key, _secret = keys.create(s, name="bot", scopes=["answer"], created_by="ada")
        keys.revoke(s, key.prefix, by="ada")
        service.retire(s, "billing-hours", ADMIN, "clinic closed", NullIndex())
        rows = [
            (e.seq, e.actor, e.action, e.from_status, e.to_status)
            for e in audit.events(s, limit=1000)
        ]
        assert rows == [
            (1, "alice", "create", None, "draft"),
            (2, "alice", "submit", "draft", "in_review"),
            (3, "rob", "reject", "in_review", "draft"),
            (4, "alice", "submit", "draft", "in_review"),
            (5, "rob", "approve", "in_review", "approved"),
            (6, "rob", "publish", "approved", "published"),
            (7, "rob", "reverify", "published", "published"),
            (8, "ada", "key.create", None, None),
            (9, "ada", "key.revoke", None, None),
            (10, "ada", "retire", "published", "retired"),
        ]
        reasons = {e.action: e.reason for e in audit.events(s)}
        assert reasons["reject"] == "Saturday hours are missing"
        assert reasons["approve"] == "checked with the office"
        assert reasons["retire"] == "clinic closed"
        assert all(e.at is not None for e in audit.events(s))
        assert [e.seq for e in audit.events(s, article_id="billing-hours", after=6)] == [7, 10]
        assert audit.verify(s).ok


TAMPERING = {
    "edited reason": (["UPDATE auditevent SET reason = 'looks fine' WHERE seq = 3"], 3),
    "edited time": (["UPDATE auditevent SET at = '2020-01-01 00:00:00' WHERE seq = 4"], 4),
    "edited hash too": (
        ["UPDATE auditevent SET actor = 'mallory', hash = 'f' || substr(hash, 2) WHERE seq = 2"],
        2,
    ),
    "deleted middle": (["DELETE FROM auditevent WHERE seq = 3"], 3),
    "deleted tail": (["DELETE FROM auditevent WHERE seq = 6"], 6),
    "reordered": (
        [
            "UPDATE auditevent SET seq = 100 WHERE seq = 4",
            "UPDATE auditevent SET seq = 4 WHERE seq = 5",
            "UPDATE auditevent SET seq = 5 WHERE seq = 100",
        ],
        4,
    ),
}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_tampering_with_the_stored_events_is_found(engine: Engine, how: str) -> None:
    with Session(engine) as s:
        v = draft(s, body="Open 8 to 5.")
        service.reject(s, v.id or 0, REVIEWER, "Saturday hours are missing")
        service.submit(s, v.id or 0, service.Actor("alice", frozenset({service.Role.author})))
        service.approve(s, v.id or 0, REVIEWER)
        service.publish(s, v.id or 0, REVIEWER, NullIndex())
        assert audit.verify(s) == audit.ChainReport(True, 6)
    statements, first_bad = TAMPERING[how]
    with engine.begin() as conn:
        disable_audit_guard(conn)
        for statement in statements:
            conn.execute(text(statement))
    with Session(engine) as s:
        report = audit.verify(s)
    assert not report.ok
    assert report.first_bad_seq == first_bad, report


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE auditevent SET actor = 'mallory' WHERE seq = 1",
        "DELETE FROM auditevent WHERE seq = 1",
    ],
)
def test_the_database_refuses_to_change_history(engine: Engine, statement: str) -> None:
    with Session(engine) as s:
        draft(s)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    with Session(engine) as s:
        assert audit.verify(s) == audit.ChainReport(True, 2)
        assert audit.events(s)[0].actor == "alice"
