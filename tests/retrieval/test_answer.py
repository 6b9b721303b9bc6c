"""The extractive composer and the grounding check, on hand-made passages."""

from retrieval.answer import Channel, ExtractiveComposer
from retrieval.grounding import GroundingCheck
from retrieval.hybrid import Passage


def passage(text: str, relevance: float, article: str = "a", section: str = "Hours") -> Passage:
    return Passage(
        article_id=article,
        version=1,
        version_id=1,
        title="Billing",
        section=section,
        text=text,
        service_line="billing",
        audience="patient",
        clinical=False,
        stale=False,
        score=0.5,
        relevance=relevance,
        point_id=f"{article}-{section}",
    )


HOURS = (
    "Call 555-0142. Phone hours are Monday to Friday, 8 a.m. to 5 p.m. We are closed on holidays."
)


def test_picks_answering_sentences_in_passage_order() -> None:
    chosen = ExtractiveComposer().compose(
        "what are the phone hours", [passage(HOURS, 0.7)], Channel.chat
    )
    texts = [t for t, _ in chosen]
    assert "Phone hours are Monday to Friday, 8 a.m. to 5 p.m." in texts
    assert texts == sorted(texts, key=HOURS.index)


def test_voice_budget_is_shorter_than_chat() -> None:
    long = " ".join(
        f"Phone hours rule {i} applies to billing calls on weekdays." for i in range(10)
    )
    chat = ExtractiveComposer().compose("billing phone hours", [passage(long, 0.7)], Channel.chat)
    voice = ExtractiveComposer().compose("billing phone hours", [passage(long, 0.7)], Channel.voice)
    assert sum(len(t) for t, _ in voice) <= 280
    assert len(voice) < len(chat)


def test_low_relevance_passages_in_the_top_three_are_skipped() -> None:
    passages = [
        passage(HOURS, 0.7),
        passage("Parking is free.", 0.2, "b"),
        passage("Fax 555-0199.", 0.69, "c"),
    ]
    chosen = ExtractiveComposer().compose("fax number and phone hours", passages, Channel.app)
    assert {p.article_id for _, p in chosen} <= {"a", "c"}


def test_grounding_drops_a_changed_number() -> None:
    check = GroundingCheck()
    assert check.support("Phone hours are Monday to Friday, 8 a.m. to 5 p.m.", HOURS).supported
    altered = check.support("Phone hours are Monday to Friday, 8 a.m. to 7 p.m.", HOURS)
    assert not altered.supported and "7" in altered.missing
    assert not check.support("We offer free valet parking for every visitor.", HOURS).supported
