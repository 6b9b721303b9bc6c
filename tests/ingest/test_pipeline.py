from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from governance.models import ArticleVersion, AuditEvent, Chunk, Status
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
