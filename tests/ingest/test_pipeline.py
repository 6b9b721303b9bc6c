import os
import pickle
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from governance.db import init_db, make_engine
from governance.models import ArticleVersion, AuditEvent, Chunk, Status
from ingest import pipeline
from ingest.chunk import ChunkBudget, count_tokens
from ingest.pipeline import Outcome, ingest

GOOD = (
    "---\nid: {id}\ntitle: {title}\nowner: Ann\nservice_line: portal\naudience: patient\n---\n"
    "# {title}\n\n{body}\n"
)


def rows(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as s:
        return (
            s.exec(select(func.count()).select_from(ArticleVersion)).one(),
            s.exec(select(func.count()).select_from(Chunk)).one(),
            s.exec(select(func.count()).select_from(AuditEvent)).one(),
        )


def test_batch_goes_on_past_bad_files_and_names_them(tmp_path: Path, engine: Engine) -> None:
    tmp_path = tmp_path / "docs"
    tmp_path.mkdir()
    (tmp_path / "a.md").write_text(
        GOOD.format(id="portal-a", title="Portal A", body="Sign up online.")
    )
    (tmp_path / "b.md").write_text(
        GOOD.format(id="portal-b", title="Portal B", body="Reset a password.")
    )
    (tmp_path / "notes.xyz").write_text("unknown")
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "latin.md").write_bytes("Caf\xe9".encode("latin-1"))
    (tmp_path / "broken.md").write_text("---\ntitle: [x\n---\n# T\n\nBody.")
    report = ingest(engine, [tmp_path], author="alice")
    assert report.count(Outcome.created) == 2
    failed = {Path(f.path).name: f.error for f in report.failed}
    assert set(failed) == {"notes.xyz", "empty.md", "latin.md", "broken.md"}
    for name, error in failed.items():
        assert error is not None and name in error
    assert rows(engine)[0] == 2


def test_reingest_unchanged_creates_nothing_and_changes_make_drafts(
    tmp_path: Path, engine: Engine
) -> None:
    tmp_path = tmp_path / "docs"
    tmp_path.mkdir()
    article = tmp_path / "a.md"
    article.write_text(GOOD.format(id="portal-a", title="Portal A", body="Sign up online."))
    first = ingest(engine, [tmp_path], author="alice", submit=True)
    assert first.count(Outcome.created) == 1
    before = rows(engine)
    again = ingest(engine, [tmp_path], author="alice", submit=True)
    assert again.count(Outcome.unchanged) == 1
    assert rows(engine) == before  # no versions, chunks or audit events added

    article.write_text(
        GOOD.format(id="portal-a", title="Portal A", body="Sign up at the front desk.")
    )
    changed = ingest(engine, [tmp_path], author="alice")
    assert changed.count(Outcome.new_version) == 1
    with Session(engine) as s:
        statuses = [
            v.status for v in s.exec(select(ArticleVersion).order_by(ArticleVersion.number)).all()
        ]
    assert statuses == [Status.superseded, Status.draft]


def test_failed_file_leaves_stored_version_untouched(tmp_path: Path, engine: Engine) -> None:
    tmp_path = tmp_path / "docs"
    tmp_path.mkdir()
    article = tmp_path / "a.md"
    article.write_text(GOOD.format(id="portal-a", title="Portal A", body="Sign up online."))
    ingest(engine, [tmp_path], author="alice")
    before = rows(engine)
    article.write_bytes(b"\xff\xfe garbage \x00")
    report = ingest(engine, [tmp_path], author="alice")
    assert report.count(Outcome.failed) == 1
    assert rows(engine) == before


def _stored(engine: Engine) -> list[tuple[str, int, str, str]]:
    with Session(engine) as s:
        return [
            (v.article_id, v.number, c.section, c.content_hash)
            for v, c in s.exec(
                select(ArticleVersion, Chunk)
                .where(Chunk.version_id == ArticleVersion.id)
                .order_by(ArticleVersion.article_id, Chunk.ordinal)
            )
        ]


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The process count of every worker pool the pipeline starts (real pools)."""
    started: list[int] = []
    real_pool = pipeline.ProcessPoolExecutor

    def counting_pool(processes: int, **kwargs: Any) -> Any:
        started.append(processes)
        return real_pool(processes, **kwargs)

    monkeypatch.setattr(pipeline, "ProcessPoolExecutor", counting_pool)
    return started


def test_worker_processes_record_what_one_process_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pools: list[int]
) -> None:
    """Parsed in two spawned workers or here, the same files give the same report, in
    the order the files were walked, and the same stored versions and chunks; bad files
    fail alone with the same reasons, and a rerun finds everything unchanged."""
    monkeypatch.setattr(pipeline, "POOL_MIN_FILES", 30)  # read by this process only
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(pipeline.POOL_MIN_FILES + 8):
        body = "\n\n".join(
            f"## Step {j}\n\n" + " ".join(f"Bring form {i}-{j}-{k} to the desk." for k in range(30))
            for j in range(4)
        )
        (docs / f"a{i:02d}.md").write_text(GOOD.format(id=f"p-{i}", title=f"Page {i}", body=body))
    (docs / "junk.pdf").write_bytes(b"\x00\x01 not a pdf " * 50)
    (docs / "zero.md").write_bytes(b"")
    (docs / "bad.docx").write_bytes(b"PK\x03\x04 truncated")
    reports, stored = [], []
    for workers in (1, 2):
        engine = make_engine(f"sqlite:///{tmp_path / f'w{workers}.db'}")
        init_db(engine)
        seen: list[str] = []
        report = ingest(
            engine,
            [docs],
            author="alice",
            workers=workers,
            on_file=lambda r: seen.append(Path(r.path).name),  # noqa: B023
        )
        assert seen == sorted(seen)  # reported as walked, not as workers finish
        assert report.count(Outcome.created) == pipeline.POOL_MIN_FILES + 8
        reports.append(report.files)
        stored.append(_stored(engine))
        again = ingest(engine, [docs], author="alice", workers=workers)
        assert again.count(Outcome.unchanged) == pipeline.POOL_MIN_FILES + 8
        assert again.count(Outcome.failed) == 3
        engine.dispose()
    assert pools == [2]  # only the first ingest with workers=2: its rerun parsed 3 files
    assert reports[0] == reports[1]
    assert {Path(f.path).name for f in reports[1] if f.outcome == Outcome.failed} == {
        "junk.pdf",
        "zero.md",
        "bad.docx",
    }
    assert stored[0] == stored[1] and len(stored[0]) > 2 * (pipeline.POOL_MIN_FILES + 8)


def test_a_model_budget_travels_to_a_worker_by_name() -> None:
    budget = ChunkBudget.for_model(max_tokens=100)
    copy = pickle.loads(pickle.dumps(budget))
    assert (copy.max_tokens, copy.limit, copy.model) == (100, 254, budget.model)
    assert copy.count("cardiomyopathy clinic") == budget.count("cardiomyopathy clinic") == 5
    plain = pickle.loads(pickle.dumps(ChunkBudget(64)))
    assert plain == ChunkBudget(64) and plain.count is count_tokens


def _count_or_die(text: str) -> int:
    """A chunk counter that ends its process on a marker, as a parser crash would."""
    if "LETHAL" in text:
        os._exit(70)
    return count_tokens(text)


def test_a_file_that_kills_its_worker_fails_alone_and_the_ingest_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pools: list[int]
) -> None:
    """Real spawned workers: one file ends the process parsing it (it breaks the whole
    pool). The files in flight are parsed again one at a time, that file fails alone with
    nothing stored, every other file is recorded in walk order, and a new pool takes the
    rest. (On SQLite only: workers never touch the database, and each run spends about
    30 s starting processes; the fake-pool test below covers both databases.)"""
    engine = make_engine(f"sqlite:///{tmp_path / 'canon.db'}")
    init_db(engine)
    monkeypatch.setattr(pipeline, "POOL_MIN_FILES", 4)  # read by this process only
    monkeypatch.setattr(pipeline, "WINDOW_PER_WORKER", 2)
    docs = tmp_path / "docs"
    docs.mkdir()
    names = [f"a{i}.md" for i in range(9)]
    for i, name in enumerate(names):
        body = "The LETHAL step." if i == 4 else f"Bring form {i} to the desk."
        (docs / name).write_text(GOOD.format(id=f"p-{i}", title=f"P {i}", body=body))
    budget = ChunkBudget(64, count=_count_or_die)
    report = ingest(engine, [docs], author="alice", workers=2, budget=budget)
    assert [Path(f.path).name for f in report.files] == names  # walk order
    failed = [f for f in report.files if f.outcome == Outcome.failed]
    assert [Path(f.path).name for f in failed] == ["a4.md"]
    assert failed[0].error and "a4.md" in failed[0].error and "worker process" in failed[0].error
    assert report.count(Outcome.created) == 8
    assert rows(engine)[0] == 8  # nothing half-written for a4
    # Which files were in flight when the worker died depends on scheduling, so the
    # number of pools does too. What holds for every interleaving: the first pool has two
    # processes; a4 is always re-parsed alone, so a one-process pool starts (it dies with
    # a4), and one more starts only if a suspect file came after a4; then exactly one new
    # two-process pool takes the rest. Nothing else starts a pool.
    assert pools[0] == 2 and pools[-1] == 2 and pools.count(2) == 2
    assert 1 <= pools.count(1) <= 2 and len(pools) == 2 + pools.count(1)
    (docs / "a4.md").write_text(GOOD.format(id="p-4", title="P 4", body="Bring form 4."))
    again = ingest(engine, [docs], author="alice", workers=2, budget=budget)
    assert again.count(Outcome.unchanged) == 8 and again.count(Outcome.created) == 1
    engine.dispose()


def test_workers_that_keep_dying_stop_the_ingest_naming_the_files(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every worker dies whatever file it has (out of memory, a worker that cannot
    start), the files are not the cause: after DEATHS_IN_A_ROW files in a row the ingest
    stops, naming what is not recorded; what was recorded stays."""

    class DyingPool:  # from the third file on, every process dies on its file
        parsed = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["initializer"](*kwargs["initargs"])

        def shutdown(self, **kwargs: Any) -> None:
            return None

        def submit(self, fn: Any, job: Any) -> "Future[Any]":
            future: Future[Any] = Future()
            if DyingPool.parsed >= 2:
                future.set_exception(BrokenProcessPool("a child process terminated abruptly"))
            else:
                DyingPool.parsed += 1
                future.set_result(fn(job))
            return future

    monkeypatch.setattr(pipeline, "POOL_MIN_FILES", 2)
    monkeypatch.setattr(pipeline, "ProcessPoolExecutor", DyingPool)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"a{i}.md").write_text(GOOD.format(id=f"p-{i}", title=f"P {i}", body="Call us."))
    with pytest.raises(pipeline.ParseWorkerDied) as died:
        ingest(engine, [docs], author="alice", workers=2)
    message = str(died.value)
    assert "3 files in a row" in message
    assert "a2.md" in message and "a5.md" in message and "a1.md" not in message
    assert rows(engine)[0] == 2  # a0 and a1 recorded, nothing half-written
    monkeypatch.setattr(pipeline, "ProcessPoolExecutor", pipeline.ProcessPoolExecutor)
    again = ingest(engine, [docs], author="alice", workers=1)
    assert again.count(Outcome.unchanged) == 2 and again.count(Outcome.created) == 4
