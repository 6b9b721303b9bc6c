"""Ingest, review and publish a folder in one go, for scratch indexes (evals, tests, demos).

Both the author and the reviewer are named by the caller so the audit trail says
plainly that no human review took place.
"""

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from governance import service
from governance.models import Status
from governance.service import Actor, IndexHook, Role
from ingest.chunk import ChunkBudget
from ingest.index import IndexSync
from ingest.pipeline import FileResult, IngestReport, ingest


def publish_paths(
    engine: Engine,
    index: IndexHook,
    paths: Sequence[Path],
    *,
    author: str = "bootstrap-author",
    reviewer: str = "bootstrap-reviewer (automated, not a human review)",
    timings: dict[str, float] | None = None,
    batch: int = 200,
    on_file: Callable[[FileResult], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    budget: ChunkBudget | None = None,
    workers: int | None = 1,
) -> IngestReport:
    """`timings`, if given, receives seconds per step: ingest, review, embed, publish.
    `on_file` is called after each file is ingested, `on_step` with a step's name when
    it ends (progress, benchmarks). `workers` is as for `ingest.pipeline.ingest`; it is 1
    here (parse in this process) unless the caller's entry point can start worker
    processes (see there)."""
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        if timings is not None:
            timings[step] = timings.get(step, 0.0) + now - clock
        if on_step is not None:
            on_step(step)
        clock = time.perf_counter()

    report = ingest(
        engine, paths, author=author, submit=True, on_file=on_file, budget=budget, workers=workers
    )
    lap("ingest")
    actor = Actor(reviewer, frozenset({Role.reviewer, Role.clinical_reviewer}))
    # By ids, a batch per session: holding every pending version's row (and text) for
    # the whole review grew memory by about 5 KB a version.
    with Session(engine) as session:
        pending = service.version_ids_in(session, Status.in_review)
    for start in range(0, len(pending), batch):
        with Session(engine) as session:
            for version_id in pending[start : start + batch]:
                service.approve(session, version_id, actor)
    with Session(engine, expire_on_commit=False) as session:
        approved = service.version_ids_in(session, Status.approved)
        lap("review")
        if isinstance(index, IndexSync):
            index.warm(session, approved)
        lap("embed")
        for start in range(0, len(approved), batch):
            ids = approved[start : start + batch]
            if isinstance(index, IndexSync):
                service.publish_many(session, ids, actor, index)
            else:
                for version_id in ids:
                    service.publish(session, version_id, actor, index)
        lap("publish")
    return report
