"""`canon backup` / `canon restore`: the database and the index in one checked archive.

The archive is one gzip'd tar file:

- `manifest.json`: format and version, Canon and qdrant-edge versions, the Alembic
  revision, row counts per table, the index's point count and a digest of its
  point -> version map, and the SHA-256 and size of every other member;
- `database.sqlite` (SQLite, copied with SQLite's online backup API: a consistent
  snapshot while others keep reading and writing) or `database.jsonl.gz`
  (PostgreSQL: every Canon table as JSON lines, read in one REPEATABLE READ
  transaction; portable, needs no `pg_dump` matching the server's version, and
  restores into SQLite as well);
- `index.jsonl.gz`: every point with its id, both vectors (the dense one as base64
  little-endian float32) and its payload. Qdrant
  Edge can apply a server's snapshot but cannot make one, so this logical snapshot
  is the index's backup; it round-trips bit for bit and restores into Edge or a
  Qdrant server alike.

Restore checks everything before it touches anything: the archive reads to the end,
the manifest's format version is one this Canon reads, every member matches its
checksum, the database copy passes an integrity check and its row counts match, the
index's points match their digest, the target is empty (or `--force`), and the
embedded index is not held by another process. Only then does it replace the
database (one transaction, or SQLite's backup API, which is atomic) and then the
index (built beside the old one, then swapped in).
"""

import base64
import enum
import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Enum, Integer, Table, TypeDecorator, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel

from canon.settings import Settings
from governance import audit, service
from governance.db import init_db, make_engine
from governance.errors import Conflict, IndexUnavailable, InvalidInput
from retrieval.sparse import SparseVec
from retrieval.store import EdgeStore, PointRecord, ServerStore, VectorStore

FORMAT = "canon-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite"
JSONL_MEMBER = "database.jsonl.gz"
INDEX_MEMBER = "index.jsonl.gz"
MEMBERS = (MANIFEST, SQLITE_MEMBER, JSONL_MEMBER, INDEX_MEMBER)
UPSERT_BATCH = 512


@dataclass
class BackupReport:
    archive: str
    bytes: int
    seconds: float
    database: str
    rows: dict[str, int]
    points: int
    alembic_revision: str


@dataclass
class RestoreReport:
    archive: str
    seconds: float
    database: str
    rows: dict[str, int]
    points: int
    audit_events: int
    replaced: bool
    notes: list[str] = field(default_factory=list)


def _tables() -> list[Table]:
    """Canon's tables in foreign-key order (parents first)."""
    return list(SQLModel.metadata.sorted_tables)


def _versions() -> dict[str, str]:
    found = {}
    for dist in ("canon-kb", "qdrant-edge-py"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "unknown"
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _points_digest(point_versions: Iterable[tuple[str, int]]) -> str:
    lines = sorted(f"{pid}:{vid}" for pid, vid in point_versions)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _revision(conn: Connection) -> str:
    return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


def _row_counts(conn: Connection) -> dict[str, int]:
    return {
        t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
        for t in _tables()
    }


def _sqlite_path(engine: Engine) -> Path | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    return Path(database) if database and database != ":memory:" else None


# --- values <-> JSON ---------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _decoder(table: Table) -> dict[str, Any]:
    """How to turn each column's JSON value back into what the column takes."""
    decoders: dict[str, Any] = {}
    for column in table.columns:
        kind = column.type
        if isinstance(kind, Enum) and kind.enum_class is not None:
            decoders[column.name] = kind.enum_class
            continue
        base = kind.impl if isinstance(kind, TypeDecorator) else kind  # e.g. UTCDateTime
        try:
            python = base.python_type
        except NotImplementedError:
            continue
        if not isinstance(python, type):
            continue
        if issubclass(python, datetime):
            decoders[column.name] = datetime.fromisoformat
        elif issubclass(python, date):
            decoders[column.name] = date.fromisoformat
        elif issubclass(python, bytes):
            decoders[column.name] = base64.b64decode
    return decoders


def _decode_row(row: dict[str, Any], decoders: dict[str, Any]) -> dict[str, Any]:
    return {k: (decoders[k](v) if v is not None and k in decoders else v) for k, v in row.items()}


# --- backup ------------------------------------------------------------------


def _open_index(settings: Settings, *, purpose: str) -> VectorStore | None:
    """The index, held by this process; None when no embedded index exists yet."""
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        try:
            dim = _server_dim(settings.qdrant_url, key, settings.qdrant_collection)
        except Exception as exc:
            raise IndexUnavailable(f"cannot reach Qdrant at {settings.qdrant_url}: {exc}") from exc
        return ServerStore(
            settings.qdrant_url, dim, api_key=key, collection=settings.qdrant_collection
        )
    path = settings.shard_path
    if not ((path / "wal").exists() or (path / "segments").exists()):
        return None
    try:
        return EdgeStore(path, None)
    except IndexUnavailable as exc:
        if "another process" in str(exc):
            raise IndexUnavailable(
                f"cannot {purpose}: the embedded index at {path} is held by another process "
                "(is `canon serve` running?). Stop it and run this again: the embedded "
                "index is one process's at a time"
                + (" (with a Qdrant server, backups run live)" if purpose == "back up" else "")
            ) from exc
        raise


def _server_dim(url: str, api_key: str | None, collection: str) -> int:
    from qdrant_client import QdrantClient

    client = QdrantClient(url=url, api_key=api_key, timeout=30)
    try:
        vectors = client.get_collection(collection).config.params.vectors
        return int(vectors["dense"].size)
    finally:
        client.close()


def _write_point(fh: Any, point: PointRecord) -> None:
    fh.write(
        json.dumps(
            {
                "id": point.id,
                "dense": base64.b64encode(np.asarray(point.dense, dtype="<f4").tobytes()).decode(),
                "sparse": {"indices": point.sparse.indices, "values": point.sparse.values},
                "payload": point.payload,
            },
            separators=(",", ":"),
        )
        + "\n"
    )


def _dump_sqlite(path: Path, dest: Path) -> None:
    source = sqlite3.connect(path)
    target = sqlite3.connect(dest)
    try:
        with target:
            source.backup(target)
    finally:
        target.close()
        source.close()


def _dump_rows(engine: Engine, dest: Path) -> tuple[dict[str, int], str]:
    """Every Canon table as JSON lines, read in one consistent snapshot."""
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin(), gzip.open(dest, "wt", encoding="utf-8") as fh:
            revision = _revision(conn)
            for table in _tables():
                pk = list(table.primary_key.columns)
                counts[table.name] = 0
                for row in conn.execute(select(table).order_by(*pk)).mappings():
                    record = {k: _encode(v) for k, v in row.items()}
                    fh.write(json.dumps({"table": table.name, "row": record}, default=str) + "\n")
                    counts[table.name] += 1
    return counts, revision


def backup(settings: Settings, dest: Path) -> BackupReport:
    """Write the archive to `dest` (a new file; a folder gets a timestamped name)."""
    started = datetime.now(UTC)
    if dest.is_dir():
        dest = dest / f"canon-backup-{started.strftime('%Y%m%dT%H%M%SZ')}.tar.gz"
    if dest.exists():
        raise InvalidInput(f"{dest}: already exists; choose a new file name")
    if not dest.parent.is_dir():
        raise InvalidInput(f"{dest.parent}: no such folder")
    engine = make_engine(settings.db_url)
    store: VectorStore | None = None
    work = Path(tempfile.mkdtemp(prefix=".canon-backup-", dir=dest.parent))
    try:
        init_db(engine)
        # Hold the index first: while this process has it, nothing can publish or retire
        # (both write the index), so the database copy and the points agree.
        store = _open_index(settings, purpose="back up")
        members: list[Path] = []
        sqlite_file = _sqlite_path(engine)
        if sqlite_file is not None:
            db_member = work / SQLITE_MEMBER
            _dump_sqlite(sqlite_file, db_member)
            copy = make_engine(f"sqlite:///{db_member}")
            with copy.connect() as conn:
                rows, revision = _row_counts(conn), _revision(conn)
            copy.dispose()
        else:
            db_member = work / JSONL_MEMBER
            rows, revision = _dump_rows(engine, db_member)
        members.append(db_member)

        index_member = work / INDEX_MEMBER
        point_versions: list[tuple[str, int]] = []
        dim = 0
        with gzip.open(index_member, "wt", encoding="utf-8") as fh:
            for point in store.export_points() if store is not None else ():
                _write_point(fh, point)
                point_versions.append((point.id, int(point.payload.get("version_id", -1))))
                dim = len(point.dense)
        members.append(index_member)

        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": started.isoformat(),
            "versions": _versions(),
            "alembic_revision": revision,
            "database": {
                "dialect": engine.dialect.name,
                "member": db_member.name,
                "rows": rows,
            },
            "index": {
                "kind": "server" if settings.qdrant_url else "edge",
                "member": INDEX_MEMBER,
                "points": len(point_versions),
                "dim": dim,
                "digest": _points_digest(point_versions),
                "encoder": _encoder_of(settings),
            },
            "files": {m.name: {"sha256": _sha256(m), "bytes": m.stat().st_size} for m in members},
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        partial = dest.with_name(f".{dest.name}.partial")
        with tarfile.open(partial, "w:gz") as tar:
            for name in (MANIFEST, *(m.name for m in members)):
                tar.add(work / name, arcname=name)
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, dest)
    finally:
        if store is not None:
            store.close()
        engine.dispose()
        shutil.rmtree(work, ignore_errors=True)
        with suppress(FileNotFoundError):
            dest.with_name(f".{dest.name}.partial").unlink()
    return BackupReport(
        archive=str(dest),
        bytes=dest.stat().st_size,
        seconds=round((datetime.now(UTC) - started).total_seconds(), 3),
        database=engine.dialect.name,
        rows=rows,
        points=len(point_versions),
        alembic_revision=revision,
    )


# --- restore: check everything first -------------------------------------------


@dataclass
class Staged:
    archive: Path
    folder: Path
    manifest: dict[str, Any]

    @property
    def db_member(self) -> Path:
        return self.folder / str(self.manifest["database"]["member"])

    @property
    def index_member(self) -> Path:
        return self.folder / INDEX_MEMBER


def _bad(archive: Path, what: str) -> InvalidInput:
    return InvalidInput(f"{archive}: {what}; nothing was restored")


def _stage(archive: Path, folder: Path) -> Staged:
    if not archive.is_file():
        raise InvalidInput(f"{archive}: no such file")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = tar.getnames()
            strays = [n for n in names if n not in MEMBERS]
            if strays:
                raise _bad(archive, f"unexpected member {strays[0]!r}: not a Canon backup")
            if MANIFEST not in names:
                raise _bad(archive, f"no {MANIFEST}: not a Canon backup")
            for member in tar.getmembers():
                if not member.isfile():
                    raise _bad(archive, f"member {member.name!r} is not a regular file")
                tar.extract(member, folder, filter="data")
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise _bad(archive, f"cannot be read to the end (truncated or corrupt: {exc})") from exc
    try:
        manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(archive, f"{MANIFEST} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _bad(archive, f"{MANIFEST}: format is not {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise _bad(
            archive,
            f"{MANIFEST}: format_version {manifest.get('format_version')!r}; this Canon "
            f"reads version {FORMAT_VERSION}",
        )
    try:
        files: dict[str, dict[str, Any]] = manifest["files"]
        db_name = manifest["database"]["member"]
        for name in (db_name, INDEX_MEMBER):
            if name not in files:
                raise _bad(archive, f"{MANIFEST} lists no checksum for {name}")
    except (KeyError, TypeError) as exc:
        raise _bad(archive, f"{MANIFEST} lacks field {exc}") from exc
    for name, expected in files.items():
        path = folder / name
        if name not in MEMBERS or not path.is_file():
            raise _bad(archive, f"member {name} is missing")
        if path.stat().st_size != expected.get("bytes") or _sha256(path) != expected.get("sha256"):
            raise _bad(archive, f"member {name} does not match its checksum (corrupt)")
    return Staged(archive, folder, manifest)


def _staged_rows(staged: Staged) -> tuple[dict[str, int], str | None]:
    """Check the staged database copy and count its rows per table."""
    member = staged.db_member
    if member.name == SQLITE_MEMBER:
        try:
            conn = sqlite3.connect(f"file:{member}?mode=ro", uri=True)
            try:
                verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise _bad(
                staged.archive, f"member {member.name} is not a SQLite database ({exc})"
            ) from exc
        if verdict != "ok":
            raise _bad(staged.archive, f"member {member.name} fails its integrity check")
        copy = make_engine(f"sqlite:///{member}")
        try:
            with copy.connect() as c:
                return _row_counts(c), _revision(c)
        finally:
            copy.dispose()
    counts: dict[str, int] = {}
    try:
        for table, _ in _iter_jsonl(member):
            counts[table] = counts.get(table, 0) + 1
    except (ValueError, KeyError, OSError, EOFError) as exc:
        raise _bad(staged.archive, f"member {member.name} cannot be read ({exc})") from exc
    return counts, None


def _iter_jsonl(member: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with gzip.open(member, "rt", encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            yield item["table"], item["row"]


def _iter_points(member: Path) -> Iterator[PointRecord]:
    with gzip.open(member, "rt", encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            yield PointRecord(
                id=item["id"],
                dense=np.frombuffer(base64.b64decode(item["dense"]), dtype="<f4"),
                sparse=SparseVec(item["sparse"]["indices"], item["sparse"]["values"]),
                payload=item["payload"],
            )


def _check(staged: Staged, head: str) -> None:
    manifest = staged.manifest
    rows, revision = _staged_rows(staged)
    expected_rows = {k: v for k, v in manifest["database"]["rows"].items() if v}
    if {k: v for k, v in rows.items() if v} != expected_rows:
        raise _bad(
            staged.archive,
            f"member {staged.db_member.name} holds other row counts than {MANIFEST} lists",
        )
    if revision is not None and revision != manifest["alembic_revision"]:
        raise _bad(staged.archive, f"{MANIFEST}: alembic_revision does not match the database")
    if staged.db_member.name == JSONL_MEMBER and manifest["alembic_revision"] != head:
        raise _bad(
            staged.archive,
            f"its schema is at revision {manifest['alembic_revision']}, this Canon at {head}: "
            "restore it with the Canon version that made it, then upgrade",
        )
    try:
        pairs = [
            (p.id, int(p.payload.get("version_id", -1))) for p in _iter_points(staged.index_member)
        ]
    except (ValueError, KeyError, TypeError, OSError, EOFError) as exc:
        raise _bad(staged.archive, f"member {INDEX_MEMBER} cannot be read ({exc})") from exc
    index = manifest["index"]
    if len(pairs) != index["points"] or _points_digest(pairs) != index["digest"]:
        raise _bad(
            staged.archive, f"member {INDEX_MEMBER} does not hold the points {MANIFEST} lists"
        )


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from governance.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _holds_data(engine: Engine, store: VectorStore | None) -> str | None:
    with Session(engine) as session:
        for table in ("article", "auditevent", "apikey", "answerlog"):
            n = session.connection().execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            if n:
                return f"its database holds {n} rows in {table}"
    if store is not None and store.count():
        return f"its index holds {store.count()} points"
    return None


# --- restore: apply -----------------------------------------------------------


def _load_rows(
    conn: Connection, rows: Iterator[tuple[str, dict[str, Any]]], *, from_json: bool
) -> None:
    tables = {t.name: t for t in _tables()}
    decoders = {name: _decoder(t) for name, t in tables.items()}
    batch: list[dict[str, Any]] = []
    current: str | None = None

    def flush() -> None:
        if batch and current is not None:
            conn.execute(tables[current].insert(), batch)
        batch.clear()

    for name, row in rows:
        if name not in tables:
            raise InvalidInput(f"table {name!r} is not one of Canon's")
        if name != current:
            flush()
            current = name
        batch.append(_decode_row(row, decoders[name]) if from_json else row)
        if len(batch) >= 500:
            flush()
    flush()


def _rows_of_sqlite(member: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    copy = make_engine(f"sqlite:///{member}")
    try:
        with copy.connect() as conn:
            for table in _tables():
                pk = list(table.primary_key.columns)
                for row in conn.execute(select(table).order_by(*pk)).mappings():
                    yield table.name, dict(row)
    finally:
        copy.dispose()


def _restore_postgres(engine: Engine, staged: Staged) -> None:
    rows = (
        _rows_of_sqlite(staged.db_member)
        if staged.db_member.name == SQLITE_MEMBER
        else _iter_jsonl(staged.db_member)
    )
    names = ", ".join(f'"{t.name}"' for t in _tables())
    with engine.begin() as conn:
        # TRUNCATE, not DELETE: the audit log's append-only triggers refuse row deletes.
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        _load_rows(conn, rows, from_json=staged.db_member.name == JSONL_MEMBER)
        for table in _tables():
            column = table.columns.get("id")
            if column is None or not column.primary_key or not isinstance(column.type, Integer):
                continue
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
                    f'COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM "{table.name}"'
                )
            )


def _restore_sqlite(engine: Engine, staged: Staged, work: Path) -> None:
    source = staged.db_member
    if source.name == JSONL_MEMBER:  # a PostgreSQL backup into SQLite: build the file first
        built = work / "built.sqlite"
        fresh = make_engine(f"sqlite:///{built}")
        init_db(fresh)
        with fresh.begin() as conn:
            conn.execute(text("DELETE FROM ledger"))
            _load_rows(conn, _iter_jsonl(source), from_json=True)
        fresh.dispose()
        source = built
    target_path = _sqlite_path(engine)
    assert target_path is not None
    engine.dispose()
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target_path, timeout=30)
    try:
        src.backup(dst)  # one transaction on the target: all of it or none of it
    finally:
        dst.close()
        src.close()
    init_db(engine)  # an older archive is migrated forward


def _encoder_of(settings: Settings) -> str | None:
    """The encoder the embedded index was built with (None: no marker, see Runtime.store)."""
    marker = settings.encoder_marker
    if settings.qdrant_url or not marker.is_file():
        return None
    return marker.read_text().strip()


def _restore_encoder(settings: Settings, encoder: str | None) -> None:
    """The restored index carries its encoder's name, so no other encoder queries it."""
    marker = settings.encoder_marker
    if encoder is None:
        with suppress(FileNotFoundError):
            marker.unlink()
        return
    partial = marker.with_name(f".{marker.name}.partial")
    partial.write_text(encoder + "\n")
    os.replace(partial, marker)


def _restore_index(settings: Settings, staged: Staged, store: VectorStore | None) -> int:
    points = _iter_points(staged.index_member)
    if isinstance(store, ServerStore):
        store.clear()
        return _upsert_all(store, points)
    target = settings.shard_path
    building = target.with_name(f".{target.name}.restoring")
    shutil.rmtree(building, ignore_errors=True)
    count = 0
    dim = int(staged.manifest["index"]["dim"])
    if dim:  # an empty index is simply absent: Canon creates it on first use
        fresh = EdgeStore(building, dim)
        try:
            count = _upsert_all(fresh, points)
        finally:
            fresh.close()
    if store is not None:
        store.close()
    retired = target.with_name(f".{target.name}.replaced")
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():
        os.replace(target, retired)
    if dim:
        os.replace(building, target)
    _restore_encoder(settings, staged.manifest["index"].get("encoder"))
    shutil.rmtree(retired, ignore_errors=True)
    return count


def _upsert_all(store: VectorStore, points: Iterator[PointRecord]) -> int:
    batch: list[PointRecord] = []
    count = 0
    for point in points:
        batch.append(point)
        if len(batch) >= UPSERT_BATCH:
            store.upsert(batch)
            count += len(batch)
            batch = []
    if batch:
        store.upsert(batch)
        count += len(batch)
    return count


@contextmanager
def _scratch(near: Path) -> Iterator[Path]:
    """A folder for the unpacked archive, named by this process; folders a killed
    restore left behind (their process is gone) are removed first."""
    near.mkdir(parents=True, exist_ok=True)
    for stale in near.glob(".canon-restore-*"):
        pid = stale.name.removeprefix(".canon-restore-").split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=f".canon-restore-{os.getpid()}-", dir=near))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def restore(settings: Settings, archive: Path, *, force: bool = False) -> RestoreReport:
    """Validate `archive`, then replace this Canon's database and index with it."""
    started = datetime.now(UTC)
    with _scratch(settings.home) as work:
        staged = _stage(archive, work)
        try:
            _check(staged, _head())
        except (KeyError, TypeError, ValueError, SQLAlchemyError) as exc:
            raise _bad(
                archive, f"its manifest or database is not what Canon writes ({exc!r:.200})"
            ) from exc
        engine = make_engine(settings.db_url)
        store: VectorStore | None = None
        try:
            init_db(engine)
            store = _open_index(settings, purpose="restore")
            held = _holds_data(engine, store)
            if held and not force:
                raise Conflict(
                    f"the target Canon is not empty ({held}); pass --force to replace it "
                    f"with {archive}"
                )
            if engine.dialect.name == "sqlite":
                _restore_sqlite(engine, staged, work)
            else:
                _restore_postgres(engine, staged)
            points = _restore_index(settings, staged, store)
            store = None
            with Session(engine) as session:
                chain = audit.verify(session)
                live = service.published_view(session)
                rows = _row_counts(session.connection())
            if not chain.ok:
                raise InvalidInput(
                    f"{archive}: restored, but its audit chain breaks at event "
                    f"{chain.first_bad_seq}: {chain.problem}"
                )
        finally:
            if store is not None:
                store.close()
            engine.dispose()
    notes = []
    if staged.manifest["database"]["dialect"] != engine.dialect.name:
        notes.append(
            f"moved from {staged.manifest['database']['dialect']} to {engine.dialect.name}"
        )
    notes.append(f"{len(live)} published versions")
    return RestoreReport(
        archive=str(archive),
        seconds=round((datetime.now(UTC) - started).total_seconds(), 3),
        database=engine.dialect.name,
        rows=rows,
        points=points,
        audit_events=chain.events,
        replaced=bool(held),
        notes=notes,
    )
