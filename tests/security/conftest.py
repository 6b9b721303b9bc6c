"""A published sample corpus of its own (the fuzzer and the matrix write to it)."""

import os
from collections.abc import Iterator

import pytest

from canon.runtime import Runtime
from canon.settings import Settings
from retrieval.catalog import FreshnessMode
from retrieval.embed import Embedder


@pytest.fixture(scope="module")
def writable_sample(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[Runtime]:
    """The sample corpus published into a module's own CANON_HOME (SQLite)."""
    from evals.runner import publish_sample

    home = tmp_path_factory.mktemp("security")
    settings = Settings(home=home, freshness_mode=FreshnessMode.flag)
    if os.environ.get("CANON_SECURITY_DATABASE_URL"):  # e.g. a PostgreSQL schema, by hand
        settings.database_url = os.environ["CANON_SECURITY_DATABASE_URL"]
    rt = Runtime(settings, embedder=embedder)
    publish_sample(rt)
    yield rt
    rt.close()
