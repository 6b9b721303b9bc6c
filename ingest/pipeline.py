"""`canon ingest`: walk paths, parse, chunk, and record each file as a draft version."""

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from governance import service
from governance.errors import CanonError, InvalidInput
from governance.service import RecordResult
from ingest.chunk import ChunkBudget, chunk_blocks
from ingest.parse import (
    MANIFEST_NAME,
    SIDECAR_SUFFIX,
    ParsedFile,
    parse_file,
    read_bytes,
    source_fingerprint,
)


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


def ingest(
    engine: Engine,
    paths: Sequence[Path],
    *,
    author: str,
    submit: bool = False,
    max_bytes: int = 20_000_000,
    budget: ChunkBudget | None = None,
    max_files: int | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> IngestReport:
    """Each file is its own transaction: a bad file fails alone and changes nothing stored.

    A file whose bytes, sidecar and manifests hash to what the article's newest
    version came from is reported unchanged without being parsed. More than `max_files`
    files is refused before any is read.
    """
    files = list(iter_files(paths))
    check_file_count(len(files), max_files)
    report = IngestReport()
    with Session(engine) as session:
        known = service.latest_sources(session)
    for path, root in files:
        result = _ingest_one(engine, path, root, author, submit, max_bytes, budget, known)
        report.files.append(result)
        if on_file is not None:
            on_file(result)
    return report


def _ingest_one(
    engine: Engine,
    path: Path,
    root: Path,
    author: str,
    submit: bool,
    max_bytes: int,
    budget: ChunkBudget | None,
    known: dict[str, RecordResult],
) -> FileResult:
    if not path.exists():
        return FileResult(str(path), Outcome.failed, error=f"{path}: no such file or folder")
    try:
        data = read_bytes(path, max_bytes)
        fingerprint = source_fingerprint(path, root, data)
        seen = known.get(fingerprint)
        if seen is not None:
            return FileResult(str(path), Outcome.unchanged, seen.article_id, seen.version)
        parsed = parse_file(path, root, max_bytes=max_bytes, data=data)
        chunks = chunk_blocks(parsed.blocks, parsed.meta.title, budget)
        with Session(engine, expire_on_commit=False) as session:
            try:
                recorded = service.record_source(
                    session,
                    article_id=parsed.article_id,
                    meta=parsed.meta,
                    body=parsed.body,
                    content_hash=content_hash(parsed),
                    chunks=chunks,
                    source_path=str(path),
                    author=author,
                    submit=submit,
                    source_hash=fingerprint,
                )
            except BaseException:
                session.rollback()
                raise
    except CanonError as exc:
        return FileResult(str(path), Outcome.failed, error=str(exc))
    except Exception as exc:  # a parser crash on hostile input must not stop the batch
        detail = str(exc).splitlines()[0][:300] if str(exc) else ""
        return FileResult(
            str(path), Outcome.failed, error=f"{path}: {type(exc).__name__}: {detail}"
        )
    return FileResult(
        str(path),
        Outcome(recorded.kind.value),
        article_id=recorded.article_id,
        version=recorded.version,
        chunks=len(chunks),
    )
