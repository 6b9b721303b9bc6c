"""The answer log: de-identified before storage, exact versions cited, feedback linked."""

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from governance import answer_log
from governance.answer_log import CitedVersion
from governance.deid import deidentify
from governance.models import AnswerLog, Article, ArticleVersion, Audience, Feedback, Rating

PHI_QUESTION = (
    "Hi, my name is Maria Lopez, DOB 04/12/1961, MRN 48213377. I live at 42 Elm Street "
    "Apt 3. Call me at (617) 555-0142 or maria.lopez@example.com - is billing open Saturday?"
)
IDENTIFIERS = ["Maria", "Lopez", "04/12/1961", "48213377", "42 Elm", "555-0142", "example.com"]


def test_deidentify_scrubs_each_kind_of_identifier() -> None:
    cleaned = deidentify(PHI_QUESTION)
    for identifier in IDENTIFIERS:
        assert identifier not in cleaned
    for placeholder in ("[NAME]", "[DATE]", "[MRN]", "[ADDRESS]", "[PHONE]", "[EMAIL]"):
        assert placeholder in cleaned
    assert "is billing open Saturday?" in cleaned


def test_deidentify_keeps_ordinary_questions_whole() -> None:
    for question in (
        "Is the billing office open on Saturday from 9 to 1?",
        "I'm pregnant, can I have an MRI?",
        "How much is parking in garage B for 3 hours?",
    ):
        assert deidentify(question) == question


def _version(session: Session) -> ArticleVersion:
    session.add(Article(id="billing-hours", title="Billing", owner="Ann", service_line="billing"))
    version = ArticleVersion(
        article_id="billing-hours",
        number=2,
        title="Billing",
        owner="Ann",
        service_line="billing",
        content_hash="x" * 64,
        body="Open Saturday 9 to 1.",
        author="ann",
    )
    session.add(version)
    session.commit()
    session.refresh(version)
    return version


def test_logged_answer_stores_no_identifier_and_the_exact_versions(engine: Engine) -> None:
    with Session(engine) as s:
        version = _version(s)
        assert version.id is not None
        log = answer_log.record(
            s,
            question=PHI_QUESTION,
            answer="Saturday 9 a.m. to 1 p.m.",
            channel="chat",
            audience=Audience.patient,
            key_name="chat-bot",
            abstained=False,
            abstain_reason=None,
            escalate=False,
            grounded=True,
            support=1.0,
            citations=[CitedVersion("billing-hours", version.id, 2, "Phone Hours")],
        )
        stored = s.exec(select(AnswerLog)).one()
        for identifier in IDENTIFIERS:
            assert identifier not in stored.question_deid
        fetched = answer_log.fetch(s, log.id)
        assert [(c.article_id, c.version_id, c.version) for c in fetched.citations] == [
            ("billing-hours", version.id, 2)
        ]
        answer_log.add_feedback(
            s,
            log.id,
            rating=Rating.outdated,
            comment="Maria Lopez says call 617-555-0142",
            by="bot",
        )
        feedback = s.exec(select(Feedback)).one()
        assert feedback.answer_id == log.id and feedback.rating == Rating.outdated
        assert feedback.comment is not None and "555-0142" not in feedback.comment
        assert len(answer_log.fetch(s, log.id).feedback) == 1
