"""Alembic migrations on real SQLite and PostgreSQL: fresh, adopted and upgraded databases."""

from datetime import date

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel

from governance import audit, db
from governance.models import Article, Audience, Ledger


def _revision(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


def _head() -> str:
    from alembic.script import ScriptDirectory

    with db.make_engine("sqlite://").connect() as conn:
        head = ScriptDirectory.from_config(db.alembic_config(conn)).get_current_head()
    assert head is not None
    return head


def test_a_fresh_database_matches_the_models(engine: Engine) -> None:
    assert _revision(engine) == _head()
    assert db.schema_drift(engine) == []


def test_a_database_made_before_migrations_is_adopted_and_keeps_its_rows(db_url: str) -> None:
    engine = db.make_engine(db_url)
    SQLModel.metadata.create_all(engine)  # how the foundation created its schema
    with Session(engine) as s:
        s.add(Ledger(id=1))
        s.add(
            Article(
                id="billing-hours",
                title="Billing hours",
                owner="Maria",
                service_line="billing",
                audience=Audience.patient,
                last_reviewed=date(2026, 1, 5),
            )
        )
        audit.record(s, actor="ada", action="create", article_id="billing-hours")
        s.commit()
    assert not inspect(engine).has_table("alembic_version")

    db.init_db(engine)

    assert _revision(engine) == _head()
    assert db.schema_drift(engine) == []
    with Session(engine) as s:
        article = s.get(Article, "billing-hours")
        assert article is not None and article.last_reviewed == date(2026, 1, 5)
        assert audit.verify(s).ok
    engine.dispose()


def test_upgrade_from_the_baseline_keeps_data(db_url: str) -> None:
    engine = db.make_engine(db_url)
    db.upgrade(engine, db.BASELINE)
    assert _revision(engine) == db.BASELINE
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO ledger (id, audit_seq, audit_head, epoch) VALUES (1, 0, :h, 7)"),
            {"h": "0" * 64},
        )
        conn.execute(
            text(
                "INSERT INTO article (id, title, owner, service_line, audience, clinical,"
                " review_every_days, source_path, created_at)"
                " VALUES ('a', 'A', 'Maria', 'billing', 'patient', false, 90, '', :now)"
            ),
            {"now": "2026-01-01 00:00:00"},
        )

    db.init_db(engine)

    assert _revision(engine) == _head()
    assert db.schema_drift(engine) == []
    with Session(engine) as s:
        article = s.get(Article, "a")
        ledger = s.get(Ledger, 1)
        assert article is not None and article.review_every_days == 90
        assert ledger is not None and ledger.epoch == 7
        audit.record(s, actor="ada", action="create", article_id="a")
        s.commit()
    # 0002: history is append-only in the database itself
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE auditevent SET actor = 'mallory'"))
    engine.dispose()
