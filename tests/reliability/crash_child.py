"""The process the crash harness kills, and the `canon` commands it runs between kills.

`python -m tests.reliability.crash_child` starts a *zygote*: it loads torch, the
embedding model and the parser once (about 15 s), then serves one JSON command per
line on stdin, answering on stdout:

- `{"op": "work", ...}` forks a child that runs rounds of mutate files -> ingest ->
  submit + approve -> publish (single or bulk) -> sometimes retire, writing a phase
  marker to a file before each step, until it is killed. The harness kills it with
  SIGKILL at a random moment, or right after a chosen marker (`hold`: the child then
  waits there, so the kill lands inside that window).
- `{"op": "cli", "argv": [...]}` forks a child that runs `canon ARGV` (the real
  command code through `canon.cli.main`, sharing the loaded model) and reports its
  exit code.
- `{"op": "spawn", "argv": [...]}` the same, without waiting: the harness kills it.
- `{"op": "reap", "pid": N}` waits for a killed child and says how it ended.

Forking from a warmed-up zygote makes a trial cost milliseconds of start-up instead
of the ~12 s a fresh interpreter needs to import torch and load the model. Torch
runs single-threaded here: an OpenMP thread pool does not survive `fork` (the int8
ONNX backend's pool does; tested both).
"""

import hashlib
import json
import os
import random
import sys
import time
import traceback
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

HOLD_SECONDS = 30.0
SERVICE_LINES = ("billing", "pharmacy", "imaging", "scheduling")
_VOCABULARY = (
    "appointment billing pharmacy refill prescription parking clinic nurse portal insurance "
    "copay deductible imaging scan results laboratory fasting visit hours weekend holiday "
    "urgent referral records privacy interpreter wheelchair shuttle invoice payment plan "
    "estimate coverage authorization discharge follow-up"
)
WORDS = _VOCABULARY.split()


def write_article(corpus: Path, line: str, name: str, rng: random.Random, stamp: str) -> Path:
    """One Markdown article with front matter, written atomically (tmp file + rename)."""
    title = f"{name.replace('-', ' ').title()}"
    sections = []
    for s in range(rng.randint(1, 3)):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
            for _ in range(rng.randint(2, 5))
        ]
        sections.append(f"## Part {s + 1}\n\n" + " ".join(sentences) + f" Revision {stamp}.")
    text = (
        f"---\nid: {name}\ntitle: {title}\nowner: Crash Harness\nservice_line: {line}\n"
        "audience: patient\nreview_every_days: 365\n---\n"
        f"# {title}\n\n" + "\n\n".join(sections) + "\n"
    )
    path = corpus / line / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Markers:
    """Phase markers, one line each, written straight to the file (no buffering)."""

    def __init__(self, path: Path, hold: str | None) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.hold = hold

    def __call__(self, phase: str, *details: object) -> None:
        line = " ".join([phase, *(str(d) for d in details)]) + "\n"
        os.write(self.fd, line.encode())
        if phase == self.hold:
            self.hold = None
            time.sleep(HOLD_SECONDS)  # the harness kills us inside this window


class MarkingIndex:
    """The real index sync, with a marker on each side of every index write."""

    def __init__(self, sync: Any, mark: Markers) -> None:
        self.sync = sync
        self.mark = mark
        self.cleanup = "publish.cleanup"

    def add_version(self, article: Any, version: Any, chunks: Sequence[Any]) -> None:
        self.mark("publish.points", version.article_id, version.number)
        self.sync.add_version(article, version, chunks)
        self.mark("publish.flip", version.article_id, version.number)

    def add_versions(self, items: Sequence[Any]) -> None:
        self.mark("publish.points", len(items))
        self.sync.add_versions(items)
        self.mark("publish.flip", len(items))

    def remove_version(self, version_id: int) -> None:
        self.mark(self.cleanup, version_id)
        self.sync.remove_version(version_id)

    def remove_versions(self, version_ids: Sequence[int]) -> None:
        self.mark(self.cleanup, *version_ids)
        self.sync.remove_versions(version_ids)


def work(embedder: Any, cmd: dict[str, Any]) -> None:
    """Rounds of ingest -> review -> publish -> maybe retire, until killed."""
    from sqlmodel import Session

    from canon.runtime import Runtime
    from canon.settings import Settings
    from governance import service
    from governance.models import Status
    from governance.service import Actor, Role
    from ingest.pipeline import FileResult, Outcome
    from ingest.pipeline import ingest as run_ingest

    rng = random.Random(cmd["seed"])
    corpus = Path(cmd["corpus"])
    mark = Markers(Path(cmd["markers"]), cmd.get("hold"))
    settings = Settings(home=Path(cmd["home"]), database_url=cmd.get("db"))
    rt = Runtime(settings, embedder=embedder)
    author = Actor("ingest", frozenset({Role.author}))
    reviewer = Actor("rob", frozenset({Role.reviewer}))
    admin = Actor("ada", frozenset({Role.admin}))
    mark("start")
    index = MarkingIndex(rt.sync, mark)

    def committed(result: FileResult) -> None:
        if result.outcome in (Outcome.created, Outcome.new_version):
            path = Path(result.path)
            mark("ingest.commit", path, result.article_id, result.version, sha256_file(path))

    for round_ in range(1, 1000):
        mark("mutate", round_)
        names = sorted(p for p in corpus.rglob("*.md") if not p.name.startswith("."))
        for path in rng.sample(names, k=min(len(names), rng.randint(1, 3))):
            write_article(corpus, path.parent.name, path.stem, rng, f"{cmd['seed']}.{round_}")
        if rng.random() < 0.2:
            name = f"crash-{cmd['seed']}-{round_}"
            write_article(corpus, rng.choice(SERVICE_LINES), name, rng, str(round_))
        mark("ingest", round_)
        run_ingest(
            rt.engine,
            [corpus],
            author=author.name,
            submit=True,
            max_bytes=settings.max_file_bytes,
            budget=rt.chunk_budget,
            on_file=committed,
        )
        mark("review", round_)
        with Session(rt.engine, expire_on_commit=False) as session:
            for v in service.versions_in(session, Status.draft):
                service.submit(session, v.id or 0, author)
            for v in service.versions_in(session, Status.in_review):
                service.approve(session, v.id or 0, reviewer)
        mark("publish", round_)
        with Session(rt.engine, expire_on_commit=False) as session:
            ids = [v.id or 0 for v in service.versions_in(session, Status.approved)]
            if round_ % 2:
                for vid in ids:
                    service.publish(session, vid, reviewer, index)
            elif ids:
                rt.sync.warm(session, ids)
                service.publish_many(session, ids, reviewer, index)
        mark("publish.done", round_)
        if rng.random() < 0.35:
            with Session(rt.engine, expire_on_commit=False) as session:
                live = sorted({v.article_id for v in service.published_view(session).values()})
                if live:
                    target = rng.choice(live)
                    mark("retire", target)
                    index.cleanup = "retire.cleanup"
                    service.retire(session, target, admin, "crash harness", index)
                    index.cleanup = "publish.cleanup"
                    mark("retire.done", target)
        mark("round.done", round_)


def run_cli(embedder: Any, cmd: dict[str, Any]) -> int:
    """`canon ARGV` as a user runs it, in this process, with its output in files."""
    import canon.cli as cli
    from canon.runtime import Runtime
    from canon.settings import Settings

    os.environ.update(cmd.get("env", {}))
    for name in cmd.get("unset", []):
        os.environ.pop(name, None)
    out = os.open(cmd["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(cmd["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    cli._runtime = lambda: Runtime(Settings(), embedder=embedder)  # the loaded model
    sys.argv = ["canon", *cmd["argv"]]
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def fork(run: Any) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        code = run()
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)


def warm_up() -> Any:
    """Import and exercise everything a child needs once, before any fork."""
    import tempfile

    import torch

    torch.set_num_threads(1)

    import canon.cli  # noqa: F401
    from canon.settings import Settings
    from ingest.parse import parse_file
    from retrieval.embed import Embedder

    settings = Settings()  # the configured model and backend (CANON_EMBED_*), as tests use
    embedder = Embedder(settings.embed_model, backend=settings.embed_backend)
    embedder.embed(["warm up the encoder"])
    with tempfile.TemporaryDirectory() as tmp:
        path = write_article(Path(tmp), "billing", "warm-up", random.Random(0), "0")
        parse_file(path, Path(tmp), max_bytes=1_000_000)
    return embedder


def serve() -> None:
    embedder = warm_up()
    print(json.dumps({"ready": True, "dim": embedder.dim}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        reply: dict[str, Any]
        if cmd["op"] == "work":
            reply = {"pid": fork(partial(work, embedder, cmd))}
        elif cmd["op"] == "cli":
            pid = fork(partial(run_cli, embedder, cmd))
            _, status = os.waitpid(pid, 0)
            reply = {"code": os.waitstatus_to_exitcode(status)}
        elif cmd["op"] == "spawn":  # a `canon` command the harness will kill
            reply = {"pid": fork(partial(run_cli, embedder, cmd))}
        elif cmd["op"] == "reap":
            _, status = os.waitpid(cmd["pid"], 0)
            reply = {"exit": os.waitstatus_to_exitcode(status)}
        else:
            reply = {"error": f"unknown op {cmd['op']!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    serve()
