"""Kill ingest and publish with SIGKILL at random points, then check nothing was lost.

One CANON_HOME lives across all trials. Each trial forks a worker from a warmed-up
zygote (`crash_child`) that loops mutate -> ingest -> approve -> publish (single or
bulk) -> sometimes retire, and kills it: half the trials after a random delay, half
right after a chosen phase marker (the worker waits there), so kills land in the
narrow windows too: between writing a version's points and flipping the published
pointer, between the flip and deleting the old points, between retiring and deleting.

After every kill, before any repair:
- the database is consistent: each article has at most one published version, its
  published pointer names exactly that version, at most one version is pending;
- no draft is lost: every version an ingest reported committed is still there;
- the audit chain verifies.
Then `canon doctor` repairs, and its report shows it only removed invisible extra
points (a published version never lacked its points); the index then holds exactly
the published versions' chunks (point id -> version id, compared with the database:
what `doctor --check-only` compares); re-ingesting the folder reports every file
whose ingest committed (and which has not changed since) as unchanged. After the
last trial, `canon doctor --check-only` reports healthy and `canon audit verify`
passes. The `canon` commands run forked from the zygote: the real command code, with
the model it already loaded.

CANON_CRASH_SEED (printed), CANON_CRASH_TRIALS (default 30) and CANON_CRASH_WINDOW
(seconds over which random kills spread, default 3) change the run; run with `-s`
to see the distribution of phases the kills landed in.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from governance import audit, service
from governance.db import make_engine
from governance.models import Article, ArticleVersion, Chunk, Status
from ingest.pipeline import Outcome, ingest
from retrieval.store import EdgeStore
from tests.conftest import REPO, _drop_schema, _postgres_schema
from tests.reliability.crash_child import SERVICE_LINES, sha256_file, write_article

SEED = int(os.environ.get("CANON_CRASH_SEED") or random.SystemRandom().randrange(1_000_000))
TRIALS = int(os.environ.get("CANON_CRASH_TRIALS", "30"))
WINDOW = float(os.environ.get("CANON_CRASH_WINDOW", "3.0"))
HOLDS = ("ingest.commit", "publish.flip", "publish.cleanup", "retire.cleanup")


class Zygote:
    """The warmed-up process that forks workers and `canon` commands (see crash_child)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.crash_child"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            env=os.environ | {"HF_HUB_OFFLINE": "1"},
        )
        self.dim = int(self._read()["dim"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"crash zygote died:\n{self.log.read_text()[-3000:]}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    z = Zygote(tmp_path_factory.mktemp("zygote") / "zygote.log")
    yield z
    z.close()


@dataclass
class Home:
    root: Path
    db: str | None  # None: the default SQLite file in CANON_HOME

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def engine(self) -> Engine:
        return make_engine(self.db or f"sqlite:///{(self.home / 'canon.db').resolve()}")


@dataclass
class Tally:
    phases: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    orphan_trials: int = 0
    orphans: int = 0
    commits: int = 0
    published: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))


def canon(z: Zygote, home: Home, *argv: str) -> tuple[int, str, str]:
    out, err = home.root / "cli.out", home.root / "cli.err"
    env = {"CANON_HOME": str(home.home)}
    unset = ["CANON_QDRANT_URL"]
    if home.db:
        env["CANON_DATABASE_URL"] = home.db
    else:
        unset.append("CANON_DATABASE_URL")
    reply = z.ask(op="cli", argv=list(argv), env=env, unset=unset, stdout=str(out), stderr=str(err))
    return int(reply["code"]), out.read_text(), err.read_text()


def check_database(home: Home, committed: set[tuple[str, int]]) -> int:
    """No version half-published, no draft lost; returns the number of live versions."""
    engine = home.engine()
    try:
        with Session(engine) as s:
            articles = {a.id: a for a in s.exec(select(Article)).all()}
            versions: dict[str, list[ArticleVersion]] = {}
            for v in s.exec(select(ArticleVersion)).all():
                versions.setdefault(v.article_id, []).append(v)
            for article_id, article in articles.items():
                mine = versions.get(article_id, [])
                live = [v.id for v in mine if v.status == Status.published]
                pointer = article.published_version_id
                assert live == ([pointer] if pointer is not None else []), (article_id, live)
                pending = [v.number for v in mine if v.status in service.PENDING]
                assert len(pending) <= 1, (article_id, pending)
            for article_id, number in committed:
                version = service.find_version(s, article_id, number)
                assert service.chunks_of(s, version.id or 0), (article_id, number)
            return len(service.published_view(s))
    finally:
        engine.dispose()


def check_audit(home: Home) -> None:
    engine = home.engine()
    try:
        with Session(engine) as s:
            chain = audit.verify(s)
            assert chain.ok, chain
    finally:
        engine.dispose()


def check_index(home: Home, dim: int) -> None:
    """The index holds exactly the published versions' chunks."""
    engine = home.engine()
    try:
        with Session(engine) as s:
            live = list(service.published_view(s))
            chunks = s.exec(select(Chunk).where(col(Chunk.version_id).in_(live))).all()
            expected = {c.point_id: c.version_id for c in chunks}
    finally:
        engine.dispose()
    store = EdgeStore(home.home / "index", dim)
    try:
        assert store.point_versions() == expected
    finally:
        store.close()


def run_trials(z: Zygote, home: Home, trials: int, seed: int) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    ever: set[tuple[str, int]] = set()  # (article, version) an ingest reported committed
    latest: dict[str, tuple[int, str]] = {}  # path -> (version, sha256 of the bytes ingested)
    for i, line in enumerate(SERVICE_LINES * 2):
        write_article(home.corpus, line, f"{line}-topic-{i}", rng, "0")
    code, out, err = canon(z, home, "doctor")  # an initialised, empty home to start from
    assert code == 0, (out, err)

    for trial in range(trials):
        # every narrow window is held once first, whatever the seed; then half at random
        if trial < len(HOLDS):
            hold: str | None = HOLDS[trial]
        else:
            hold = rng.choice(HOLDS) if rng.random() < 0.5 else None
        markers = home.root / f"markers-{trial}.txt"
        pid = z.ask(
            op="work",
            seed=seed * 1000 + trial,
            hold=hold,
            home=str(home.home),
            db=home.db,
            corpus=str(home.corpus),
            markers=str(markers),
        )["pid"]
        started = time.monotonic()
        if hold is None:
            time.sleep(rng.uniform(0.0, WINDOW))
            tally.modes["random time"] += 1
        else:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if markers.exists() and any(
                    ln.split(" ", 1)[0] == hold for ln in markers.read_text().splitlines()
                ):
                    break
                time.sleep(0.005)
            tally.modes[f"held at {hold}"] += 1
        killed = time.monotonic()
        tally.seconds["worker until the kill"] += killed - started
        os.kill(pid, signal.SIGKILL)
        ended = z.ask(op="reap", pid=pid)["exit"]
        assert ended == -signal.SIGKILL, f"worker ended by itself ({ended}):\n{z.log.read_text()}"

        lines = markers.read_text().splitlines() if markers.exists() else []
        tally.phases[lines[-1].split(" ", 1)[0] if lines else "fork"] += 1
        for ln in lines:
            if ln.startswith("ingest.commit "):
                _, path, article_id, number, sha = ln.split(" ")
                latest[path] = (int(number), sha)
                ever.add((article_id, int(number)))
                tally.commits += 1

        # Straight after the kill, before any repair.
        check_database(home, ever)
        check_audit(home)

        # `canon doctor` repairs; it may only have found invisible extra points.
        before_doctor = time.monotonic()
        code, out, err = canon(z, home, "doctor", "--json")
        tally.seconds["canon doctor"] += time.monotonic() - before_doctor
        assert code == 0, (out, err)
        repaired = json.loads(out)
        assert repaired["reindexed"] == [], f"a published version lost points: {repaired}"
        if repaired["orphans_removed"]:
            tally.orphan_trials += 1
            tally.orphans += repaired["orphans_removed"]
        check_index(home, z.dim)  # what `doctor --check-only` compares, checked exactly

        # Re-ingest (the function `canon ingest` runs): committed files are unchanged.
        engine = home.engine()
        try:
            again = ingest(engine, [home.corpus], author="harness", max_bytes=10**7)
        finally:
            engine.dispose()
        assert not again.failed, again.failed
        for f in again.files:
            known = latest.get(f.path)
            if known is not None and known[1] == sha256_file(Path(f.path)):
                assert (f.outcome, f.version) == (Outcome.unchanged, known[0]), f
            if f.outcome in (Outcome.created, Outcome.new_version):
                assert f.article_id is not None and f.version is not None
                latest[f.path] = (f.version, sha256_file(Path(f.path)))
                ever.add((f.article_id, f.version))
        tally.published = check_database(home, ever)
        tally.seconds["from the kill to the end of the checks"] += time.monotonic() - killed

    # Finally, the commands an operator runs, as they run them.
    code, out, err = canon(z, home, "doctor", "--check-only", "--json")
    assert code == 0 and json.loads(out)["healthy"], (out, err)
    code, out, err = canon(z, home, "audit", "verify")
    assert code == 0 and "audit chain ok" in out, (out, err)
    return tally


def report(db: str, trials: int, seconds: float, tally: Tally) -> str:
    phases = ", ".join(f"{p} {n}" for p, n in sorted(tally.phases.items()))
    modes = ", ".join(f"{m} {n}" for m, n in sorted(tally.modes.items()))
    return (
        f"crash safety ({db}): seed {SEED}, {trials} kills in {seconds:.0f} s; "
        f"kills landed after: {phases}; modes: {modes}; trials that left invisible "
        f"orphan points: {tally.orphan_trials} ({tally.orphans} points, removed by doctor); "
        f"ingests committed before kills: {tally.commits}; published at the end: "
        f"{tally.published}; seconds: "
        + ", ".join(f"{k} {v:.0f}" for k, v in tally.seconds.items())
    )


@pytest.mark.slow
@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sigkill_during_ingest_and_publish_loses_nothing(
    zygote: Zygote, tmp_path: Path, db: str
) -> None:
    trials = TRIALS if db == "sqlite" else max(1, TRIALS // 3)
    print(f"rerun with CANON_CRASH_SEED={SEED} CANON_CRASH_TRIALS={TRIALS}")  # shown on failure
    schema = None
    url = None
    if db == "postgres":
        schema, url = _postgres_schema()
    try:
        started = time.monotonic()
        tally = run_trials(zygote, Home(tmp_path, url), trials, SEED + (db == "postgres"))
        summary = report(db, trials, time.monotonic() - started, tally)
    finally:
        if schema:
            _drop_schema(schema)
    print("\n" + summary)
    target = os.environ.get("CANON_CRASH_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(summary + "\n")
    assert sum(tally.phases.values()) == trials
    # Kills must have landed inside the publish window, not only around it.
    assert tally.phases["publish.flip"] + tally.phases["publish.cleanup"] > 0


RESTORE_TRIALS = int(os.environ.get("CANON_CRASH_RESTORE_TRIALS", "10"))


def published(home: Home) -> dict[str, int]:
    engine = home.engine()
    try:
        with Session(engine) as s:
            return {v.article_id: v.number for v in service.published_view(s).values()}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_sigkill_during_restore_leaves_the_old_or_the_new_canon(
    zygote: Zygote, tmp_path: Path
) -> None:
    """`canon restore --force` killed at a random moment: the database is wholly the old
    Canon or wholly the archive's, the audit chain verifies, and `canon doctor` brings the
    index back in line with it."""
    home = Home(tmp_path, None)
    rng = random.Random(SEED)
    archives: list[tuple[Path, dict[str, int]]] = []
    for step, folder in enumerate(("pharmacy", "billing")):
        for argv in (
            ("ingest", str(REPO / "corpus" / folder), "--submit"),
            ("review", "approve", "--all", "--actor", "rob", "--role", "clinical-review"),
            ("publish", "--all", "--actor", "rob"),
        ):
            code, out, err = canon(zygote, home, *argv)
            assert code == 0, (argv, out, err)
        archive = tmp_path / f"state-{step}.tar.gz"
        code, out, err = canon(zygote, home, "backup", str(archive))
        assert code == 0, (out, err)
        archives.append((archive, published(home)))
    assert archives[0][1] != archives[1][1], archives

    started = time.monotonic()
    code, out, err = canon(zygote, home, "restore", str(archives[0][0]), "--force")
    assert code == 0, (out, err)
    full = time.monotonic() - started
    outcomes: Counter[str] = Counter()
    for _ in range(RESTORE_TRIALS):
        before = published(home)
        # Restore whichever archive differs from what the Canon holds now.
        archive, target = next((a, t) for a, t in archives if t != before)
        env = {"CANON_HOME": str(home.home)}
        out_path, err_path = home.root / "restore.out", home.root / "restore.err"
        pid = zygote.ask(
            op="spawn",
            argv=["restore", str(archive), "--force"],
            env=env,
            unset=["CANON_DATABASE_URL", "CANON_QDRANT_URL"],
            stdout=str(out_path),
            stderr=str(err_path),
        )["pid"]
        time.sleep(rng.uniform(0.0, full * 1.1))
        os.kill(pid, signal.SIGKILL)
        ended = zygote.ask(op="reap", pid=pid)["exit"]
        now = published(home)
        assert now in (before, target), (now, before, target)
        outcomes["finished" if ended == 0 else "old" if now == before else "new"] += 1
        check_database(home, set())
        check_audit(home)
        code, out_, err_ = canon(zygote, home, "doctor", "--json")
        assert code == 0, (out_, err_)
        check_index(home, zygote.dim)
    # A finished restore leaves nothing behind, not even what the killed ones left.
    code, out, err = canon(zygote, home, "restore", str(archives[0][0]), "--force")
    assert code == 0, (out, err)
    assert sorted(p.name for p in home.home.iterdir() if p.name.startswith(".")) == []
    summary = (
        f"restore kills: seed {SEED}, {RESTORE_TRIALS} trials over a {full:.1f} s restore; "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    )
    print("\n" + summary)
    target_file = os.environ.get("CANON_CRASH_REPORT")
    if target_file:
        with open(target_file, "a", encoding="utf-8") as fh:
            fh.write(summary + "\n")
