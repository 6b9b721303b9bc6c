"""`canon backup` and `canon restore`: a published corpus round-trips with identical answers,
and a bad archive or a busy target is refused before anything changes."""

import dataclasses
import gzip
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from canon import errors
from canon.backup import FORMAT_VERSION, INDEX_MEMBER, MANIFEST
from canon.cli import app
from canon.runtime import Runtime
from canon.settings import Settings
from governance import audit, service
from governance.errors import CanonError, Conflict, IndexUnavailable, InvalidInput
from governance.models import Audience
from governance.service import Actor, Role
from ingest.bootstrap import publish_paths
from retrieval.embed import Embedder
from retrieval.store import EdgeStore
from tests.conftest import CORPUS, DATABASES, REPO, _drop_schema, _postgres_schema

runner = CliRunner()
QUESTIONS = [
    ("Is the billing office open on Saturday?", Audience.patient),
    ("Can I set up a payment plan for my hospital bill?", Audience.patient),
    ("How do I get an itemized bill?", Audience.patient),
    ("How do I request a prescription refill?", Audience.patient),
    ("Can a nurse refill a prescription without the doctor?", Audience.staff),
    ("Where is the pharmacy and when is it open?", Audience.patient),
    ("Write me a poem about the ocean", Audience.patient),
]


@dataclasses.dataclass
class Target:
    home: Path
    db_url: str | None  # None: SQLite in home

    def settings(self) -> Settings:
        return Settings(home=self.home, database_url=self.db_url)

    def env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CANON_HOME", str(self.home))
        monkeypatch.delenv("CANON_QDRANT_URL", raising=False)
        if self.db_url:
            monkeypatch.setenv("CANON_DATABASE_URL", self.db_url)
        else:
            monkeypatch.delenv("CANON_DATABASE_URL", raising=False)


@pytest.fixture(params=DATABASES)
def targets(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Target, Target]]:
    """Two empty Canons of one kind: the original and the one restored into."""
    if request.param == "sqlite":
        yield Target(tmp_path / "a", None), Target(tmp_path / "b", None)
        return
    (schema_a, url_a), (schema_b, url_b) = _postgres_schema(), _postgres_schema()
    try:
        yield Target(tmp_path / "a", url_a), Target(tmp_path / "b", url_b)
    finally:
        _drop_schema(schema_a)
        _drop_schema(schema_b)


def publish_subset(target: Target, embedder: Embedder) -> None:
    rt = Runtime(target.settings(), embedder=embedder)
    try:
        publish_paths(rt.engine, rt.sync, [CORPUS], author="author")
        publish_paths(rt.engine, rt.sync, [CORPUS / "_revisions"], author="author")
    finally:
        rt.close()


def _without_fused_scores(value: Any) -> Any:
    """An answer minus the RRF `score` of each passage. Qdrant ranks points with exactly
    equal sparse scores in arbitrary order inside a prefetch, which can move a fused score
    by a rank's worth from one query to the next on the very same index; everything else
    (text, sentences, citations, versions, sections, cosine relevance, order) must match."""
    if isinstance(value, dict):
        return {k: _without_fused_scores(v) for k, v in value.items() if k != "score"}
    if isinstance(value, list):
        return [_without_fused_scores(v) for v in value]
    return value


def ask(target: Target, embedder: Embedder) -> list[dict[str, Any]]:
    rt = Runtime(target.settings(), embedder=embedder)
    try:
        return [
            _without_fused_scores(dataclasses.asdict(rt.answers.answer(q, audience=audience)))
            for q, audience in QUESTIONS
        ]
    finally:
        rt.close()


def invoke(target: Target, monkeypatch: pytest.MonkeyPatch, *argv: str) -> Any:
    target.env(monkeypatch)
    return runner.invoke(app, list(argv))


def refused(result: Any, kind: type[CanonError]) -> str:
    """The domain error the command raised, checked against its exit code; its message."""
    assert isinstance(result.exception, kind), (result.exception, result.output)
    assert errors.lookup(errors.EXIT_CODE, result.exception, 1) == errors.EXIT_CODE[kind]
    return str(result.exception)


def footprint(target: Target) -> tuple[int, int, int]:
    """(articles, audit events, index points): what a refused restore must leave alone."""
    rt = Runtime(target.settings(), embedder=None)
    try:
        with Session(rt.engine) as s:
            articles = len(service.published_view(s))
            events = audit.verify(s).events
        store = EdgeStore(target.settings().shard_path, None)
        try:
            points = store.count()
        finally:
            store.close()
        return articles, events, points
    finally:
        rt.close()


@pytest.mark.slow
def test_round_trip_gives_identical_answers(
    targets: tuple[Target, Target],
    embedder: Embedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original, fresh = targets
    publish_subset(original, embedder)
    before = ask(original, embedder)
    assert sum(not a["abstained"] for a in before) >= 5  # the questions find real answers
    cited = {(c["article_id"], c["version"]) for a in before for c in a["passages"]}
    assert ("billing-office-hours", 2) in cited  # the revision is what is served

    archive = tmp_path / "canon.tar.gz"
    started = time.perf_counter()
    result = invoke(original, monkeypatch, "backup", str(archive), "--json")
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    print(
        f"\nbackup ({made['database']}): {made['points']} points, "
        f"{sum(made['rows'].values())} rows, {made['bytes']} bytes in "
        f"{time.perf_counter() - started:.2f} s"
    )
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile(MANIFEST))  # type: ignore[arg-type]
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["alembic_revision"] and manifest["versions"]["canon-kb"]
    assert manifest["index"]["points"] == made["points"] > 0
    assert manifest["index"]["encoder"] == embedder.cache_key  # the index's encoder travels
    assert set(manifest["files"]) == {manifest["database"]["member"], INDEX_MEMBER}

    # Into a fresh Canon: the same answers, word for word, citation for citation.
    started = time.perf_counter()
    result = invoke(fresh, monkeypatch, "restore", str(archive), "--json")
    assert result.exit_code == 0, result.output
    print(f"restore: {time.perf_counter() - started:.2f} s")
    assert json.loads(result.stdout)["points"] == made["points"]
    assert fresh.settings().encoder_marker.read_text().strip() == embedder.cache_key
    assert ask(fresh, embedder) == before
    assert invoke(fresh, monkeypatch, "audit", "verify").exit_code == 0
    assert invoke(fresh, monkeypatch, "doctor", "--check-only").exit_code == 0

    # Over the original after it changed: refused without --force (nothing touched), then
    # replaced with --force, and the answers are the backed-up ones again.
    rt = Runtime(original.settings(), embedder=embedder)
    try:
        with Session(rt.engine) as s:
            admin = Actor("ada", frozenset({Role.admin}))
            service.retire(s, "billing-office-hours", admin, "moved", rt.sync)
    finally:
        rt.close()
    changed = ask(original, embedder)
    assert changed != before
    kept = footprint(original)
    message = refused(invoke(original, monkeypatch, "restore", str(archive)), Conflict)
    assert "--force" in message and "not empty" in message
    assert footprint(original) == kept and ask(original, embedder) == changed

    result = invoke(original, monkeypatch, "restore", str(archive), "--force")
    assert result.exit_code == 0, result.output
    assert ask(original, embedder) == before
    assert invoke(original, monkeypatch, "audit", "verify").exit_code == 0


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A small published Canon (SQLite) and its archive, for the refusal cases."""
    root = tmp_path_factory.mktemp("small")
    target = Target(root / "home", None)
    rt = Runtime(target.settings(), embedder=embedder)
    try:
        publish_paths(rt.engine, rt.sync, [CORPUS / "pharmacy"], author="author")
    finally:
        rt.close()
    from canon.backup import backup

    return Path(backup(target.settings(), root / "small.tar.gz").archive)


def _rewrite(
    archive: Path, dest: Path, change: dict[str, bytes], *, fix_checksums: bool = False
) -> Path:
    """A well-formed archive with some members' bytes replaced (and, if asked, the
    manifest's checksums made to match them, as a careful forger would)."""
    with tarfile.open(archive) as src:
        members = {m.name: src.extractfile(m).read() for m in src.getmembers()}  # type: ignore[union-attr]
    members |= change
    if fix_checksums:
        manifest = json.loads(members[MANIFEST])
        for name in manifest["files"]:
            data = members[name]
            manifest["files"][name] = {
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
            }
        members[MANIFEST] = json.dumps(manifest).encode()
    with tarfile.open(dest, "w:gz") as out:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dest


def _bad_archives(good: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (archive, what the error must say)."""
    raw = good.read_bytes()
    truncated = folder / "truncated.tar.gz"
    truncated.write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    corrupt = folder / "corrupt.tar.gz"
    corrupt.write_bytes(bytes(flipped))
    with tarfile.open(good) as tar:
        manifest = json.load(tar.extractfile(MANIFEST))  # type: ignore[arg-type]
        points = gzip.decompress(tar.extractfile(INDEX_MEMBER).read())  # type: ignore[union-attr]
    future = _rewrite(
        good,
        folder / "future.tar.gz",
        {MANIFEST: json.dumps(manifest | {"format_version": 99}).encode()},
    )
    fewer = b"\n".join(points.splitlines()[1:]) + b"\n"
    tampered = _rewrite(good, folder / "tampered.tar.gz", {INDEX_MEMBER: gzip.compress(fewer)})
    text = folder / "notes.tar.gz"
    text.write_text("not an archive at all")
    empty_db = folder / "empty.sqlite"
    sqlite3.connect(empty_db).close()
    foreign = _rewrite(
        good,
        folder / "foreign.tar.gz",
        {"database.sqlite": empty_db.read_bytes()},
        fix_checksums=True,
    )
    no_index = {k: v for k, v in manifest.items() if k != "index"}
    vague = _rewrite(good, folder / "vague.tar.gz", {MANIFEST: json.dumps(no_index).encode()})
    return {
        "truncated": (truncated, "cannot be read to the end"),
        "corrupt": (corrupt, str(corrupt)),
        "wrong format version": (future, "manifest.json: format_version 99"),
        "tampered member": (tampered, f"member {INDEX_MEMBER} does not match its checksum"),
        "not an archive": (text, "cannot be read to the end"),
        "missing": (folder / "nowhere.tar.gz", "no such file"),
        "foreign database": (foreign, "not what Canon writes"),
        "manifest without index": (vague, "not what Canon writes"),
    }


def test_bad_archives_are_refused_and_change_nothing(
    small_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = Target(tmp_path / "empty", None)
    busy = Target(tmp_path / "busy", None)
    assert invoke(busy, monkeypatch, "restore", str(small_archive)).exit_code == 0
    kept = footprint(busy)
    assert kept[0] > 0 and kept[2] > 0
    for name, (archive, says) in _bad_archives(small_archive, tmp_path).items():
        message = refused(invoke(empty, monkeypatch, "restore", str(archive)), InvalidInput)
        assert str(archive) in message and says in message, (name, message)
        assert "nothing was restored" in message or name == "missing", (name, message)
        assert not (empty.home / "canon.db").exists() and not (empty.home / "index").exists()
        refused(invoke(busy, monkeypatch, "restore", str(archive), "--force"), InvalidInput)
        assert footprint(busy) == kept, name
    assert not empty.home.exists() or not any(empty.home.iterdir())


def test_backup_and_restore_while_another_process_holds_the_index(
    small_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What happens while `canon serve` runs on the embedded index: a clear refusal."""
    target = Target(tmp_path / "home", None)
    assert invoke(target, monkeypatch, "restore", str(small_archive)).exit_code == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib; from retrieval.store import EdgeStore; "
            f"s = EdgeStore(pathlib.Path({str(target.home / 'index')!r}), None); "
            "print('held', flush=True); time.sleep(60)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        dest = tmp_path / "while-serving.tar.gz"
        message = refused(invoke(target, monkeypatch, "backup", str(dest)), IndexUnavailable)
        assert "held by another process" in message and "canon serve" in message
        assert not dest.exists() and not list(tmp_path.glob(".while-serving*"))
        message = refused(
            invoke(target, monkeypatch, "restore", str(small_archive), "--force"),
            IndexUnavailable,
        )
        assert "cannot restore" in message
    finally:
        holder.kill()
        holder.wait()
    result = invoke(target, monkeypatch, "backup", str(tmp_path / "after.tar.gz"))
    assert result.exit_code == 0, result.output


def test_backup_refuses_to_overwrite(
    small_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = Target(tmp_path / "home", None)
    assert invoke(target, monkeypatch, "restore", str(small_archive)).exit_code == 0
    taken = tmp_path / "taken.tar.gz"
    taken.write_text("someone else's file")
    message = refused(invoke(target, monkeypatch, "backup", str(taken)), InvalidInput)
    assert str(taken) in message and "already exists" in message
    assert taken.read_text() == "someone else's file"


@pytest.mark.skipif(not os.environ.get("CANON_QDRANT_URL"), reason="no Qdrant server given")
def test_round_trip_through_a_qdrant_server(
    small_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    collection = f"canon-restore-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CANON_QDRANT_COLLECTION", collection)
    target = Target(tmp_path / "home", None)
    target.env(monkeypatch)
    monkeypatch.setenv("CANON_QDRANT_URL", os.environ["CANON_QDRANT_URL"])
    from canon.backup import restore

    settings = Settings()
    # The server collection must exist before a restore; the runtime creates it.
    rt = Runtime(settings)
    rt.store.close()
    restore(settings, small_archive)
    from canon.backup import backup

    again = backup(settings, tmp_path / "again.tar.gz")
    with tarfile.open(small_archive) as a, tarfile.open(again.archive) as b:
        first = json.load(a.extractfile(MANIFEST))  # type: ignore[arg-type]
        second = json.load(b.extractfile(MANIFEST))  # type: ignore[arg-type]
    assert first["index"]["digest"] == second["index"]["digest"]


@pytest.mark.postgres
def test_moves_between_sqlite_and_postgres(
    small_archive: Path, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A laptop's SQLite archive restores into PostgreSQL, and back: same answers."""
    laptop = Target(tmp_path / "laptop", None)
    assert invoke(laptop, monkeypatch, "restore", str(small_archive)).exit_code == 0
    expected = ask(laptop, embedder)
    schema, url = _postgres_schema()
    try:
        server = Target(tmp_path / "server", url)
        result = invoke(server, monkeypatch, "restore", str(small_archive), "--json")
        assert result.exit_code == 0, result.output
        assert "moved from sqlite to postgresql" in json.loads(result.stdout)["notes"]
        assert ask(server, embedder) == expected
        # New rows after the move get fresh ids (the sequences were moved past the old ones).
        rt = Runtime(server.settings(), embedder=embedder)
        try:
            publish_paths(rt.engine, rt.sync, [CORPUS / "_revisions"], author="author")
        finally:
            rt.close()
        after = ask(server, embedder)
        back = tmp_path / "server.tar.gz"
        assert invoke(server, monkeypatch, "backup", str(back)).exit_code == 0
        home_again = Target(tmp_path / "laptop-again", None)
        assert invoke(home_again, monkeypatch, "restore", str(back)).exit_code == 0
        assert ask(home_again, embedder) == after
        assert invoke(home_again, monkeypatch, "audit", "verify").exit_code == 0
        assert invoke(home_again, monkeypatch, "doctor", "--check-only").exit_code == 0
    finally:
        _drop_schema(schema)
