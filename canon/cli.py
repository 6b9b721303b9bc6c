"""`canon`: one CLI for content owners, integrators and QA (`canon COMMAND --help`)."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import Session

from canon import errors
from canon.runtime import Runtime
from canon.settings import Settings, settings_error
from governance import audit, keys, paging, queue, service
from governance import diff as version_diff
from governance import freshness as fresh
from governance.errors import CanonError, InvalidInput, NotFound
from governance.keys import Scope
from governance.models import ArticleVersion, Audience, Status
from governance.service import Actor, Role
from ingest.index import doctor as run_doctor
from ingest.pipeline import FileResult, check_file_count, iter_files
from ingest.pipeline import ingest as run_ingest

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
review_app = typer.Typer(no_args_is_help=True, help="Move versions through review.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit trail.")
eval_app = typer.Typer(no_args_is_help=True, help="Retrieval and answer-quality evaluations.")
app.add_typer(review_app, name="review")
app.add_typer(audit_app, name="audit")
app.add_typer(eval_app, name="eval")
train_app = typer.Typer(
    help="train Canon's models: CPU, seeded, within a time budget", no_args_is_help=True
)
app.add_typer(train_app, name="train")
keys_app = typer.Typer(
    no_args_is_help=True, help="API keys: scopes and audience / service-line pins."
)
app.add_typer(keys_app, name="keys")

console = Console(stderr=True)
out = Console()
T = TypeVar("T")
SERVE_SWITCH_INTERVAL = 0.0005  # seconds; see `serve`

ActorOpt = Annotated[
    str, typer.Option("--actor", help="who is acting (recorded in the audit trail)")
]
RoleOpt = Annotated[
    list[Role] | None, typer.Option("--role", help="roles the actor holds (repeatable)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
VersionOpt = Annotated[int | None, typer.Option("--version", "-v", help="version number")]
RevisionOpt = Annotated[
    int | None,
    typer.Option(help="the revision you reviewed (`review list`): refuse if it changed since"),
]
LimitOpt = Annotated[int, typer.Option(help="rows per page", min=1, max=paging.MAX_PAGE_SIZE)]
OffsetOpt = Annotated[
    int,
    typer.Option(help="rows to skip (the next page: offset + limit)", min=0, max=paging.MAX_OFFSET),
]


def _runtime() -> Runtime:
    return Runtime(Settings())


def _policy(rt: Runtime) -> fresh.FreshnessPolicy:
    return fresh.FreshnessPolicy(rt.settings.freshness_mode, rt.settings.freshness_grace_days)


def _actor(name: str, roles: list[Role] | None, default: Role) -> Actor:
    return Actor(name=name, roles=frozenset(roles or [default]))


def _pick(session: Session, article_id: str, number: int | None, status: Status) -> ArticleVersion:
    if number is not None:
        return service.find_version(session, article_id, number)
    for version in reversed(service.history(session, article_id)):
        if version.status == status:
            return version
    raise NotFound(f"article {article_id!r} has no version that is {status.value}")


def summary_rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


@contextmanager
def _eval_progress(as_json: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar per named step of an evaluation; `tick(name, done, total)`."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json or not console.is_terminal,
    ) as progress:
        tasks: dict[str, Any] = {}

        def tick(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done, total=total)

        yield tick


def _emit(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    if as_json:
        out.print_json(json.dumps(data, default=str))
    else:
        render()


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders to ingest")],
    submit: Annotated[bool, typer.Option(help="put new versions straight into review")] = False,
    author: Annotated[str, typer.Option(help="recorded as the author of new versions")] = "ingest",
    max_bytes: Annotated[
        int | None,
        typer.Option(help="refuse larger files (default: CANON_MAX_FILE_BYTES)", min=1),
    ] = None,
    max_files: Annotated[
        int | None,
        typer.Option(
            help="refuse the whole run above this many files (default: CANON_MAX_INGEST_FILES)",
            min=1,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Parse .md .txt .html .pdf .docx files into draft versions; unchanged files add nothing.

    Metadata comes from front matter, a sidecar `NAME.EXT.meta.yaml`, or `_manifest.yaml`
    files in the folders above. Exits 1 if any file failed, naming each with its reason.
    """
    rt = _runtime()
    started = time.perf_counter()
    total = sum(1 for _ in iter_files(paths))
    max_files = max_files or rt.settings.max_ingest_files
    check_file_count(total, max_files)  # before the database is even opened
    with Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        disable=as_json or not console.is_terminal,
    ) as progress:
        task = progress.add_task("files", total=total, rate="")
        chunks = 0

        def tick(result: FileResult) -> None:
            nonlocal chunks
            chunks += result.chunks
            elapsed = max(progress.tasks[task].elapsed or 1e-9, 1e-9)
            done = progress.tasks[task].completed + 1
            progress.update(
                task,
                advance=1,
                rate=f"{done / elapsed:.1f} files/s {chunks / elapsed:.0f} chunks/s",
            )

        report = run_ingest(
            rt.engine,
            paths,
            author=author,
            submit=submit,
            max_bytes=max_bytes or rt.settings.max_file_bytes,
            budget=rt.chunk_budget,
            max_files=max_files,
            workers=rt.settings.ingest_workers or None,
            on_file=tick,
        )
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = report.summary() | {
        "chunks": chunks,
        "seconds": round(seconds, 3),
        "files_per_s": round(summary_rate(len(report.files), seconds), 1),
        "chunks_per_s": round(summary_rate(chunks, seconds), 1),
    }

    def render() -> None:
        out.print(
            f"created {summary['created']}, new versions {summary['new_version']}, "
            f"unchanged {summary['unchanged']}, failed {summary['failed']} "
            f"({summary['files']} files, {chunks} new chunks, {seconds:.1f} s, "
            f"{summary['files_per_s']} files/s)"
        )
        for failure in report.failed:
            out.print(f"[red]failed[/red] {failure.error}", highlight=False)

    _emit({"summary": summary, "files": [asdict(f) for f in report.files]}, as_json, render)
    if report.failed:
        raise typer.Exit(1)


@review_app.command("list")
def review_list(
    status: Annotated[Status, typer.Option(help="which versions to list")] = Status.in_review,
    limit: LimitOpt = paging.DEFAULT_PAGE_SIZE,
    offset: OffsetOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Versions waiting in a given state (default: in review)."""
    rt = _runtime()
    with Session(rt.engine) as session:
        versions = paging.page(service.versions_in(session, status), limit, offset)
    rows: list[dict[str, Any]] = [
        {
            "article_id": v.article_id,
            "version": v.number,
            "status": v.status.value,
            "title": v.title,
            "author": v.author,
            "clinical": v.clinical,
            "audience": v.audience.value,
            "revision": v.revision,
        }
        for v in versions
    ]

    def render() -> None:
        table = Table("article", "v", "rev", "status", "title", "author", "clinical", "audience")
        for r in rows:
            table.add_row(
                r["article_id"],
                str(r["version"]),
                str(r["revision"]),
                r["status"],
                r["title"],
                r["author"],
                "yes" if r["clinical"] else "",
                r["audience"],
            )
        out.print(table)

    _emit(rows, as_json, render)


def _apply_all(status: Status, action: Callable[[Session, ArticleVersion], ArticleVersion]) -> int:
    rt = _runtime()
    done = 0
    with Session(rt.engine, expire_on_commit=False) as session:
        for version in service.versions_in(session, status):
            action(session, version)
            done += 1
    return done


@review_app.command("submit")
def review_submit(
    article_id: Annotated[str | None, typer.Argument()] = None,
    version: VersionOpt = None,
    all_drafts: Annotated[bool, typer.Option("--all", help="submit every draft")] = False,
    actor: ActorOpt = "ingest",
    role: RoleOpt = None,
) -> None:
    """Send a draft to review."""
    who = _actor(actor, role, Role.author)
    if all_drafts:
        n = _apply_all(Status.draft, lambda s, v: service.submit(s, _id(v), who))
        out.print(f"submitted {n} drafts")
        return
    rt = _runtime()
    with Session(rt.engine, expire_on_commit=False) as session:
        v = service.submit(
            session, _id(_pick(session, _need(article_id), version, Status.draft)), who
        )
        out.print(f"{v.article_id} v{v.number} is {v.status.value}")


@review_app.command("approve")
def review_approve(
    article_id: Annotated[str | None, typer.Argument()] = None,
    version: VersionOpt = None,
    all_pending: Annotated[
        bool, typer.Option("--all", help="approve everything in review")
    ] = False,
    actor: ActorOpt = "reviewer",
    role: RoleOpt = None,
    comment: Annotated[str | None, typer.Option(help="note for the audit trail")] = None,
    revision: RevisionOpt = None,
) -> None:
    """Approve a version in review (not your own; clinical articles need clinical-review)."""
    who = _actor(actor, role, Role.reviewer)
    if all_pending:
        n = _apply_all(
            Status.in_review, lambda s, v: service.approve(s, _id(v), who, comment=comment)
        )
        out.print(f"approved {n} versions")
        return
    rt = _runtime()
    with Session(rt.engine, expire_on_commit=False) as session:
        picked = _pick(session, _need(article_id), version, Status.in_review)
        v = service.approve(session, _id(picked), who, comment=comment, expected_revision=revision)
        out.print(f"{v.article_id} v{v.number} is {v.status.value}")


@review_app.command("reject")
def review_reject(
    article_id: str,
    comment: Annotated[str, typer.Option(help="what the author must change (required)")],
    version: VersionOpt = None,
    actor: ActorOpt = "reviewer",
    role: RoleOpt = None,
    revision: RevisionOpt = None,
) -> None:
    """Send a version in review back to draft, with a comment."""
    rt = _runtime()
    with Session(rt.engine, expire_on_commit=False) as session:
        picked = _pick(session, article_id, version, Status.in_review)
        v = service.reject(
            session,
            _id(picked),
            _actor(actor, role, Role.reviewer),
            comment,
            expected_revision=revision,
        )
        out.print(f"{v.article_id} v{v.number} is {v.status.value}")


@app.command()
def publish(
    article_id: Annotated[str | None, typer.Argument()] = None,
    version: VersionOpt = None,
    all_approved: Annotated[
        bool, typer.Option("--all", help="publish every approved version")
    ] = False,
    actor: ActorOpt = "publisher",
    role: RoleOpt = None,
    revision: RevisionOpt = None,
) -> None:
    """Publish an approved version: the only way content reaches the index."""
    rt = _runtime()
    who = _actor(actor, role, Role.reviewer)
    with Session(rt.engine, expire_on_commit=False) as session:
        targets = (
            service.versions_in(session, Status.approved)
            if all_approved
            else [_pick(session, _need(article_id), version, Status.approved)]
        )
        for target in targets:
            v = service.publish(session, _id(target), who, rt.sync, expected_revision=revision)
            out.print(f"published {v.article_id} v{v.number}")
    rt.close()


@app.command()
def retire(
    article_id: str,
    reason: Annotated[str, typer.Option(help="why the article is withdrawn (required)")],
    actor: ActorOpt = "admin",
    role: RoleOpt = None,
) -> None:
    """Withdraw an article from every reader; its history stays."""
    rt = _runtime()
    with Session(rt.engine, expire_on_commit=False) as session:
        v = service.retire(session, article_id, _actor(actor, role, Role.admin), reason, rt.sync)
        out.print(f"retired {v.article_id} v{v.number}")
    rt.close()


@app.command()
def history(
    article_id: str,
    limit: LimitOpt = paging.DEFAULT_PAGE_SIZE,
    offset: OffsetOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Every version of an article and its state."""
    rt = _runtime()
    with Session(rt.engine) as session:
        rows: list[dict[str, Any]] = [
            {
                "version": v.number,
                "status": v.status.value,
                "author": v.author,
                "reviewer": v.reviewer,
                "comment": v.review_comment,
                "updated_at": v.updated_at.isoformat(timespec="seconds"),
            }
            for v in paging.page(service.history(session, article_id), limit, offset)
        ]

    def render() -> None:
        table = Table("v", "status", "author", "reviewer", "comment", "updated")
        for r in rows:
            table.add_row(
                str(r["version"]),
                r["status"],
                r["author"],
                r["reviewer"] or "",
                r["comment"] or "",
                r["updated_at"],
            )
        out.print(table)

    _emit(rows, as_json, render)


@app.command()
def doctor(
    check_only: Annotated[
        bool, typer.Option("--check-only", help="report drift, repair nothing")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare the database with the index and repair drift."""
    rt = _runtime()
    with Session(rt.engine) as session:
        report = run_doctor(session, rt.sync, repair=not check_only)
    rt.close()
    data = asdict(report) | {"healthy": report.healthy}

    def render() -> None:
        verb = "would re-index" if check_only else "re-indexed"
        out.print(
            f"{report.published_versions} published versions, {report.points} points; "
            f"{verb} {len(report.reindexed)} versions, orphan points "
            f"{'found' if check_only else 'removed'}: {report.orphans_removed}"
        )
        for name in report.reindexed:
            out.print(f"  {verb} {name}")

    _emit(data, as_json, render)
    if check_only and not report.healthy:
        raise typer.Exit(1)


@app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="archive file to write (a folder: named by time)")],
    as_json: JsonOpt = False,
) -> None:
    """Write the database and the index into one checked archive (manifest + checksums).

    The embedded index must not be held by another process (stop `canon serve`).
    """
    from canon.backup import backup as run_backup

    report = run_backup(Settings(), dest)
    _emit(
        asdict(report),
        as_json,
        lambda: out.print(
            f"backed up {sum(report.rows.values())} rows ({report.database}) and "
            f"{report.points} points to {report.archive} ({report.bytes} bytes, "
            f"{report.seconds:.1f} s)",
            highlight=False,
        ),
    )


@app.command()
def restore(
    src: Annotated[Path, typer.Argument(help="an archive written by `canon backup`")],
    force: Annotated[bool, typer.Option(help="replace a Canon that already holds data")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check an archive end to end, then replace the database and the index with it.

    A corrupt, truncated or foreign archive, or a non-empty target without --force,
    is refused before anything is changed.
    """
    from canon.backup import restore as run_restore

    report = run_restore(Settings(), src, force=force)
    _emit(
        asdict(report),
        as_json,
        lambda: out.print(
            f"restored {sum(report.rows.values())} rows ({report.database}) and "
            f"{report.points} points from {report.archive}; audit chain ok "
            f"({report.audit_events} events); {'; '.join(report.notes)}",
            highlight=False,
        ),
    )


@audit_app.command("verify")
def audit_verify(as_json: JsonOpt = False) -> None:
    """Check the audit chain; name the first event that was edited, deleted or reordered."""
    rt = _runtime()
    with Session(rt.engine) as session:
        report = audit.verify(session)
    _emit(
        asdict(report),
        as_json,
        lambda: out.print(
            f"audit chain ok: {report.events} events"
            if report.ok
            else f"[red]audit chain broken at event {report.first_bad_seq}: {report.problem}[/red]"
        ),
    )
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("list")
def audit_list(
    article: Annotated[str | None, typer.Option(help="only this article's events")] = None,
    after: Annotated[int, typer.Option(help="events after this sequence number")] = 0,
    limit: LimitOpt = paging.DEFAULT_PAGE_SIZE,
    as_json: JsonOpt = False,
) -> None:
    """Audit events in chain order: who did what, when, from which state to which, and why."""
    rt = _runtime()
    with Session(rt.engine) as session:
        rows: list[dict[str, Any]] = [
            e.model_dump(exclude={"id", "prev_hash"})
            for e in audit.events(session, article_id=article, after=after, limit=limit)
        ]

    def render() -> None:
        table = Table("seq", "at", "actor", "action", "article", "from", "to", "reason")
        for r in rows:
            table.add_row(
                str(r["seq"]),
                r["at"].isoformat(timespec="seconds"),
                r["actor"],
                r["action"],
                r["article_id"] or "",
                r["from_status"] or "",
                r["to_status"] or "",
                r["reason"] or "",
            )
        out.print(table)

    _emit(rows, as_json, render)


@review_app.command("queue")
def review_queue(
    owner: Annotated[str | None, typer.Option(help="only this owner's articles")] = None,
    service_line: Annotated[str | None, typer.Option(help="only this service line")] = None,
    limit: LimitOpt = paging.DEFAULT_PAGE_SIZE,
    offset: OffsetOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """What needs an owner: pending versions, stale content, reader feedback (with counts)."""
    rt = _runtime()
    with Session(rt.engine) as session:
        items = queue.review_queue(
            session,
            rt.retriever.freshness,
            fresh.utc_today(),
            owner=owner,
            service_line=service_line,
        )
    items = paging.page(items, limit, offset)
    rows: list[dict[str, Any]] = [
        asdict(i) | {"problems": i.problems, "reasons": i.reasons} for i in items
    ]

    def render() -> None:
        table = Table("article", "owner", "service line", "waiting", "why", "feedback")
        for i in items:
            table.add_row(
                i.article_id,
                i.owner,
                i.service_line,
                f"v{i.pending_version} {i.pending_status.value} (rev {i.pending_revision})"
                if i.pending_status
                else "",
                "; ".join(i.reasons),
                ", ".join(f"{k} {n}" for k, n in sorted(i.feedback.items())),
            )
        out.print(table)

    _emit(rows, as_json, render)


@app.command()
def diff(
    article_id: str,
    from_: Annotated[
        int | None, typer.Option("--from", help="default: the published version")
    ] = None,
    to: Annotated[int | None, typer.Option(help="default: the newest version")] = None,
    as_json: JsonOpt = False,
) -> None:
    """What changed between two versions: metadata and a unified diff of the body."""
    rt = _runtime()
    with Session(rt.engine) as session:
        d = version_diff.versions(session, article_id, from_, to)
    data = asdict(d) | {"added": d.added, "removed": d.removed}

    def render() -> None:
        out.print(
            f"{article_id}: v{d.from_version} -> v{d.to_version}, +{d.added} -{d.removed} lines",
            highlight=False,
        )
        for f in d.fields:
            out.print(f"  {f.name}: {f.old!r} -> {f.new!r}", highlight=False)
        out.print(d.unified, markup=False, highlight=False, end="")

    _emit(data, as_json, render)


@app.command()
def freshness(
    owner: Annotated[str | None, typer.Option(help="only this owner's articles")] = None,
    service_line: Annotated[str | None, typer.Option(help="only this service line")] = None,
    within_days: Annotated[int, typer.Option(help="also list content due this soon")] = 30,
    all_articles: Annotated[bool, typer.Option("--all", help="list fresh content too")] = False,
    limit: LimitOpt = paging.DEFAULT_PAGE_SIZE,
    offset: OffsetOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Published content that is due, stale or expired, by owner and service line
    (the counts cover everything; the items listed are one page)."""
    rt = _runtime()
    policy = _policy(rt)
    with Session(rt.engine) as session:
        items = fresh.report(
            session,
            policy,
            fresh.utc_today(),
            soon_days=within_days,
            include_fresh=all_articles,
            owner=owner,
            service_line=service_line,
        )
    everything, items = items, paging.page(items, limit, offset)
    data = {
        "mode": policy.mode.value,
        "grace_days": policy.grace_days,
        "items": [asdict(i) for i in items],
        "by_owner": {k: len(v) for k, v in fresh.grouped(everything, "owner").items()},
        "by_service_line": {
            k: len(v) for k, v in fresh.grouped(everything, "service_line").items()
        },
    }

    def render() -> None:
        out.print(f"policy: {policy.mode.value}, grace {policy.grace_days} days")
        for name, group in fresh.grouped(items, "owner").items():
            table = Table(
                "article",
                "service line",
                "state",
                "due",
                "overdue",
                "patients",
                title=f"{name}: {len(group)}",
            )
            for i in group:
                table.add_row(
                    i.article_id,
                    i.service_line,
                    i.state.value,
                    str(i.review_due or "never reviewed"),
                    str(i.days_overdue) if i.days_overdue and i.days_overdue > 0 else "",
                    "withheld" if i.withheld_from_patients else "",
                )
            out.print(table)
        if not items:
            out.print("nothing is due")

    _emit(data, as_json, render)


@app.command()
def reverify(
    article_id: str,
    actor: ActorOpt = "reviewer",
    role: RoleOpt = None,
    note: Annotated[str | None, typer.Option(help="what you checked (audit trail)")] = None,
) -> None:
    """Confirm unchanged content is still right: its review clock restarts, no new version."""
    rt = _runtime()
    with Session(rt.engine, expire_on_commit=False) as session:
        article = fresh.reverify(
            session, article_id, _actor(actor, role, Role.reviewer), fresh.utc_today(), note=note
        )
    out.print(f"re-verified {article_id}: next review due {article.review_due()}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
) -> None:
    """Serve the API (and hold the embedded index for this process)."""
    import uvicorn

    from canon.app import create_app

    # The query encoder's worker thread needs the GIL back after every onnxruntime call
    # (a few ms each), while the event loop runs Python. With the default 5 ms switch
    # interval it waited up to a whole interval each time; at 0.5 ms, 32 clients at 100k
    # points got about 15% more searches per second (bench/README.md).
    sys.setswitchinterval(SERVE_SWITCH_INTERVAL)
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


EvalDataset = Annotated[
    str, typer.Option(help="'sample', 'medquad', or a golden set under evals/datasets")
]
EvalSplit = Annotated[str | None, typer.Option(help="dev or test (MedQuAD)")]
EvalBaseline = Annotated[
    Path | None, typer.Option(help="an earlier run's JSON: show deltas, fail on regressions")
]
EvalOut = Annotated[Path, typer.Option(help="folder for the JSON and HTML results")]
EvalHome = Annotated[
    Path, typer.Option(help="MedQuAD: persistent index home, built once and reused")
]
EvalLimit = Annotated[int | None, typer.Option(help="MedQuAD: first N documents (a subset)")]
EvalQuestions = Annotated[
    int | None, typer.Option(help="MedQuAD: questions per split (deterministic sample)")
]
EvalFusion = Annotated[int | None, typer.Option(help="RRF k for the hybrid configuration")]
EvalMinRel = Annotated[float | None, typer.Option(help="abstention threshold override")]
EvalMinCov = Annotated[
    float | None,
    typer.Option(help="MedQuAD answers: also abstain below this query-term coverage (measured)"),
]
EvalSweep = Annotated[
    bool, typer.Option(help="MedQuAD dev only: sweep fusion k / abstention thresholds")
]
EvalNaive = Annotated[bool, typer.Option(help="MedQuAD: include the naive LlamaIndex baseline")]
EvalSizes = Annotated[
    list[int] | None,
    typer.Option(
        "--size",
        help="chunkers: our chunker at this many word pieces (repeatable; default 192 and 256)",
    ),
]


def _eval_settings(home: Path) -> Settings:
    # Quality is measured with stale content flagged, not withheld: the freshness
    # policy is a serving rule with tests of its own. Never the configured database.
    isolated = {"home": home, "database_url": None, "qdrant_url": None, "freshness_mode": "flag"}
    return Settings().model_copy(update=isolated)


def _run_eval(
    suite: str,
    dataset: str,
    split: str | None,
    baseline: Path | None,
    output_dir: Path,
    home: Path,
    limit: int | None,
    questions: int | None,
    fusion_k: int | None,
    min_relevance: float | None,
    min_coverage: float | None,
    sweep: bool,
    naive: bool,
    as_json: bool,
    sizes: list[int] | None = None,
) -> None:
    from evals import gates, report

    def scratch(path: Path) -> Runtime:
        rt = Runtime(_eval_settings(path))
        if fusion_k is not None:
            rt.retriever.fusion_k = fusion_k
        if min_relevance is not None:
            rt.answers.min_relevance = min_relevance
        return rt

    started = time.time()
    with _eval_progress(as_json) as tick:
        if dataset == "medquad":
            results = _run_medquad(
                suite,
                split or "dev",
                scratch,
                home,
                limit,
                questions,
                min_coverage,
                sweep,
                naive,
                tick,
                sizes,
            )
        else:
            if split is not None or sweep:
                raise InvalidInput("--split and --sweep apply to --dataset medquad only")
            if suite == "chunkers":
                raise InvalidInput("the chunkers suite runs on MedQuAD (--dataset medquad)")
            from evals.runner import run_sample

            results = run_sample(suite, dataset, scratch, report=tick)
    results["run"] = _run_info(started)
    violations = gates.check(results)
    comparison = gates.compare(results, json.loads(baseline.read_text("utf-8"))) if baseline else []
    regressed = [row for row in comparison if row["regressed"]]
    results["gates"] = [str(v) for v in violations]
    results["regressions"] = regressed
    stem = "-".join(p for p in (suite, Path(dataset).stem, results.get("split")) if p)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2, default=str))
    html_path = report.write_html(
        results, output_dir / f"{stem}.html", violations=violations, comparison=comparison
    )

    def render() -> None:
        configs = results["configurations"]
        metrics = list(dict.fromkeys(k for c in configs.values() for k in c))
        table = Table("configuration", *metrics, title=f"{suite}: {stem}")
        for name, m in configs.items():
            table.add_row(
                name,
                *(
                    f"{m[k]:.3f}" if isinstance(m.get(k), float) else str(m.get(k, ""))
                    for k in metrics
                ),
            )
        out.print(table)
        for key in ("not_run", "notes"):
            if results.get(key):
                out.print(f"{key}: {results[key]}", highlight=False)
        for row in comparison:
            if row["regressed"]:
                out.print(
                    f"[red]regressed[/red] {row['configuration']} {row['metric']}: "
                    f"{row['baseline']:.4g} -> {row['now']:.4g}",
                    highlight=False,
                )
        for v in violations:
            out.print(f"[red]gate failed[/red] {v}", highlight=False)
        if not violations and not regressed:
            out.print("gates: pass" + (", no regressions" if baseline else ""))
        out.print(f"written to {json_path} and {html_path}")

    _emit(results, as_json, render)
    if violations or regressed:
        raise typer.Exit(1)


def _run_info(started: float) -> dict[str, Any]:
    """Where and how the numbers were made: commit, uncommitted changes, CPU load."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
        except OSError:
            return ""
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "seconds": round(time.time() - started, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _run_medquad(
    suite: str,
    split: str,
    scratch: Callable[[Path], Runtime],
    home: Path,
    limit: int | None,
    questions: int | None,
    min_coverage: float | None,
    sweep: bool,
    naive: bool,
    tick: Callable[[str, int, int], None],
    sizes: list[int] | None = None,
) -> dict[str, Any]:
    from evals import baselines, medquad

    reason = medquad.missing_reason()
    if reason is not None:
        raise InvalidInput(reason)
    if split not in ("dev", "test"):
        raise InvalidInput(f"--split {split!r}: dev or test")
    if sweep and split != "dev":
        raise InvalidInput("--sweep runs on dev only: test is reported, never tuned on")
    if suite == "chunkers" and split != "dev":
        raise InvalidInput("choosing a chunker is tuning: the chunkers suite runs on dev only")
    where = home if limit is None else home.with_name(f"{home.name}-limit{limit}")
    bench = baselines.open_bench(
        where, scratch, limit=limit, naive=naive and suite == "retrieval", report=tick
    )
    try:
        if suite == "retrieval":
            return baselines.run_retrieval(
                bench,
                split,  # type: ignore[arg-type]
                n=questions,
                fusion_ks=(10, 20, 40, 100) if sweep else (),
                report=tick,
            )
        if suite == "answers":
            return baselines.run_answers(
                bench,
                split,  # type: ignore[arg-type]
                n=questions,
                min_coverage=min_coverage,
                sweep=[round(0.30 + 0.025 * i, 3) for i in range(17)] if sweep else (),
                report=tick,
            )
        if suite == "chunkers":
            from evals import chunkers

            candidates = chunkers.default_chunkers(*sizes) if sizes else None
            return chunkers.run(bench, "dev", n=questions, chunkers=candidates, report=tick)
        raise InvalidInput("the safety suite runs on the sample corpus (--dataset sample)")
    finally:
        bench.close()


def _eval_command(suite: str, doc: str) -> None:
    def command(
        dataset: EvalDataset = "sample",
        split: EvalSplit = None,
        baseline: EvalBaseline = None,
        output_dir: EvalOut = Path("evals/results"),
        home: EvalHome = Path(".canon-evals/medquad"),
        limit: EvalLimit = None,
        questions: EvalQuestions = 2000,
        fusion_k: EvalFusion = None,
        min_relevance: EvalMinRel = None,
        min_coverage: EvalMinCov = None,
        sweep: EvalSweep = False,
        naive: EvalNaive = True,
        sizes: EvalSizes = None,
        as_json: JsonOpt = False,
    ) -> None:
        _run_eval(
            suite,
            dataset,
            split,
            baseline,
            output_dir,
            home,
            limit,
            questions,
            fusion_k,
            min_relevance,
            min_coverage,
            sweep,
            naive,
            as_json,
            sizes,
        )

    command.__doc__ = doc
    eval_app.command(suite)(command)


_eval_command(
    "retrieval",
    "Rank passages per configuration (BM25, dense, hybrid; on MedQuAD also the naive "
    "LlamaIndex pipeline): recall@5/10, MRR@10, graded nDCG@10.",
)
_eval_command(
    "answers",
    "Served answers: abstention, false abstention, citation precision, unsupported "
    "sentences, golden facts, ragas string/context metrics (LLM-judged ones with an endpoint).",
)
_eval_command(
    "chunkers",
    "MedQuAD dev: our structural chunker against llama-index node parsers (MarkdownNodeParser "
    "+ SentenceSplitter, SentenceSplitter alone), each in its own index, same hybrid retrieval "
    "and scoring; chunk counts, sizes and chunking time beside the scores.",
)
_eval_command(
    "safety",
    "Counts that must stay zero (staff leaks, retired and superseded citations, "
    "unsupported sentences) and escalation recall, on the sample corpus.",
)


@eval_app.command("consumer")
def eval_consumer(
    split: Annotated[str, typer.Option(help="devtest (never trained on) or train")] = "devtest",
    home: Annotated[
        Path, typer.Option(help="index home: MedQuAD's passages plus the reference answers")
    ] = Path(".canon-evals/consumer"),
    medquad_home: Annotated[
        Path | None,
        typer.Option(help="a built MedQuAD home copied into an empty --home (else built there)"),
    ] = Path(".canon-evals/medquad"),
    limit: Annotated[
        int | None, typer.Option(help="first N MedQuAD documents and N consumer questions")
    ] = None,
    questions: Annotated[int | None, typer.Option(help="questions of the split (sample)")] = None,
    fusion_k: EvalFusion = None,
    baseline: EvalBaseline = None,
    output_dir: EvalOut = Path("evals/results"),
    as_json: JsonOpt = False,
) -> None:
    """Real patient wording (TREC 2017 LiveQA training questions) over MedQuAD's passages
    plus the questions' reference answers: graded nDCG@10 and MRR@10 of BM25, dense, hybrid."""
    from evals import consumer, gates, medquad, report

    for reason in (consumer.missing_reason(), medquad.missing_reason()):
        if reason is not None:
            raise InvalidInput(reason)
    if split not in consumer.SPLITS:
        raise InvalidInput(f"--split {split!r}: devtest or train")
    if limit is not None:
        home = home.with_name(f"{home.name}-limit{limit}")
        if medquad_home is not None:
            medquad_home = medquad_home.with_name(f"{medquad_home.name}-limit{limit}")

    def scratch(path: Path) -> Runtime:
        rt = Runtime(_eval_settings(path))
        if fusion_k is not None:
            rt.retriever.fusion_k = fusion_k
        return rt

    started = time.time()
    with _eval_progress(as_json) as tick:
        bench = consumer.open_bench(
            home, scratch, medquad_home=medquad_home, limit=limit, report=tick
        )
        try:
            results = consumer.run(bench, split, n=questions, report=tick)
        finally:
            bench.close()
    results["run"] = _run_info(started)
    comparison = gates.compare(results, json.loads(baseline.read_text("utf-8"))) if baseline else []
    results["regressions"] = [row for row in comparison if row["regressed"]]
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / f"retrieval-consumer-{split}.json"
    json_path.write_text(json.dumps(results, indent=2, default=str))
    html_path = report.write_html(
        results, json_path.with_suffix(".html"), violations=None, comparison=comparison
    )

    def render() -> None:
        configs = results["configurations"]
        metrics = list(dict.fromkeys(k for c in configs.values() for k in c))
        table = Table("configuration", *metrics, title=f"consumer questions: {split}")
        for name, m in configs.items():
            table.add_row(
                name, *(f"{m[k]:.3f}" if isinstance(m[k], float) else str(m[k]) for k in metrics)
            )
        out.print(table)
        out.print(f"corpus: {results['corpus']}", highlight=False)
        for row in results["regressions"]:
            out.print(
                f"[red]regressed[/red] {row['configuration']} {row['metric']}: "
                f"{row['baseline']:.4g} -> {row['now']:.4g}",
                highlight=False,
            )
        out.print(f"written to {json_path} and {html_path}")

    _emit(results, as_json, render)
    if results["regressions"]:
        raise typer.Exit(1)


@eval_app.command("relevance")
def eval_relevance(
    model: Annotated[Path, typer.Option(help="the relevance model folder")] = Path(
        "models/canon-rerank"
    ),
    fp32: Annotated[
        Path | None, typer.Option(help="its fp32 graph, to measure what int8 costs")
    ] = Path(".train/relevance/model-fp32.onnx"),
    home: Annotated[
        Path, typer.Option(help="the consumer eval's index home (built if missing)")
    ] = Path(".canon-evals/consumer"),
    depth: Annotated[int, typer.Option(help="hybrid candidates the model reranks")] = 30,
    devval_questions: Annotated[int, typer.Option(help="MedQuAD dev-val questions")] = 300,
    output_dir: EvalOut = Path("evals/results"),
    as_json: JsonOpt = False,
) -> None:
    """The relevance model side by side with today's retrieval: consumer devtest, MedQuAD
    dev-val, sample-corpus abstention AUC, int8 against fp32."""
    import tempfile

    from evals import consumer, medquad, relevance
    from retrieval.rerank import OnnxCrossEncoder

    for reason in (consumer.missing_reason(), medquad.missing_reason()):
        if reason is not None:
            raise InvalidInput(reason)
    int8 = OnnxCrossEncoder(model)
    fp32_model = OnnxCrossEncoder(model, weights=fp32) if fp32 and fp32.is_file() else None
    started = time.time()
    with _eval_progress(as_json) as tick, tempfile.TemporaryDirectory() as scratch:
        bench = consumer.open_bench(
            home, lambda p: Runtime(_eval_settings(p)), medquad_home=None, report=tick
        )
        try:
            results = relevance.run(
                bench,
                Path(scratch) / "sample",
                lambda p: Runtime(_eval_settings(p)),
                int8,
                fp32_model,
                depth=depth,
                devval_questions=devval_questions,
                report=tick,
            )
        finally:
            bench.close()
    results["model"] = {"dir": str(model), "sha256": int8.meta["sha256"]}
    results["run"] = _run_info(started)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / "relevance.json"
    json_path.write_text(json.dumps(results, indent=2, default=str))

    def render() -> None:
        for graph, configs in results["consumer_devtest"].items():
            out.print(f"consumer devtest ({graph}):", highlight=False)
            for name, m in configs.items():
                out.print(
                    f"  {name:<16} nDCG@10 {m['ndcg@10']:.3f}  MRR@10 {m['mrr@10']:.3f}  "
                    f"{m['ms_per_query']:.0f} ms",
                    highlight=False,
                )
        for name, m in results["medquad_devval"].items():
            out.print(
                f"MedQuAD dev-val {name:<8} nDCG@10 {m['ndcg@10']:.3f} MRR@10 {m['mrr@10']:.3f}",
                highlight=False,
            )
        for name, m in results["sample_abstention"].items():
            if isinstance(m, dict):
                out.print(
                    f"sample abstention {name:<14} ROC AUC {m['roc_auc']:.3f}", highlight=False
                )
        if "int8_vs_fp32" in results:
            out.print(f"int8 vs fp32: {results['int8_vs_fp32']}", highlight=False)
        out.print(f"written to {json_path}")

    _emit(results, as_json, render)


@eval_app.command("fusion")
def eval_fusion(
    home: Annotated[
        Path, typer.Option(help="the consumer eval's index home (built if missing)")
    ] = Path(".canon-evals/consumer"),
    devval_questions: Annotated[int, typer.Option(help="MedQuAD dev-val questions")] = 300,
    as_json: JsonOpt = False,
) -> None:
    """The BM25 list's weight in the hybrid query (weighted RRF), swept on the consumer
    devtest and MedQuAD dev-val questions: what chooses CANON_SPARSE_WEIGHT."""
    from evals import consumer, relevance

    with _eval_progress(as_json) as tick:
        bench = consumer.open_bench(
            home, lambda p: Runtime(_eval_settings(p)), medquad_home=None, report=tick
        )
        try:
            results = relevance.fusion_sweep(bench, devval_questions=devval_questions, report=tick)
        finally:
            bench.close()

    def render() -> None:
        for w, m in results.items():
            out.print(
                f"sparse weight {w:>5}: " + "  ".join(f"{k} {v:.3f}" for k, v in m.items()),
                highlight=False,
            )

    _emit(results, as_json, render)


@eval_app.command("triage")
def eval_triage(
    set_name: Annotated[
        str, typer.Option("--set", help="holdout (sealed: once), escalation, or dev")
    ] = "holdout",
    model: Annotated[
        str | None,
        typer.Option(help="'shipped', a model directory, or 'off' (default: CANON_TRIAGE_MODEL)"),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="also write the report here (JSON)")] = None,
    second_opinion: Annotated[
        bool | None,
        typer.Option(help="the e5 second opinion (default: CANON_TRIAGE_SECOND_OPINION)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Escalation on a labelled set of patient messages: recall on urgent ones, false
    escalation on routine ones, by language, kind and category, and latency per check."""
    from evals import triage as triage_eval
    from retrieval.triage import Triager
    from retrieval.triage_model import MODEL_DIR, TriageModel

    settings = Settings()
    choice = model or settings.triage_model
    e5 = settings.triage_second_opinion if second_opinion is None else second_opinion
    if choice == "off":
        triager = Triager(None)
    else:
        path = MODEL_DIR if choice == "shipped" else Path(choice)
        triager = Triager(TriageModel(path, second_opinion=e5))
    messages = triage_eval.load(set_name)
    triager.check(messages[0].text)  # warm: the first run of a graph allocates
    report = triage_eval.run(messages, triager.check) | {
        "set": set_name,
        "model": choice,
        "second_opinion": e5 and choice != "off",
    }
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=1) + "\n")

    def render() -> None:
        out.print(triage_eval.table(report))
        out.print(
            f"category agreement {report['category_agreement']}, language accuracy "
            f"{report['language_accuracy']}, {report['ms_p50']} ms p50, {report['ms_p95']} ms p95"
        )

    _emit(report, as_json, render)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="who or what uses the key (the audit actor)")],
    scope: Annotated[list[Scope], typer.Option("--scope", help="repeatable")],
    audience: Annotated[
        Audience | None, typer.Option(help="pin: a patient key never reads staff content")
    ] = None,
    service_line: Annotated[
        list[str] | None, typer.Option("--service-line", help="pin to service lines (repeatable)")
    ] = None,
    by: Annotated[str, typer.Option(help="who is creating the key")] = "cli-admin",
    as_json: JsonOpt = False,
) -> None:
    """Create a key; its secret is printed once and stored only as a hash."""
    rt = _runtime()
    with Session(rt.engine, expire_on_commit=False) as session:
        key, secret = keys.create(
            session,
            name=name,
            scopes=[s.value for s in scope],
            created_by=by,
            audience=audience,
            service_lines=service_line or [],
        )
    _emit(
        {"prefix": key.prefix, "key": secret, "scopes": key.scopes},
        as_json,
        lambda: out.print(f"{secret}\n(prefix {key.prefix}; shown once, stored only as a hash)"),
    )


@keys_app.command("list")
def keys_list(
    limit: LimitOpt = paging.DEFAULT_PAGE_SIZE, offset: OffsetOpt = 0, as_json: JsonOpt = False
) -> None:
    """Keys with their scopes and pins (never their secrets)."""
    rt = _runtime()
    with Session(rt.engine) as session:
        rows: list[dict[str, Any]] = [
            {
                "prefix": k.prefix,
                "name": k.name,
                "scopes": k.scopes,
                "audience": k.audience_pin.value if k.audience_pin else None,
                "service_lines": k.service_lines_pin,
                "revoked": k.revoked_at is not None,
            }
            for k in paging.page(keys.listing(session), limit, offset)
        ]

    def render() -> None:
        table = Table("prefix", "name", "scopes", "audience", "service lines", "revoked")
        for r in rows:
            table.add_row(
                r["prefix"],
                r["name"],
                r["scopes"],
                r["audience"] or "",
                r["service_lines"] or "",
                "yes" if r["revoked"] else "",
            )
        out.print(table)

    _emit(rows, as_json, render)


@keys_app.command("revoke")
def keys_revoke(
    prefix: str, by: Annotated[str, typer.Option(help="who is revoking")] = "cli-admin"
) -> None:
    """Revoke a key at once."""
    rt = _runtime()
    with Session(rt.engine) as session:
        keys.revoke(session, prefix, by=by)
    out.print(f"revoked {prefix}")


def _id(version: ArticleVersion) -> int:
    assert version.id is not None
    return version.id


def _need(article_id: str | None) -> str:
    if not article_id:
        raise InvalidInput("name an article id, or pass --all")
    return article_id


def main() -> None:
    try:
        try:
            app()
        except ValidationError as exc:
            if exc.title != Settings.__name__:
                raise
            raise settings_error(exc) from None
    except CanonError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(errors.lookup(errors.EXIT_CODE, exc, 1))


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@train_app.command("relevance", context_settings=_PASS_THROUGH)
def train_relevance(ctx: typer.Context) -> None:
    """The relevance model (models/canon-rerank); `canon train relevance -h` for options
    (`--budget-minutes`, default 30). Builds its training pairs first when missing."""
    from training.relevance.train import main

    main(ctx.args)


@train_app.command("relevance-data", context_settings=_PASS_THROUGH)
def train_relevance_data(ctx: typer.Context) -> None:
    """The relevance model's training pairs, from the consumer eval's index; `-h` for options."""
    from training.relevance.data import main

    main(ctx.args)


@train_app.command("triage", context_settings=_PASS_THROUGH)
def train_triage(ctx: typer.Context) -> None:
    """The triage model (models/canon-triage); `canon train triage -h` for options."""
    from training.triage.finetune import main

    main(ctx.args)
