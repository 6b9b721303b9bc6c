"""The answer log: each served answer with its de-identified question and the exact
versions it cited; feedback on an answer is tied to those versions.

De-identification happens here, before anything is written, so no caller can store
a raw question by mistake.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session, col, select

from governance.deid import deidentify
from governance.errors import InvalidInput, NotFound
from governance.models import AnswerCitation, AnswerLog, Audience, Feedback, Rating

MAX_COMMENT_CHARS = 2000


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
    log = AnswerLog(
        id=str(uuid.uuid4()),
        key_name=key_name,
        channel=channel,
        audience=audience,
        question_deid=deidentify(question),
        answer=answer,
        abstained=abstained,
        abstain_reason=abstain_reason,
        escalate=escalate,
        grounded=grounded,
        support=support,
    )
    session.add(log)
    session.flush()
    for ordinal, cited in enumerate(citations):
        session.add(
            AnswerCitation(
                answer_id=log.id,
                ordinal=ordinal,
                article_id=cited.article_id,
                version_id=cited.version_id,
                version=cited.version,
                section=cited.section,
            )
        )
    session.commit()
    session.refresh(log)
    return log


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
