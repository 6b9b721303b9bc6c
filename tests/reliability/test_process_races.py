"""Approve, publish and retire the same article from several processes at once.

Each racer is its own spawned process with its own connection (see `racers`): they
all load the version first, so they hold the same revision, then meet at a process
barrier and write. Exactly one wins; every other one gets `Conflict`, which Canon
maps to HTTP 409 and CLI exit code 5; there is never a second published version,
and the audit chain verifies. The threaded version of these races is
tests/governance/test_concurrency.py; this one crosses process boundaries, as
several API workers or CLI runs sharing one PostgreSQL do.

The index hook in the racers records what it was asked (the embedded Edge shard is
held by one process at a time, so several processes can only share an index through
a Qdrant server; `test_a_second_process_cannot_open_the_embedded_index` shows what
happens when they try).
"""

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from multiprocessing.pool import Pool
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from canon import errors
from governance import audit, service
from governance.db import init_db, make_engine
from governance.errors import Conflict, IndexUnavailable
from governance.models import AuditEvent, Status
from retrieval.store import EdgeStore
from tests.conftest import REPO, _drop_schema, _postgres_schema
from tests.governance.factory import REVIEWER, NullIndex, draft
from tests.governance.test_concurrency import _events
from tests.reliability import racers
from tests.reliability.racers import Outcome, Task

RACERS = 4
ROUNDS = 3
CONFLICT = (errors.HTTP_STATUS[Conflict], errors.EXIT_CODE[Conflict])  # (409, 5)


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """RACERS spawned processes, reused by every race in this module."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(RACERS, timeout=60)
    with ctx.Pool(RACERS, initializer=racers.init, initargs=(barrier,)) as workers:
        yield workers


def race(pool: Pool, tasks: list[Task]) -> list[Outcome]:
    assert len(tasks) == RACERS  # one task per process, or the barrier never fills
    return pool.map(racers.act, tasks, chunksize=1)


def winners(outcomes: list[Outcome]) -> list[Outcome]:
    won = [o for o in outcomes if o.error is None]
    lost = [o for o in outcomes if o.error is not None]
    for o in lost:
        assert (o.error, o.http, o.exit_code) == ("Conflict", *CONFLICT), o
    assert len(won) == 1, outcomes
    return won


def live_of(session: Session, article_id: str) -> set[int]:
    """The article's versions that retrieval would serve."""
    return {vid for vid, v in service.published_view(session).items() if v.article_id == article_id}


def _revision(engine: Engine, version_id: int) -> int:
    with Session(engine) as s:
        return service.get_version(s, version_id).revision


def _published_count(engine: Engine, article_id: str) -> int:
    with Session(engine) as s:
        return sum(v.status == Status.published for v in service.history(s, article_id))


def test_reviewers_in_several_processes_approve_one_version(engine: Engine, pool: Pool) -> None:
    url = engine.url.render_as_string(hide_password=False)
    for round_ in range(ROUNDS):
        with Session(engine) as s:
            vid = draft(s, article_id=f"hours-{round_}", body=f"Open 8 to 5 ({round_}).").id or 0
        seen = _revision(engine, vid)
        outcomes = race(
            pool, [Task(url, "approve", vid, f"rev-{i}", expected_revision=seen) for i in range(4)]
        )
        (won,) = winners(outcomes)
        with Session(engine) as s:
            version = service.get_version(s, vid)
            assert (version.status, version.revision) == (Status.approved, seen + 1)
            assert version.reviewer == won.actor
            assert audit.verify(s).ok
        assert _events(engine, "approve", vid) == 1


@pytest.mark.parametrize("previous", [False, True], ids=["first-publication", "replacing-v1"])
def test_publishers_in_several_processes_publish_once(
    engine: Engine, pool: Pool, previous: bool
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    for round_ in range(ROUNDS):
        article_id = f"hours-{round_}"
        old_id = None
        with Session(engine) as s:
            if previous:
                old = draft(s, article_id=article_id, body="Open 8 to 5.")
                service.approve(s, old.id or 0, REVIEWER)
                service.publish(s, old.id or 0, REVIEWER, NullIndex())
                old_id = old.id
            v = draft(s, article_id=article_id, body=f"Open 7:30 to 6 ({round_}).")
            service.approve(s, v.id or 0, REVIEWER)
            vid = v.id or 0
            epoch = service.epoch(s)
        seen = _revision(engine, vid)
        outcomes = race(
            pool,
            [
                Task(url, "publish", vid, f"pub-{i}", expected_revision=seen, hold_in_index=True)
                for i in range(RACERS)
            ],
        )
        (won,) = winners(outcomes)
        # Every racer wrote points before the database decided; no loser deleted the
        # winner's live points, and only the winner removed the replaced version's.
        assert all(o.added == [vid] for o in outcomes)
        assert all(vid not in o.removed for o in outcomes)
        assert won.removed == ([old_id] if previous else [])
        with Session(engine) as s:
            assert service.get_article(s, article_id).published_version_id == vid
            assert live_of(s, article_id) == {vid}
            assert service.epoch(s) == epoch + 1
            if old_id is not None:
                assert service.get_version(s, old_id).status == Status.superseded
            assert audit.verify(s).ok
        assert _published_count(engine, article_id) == 1
        assert _events(engine, "publish", vid) == 1


def test_admins_in_several_processes_retire_once(engine: Engine, pool: Pool) -> None:
    url = engine.url.render_as_string(hide_password=False)
    for round_ in range(ROUNDS):
        article_id = f"hours-{round_}"
        with Session(engine) as s:
            v = draft(s, article_id=article_id, body=f"Open 9 to 5 ({round_}).")
            service.approve(s, v.id or 0, REVIEWER)
            service.publish(s, v.id or 0, REVIEWER, NullIndex())
            vid = v.id or 0
        outcomes = race(pool, [Task(url, "retire", vid, f"admin-{i}") for i in range(RACERS)])
        (won,) = winners(outcomes)
        assert won.removed == [vid]
        assert all(o.removed == [] for o in outcomes if o is not won)
        with Session(engine) as s:
            assert service.get_article(s, article_id).published_version_id is None
            assert service.get_version(s, vid).status == Status.retired
            assert live_of(s, article_id) == set()
            assert audit.verify(s).ok
        assert _events(engine, "retire", vid) == 1


def test_publish_and_retire_race_on_one_article(engine: Engine, pool: Pool) -> None:
    """Two processes publish v2 while two retire v1: one of the four moves wins."""
    url = engine.url.render_as_string(hide_password=False)
    seen_winners: set[str] = set()
    for round_ in range(ROUNDS + 1):
        article_id = f"visitors-{round_}"
        with Session(engine) as s:
            v1 = draft(s, article_id=article_id, body="Visiting hours 9 to 8.")
            service.approve(s, v1.id or 0, REVIEWER)
            service.publish(s, v1.id or 0, REVIEWER, NullIndex())
            v2 = draft(s, article_id=article_id, body=f"Visiting hours 10 to 6 ({round_}).")
            service.approve(s, v2.id or 0, REVIEWER)
            old, new = v1.id or 0, v2.id or 0
        seen = _revision(engine, new)
        outcomes = race(
            pool,
            [
                Task(url, "publish", new, "pub-0", expected_revision=seen),
                Task(url, "retire", old, "admin-0"),
                Task(url, "publish", new, "pub-1", expected_revision=seen),
                Task(url, "retire", old, "admin-1"),
            ],
        )
        (won,) = winners(outcomes)
        seen_winners.add(won.move)
        with Session(engine) as s:
            article = service.get_article(s, article_id)
            statuses = {v.id: v.status for v in service.history(s, article_id)}
            if won.move == "publish":
                assert article.published_version_id == new
                assert statuses == {old: Status.superseded, new: Status.published}
            else:
                assert article.published_version_id is None
                assert statuses == {old: Status.retired, new: Status.approved}
            live = live_of(s, article_id)
            assert audit.verify(s).ok
        # No process deleted the points of a version that is live now.
        assert not live & {vid for o in outcomes for vid in o.removed}
        assert _published_count(engine, article_id) == (1 if won.move == "publish" else 0)
    assert seen_winners  # which move wins is up to the scheduler; both end consistent


@pytest.mark.postgres
def test_cli_approvals_from_several_processes(tmp_path: Path) -> None:
    """Real `canon review approve` processes on one PostgreSQL: one exits 0, the rest 5."""
    schema, url = _postgres_schema()
    try:
        engine = make_engine(url)
        init_db(engine)
        with Session(engine) as s:
            v = draft(s)
            number, seen = v.number, v.revision
        env = os.environ | {"CANON_DATABASE_URL": url, "CANON_HOME": str(tmp_path / "home")}
        canon = Path(sys.executable).with_name("canon")
        procs = [
            subprocess.Popen(
                [
                    str(canon),
                    "review",
                    "approve",
                    "billing-hours",
                    "--version",
                    str(number),
                    "--revision",
                    str(seen),
                    "--actor",
                    f"rev-{i}",
                    "--role",
                    "review",
                ],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(3)
        ]
        results = [(p.wait(120), p.stderr.read() if p.stderr else "") for p in procs]
        codes = sorted(code for code, _ in results)
        assert codes == [0, CONFLICT[1], CONFLICT[1]], results
        for code, err in results:
            if code:
                # the loser is told either by the revision check or, when the race is
                # inside the transaction, by the row's version check: both name it
                assert "billing-hours v1" in err, err
                assert "is at revision" in err or "changed under you" in err, err
        with Session(engine) as s:
            assert service.find_version(s, "billing-hours", number).status == Status.approved
            approvals = s.exec(select(AuditEvent).where(AuditEvent.action == "approve")).all()
            assert len(approvals) == 1
            assert audit.verify(s).ok
        engine.dispose()
    finally:
        _drop_schema(schema)


def test_a_second_process_cannot_open_the_embedded_index(tmp_path: Path) -> None:
    """The Edge shard is one process's: a second gets IndexUnavailable (503 / exit 6)."""
    path = tmp_path / "index"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from retrieval.store import EdgeStore; "
            f"s = EdgeStore(__import__('pathlib').Path({str(path)!r}), 8); "
            "print('held', flush=True); time.sleep(60)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(IndexUnavailable, match="open in another process") as caught:
            EdgeStore(path, 8)
        assert errors.lookup(errors.HTTP_STATUS, caught.value, 500) == 503
        assert errors.lookup(errors.EXIT_CODE, caught.value, 1) == 6
    finally:
        holder.kill()
        holder.wait()
    EdgeStore(path, 8).close()  # the lock dies with its process
