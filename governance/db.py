"""Database engine: SQLite file by default, PostgreSQL by URL."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, SQLModel, create_engine

from governance import models

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The schema as `SQLModel.metadata.create_all` made it before migrations existed.
BASELINE = "0001"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate forward; a database created before migrations is adopted at the baseline."""
    with engine.begin() as connection:
        config = alembic_config(connection)
        found = inspect(connection)
        if found.has_table("article") and not found.has_table("alembic_version"):
            command.stamp(config, BASELINE)
        command.upgrade(config, revision)


def schema_drift(engine: Engine) -> list[Any]:
    """Differences between the models and the database (empty when migrations cover the models)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": True}
        )
        return list(compare_metadata(context, SQLModel.metadata))


def init_db(engine: Engine) -> None:
    upgrade(engine)
    with Session(engine) as session:
        if session.get(models.Ledger, 1) is None:
            session.add(models.Ledger(id=1))
            session.commit()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session
