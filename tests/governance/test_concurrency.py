"""Two reviewers acting at once, each on its own connection: exactly one wins, the other gets 409.

Both threads first load the version (so both hold the same revision), meet at a
barrier, then write. For publishing, a barrier inside the index hook holds both
publishers after their revision check and before either transaction starts, so
the database alone decides the race.
"""

import threading
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from governance import audit, service
from governance.errors import Conflict
from governance.models import Article, ArticleVersion, AuditEvent, Chunk, Status
from governance.service import Actor, Role
from tests.governance.factory import REVIEWER, draft

ROB = Actor("rob", frozenset({Role.reviewer}))
RITA = Actor("rita", frozenset({Role.reviewer}))


class RacingIndex:
    """Holds every publisher at add_version until all have arrived; records what happened."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=30)
        self.lock = threading.Lock()
        self.added: list[int] = []
        self.removed: list[int] = []

    def add_version(
        self, article: Article, version: ArticleVersion, chunks: Sequence[Chunk]
    ) -> None:
        assert version.id is not None
        with self.lock:
            self.added.append(version.id)
        self.barrier.wait()

    def remove_version(self, version_id: int) -> None:
        with self.lock:
            self.removed.append(version_id)


def race(engine: Engine, version_id: int, moves: list[Callable[[Session], object]]) -> list[str]:
    """Run each move in its own thread and session; return 'ok' or the error's class name."""
    start = threading.Barrier(len(moves), timeout=30)
    outcomes: list[str] = [""] * len(moves)

    def run(i: int) -> None:
        with Session(engine) as session:
            held = service.get_version(session, version_id)  # both hold the same revision
            start.wait()
            try:
                moves[i](session)
                outcomes[i] = "ok"
            except Exception as exc:  # the outcome is the assertion
                outcomes[i] = type(exc).__name__
            del held

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(moves))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sorted(outcomes)


def _events(engine: Engine, action: str, version_id: int) -> int:
    with Session(engine) as s:
        return len(
            s.exec(
                select(AuditEvent).where(
                    AuditEvent.action == action, AuditEvent.version_id == version_id
                )
            ).all()
        )


@pytest.mark.parametrize("attempt", range(3))
def test_two_reviewers_approve_at_once(engine: Engine, attempt: int) -> None:
    with Session(engine) as s:
        v = draft(s, body=f"Open 8 to 5 ({attempt}).")
        vid, seen = v.id or 0, v.revision
    outcomes = race(
        engine,
        vid,
        [
            lambda s: service.approve(s, vid, ROB, expected_revision=seen),
            lambda s: service.approve(s, vid, RITA, expected_revision=seen),
        ],
    )
    assert outcomes == ["Conflict", "ok"]
    with Session(engine) as s:
        version = service.get_version(s, vid)
        assert version.status == Status.approved and version.revision == seen + 1
        assert version.reviewer in ("rob", "rita")
        assert audit.verify(s).ok
    assert _events(engine, "approve", vid) == 1


@pytest.mark.parametrize("previous", [False, True], ids=["first-publication", "replacing-v1"])
def test_two_reviewers_publish_at_once(engine: Engine, previous: bool) -> None:
    with Session(engine) as s:
        if previous:
            old = draft(s, body="Open 8 to 5.")
            service.approve(s, old.id or 0, REVIEWER)
            service.publish(s, old.id or 0, REVIEWER, RacingIndex(1))
        v = draft(s, body="Open 7:30 to 6.")
        service.approve(s, v.id or 0, Actor("dr-chen", frozenset({Role.reviewer})))
        vid, seen = v.id or 0, service.get_version(s, v.id or 0).revision
        epoch = service.epoch(s)
    index = RacingIndex(2)
    outcomes = race(
        engine,
        vid,
        [
            lambda s: service.publish(s, vid, ROB, index, expected_revision=seen),
            lambda s: service.publish(s, vid, RITA, index, expected_revision=seen),
        ],
    )
    assert outcomes == ["Conflict", "ok"]
    assert index.added == [vid, vid]  # both wrote points before the database decided
    assert vid not in index.removed  # the loser did not delete the winner's live points
    with Session(engine) as s:
        article = service.get_article(s, "billing-hours")
        assert article.published_version_id == vid
        assert service.get_version(s, vid).status == Status.published
        assert set(service.published_view(s)) == {vid}
        assert service.epoch(s) == epoch + 1  # one publication, not two
        statuses = [x.status for x in service.history(s, "billing-hours")]
        assert statuses.count(Status.published) == 1
        assert audit.verify(s).ok
    assert _events(engine, "publish", vid) == 1


def test_a_stale_revision_is_refused_before_anything_is_written(engine: Engine) -> None:
    with Session(engine) as s:
        v = draft(s)
        seen = v.revision
        service.approve(s, v.id or 0, REVIEWER)
        index = RacingIndex(1)
        with pytest.raises(Conflict, match="revision"):
            service.publish(s, v.id or 0, REVIEWER, index, expected_revision=seen)
        assert index.added == []
        assert service.get_version(s, v.id or 0).status == Status.approved
