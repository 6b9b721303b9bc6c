"""What each racing process runs (spawned: imports stay light, no model, no torch).

A worker loads the version it will act on (so every racer holds the same revision),
meets the others at a process barrier, then makes its move. Publishers may also meet
inside the index hook, after their revision check and before any transaction, so the
database alone decides who wins. The outcome travels back as plain data: the error's
class and the HTTP status and CLI exit code `canon.errors` maps it to.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from typing import Literal

from sqlmodel import Session

from canon import errors
from governance import service
from governance.db import make_engine
from governance.errors import CanonError
from governance.models import Article, ArticleVersion, Chunk
from governance.service import Actor, Role

Move = Literal["approve", "publish", "retire"]

_barrier: Barrier | None = None


def init(barrier: Barrier) -> None:
    global _barrier
    _barrier = barrier


def _meet() -> None:
    assert _barrier is not None, "racers.init was not called in this process"
    _barrier.wait()


@dataclass(frozen=True)
class Task:
    db_url: str
    move: Move
    version_id: int
    actor: str
    expected_revision: int | None = None
    hold_in_index: bool = False  # every racer is a publisher: meet again inside the hook


@dataclass
class Outcome:
    actor: str
    move: Move
    error: str | None = None  # the CanonError's class name; None when the move won
    http: int | None = None
    exit_code: int | None = None
    message: str = ""
    added: list[int] = field(default_factory=list)  # version ids whose points it wrote
    removed: list[int] = field(default_factory=list)  # version ids whose points it deleted


class RecordingIndex:
    """This process's index hook: records what publishing asked of it."""

    def __init__(self, outcome: Outcome, hold: bool) -> None:
        self.outcome = outcome
        self.hold = hold

    def add_version(
        self, article: Article, version: ArticleVersion, chunks: Sequence[Chunk]
    ) -> None:
        assert version.id is not None
        self.outcome.added.append(version.id)
        if self.hold:
            _meet()

    def remove_version(self, version_id: int) -> None:
        self.outcome.removed.append(version_id)


def act(task: Task) -> Outcome:
    outcome = Outcome(actor=task.actor, move=task.move)
    engine = make_engine(task.db_url)
    try:
        with Session(engine) as session:
            version = service.get_version(session, task.version_id)
            article = service.get_article(session, version.article_id)
            if article.published_version_id is not None:
                service.get_version(session, article.published_version_id)
            index = RecordingIndex(outcome, task.hold_in_index)
            _meet()
            try:
                if task.move == "approve":
                    who = Actor(task.actor, frozenset({Role.reviewer}))
                    service.approve(
                        session, task.version_id, who, expected_revision=task.expected_revision
                    )
                elif task.move == "publish":
                    who = Actor(task.actor, frozenset({Role.reviewer}))
                    service.publish(
                        session,
                        task.version_id,
                        who,
                        index,
                        expected_revision=task.expected_revision,
                    )
                else:
                    who = Actor(task.actor, frozenset({Role.admin}))
                    service.retire(session, version.article_id, who, "withdrawn", index)
            except CanonError as exc:
                outcome.error = type(exc).__name__
                outcome.http = errors.lookup(errors.HTTP_STATUS, exc, 500)
                outcome.exit_code = errors.lookup(errors.EXIT_CODE, exc, 1)
                outcome.message = str(exc)
    finally:
        engine.dispose()
    return outcome
