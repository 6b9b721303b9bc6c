"""The answer log: each served answer with its de-identified question and the exact
versions it cited; feedback on an answer is tied to those versions.

De-identification happens here, before anything is written, so no caller can store
a raw question by mistake.
"""

import logging
import queue
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from governance.deid import deidentify
from governance.errors import InvalidInput, NotFound
from governance.models import AnswerCitation, AnswerLog, Audience, Feedback, Rating, utcnow

MAX_COMMENT_CHARS = 2000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CitedVersion:
    article_id: str
    version_id: int
    version: int
    section: str


@dataclass(frozen=True)
class LoggedAnswer:
    log: AnswerLog
    citations: list[AnswerCitation]
    feedback: list[Feedback]


def new_id() -> str:
    return str(uuid.uuid4())


def record(
    session: Session,
    *,
    question: str,
    answer: str,
    channel: str,
    audience: Audience,
    key_name: str | None,
    abstained: bool,
    abstain_reason: str | None,
    escalate: bool,
    grounded: bool,
    support: float,
    citations: Sequence[CitedVersion],
) -> AnswerLog:
    """Store one answer; the question is de-identified first. Returns the stored row."""
    answer_id = new_id()
    _add(
        session,
        [
            Entry(
                id=answer_id,
                question=question,
                answer=answer,
                channel=channel,
                audience=audience,
                key_name=key_name,
                abstained=abstained,
                abstain_reason=abstain_reason,
                escalate=escalate,
                grounded=grounded,
                support=support,
                citations=tuple(citations),
            )
        ],
    )
    session.commit()
    row = session.get(AnswerLog, answer_id)
    assert row is not None
    return row


@dataclass(frozen=True)
class Entry:
    """An answer waiting to be logged (its question not yet de-identified)."""

    id: str
    question: str
    answer: str
    channel: str
    audience: Audience
    key_name: str | None
    abstained: bool
    abstain_reason: str | None
    escalate: bool
    grounded: bool
    support: float
    citations: tuple[CitedVersion, ...] = field(default_factory=tuple)


def _add(session: Session, entries: Sequence[Entry]) -> None:
    """Insert answers and their citations, two statements in all (the caller commits)."""
    at = utcnow()
    session.execute(
        insert(AnswerLog),
        [
            {
                "id": entry.id,
                "at": at,
                "key_name": entry.key_name,
                "channel": entry.channel,
                "audience": entry.audience,
                "question_deid": deidentify(entry.question),
                "answer": entry.answer,
                "abstained": entry.abstained,
                "abstain_reason": entry.abstain_reason,
                "escalate": entry.escalate,
                "grounded": entry.grounded,
                "support": entry.support,
            }
            for entry in entries
        ],
    )
    cited = [
        {
            "answer_id": entry.id,
            "ordinal": ordinal,
            "article_id": c.article_id,
            "version_id": c.version_id,
            "version": c.version,
            "section": c.section,
        }
        for entry in entries
        for ordinal, c in enumerate(entry.citations)
    ]
    if cited:
        session.execute(insert(AnswerCitation), cited)


class Writer:
    """Writes the answer log off the request path: one thread, one transaction per batch
    (what arrived within `linger_ms` of the first entry).

    `submit` returns the answer's id at once. `flush` returns when everything submitted
    before it is committed, so a reader that flushes first (`GET /v1/answers/{id}`,
    feedback) sees its own answers; `close` writes what is queued, then stops. A batch
    that fails is retried entry by entry, so one bad entry costs only itself.
    """

    def __init__(self, engine: Engine, *, max_batch: int = 256, linger_ms: float = 100.0) -> None:
        self._engine = engine
        self.max_batch = max_batch
        # 100 ms: at 150 answers/s, batches of about 15 instead of 3 at 20 ms; the thread
        # cost 0.29 instead of 0.51 ms of CPU per answer (bench/README.md, 2026-12-01).
        # A reader's `flush` and `close` cut the wait short, so only a crash loses more.
        self.linger = linger_ms / 1000.0
        self._wake = threading.Event()
        self._queue: queue.SimpleQueue[Entry | threading.Event | None] = queue.SimpleQueue()
        self.written = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="answer-log", daemon=True)
        self._thread.start()

    def submit(self, entry: Entry) -> str:
        self._queue.put(entry)
        return entry.id

    def flush(self, timeout: float = 30.0) -> None:
        done = threading.Event()
        self._queue.put(done)
        self._wake.set()  # a reader waits: write now, not at the end of the linger
        if self._thread.is_alive() and not done.wait(timeout):
            raise TimeoutError("the answer log did not flush in time")

    def close(self) -> None:
        self._queue.put(None)
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[Entry] = []
            waiting: list[threading.Event] = []
            item = self._queue.get()
            if isinstance(item, Entry):
                # Let answers gather, asleep: a waiting `get` would wake this thread (and
                # take the GIL from the event loop) on every single submit. `flush` and
                # `close` wake it at once.
                self._wake.wait(self.linger)
            # (a flush that sets it from here on is drained now or wakes the next wait)
            self._wake.clear()
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiting.append(item)
                else:
                    batch.append(item)
                if stop or len(batch) >= self.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write(batch)
            for event in waiting:
                event.set()

    def _write(self, batch: list[Entry]) -> None:
        if not batch:
            return
        try:
            with Session(self._engine) as session:
                _add(session, batch)
                session.commit()
            self.written += len(batch)
            return
        except Exception:
            if len(batch) == 1:
                self.failed += 1
                log.exception("answer log: could not store answer %s", batch[0].id)
                return
        for entry in batch:
            self._write([entry])


def fetch(session: Session, answer_id: str) -> LoggedAnswer:
    log = session.get(AnswerLog, answer_id)
    if log is None:
        raise NotFound(f"no answer with id {answer_id!r}")
    citations = session.exec(
        select(AnswerCitation)
        .where(AnswerCitation.answer_id == answer_id)
        .order_by(col(AnswerCitation.ordinal))
    ).all()
    feedback = session.exec(
        select(Feedback).where(Feedback.answer_id == answer_id).order_by(col(Feedback.id))
    ).all()
    return LoggedAnswer(log, list(citations), list(feedback))


def add_feedback(
    session: Session, answer_id: str, *, rating: Rating, comment: str | None, by: str
) -> Feedback:
    """A judgment on a logged answer; it reaches the owners of every version the answer cited."""
    if session.get(AnswerLog, answer_id) is None:
        raise NotFound(f"no answer with id {answer_id!r}")
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise InvalidInput(f"comment: at most {MAX_COMMENT_CHARS} characters")
    feedback = Feedback(
        answer_id=answer_id,
        rating=rating,
        comment=deidentify(comment) if comment else None,
        by=by,
    )
    session.add(feedback)
    session.commit()
    session.refresh(feedback)
    return feedback
