"""`canon ingest`: walk paths, parse, chunk, and record each file as a draft version.

Parsing and chunking are most of an ingest's own time (unstructured: about 11 ms a
MedQuAD file) and need nothing from the database, so a large ingest runs them in a pool
of worker processes while this process checks which files changed and records each
parsed file, one transaction per file, in the order the files were walked.
"""

import hashlib
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from governance import service
from governance.errors import CanonError, InvalidInput
from governance.models import ArticleMetaBase, ChunkDraft
from governance.service import RecordResult
from ingest import offline
from ingest.chunk import ChunkBudget, chunk_blocks
from ingest.parse import (
    MANIFEST_NAME,
    SIDECAR_SUFFIX,
    ParsedFile,
    parse_file,
    read_bytes,
    source_fingerprint,
)

# A spawned worker takes 3-4 s to start (it imports unstructured, spaCy and, through
# thinc, torch) and holds about 420 MB; a Markdown file parses in about 11 ms. Below
# this many files to parse, one process finishes first.
POOL_MIN_FILES = 500
WINDOW_PER_WORKER = 8  # files handed out ahead of the one being recorded, per worker


class Outcome(StrEnum):
    created = "created"
    new_version = "new_version"
    unchanged = "unchanged"
    failed = "failed"


@dataclass(frozen=True)
class FileResult:
    path: str
    outcome: Outcome
    article_id: str | None = None
    version: int | None = None
    chunks: int = 0
    error: str | None = None


@dataclass
class IngestReport:
    files: list[FileResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.outcome == Outcome.failed]

    def summary(self) -> dict[str, int]:
        return {o.value: self.count(o) for o in Outcome} | {"files": len(self.files)}


def content_hash(parsed: ParsedFile) -> str:
    meta = parsed.meta.model_dump(mode="json")
    canonical = json.dumps(
        {"id": parsed.article_id, "meta": meta, "body": parsed.body}, sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def iter_files(paths: Sequence[Path]) -> Iterator[tuple[Path, Path]]:
    """(file, root) pairs; folders are walked, skipping names that start with '.' or '_'."""
    for given in paths:
        if given.is_dir():
            for path in sorted(given.rglob("*")):
                relative = path.relative_to(given)
                if any(part.startswith((".", "_")) for part in relative.parts):
                    continue
                if (
                    path.is_file()
                    and not path.name.endswith(SIDECAR_SUFFIX)
                    and path.name != MANIFEST_NAME
                ):
                    yield path, given
        else:
            yield given, given.parent


def check_file_count(count: int, max_files: int | None) -> None:
    if max_files is not None and count > max_files:
        raise InvalidInput(
            f"{count} files to ingest, more than the limit of {max_files} "
            "(--max-files or CANON_MAX_INGEST_FILES): nothing was ingested; "
            "ingest fewer folders at a time or raise the limit"
        )


def default_workers() -> int:
    return min(os.cpu_count() or 1, 8)


def ingest(
    engine: Engine,
    paths: Sequence[Path],
    *,
    author: str,
    submit: bool = False,
    max_bytes: int = 20_000_000,
    budget: ChunkBudget | None = None,
    max_files: int | None = None,
    workers: int | None = 1,
    on_file: Callable[[FileResult], None] | None = None,
) -> IngestReport:
    """Each file is its own transaction: a bad file fails alone and changes nothing stored.

    A file whose bytes, sidecar and manifests hash to what the article's newest
    version came from is reported unchanged without being parsed. More than `max_files`
    files is refused before any is read.

    `workers` processes parse and chunk the rest when there are at least POOL_MIN_FILES
    of them (None: one per core, at most 8); 1, the default, parses here. Workers are
    spawned, not forked (this process may hold the encoder's threads), so they import
    the caller's main module afresh: a script that asks for workers needs the usual
    `if __name__ == "__main__":` guard (`canon ingest` has it). Results are recorded and
    reported in the order the files were walked, whatever order the workers finish in.
    If a worker dies (a parser crashing the interpreter, or killed for memory), the
    files it may have had are parsed again one at a time, and a file that kills a worker
    of its own fails alone, as a parser exception does (`_Workers`). Only when workers
    keep dying, whatever the file, does the ingest stop, with ParseWorkerDied naming the
    files in flight: files recorded before them stay recorded, and a rerun skips them.
    """
    files = list(iter_files(paths))
    check_file_count(len(files), max_files)
    report = IngestReport()
    with Session(engine) as session:
        known = service.latest_sources(session)
    # Unchanged files are told apart here, from a hash of their bytes; the bytes are not
    # kept, so memory does not grow with the corpus. A worker reads a changed file again
    # and hashes what it parses.
    todo = [_triage(path, root, max_bytes, known) for path, root in files]
    jobs = sum(isinstance(item, _Job) for item in todo)
    workers = default_workers() if workers is None else workers
    if workers > 1 and jobs >= POOL_MIN_FILES:
        with _Workers(min(workers, jobs), max_bytes, budget) as pool:
            parsed = _in_order(todo, pool, workers)
            _record_all(engine, parsed, author, submit, report, on_file)
    else:
        parsed = (
            item if isinstance(item, FileResult) else _parse(item, max_bytes, budget)
            for item in todo
        )
        _record_all(engine, parsed, author, submit, report, on_file)
    return report


@dataclass(frozen=True)
class _Job:
    """A file that changed (or is new) and must be parsed."""

    path: Path
    root: Path


@dataclass(frozen=True)
class _Parsed:
    """What a worker sends back: all `record_source` needs, without the parsed blocks."""

    path: Path
    fingerprint: str
    article_id: str
    meta: ArticleMetaBase
    body: str
    content_hash: str
    chunks: list[ChunkDraft]


def _triage(
    path: Path, root: Path, max_bytes: int, known: dict[str, RecordResult]
) -> FileResult | _Job:
    if not path.exists():
        return FileResult(str(path), Outcome.failed, error=f"{path}: no such file or folder")
    try:
        fingerprint = source_fingerprint(path, root, read_bytes(path, max_bytes))
    except Exception as exc:
        return _failure(path, exc)
    seen = known.get(fingerprint)
    if seen is not None:
        return FileResult(str(path), Outcome.unchanged, seen.article_id, seen.version)
    return _Job(path, root)


_worker: dict[str, Any] = {}  # a worker process's settings, set once when it starts


def _start_worker(max_bytes: int, budget: ChunkBudget | None) -> None:
    offline.install()  # a spawned worker imports unstructured afresh: keep it offline
    _worker.update(max_bytes=max_bytes, budget=budget)


def _parse_job(job: _Job) -> _Parsed | FileResult:
    return _parse(job, _worker["max_bytes"], _worker["budget"])


def _parse(job: _Job, max_bytes: int, budget: ChunkBudget | None) -> _Parsed | FileResult:
    path = job.path
    try:
        data = read_bytes(path, max_bytes)
        parsed = parse_file(path, job.root, max_bytes=max_bytes, data=data)
        return _Parsed(
            path=path,
            fingerprint=source_fingerprint(path, job.root, data),
            article_id=parsed.article_id,
            meta=parsed.meta,
            body=parsed.body,
            content_hash=content_hash(parsed),
            chunks=chunk_blocks(parsed.blocks, parsed.meta.title, budget),
        )
    except Exception as exc:
        return _failure(path, exc)


class ParseWorkerDied(CanonError):
    """Parse worker processes kept dying, whatever file they were given."""

    code = "parse_worker_died"


# Files in a row that each end a worker parsing them alone: then the files are not the
# cause (the machine is out of memory, or a worker cannot start), and the ingest stops.
DEATHS_IN_A_ROW = 3

Settled = _Parsed | FileResult


class _Workers:
    """The parse worker pool, and what happens when one of its processes dies.

    A dead worker breaks the whole pool: concurrent.futures fails every file it had not
    finished, and cannot say which file did it. `recover` parses those files again, one at
    a time, in a fresh one-process pool: a file that ends that process too is the one, and
    it fails alone, with nothing recorded for it; the others are parsed there. Then a new
    pool takes the files after them. Each fresh process costs its start (3-4 s).
    """

    def __init__(self, processes: int, max_bytes: int, budget: ChunkBudget | None) -> None:
        self._processes = processes
        self._args = (max_bytes, budget)
        self._pool = self._start(processes)

    def _start(self, processes: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded process
            initializer=_start_worker,
            initargs=self._args,
        )

    def __enter__(self) -> "_Workers":
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, job: _Job) -> "Future[Settled]":
        try:
            return self._pool.submit(_parse_job, job)
        except BrokenProcessPool as exc:  # it died since the last look: settled in order
            future: Future[Settled] = Future()
            future.set_exception(exc)
            return future

    def recover(self, jobs: Sequence[_Job]) -> list[Settled]:
        """`jobs` (what the dead pool had not finished, in walk order) parsed one at a
        time in a fresh process each time one dies; then a new pool for what follows."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        results: list[Settled] = []
        deaths = 0  # in a row
        solo: ProcessPoolExecutor | None = None
        try:
            for job in jobs:
                solo = solo or self._start(1)
                try:
                    results.append(solo.submit(_parse_job, job).result())
                    deaths = 0
                    continue
                except BrokenProcessPool:
                    solo.shutdown(wait=True, cancel_futures=True)
                    solo = None  # the next file gets a fresh process
                deaths += 1
                if deaths >= DEATHS_IN_A_ROW:
                    left = [str(j.path) for j in jobs]
                    raise ParseWorkerDied(
                        f"parse workers kept dying: {deaths} files in a row each ended a "
                        "worker parsing it alone, so the cause is likely not the files (out "
                        "of memory? a worker that cannot start?); not recorded: "
                        f"{', '.join(left[:20])}{' ...' if len(left) > 20 else ''} and the "
                        "files after them; the files reported before these are recorded and "
                        "a rerun skips them"
                    ) from None
                results.append(
                    FileResult(
                        str(job.path),
                        Outcome.failed,
                        error=f"{job.path}: parsing it ended the worker process (a parser "
                        "crash, or the process was killed, e.g. out of memory); nothing was "
                        "recorded for it",
                    )
                )
        finally:
            if solo is not None:
                solo.shutdown(wait=True, cancel_futures=True)
        self._pool = self._start(self._processes)
        return results


def _in_order(todo: Iterable[FileResult | _Job], pool: _Workers, workers: int) -> Iterator[Settled]:
    """Results in `todo`'s order, with at most a few files per worker handed out ahead."""
    window = max(1, workers) * WINDOW_PER_WORKER
    pending: deque[tuple[_Job, Future[Settled]] | Settled] = deque()
    for item in todo:
        pending.append((item, pool.submit(item)) if isinstance(item, _Job) else item)
        while len(pending) > window:
            yield _settle(pending, pool)
    while pending:
        yield _settle(pending, pool)


def _settle(pending: "deque[tuple[_Job, Future[Settled]] | Settled]", pool: _Workers) -> Settled:
    item = pending.popleft()
    if not isinstance(item, tuple):
        return item
    job, future = item
    try:
        return future.result()
    except BrokenProcessPool:
        pass
    # The pool is broken: this file and every later one it had not finished are suspects.
    suspects = [job] + [p[0] for p in pending if isinstance(p, tuple) and not _finished(p[1])]
    redone = dict(zip(map(id, suspects), pool.recover(suspects), strict=True))
    for i, p in enumerate(pending):
        if isinstance(p, tuple):
            pending[i] = redone[id(p[0])] if id(p[0]) in redone else p[1].result()
    return redone[id(job)]


def _finished(future: "Future[Settled]") -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _record_all(
    engine: Engine,
    parsed: Iterable[_Parsed | FileResult],
    author: str,
    submit: bool,
    report: IngestReport,
    on_file: Callable[[FileResult], None] | None,
) -> None:
    for item in parsed:
        result = item if isinstance(item, FileResult) else _record(engine, item, author, submit)
        report.files.append(result)
        if on_file is not None:
            on_file(result)


def _record(engine: Engine, parsed: _Parsed, author: str, submit: bool) -> FileResult:
    try:
        with Session(engine, expire_on_commit=False) as session:
            try:
                recorded = service.record_source(
                    session,
                    article_id=parsed.article_id,
                    meta=parsed.meta,
                    body=parsed.body,
                    content_hash=parsed.content_hash,
                    chunks=parsed.chunks,
                    source_path=str(parsed.path),
                    author=author,
                    submit=submit,
                    source_hash=parsed.fingerprint,
                )
            except BaseException:
                session.rollback()
                raise
    except Exception as exc:
        return _failure(parsed.path, exc)
    return FileResult(
        str(parsed.path),
        Outcome(recorded.kind.value),
        article_id=recorded.article_id,
        version=recorded.version,
        chunks=len(parsed.chunks),
    )


def _failure(path: Path, exc: Exception) -> FileResult:
    if isinstance(exc, CanonError):
        return FileResult(str(path), Outcome.failed, error=str(exc))
    # a parser crash on hostile input must not stop the batch
    detail = str(exc).splitlines()[0][:300] if str(exc) else ""
    return FileResult(str(path), Outcome.failed, error=f"{path}: {type(exc).__name__}: {detail}")
